//! A broadcast source's configuration and the per-BIS values of BlueZ's `SetConfiguration` (notes/bluez.md §B.1).
//!
//! For each BIS, bluebridge calls `SetConfiguration(our endpoint, props)` on `/org/bluez/hciN/pac_bcast<i>` with
//! `props` = [`BisSetup::properties`]: `Capabilities` (`ay`, the codec-specific configuration LTVs), `Metadata`
//! (`ay`, when not empty) and `QoS` (`a{sv}`). The keys and D-Bus types are those BlueZ's
//! `profiles/audio/bap.c` `setup_parse_configuration` / `setup_parse_bcast_qos` / `parse_io_qos` accept (HEAD
//! 690c16df), in the order `bluetoothctl` (`client/player.c` `append_bcast_qos`) sends them. Values are plain
//! Rust ([`PropValue`]); the endpoint module turns them into D-Bus variants.
//!
//! Things BlueZ does that shape this:
//! - BISes share one BIG only if `BIG` is set explicitly: with `BIG` omitted (0xFF, "auto") every BIS gets a
//!   BIG and a BASE of its own (`bap.c` `get_streams_nb_by_state`, `bt_bap_stream_get_base`). So `BIG` is always
//!   sent (default 0).
//! - All BISes of a BIG must carry identical QoS (`setup_mismatch_qos`, 5.80).
//! - `Framing` is sent as bluetoothctl does, but BlueZ up to at least 5.87 ignores it for broadcast (the BIG is
//!   unframed), so the framed 44.1 kHz presets may fail there.
//! - BIS indices are assigned 1.. in `SetConfiguration` order; BlueZ generates the BASE itself
//!   ([`super::base::Base::bluez_layout`] predicts it).

use super::base::{Base, BaseBis, BaseError, CodecId, Subgroup, MAX_PRESENTATION_DELAY_US};
use super::ltv::{audio_location, CodecConfig, LtvError, Metadata};
use super::presets::Preset;
use std::fmt;
use std::str::FromStr;

/// `PHY` bit for LE 2M (BlueZ `BT_BAP_CONFIG_PHY_2M`), the PHY of every standard preset.
pub const PHY_2M: u8 = 0x02;

/// The BIG handle bluebridge uses unless configured otherwise.
pub const DEFAULT_BIG: u8 = 0x00;

/// How the audio's channels map onto BISes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChannelLayout {
    /// Two BISes: BIS 1 = front left, BIS 2 = front right.
    #[default]
    Stereo,
    /// One BIS without a channel allocation (mono, no location): receivers play it on every speaker.
    Mono,
}

impl ChannelLayout {
    /// BISes (= LC3 encoders) this layout needs.
    pub fn bis_count(self) -> usize {
        self.allocations().len()
    }

    /// The Audio_Channel_Allocation of each BIS in order; `None` = omitted.
    pub fn allocations(self) -> &'static [Option<u32>] {
        match self {
            Self::Stereo => &[Some(audio_location::FRONT_LEFT), Some(audio_location::FRONT_RIGHT)],
            Self::Mono => &[None],
        }
    }
}

impl FromStr for ChannelLayout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stereo" => Ok(Self::Stereo),
            "mono" => Ok(Self::Mono),
            _ => Err(format!("unknown broadcast channel layout {s:?}; valid: stereo, mono")),
        }
    }
}

/// The 16-byte Broadcast_Code that encrypts a BIG.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BroadcastCode([u8; 16]);

/// A broadcast code that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BroadcastCodeError {
    /// Nothing given.
    #[error("broadcast code is empty; give up to 16 characters or 32 hex digits")]
    Empty,
    /// Too long for text, not 32 hex digits.
    #[error(
        "broadcast code is {bytes} bytes long; a text code has at most 16 bytes (UTF-8), a hex code exactly 32 hex digits"
    )]
    Length {
        /// The UTF-8 length given.
        bytes: usize,
    },
    /// A `0x` prefix (ambiguous: some tools then reverse the bytes).
    #[error(
        "broadcast code {0:?}: write the 32 hex digits without \"0x\", first byte first (as bluetoothctl takes them)"
    )]
    HexPrefix(String),
}

