//! The `broadcast` kind's settings: preset, layout, presentation delay, code, adapter, and what it advertises
//! about itself (Broadcast Name, manufacturer data), checked as BlueZ and the specs would; parsed from its
//! `[[output]]` keys. (Beside [`super::broadcast`], the output itself.)

use super::settings::{Keys, SettingError};
use crate::bap::advertising::{self, ManufacturerData};
use crate::bap::broadcast::{BroadcastCode, BroadcastConfig, ChannelLayout};
use crate::bap::presets::Preset;

/// The keys of kind `broadcast` (besides the common ones).
pub const KEYS: &[&str] = &[
    "preset",
    "presentation_delay_ms",
    "broadcast_code",
    "channels",
    "broadcast_name",
    "manufacturer_data",
    "program_info",
    "language",
    "adapter",
    "receivers",
];

/// Adapter of a broadcast that names none.
pub const DEFAULT_BROADCAST_ADAPTER: &str = "hci0";

/// An LE Audio broadcast.
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastSettings {
    /// The BIG: preset, layout, presentation delay, code.
    pub config: BroadcastConfig,
    /// The adapter, if named (default [`DEFAULT_BROADCAST_ADAPTER`]).
    pub adapter: Option<String>,
    /// The Broadcast Name, if set (default: the host name, see [`advertising::default_name`]).
    pub name: Option<String>,
    /// Manufacturer data to advertise, if set.
    pub manufacturer: Option<ManufacturerData>,
    /// LE Audio receivers bluebridge tells, as a Broadcast Assistant, to play this broadcast (`receivers`).
    pub receivers: Vec<bluer::Address>,
}

impl BroadcastSettings {
    /// Parses the kind's keys.
    pub fn parse(keys: &mut Keys) -> Result<Self, SettingError> {
        let name = match keys.take::<String>("broadcast_name")? {
            None => None,
            Some(n) => {
                advertising::check_name(n.get_ref())
                    .map_err(|e| SettingError::at(n.span(), format!("output.broadcast_name: {e}")))?;
                Some(n.into_inner())
            }
        };
        let manufacturer = match keys.take::<toml::Value>("manufacturer_data")? {
            None => None,
            Some(m) => Some(
                parse_manufacturer(m.get_ref())
                    .map_err(|e| SettingError::at(m.span(), format!("output.manufacturer_data: {e}")))?,
            ),
        };
        let preset_key = keys.take::<String>("preset")?;
        let preset = match &preset_key {
            None => Preset::default_preset(),
            Some(p) => {
                Preset::by_name(p.get_ref()).map_err(|e| SettingError::at(p.span(), format!("output.preset: {e}")))?
            }
        };
        let pcm_hz = super::OUTPUT_FORMAT.rate_hz;
        if preset.check_pcm_rate(pcm_hz).is_err() {
            let span = preset_key.as_ref().map(|p| p.span()).unwrap_or(keys.kind_span.clone());
            let allowed: Vec<_> = Preset::encodable_from(pcm_hz).map(|p| p.name).collect();
            return Err(SettingError::at(
                span,
                format!(
                    "output.preset {:?} is {} Hz, which bluebridge cannot broadcast: its audio is {} kHz, which LC3 \
                     encodes into 8, 16, 24, 32 or 48 kHz streams but not 44.1 kHz (that needs a resampler); allowed \
                     presets: {}",
                    preset.name,
                    preset.sample_rate_hz,
                    pcm_hz / 1_000,
                    allowed.join(", ")
                ),
            ));
        }
        let layout = match keys.take::<String>("channels")? {
            None => ChannelLayout::default(),
            Some(c) => c
                .get_ref()
                .parse::<ChannelLayout>()
                .map_err(|e| SettingError::at(c.span(), format!("output.channels: {e}")))?,
        };
        let mut config = BroadcastConfig::new(preset, layout);
        if let Some(d) = keys.take::<f64>("presentation_delay_ms")? {
            if !(0.0..=16_777.0).contains(d.get_ref()) {
                return Err(SettingError::at(
                    d.span(),
                    format!(
                        "output.presentation_delay_ms must be between 0 and 16777 ms, not {}",
                        d.get_ref()
                    ),
                ));
            }
            config.presentation_delay_us = (d.get_ref() * 1_000.0).round() as u32;
        }
        // Program info and language go into the BASE's subgroup metadata (BlueZ builds the BASE from each BIS's
        // `Metadata`, src/shared/bap.c:7454-7473) and into the Public Broadcast Announcement.
        if let Some(p) = keys.take::<String>("program_info")? {
            config.metadata.program_info = Some(p.get_ref().clone());
        }
        if let Some(l) = keys.take::<String>("language")? {
            let span = l.span();
            config.metadata.language = Some(l.into_inner());
            config
                .metadata
                .to_bytes()
                .map_err(|e| SettingError::at(span, format!("output.language: {e}")))?;
        }
        if let Some(c) = keys.take::<String>("broadcast_code")? {
            config.code = Some(
                BroadcastCode::parse(c.get_ref())
                    .map_err(|e| SettingError::at(c.span(), format!("output.broadcast_code: {e}")))?,
            );
        }
        config
            .validate()
            .map_err(|e| SettingError::at(keys.kind_span.clone(), format!("output: {e}")))?;
        let adapter = keys.adapter()?;
        let receivers = match keys.take::<Vec<String>>("receivers")? {
            None => Vec::new(),
            Some(r) => parse_receivers(r.get_ref())
                .map_err(|e| SettingError::at(r.span(), format!("output.receivers: {e}")))?,
        };
        let settings = Self {
            config,
            adapter,
            name,
            manufacturer,
            receivers,
        };
        // Everything must fit one extended advertising set; without a configured name, with the longest default.
        let worst_name = "n".repeat(advertising::BROADCAST_NAME_MAX);
        let probe = settings.identity(Some(&worst_name), 1);
        if let Err(e) = probe.advertising_data() {
            return Err(SettingError::at(keys.kind_span.clone(), format!("output: {e}")));
        }
        Ok(settings)
    }

