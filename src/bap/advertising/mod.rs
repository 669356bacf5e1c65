//! What an Auracast broadcast says about itself in its extended advertising, the pure part: the Broadcast Name
//! (AD type 0x30), the Public Broadcast Announcement (service data 0x1856, Public Broadcast Profile), optional
//! manufacturer data (AD type 0xFF), and the Broadcast Audio Announcement (service data 0x1852 + Broadcast_ID);
//! the same split into the fields of BlueZ's `LEAdvertisement1` ([`AdvertisementFields`]); and which of these a
//! given BlueZ can carry on the broadcast's own advertising set ([`identity_support`], in [`support`]).
//!
//! Checked against BlueZ 5.87 (tag `5.87`, commit 65d11edee): the PBA feature bits are those `bluetoothctl`'s
//! `advertise.public-broadcast sq|hq` writes (`client/advertising.c:35-36`, `AD_PUBLIC_BROADCAST_SQ BIT(1)`,
//! `_HQ BIT(2)`) and btmon decodes (`monitor/packet.c:3749-3754`, `pbp_feat_table`: bit 0 encryption); the
//! Broadcast Name is AD type 0x30 (`monitor/packet.c:3420`, `BT_EIR_BC_NAME`), which `LEAdvertisement1.Data`
//! accepts (`src/shared/ad.c:77-80` `ad_is_type_valid` and the reject list at `:1167-1208` leave 0x30 out);
//! extended advertising data is at most 251 bytes (`src/shared/ad.h:18`, `BT_EA_MAX_DATA_LEN`); the Broadcast_ID
//! is 3 bytes little-endian (`monitor/packet.c:3745`, `get_le24`). Bumble agrees (`bumble/profiles/pbp.py`
//! `PublicBroadcastAnnouncement.__bytes__`: features, metadata length, metadata; `Features` bits 0..2).
//!
//! No D-Bus here: the advertisement object that hands these to BlueZ is `bluez::advertisement`.

mod support;
#[cfg(test)]
mod tests;

pub use support::*;

use super::broadcast::BroadcastConfig;
use super::ltv::{LtvError, Metadata};
use super::presets::Preset;

/// AD type: Service Data – 16-bit UUID (Assigned Numbers, Common Data Types).
pub const AD_SERVICE_DATA_16: u8 = 0x16;
/// AD type: Broadcast_Name.
pub const AD_BROADCAST_NAME: u8 = 0x30;
/// AD type: Manufacturer Specific Data.
pub const AD_MANUFACTURER_DATA: u8 = 0xFF;
/// Service UUID of the Broadcast Audio Announcement (BAP).
pub const BROADCAST_AUDIO_ANNOUNCEMENT_UUID: u16 = 0x1852;
/// Service UUID of the Public Broadcast Announcement (PBP).
pub const PUBLIC_BROADCAST_ANNOUNCEMENT_UUID: u16 = 0x1856;
/// Shortest Broadcast Name, octets (PBP: 4 to 32 octets of UTF-8).
pub const BROADCAST_NAME_MIN: usize = 4;
/// Longest Broadcast Name, octets.
pub const BROADCAST_NAME_MAX: usize = 32;
/// Largest Broadcast_ID (24 bits).
pub const BROADCAST_ID_MAX: u32 = 0xFF_FFFF;
/// Most bytes of data in one AD structure (its length octet counts the type octet too).
pub const AD_STRUCTURE_MAX_DATA: usize = 254;
/// Most bytes of extended advertising data BlueZ sends in one set (`src/shared/ad.h:18`, `BT_EA_MAX_DATA_LEN`;
/// the controller's own limit may be lower: `LEAdvertisingManager1` then refuses the advertisement).
pub const EXT_ADV_MAX_DATA: usize = 251;
/// The advertising set the kernel puts a broadcast's first BIG on: `qos_set_bis` in `net/bluetooth/hci_conn.c`
/// takes the lowest handle from 1 that no BIS uses (0 is the general-purpose set), and `hci_start_per_adv_sync`
/// (`hci_sync.c`) reuses an advertising instance of that number if one exists, adding the periodic advertising
/// (BASE) to it and 0x1852 only if it lacks one (kernel fix "Bluetooth: hci_sync: Fix broadcast/PA when using an
/// existing instance", June 2025, Link: bluez/bluez#1117). BlueZ 5.87 passes no instance of ours to the kernel
/// (`profiles/audio/bap.c:1063-1064`, `setup_new`: BIS unset), so the tie is: our advertisement must be that
/// instance, which `LEAdvertisement1.Instance` tells us.
pub const FIRST_BIG_ADV_INSTANCE: u8 = 1;