impl BroadcastCode {
    /// Parses a code: text of 1..=16 UTF-8 bytes, zero-padded to 16 (what PipeWire, Bumble and bluetoothctl do
    /// with a string), or exactly 32 hex digits giving the 16 bytes first byte first, as BlueZ receives them in
    /// `BCode` (bluetoothctl's byte-list order; note Bumble's `0x…` form is byte-reversed, hence no `0x`).
    pub fn parse(s: &str) -> Result<Self, BroadcastCodeError> {
        if s.is_empty() {
            return Err(BroadcastCodeError::Empty);
        }
        if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut code = [0u8; 16];
            for (i, byte) in code.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("checked hex digits");
            }
            return Ok(Self(code));
        }
        let hex_body = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"));
        if hex_body.is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(BroadcastCodeError::HexPrefix(s.to_owned()));
        }
        if s.len() > 16 {
            return Err(BroadcastCodeError::Length { bytes: s.len() });
        }
        let mut code = [0u8; 16];
        code[..s.len()].copy_from_slice(s.as_bytes());
        Ok(Self(code))
    }

    /// A code from its 16 bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// The 16 bytes, as `BCode` carries them.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl FromStr for BroadcastCode {
    type Err = BroadcastCodeError;
    fn from_str(s: &str) -> Result<Self, BroadcastCodeError> {
        Self::parse(s)
    }
}

impl fmt::Debug for BroadcastCode {
    /// Redacted: the code is a secret and ends up in logs otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BroadcastCode(<redacted>)")
    }
}

/// A configuration that cannot become a broadcast.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BroadcastError {
    /// The presentation delay does not fit the BASE's 24 bits.
    #[error("broadcast presentation delay {0} µs exceeds the BASE's 24-bit maximum {MAX_PRESENTATION_DELAY_US} µs")]
    PresentationDelay(u32),
    /// The BIG handle 0xFF means "auto" to BlueZ, which would split the BISes into separate BIGs.
    #[error("broadcast BIG 0xff means \"auto\" to BlueZ and would put every BIS in a BIG of its own; use 0x00..=0xef")]
    BigAuto,
    /// The BIG handle is beyond HCI's 0x00..=0xEF.
    #[error("broadcast BIG {0:#04x} out of range 0x00..=0xef")]
    Big(u8),
    /// Metadata or codec configuration that cannot be encoded.
    #[error("broadcast configuration: {0}")]
    Ltv(LtvError),
    /// The resulting BASE is invalid (e.g. too long).
    #[error("broadcast configuration: {0}")]
    Base(BaseError),
}

// By hand rather than `#[from]`: the variants print their cause, and a `source` too would print it twice in
// `{e:#}`.
impl From<LtvError> for BroadcastError {
    fn from(e: LtvError) -> Self {
        Self::Ltv(e)
    }
}

impl From<BaseError> for BroadcastError {
    fn from(e: BaseError) -> Self {
        Self::Base(e)
    }
}

/// Everything that defines one broadcast (one BIG).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastConfig {
    /// The audio stream configuration.
    pub preset: &'static Preset,
    /// Channels → BISes.
    pub layout: ChannelLayout,
    /// Presentation delay, µs (the preset's 40 ms unless overridden): receivers render each SDU this long after
    /// its BIG reference point.
    pub presentation_delay_us: u32,
    /// Encrypts the BIG when set.
    pub code: Option<BroadcastCode>,
    /// BIG handle (0x00..=0xEF), [`DEFAULT_BIG`] unless two broadcasts share an adapter.
    pub big: u8,
    /// Subgroup metadata ([`Metadata::media`] by default).
    pub metadata: Metadata,
    /// `SyncFactor` (PA interval as a multiple of the ISO interval); `None` = BlueZ's default (1).
    pub sync_factor: Option<u8>,
}