    /// What it advertises about itself, on a machine called `host`, with `broadcast_id`.
    pub fn identity(&self, host: Option<&str>, broadcast_id: u32) -> advertising::BroadcastIdentity {
        advertising::BroadcastIdentity::for_broadcast(
            &self.config,
            &self.broadcast_name(host),
            broadcast_id,
            self.manufacturer.clone(),
        )
    }

    /// What of its identity (Broadcast Name, PBP, manufacturer data) `bluez` cannot advertise, in one line for
    /// the log and `status`; `None` when it can carry all of it.
    pub fn identity_warning(&self, bluez: Option<advertising::BluezVersion>) -> Option<String> {
        advertising::identity_support(bluez, None, self.manufacturer.is_some()).warning(bluez)
    }

    /// The Broadcast Name it advertises: the configured one, else from `host` (this machine's host name).
    pub fn broadcast_name(&self, host: Option<&str>) -> String {
        self.name.clone().unwrap_or_else(|| advertising::default_name(host))
    }

    /// The adapter it runs on.
    pub fn adapter(&self) -> &str {
        self.adapter.as_deref().unwrap_or(DEFAULT_BROADCAST_ADAPTER)
    }

    /// `check-config`'s words for it.
    pub fn describe(&self) -> (Option<String>, Vec<String>) {
        let mut words: Vec<String> = self.adapter.iter().map(|a| format!("adapter {a}")).collect();
        if !self.receivers.is_empty() {
            let list: Vec<String> = self.receivers.iter().map(|a| a.to_string()).collect();
            words.push(format!("assists {}", list.join(", ")));
        }
        (None, words)
    }
}

/// Most receivers one broadcast output assists.
pub const RECEIVERS_MAX: usize = 16;

/// `["AA:BB:CC:DD:EE:FF", …]` → addresses; the error names the bad one.
fn parse_receivers(list: &[String]) -> Result<Vec<bluer::Address>, String> {
    if list.len() > RECEIVERS_MAX {
        return Err(format!("{} receivers; at most {RECEIVERS_MAX}", list.len()));
    }
    let mut out: Vec<bluer::Address> = Vec::new();
    for text in list {
        let a = text
            .parse::<bluer::Address>()
            .ok()
            .filter(|_| text.len() == 17)
            .ok_or_else(|| format!("{text:?} is not a Bluetooth address like 00:11:22:33:44:55"))?;
        if out.contains(&a) {
            return Err(format!("{text} is listed twice"));
        }
        out.push(a);
    }
    Ok(out)
}

/// `{ company = 87, data = "hex" }` → [`ManufacturerData`]; the error says what is wrong.
fn parse_manufacturer(v: &toml::Value) -> Result<ManufacturerData, String> {
    let Some(t) = v.as_table() else {
        return Err("must be a table like { company = 87, data = \"0102ab\" }".into());
    };
    if let Some(k) = t.keys().find(|k| *k != "company" && *k != "data") {
        return Err(format!("unknown key {k:?}; it takes company and data"));
    }
    let company = match t.get("company") {
        None => return Err("needs company (the Bluetooth SIG company identifier, e.g. 87)".into()),
        Some(c) => c
            .as_integer()
            .and_then(|c| u16::try_from(c).ok())
            .ok_or_else(|| format!("company must be a company identifier 0..=65535, not {c}"))?,
    };
    let hex = match t.get("data") {
        None => "",
        Some(d) => d
            .as_str()
            .ok_or_else(|| format!("data must be a string of hex digits, not {d}"))?,
    };
    let digits: String = hex.chars().filter(|c| !c.is_whitespace() && *c != ':').collect();
    if digits.len() % 2 != 0 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "data {hex:?} must be hex digits, two per byte (e.g. \"0102ab\")"
        ));
    }
    let data = (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("checked hex"))
        .collect();
    let m = ManufacturerData { company, data };
    advertising::check_manufacturer(&m).map_err(|e| e.to_string())?;
    Ok(m)
}