/// Public Broadcast Announcement feature bits (PBP, Public_Broadcast_Announcement_features).
pub mod pba_features {
    /// The broadcast's streams are encrypted.
    pub const ENCRYPTED: u8 = 1 << 0;
    /// Standard Quality Public Broadcast Audio configuration present.
    pub const STANDARD_QUALITY: u8 = 1 << 1;
    /// High Quality Public Broadcast Audio configuration present.
    pub const HIGH_QUALITY: u8 = 1 << 2;
}

/// Why an identity cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdvertisingError {
    /// Name out of PBP's bounds.
    #[error("broadcast name must be {BROADCAST_NAME_MIN} to {BROADCAST_NAME_MAX} bytes of UTF-8, not {0} bytes")]
    NameLength(usize),
    /// Broadcast_ID beyond 24 bits.
    #[error("broadcast id {0:#x} does not fit in 24 bits")]
    BroadcastId(u32),
    /// Manufacturer data longer than one AD structure.
    #[error("manufacturer data is {0} bytes; at most {max} fit (2 of the {AD_STRUCTURE_MAX_DATA} are the company id)", max = AD_STRUCTURE_MAX_DATA - 2)]
    ManufacturerDataLength(usize),
    /// Metadata that does not encode, or does not fit.
    #[error("public broadcast announcement metadata: {0}")]
    Metadata(String),
    /// Everything together is longer than one extended advertising set carries.
    #[error(
        "the broadcast's advertising data is {0} bytes; at most {EXT_ADV_MAX_DATA} fit in an extended advertising \
         set (shorten broadcast_name, manufacturer_data or program_info)"
    )]
    TooLong(usize),
}

impl From<LtvError> for AdvertisingError {
    fn from(e: LtvError) -> Self {
        Self::Metadata(e.to_string())
    }
}

/// Manufacturer Specific Data: a Bluetooth SIG company identifier and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManufacturerData {
    /// Company identifier (Assigned Numbers), e.g. 87 (0x0057).
    pub company: u16,
    /// The company's bytes.
    pub data: Vec<u8>,
}

/// A broadcast's quality class in PBP terms, from its preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PbpQuality {
    /// Standard Quality: the 16 kHz and 24 kHz 10 ms sets (16_2_x, 24_2_x).
    Standard,
    /// High Quality: the 48 kHz sets (48_1_x … 48_6_x).
    High,
    /// Neither (e.g. 8, 32 or 44.1 kHz): PBP receivers need not support it.
    Other,
}

impl PbpQuality {
    /// The class of `preset`.
    pub fn of(preset: &Preset) -> Self {
        let stem = preset.name.rsplit_once('_').map(|(s, _)| s).unwrap_or(preset.name);
        match stem {
            "16_2" | "24_2" => Self::Standard,
            s if s.starts_with("48_") => Self::High,
            _ => Self::Other,
        }
    }

    /// Its feature bit.
    pub fn feature_bit(self) -> u8 {
        match self {
            Self::Standard => pba_features::STANDARD_QUALITY,
            Self::High => pba_features::HIGH_QUALITY,
            Self::Other => 0,
        }
    }
}

/// Everything a broadcast advertises about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastIdentity {
    /// Broadcast Name, 4–32 bytes UTF-8.
    pub name: String,
    /// Broadcast_ID (24 bits).
    pub broadcast_id: u32,
    /// The PBA features byte ([`pba_features`]).
    pub features: u8,
    /// Metadata carried in the PBA (LTVs; often program info and language).
    pub metadata: Metadata,
    /// Optional manufacturer data.
    pub manufacturer: Option<ManufacturerData>,
}