/// The `QoS` dictionary of one BIS (identical for all BISes of the BIG).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastQos {
    /// `BIG` (y).
    pub big: u8,
    /// `Encryption` (y) = 1 and `BCode` (ay, 16 bytes), or neither.
    pub code: Option<BroadcastCode>,
    /// `Framing` (y).
    pub framing: u8,
    /// `PresentationDelay` (u), µs.
    pub presentation_delay_us: u32,
    /// `Interval` (u): SDU interval, µs.
    pub interval_us: u32,
    /// `Latency` (q): max transport latency, ms.
    pub latency_ms: u16,
    /// `SDU` (q): max SDU, bytes.
    pub sdu: u16,
    /// `PHY` (y).
    pub phy: u8,
    /// `Retransmissions` (y).
    pub retransmissions: u8,
    /// `SyncFactor` (y), when set.
    pub sync_factor: Option<u8>,
}

/// A D-Bus property value as plain data; [`PropValue::signature`] names the D-Bus type it must become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropValue {
    /// `y`
    Byte(u8),
    /// `q`
    U16(u16),
    /// `u`
    U32(u32),
    /// `ay`
    Bytes(Vec<u8>),
    /// `a{sv}`
    Dict(Vec<(&'static str, PropValue)>),
}

impl PropValue {
    /// The D-Bus signature of the value inside the variant.
    pub fn signature(&self) -> &'static str {
        match self {
            Self::Byte(_) => "y",
            Self::U16(_) => "q",
            Self::U32(_) => "u",
            Self::Bytes(_) => "ay",
            Self::Dict(_) => "a{sv}",
        }
    }
}

impl BroadcastQos {
    /// The `QoS` entries, in bluetoothctl's order except `SyncFactor` (last here): `BIG`, `Encryption` + `BCode`,
    /// `Framing`, `PresentationDelay`, `Interval`, `PHY`, `SDU`, `Retransmissions`, `Latency`.
    pub fn entries(&self) -> Vec<(&'static str, PropValue)> {
        let mut e = vec![("BIG", PropValue::Byte(self.big))];
        if let Some(code) = &self.code {
            e.push(("Encryption", PropValue::Byte(1)));
            e.push(("BCode", PropValue::Bytes(code.as_bytes().to_vec())));
        }
        e.extend([
            ("Framing", PropValue::Byte(self.framing)),
            ("PresentationDelay", PropValue::U32(self.presentation_delay_us)),
            ("Interval", PropValue::U32(self.interval_us)),
            ("PHY", PropValue::Byte(self.phy)),
            ("SDU", PropValue::U16(self.sdu)),
            ("Retransmissions", PropValue::Byte(self.retransmissions)),
            ("Latency", PropValue::U16(self.latency_ms)),
        ]);
        if let Some(f) = self.sync_factor {
            e.push(("SyncFactor", PropValue::Byte(f)));
        }
        e
    }
}

/// One BIS's `SetConfiguration` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BisSetup {
    /// Position in the layout (0 = first BIS = left for stereo); BlueZ numbers BISes from 1 in call order.
    pub channel: usize,
    /// The channel allocation carried in `capabilities` (`None` = omitted, mono).
    pub allocation: Option<u32>,
    /// `Capabilities` (ay): the codec-specific configuration LTVs.
    pub capabilities: Vec<u8>,
    /// `Metadata` (ay); not sent when empty.
    pub metadata: Vec<u8>,
    /// `QoS` (a{sv}).
    pub qos: BroadcastQos,
}

impl BisSetup {
    /// The whole `SetConfiguration` property dictionary.
    pub fn properties(&self) -> Vec<(&'static str, PropValue)> {
        let mut p = vec![("Capabilities", PropValue::Bytes(self.capabilities.clone()))];
        if !self.metadata.is_empty() {
            p.push(("Metadata", PropValue::Bytes(self.metadata.clone())));
        }
        p.push(("QoS", PropValue::Dict(self.qos.entries())));
        p
    }
}

impl BroadcastConfig {
    /// A broadcast of `preset` in `layout`: the preset's presentation delay, no encryption, BIG 0, Media context.
    pub fn new(preset: &'static Preset, layout: ChannelLayout) -> Self {
        Self {
            preset,
            layout,
            presentation_delay_us: preset.presentation_delay_us,
            code: None,
            big: DEFAULT_BIG,
            metadata: Metadata::media(),
            sync_factor: None,
        }
    }

    /// BISes in the BIG.
    pub fn bis_count(&self) -> usize {
        self.layout.bis_count()
    }

    /// Bytes of one SDU of one BIS: one LC3 frame of one channel.
    pub fn sdu_bytes(&self) -> u16 {
        self.preset.octets_per_frame
    }

    /// Checks what BlueZ or the BASE would refuse.
    pub fn validate(&self) -> Result<(), BroadcastError> {
        if self.presentation_delay_us > MAX_PRESENTATION_DELAY_US {
            return Err(BroadcastError::PresentationDelay(self.presentation_delay_us));
        }
        match self.big {
            0xff => return Err(BroadcastError::BigAuto),
            0xf0..=0xfe => return Err(BroadcastError::Big(self.big)),
            _ => {}
        }
        self.base()?;
        Ok(())
    }

    /// The `QoS` values every BIS of this broadcast carries.
    pub fn qos(&self) -> BroadcastQos {
        let p = self.preset;
        BroadcastQos {
            big: self.big,
            code: self.code,
            framing: p.framing.as_u8(),
            presentation_delay_us: self.presentation_delay_us,
            interval_us: p.sdu_interval_us,
            latency_ms: p.max_transport_latency_ms,
            sdu: self.sdu_bytes(),
            phy: PHY_2M,
            retransmissions: p.retransmissions,
            sync_factor: self.sync_factor,
        }
    }

    fn codec_config(&self, allocation: Option<u32>) -> CodecConfig {
        CodecConfig {
            sample_rate_hz: self.preset.sample_rate_hz,
            frame_duration: self.preset.frame_duration,
            audio_channel_allocation: allocation,
            octets_per_frame: self.preset.octets_per_frame,
            frame_blocks_per_sdu: None,
        }
    }

    /// One [`BisSetup`] per BIS, in the order to call `SetConfiguration` (left before right).
    pub fn bis_setups(&self) -> Result<Vec<BisSetup>, BroadcastError> {
        self.validate()?;
        let metadata = self.metadata.to_bytes()?;
        let qos = self.qos();
        self.layout
            .allocations()
            .iter()
            .enumerate()
            .map(|(channel, &allocation)| {
                Ok(BisSetup {
                    channel,
                    allocation,
                    capabilities: self.codec_config(allocation).to_bytes()?,
                    metadata: metadata.clone(),
                    qos: qos.clone(),
                })
            })
            .collect()
    }

    /// The BASE this broadcast means, in its minimal form: one LC3 subgroup with the shared configuration
    /// (rate, duration, octets) and metadata, and each BIS carrying only its channel allocation. (BlueZ generates
    /// an equivalent BASE with a different grouping of the LTVs, see [`Base::bluez_layout`].)
    pub fn base(&self) -> Result<Base, BroadcastError> {
        let bises = self
            .layout
            .allocations()
            .iter()
            .enumerate()
            .map(|(i, allocation)| {
                let mut codec_config = Vec::new();
                if let Some(a) = allocation {
                    super::ltv::push_ltv(
                        &mut codec_config,
                        super::ltv::config_type::AUDIO_CHANNEL_ALLOCATION,
                        &a.to_le_bytes(),
                    )?;
                }
                Ok(BaseBis {
                    index: i as u8 + 1,
                    codec_config,
                })
            })
            .collect::<Result<Vec<_>, LtvError>>()?;
        let base = Base {
            presentation_delay_us: self.presentation_delay_us,
            subgroups: vec![Subgroup {
                codec_id: CodecId::LC3,
                codec_config: self.codec_config(None).to_bytes()?,
                metadata: self.metadata.to_bytes()?,
                bises,
            }],
        };
        base.encode()?;
        Ok(base)
    }
}

#[cfg(test)]
mod tests;