impl BroadcastIdentity {
    /// The identity of `config`'s broadcast: quality from its preset, encryption from its code, the PBA
    /// metadata from the subgroup's program info and language (not its contexts, which the BASE carries).
    pub fn for_broadcast(
        config: &BroadcastConfig,
        name: &str,
        broadcast_id: u32,
        manufacturer: Option<ManufacturerData>,
    ) -> Self {
        let mut features = PbpQuality::of(config.preset).feature_bit();
        if config.code.is_some() {
            features |= pba_features::ENCRYPTED;
        }
        let metadata = Metadata {
            streaming_audio_contexts: None,
            program_info: config.metadata.program_info.clone(),
            language: config.metadata.language.clone(),
        };
        Self {
            name: name.to_string(),
            broadcast_id,
            features,
            metadata,
            manufacturer,
        }
    }

    /// The Broadcast Name AD structure: length, 0x30, the name.
    pub fn broadcast_name_ad(&self) -> Result<Vec<u8>, AdvertisingError> {
        check_name(&self.name)?;
        Ok(ad_structure(AD_BROADCAST_NAME, self.name.as_bytes()))
    }

    /// The Public Broadcast Announcement's service data (after the UUID): features, metadata length, metadata.
    pub fn pba_service_data(&self) -> Result<Vec<u8>, AdvertisingError> {
        let meta = self.metadata.to_bytes()?;
        // UUID (2) + features (1) + length (1) + metadata in one AD structure.
        if meta.len() > AD_STRUCTURE_MAX_DATA - 4 {
            return Err(AdvertisingError::Metadata(format!(
                "{} bytes; at most {} fit",
                meta.len(),
                AD_STRUCTURE_MAX_DATA - 4
            )));
        }
        let mut out = vec![self.features, meta.len() as u8];
        out.extend_from_slice(&meta);
        Ok(out)
    }

    /// The Public Broadcast Announcement AD structure: length, 0x16, 0x1856 (LE), service data.
    pub fn pba_ad(&self) -> Result<Vec<u8>, AdvertisingError> {
        Ok(service_data_ad(
            PUBLIC_BROADCAST_ANNOUNCEMENT_UUID,
            &self.pba_service_data()?,
        ))
    }

    /// The Broadcast Audio Announcement's service data: Broadcast_ID, 3 bytes little-endian.
    pub fn baa_service_data(&self) -> Result<Vec<u8>, AdvertisingError> {
        if self.broadcast_id > BROADCAST_ID_MAX {
            return Err(AdvertisingError::BroadcastId(self.broadcast_id));
        }
        Ok(self.broadcast_id.to_le_bytes()[..3].to_vec())
    }

    /// The Broadcast Audio Announcement AD structure: length, 0x16, 0x1852 (LE), Broadcast_ID.
    pub fn baa_ad(&self) -> Result<Vec<u8>, AdvertisingError> {
        Ok(service_data_ad(
            BROADCAST_AUDIO_ANNOUNCEMENT_UUID,
            &self.baa_service_data()?,
        ))
    }

    /// The manufacturer data AD structure (length, 0xFF, company LE, bytes), if any.
    pub fn manufacturer_ad(&self) -> Result<Option<Vec<u8>>, AdvertisingError> {
        let Some(m) = &self.manufacturer else { return Ok(None) };
        check_manufacturer(m)?;
        let mut data = m.company.to_le_bytes().to_vec();
        data.extend_from_slice(&m.data);
        Ok(Some(ad_structure(AD_MANUFACTURER_DATA, &data)))
    }

    /// The whole extended advertising data: Broadcast Audio Announcement, Broadcast Name, Public Broadcast
    /// Announcement, then manufacturer data; refused when over [`EXT_ADV_MAX_DATA`].
    pub fn advertising_data(&self) -> Result<Vec<u8>, AdvertisingError> {
        let mut out = self.baa_ad()?;
        out.extend(self.broadcast_name_ad()?);
        out.extend(self.pba_ad()?);
        if let Some(m) = self.manufacturer_ad()? {
            out.extend(m);
        }
        if out.len() > EXT_ADV_MAX_DATA {
            return Err(AdvertisingError::TooLong(out.len()));
        }
        Ok(out)
    }

    /// The same data as `LEAdvertisement1` carries it: `ServiceData` (0x1852 with our Broadcast_ID, so the kernel
    /// adds no random one, and 0x1856), `Data` (0x30) and `ManufacturerData`. Checked as [`Self::advertising_data`].
    pub fn advertisement(&self) -> Result<AdvertisementFields, AdvertisingError> {
        self.advertising_data()?;
        Ok(AdvertisementFields {
            service_data: vec![
                (BROADCAST_AUDIO_ANNOUNCEMENT_UUID, self.baa_service_data()?),
                (PUBLIC_BROADCAST_ANNOUNCEMENT_UUID, self.pba_service_data()?),
            ],
            data: vec![(AD_BROADCAST_NAME, self.name.as_bytes().to_vec())],
            manufacturer: self.manufacturer.as_ref().map(|m| (m.company, m.data.clone())),
        })
    }
}

/// A broadcast's identity in the shape of `org.bluez.LEAdvertisement1`'s properties (`doc/org.bluez.LEAdvertisement.rst`):
/// `ServiceData` (`a{sv}`, UUID → bytes), `Data` (`a{yv}`, AD type → bytes), `ManufacturerData` (`a{qv}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertisementFields {
    /// 16-bit service UUID → service data.
    pub service_data: Vec<(u16, Vec<u8>)>,
    /// AD type → data.
    pub data: Vec<(u8, Vec<u8>)>,
    /// Company → data.
    pub manufacturer: Option<(u16, Vec<u8>)>,
}

/// A 16-bit SIG UUID in the 128-bit form BlueZ takes as a `ServiceData` key.
pub fn uuid16_string(uuid: u16) -> String {
    format!("0000{uuid:04x}-0000-1000-8000-00805f9b34fb")
}

/// A stable Broadcast_ID for output `output` on host `host`: 24 bits of FNV-1a over both (BAP 1.0.2 lets a source
/// keep its Broadcast_ID; a stable one lets receivers and assistants find the same broadcast after a restart).
/// Never 0 or 0xFFFFFF (some receivers treat those as unset).
pub fn stable_broadcast_id(host: &str, output: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in host.bytes().chain([0u8]).chain(output.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let id = (h ^ (h >> 24)) & BROADCAST_ID_MAX;
    match id {
        0 => 1,
        BROADCAST_ID_MAX => BROADCAST_ID_MAX - 1,
        x => x,
    }
}

/// Checks a Broadcast Name against PBP's bounds.
pub fn check_name(name: &str) -> Result<(), AdvertisingError> {
    if (BROADCAST_NAME_MIN..=BROADCAST_NAME_MAX).contains(&name.len()) {
        Ok(())
    } else {
        Err(AdvertisingError::NameLength(name.len()))
    }
}

/// Checks that manufacturer data fits one AD structure.
pub fn check_manufacturer(m: &ManufacturerData) -> Result<(), AdvertisingError> {
    if m.data.len() > AD_STRUCTURE_MAX_DATA - 2 {
        return Err(AdvertisingError::ManufacturerDataLength(m.data.len()));
    }
    Ok(())
}

/// A default Broadcast Name from a host name: cut to [`BROADCAST_NAME_MAX`] bytes on a character boundary;
/// `"bluebridge"` when the host name is empty or shorter than [`BROADCAST_NAME_MIN`] bytes.
pub fn default_name(host: Option<&str>) -> String {
    let host = host.map(str::trim).unwrap_or("");
    if host.len() < BROADCAST_NAME_MIN {
        return "bluebridge".to_string();
    }
    let mut end = host.len().min(BROADCAST_NAME_MAX);
    while !host.is_char_boundary(end) {
        end -= 1;
    }
    host[..end].to_string()
}

fn ad_structure(ad_type: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 2);
    out.push((data.len() + 1) as u8);
    out.push(ad_type);
    out.extend_from_slice(data);
    out
}

fn service_data_ad(uuid: u16, data: &[u8]) -> Vec<u8> {
    let mut d = uuid.to_le_bytes().to_vec();
    d.extend_from_slice(data);
    ad_structure(AD_SERVICE_DATA_16, &d)
}
