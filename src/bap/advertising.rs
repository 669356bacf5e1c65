//! What an Auracast broadcast says about itself in its extended advertising, the pure part: the Broadcast Name
//! (AD type 0x30), the Public Broadcast Announcement (service data 0x1856, Public Broadcast Profile), optional
//! manufacturer data (AD type 0xFF), and the Broadcast Audio Announcement (service data 0x1852 + Broadcast_ID);
//! and which of these a given BlueZ can carry on the broadcast's own advertising set ([`identity_support`]).
//!
//! No D-Bus here: the advertisement object that hands these to BlueZ (`LEAdvertisement1`) is the edge's job.

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
    /// Announcement, then manufacturer data.
    pub fn advertising_data(&self) -> Result<Vec<u8>, AdvertisingError> {
        let mut out = self.baa_ad()?;
        out.extend(self.broadcast_name_ad()?);
        out.extend(self.pba_ad()?);
        if let Some(m) = self.manufacturer_ad()? {
            out.extend(m);
        }
        Ok(out)
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

/// A BlueZ release, `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct BluezVersion {
    /// 5 for every current BlueZ.
    pub major: u32,
    /// The release, e.g. 82.
    pub minor: u32,
}

impl BluezVersion {
    /// `major.minor`.
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// Finds the first `N.M` in text such as `bluetoothd --version`'s `5.82` or a package version `5.82-1.1`.
    pub fn find(text: &str) -> Option<Self> {
        text.split(|c: char| !(c.is_ascii_digit() || c == '.')).find_map(|tok| {
            let mut it = tok.split('.');
            let major = it.next()?.parse().ok()?;
            let minor = it.next()?.parse().ok()?;
            Some(Self { major, minor })
        })
    }
}

impl std::fmt::Display for BluezVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The first BlueZ whose `LEAdvertisement1` has `Instance` (commit b55c0559b "advertising: add property with
/// advertisement Instance", first in tag 5.87): the hook that lets an advertisement of ours share the
/// broadcast's advertising set.
pub const BLUEZ_ADVERTISEMENT_INSTANCE: BluezVersion = BluezVersion::new(5, 87);

/// One item of a broadcast's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityItem {
    /// Broadcast Name (0x30).
    BroadcastName,
    /// Public Broadcast Announcement (0x1856).
    PublicBroadcastAnnouncement,
    /// Manufacturer data (0xFF).
    ManufacturerData,
}

impl IdentityItem {
    /// Its name in messages.
    pub fn label(self) -> &'static str {
        match self {
            Self::BroadcastName => "Broadcast Name",
            Self::PublicBroadcastAnnouncement => "Public Broadcast Announcement (PBP)",
            Self::ManufacturerData => "manufacturer data",
        }
    }
}

/// What a BlueZ can and cannot advertise of a broadcast's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySupport {
    /// Items the broadcast wants but this BlueZ cannot carry on its advertising set.
    pub missing: Vec<IdentityItem>,
    /// The BlueZ release that adds them.
    pub needs: BluezVersion,
}

impl IdentitySupport {
    /// Everything can be carried.
    pub fn complete(&self) -> bool {
        self.missing.is_empty()
    }

    /// One line for the log and `status`; `None` when nothing is missing.
    pub fn warning(&self, running: Option<BluezVersion>) -> Option<String> {
        if self.missing.is_empty() {
            return None;
        }
        let items: Vec<_> = self.missing.iter().map(|i| i.label()).collect();
        let running = running
            .map(|v| format!("BlueZ {v}"))
            .unwrap_or_else(|| "this BlueZ".to_string());
        Some(format!(
            "not advertised: {} ({running} cannot put them on the broadcast's advertising set; BlueZ {} can, \
             with LEAdvertisement1.Instance); receivers that list broadcasts by name may not show it",
            items.join(", "),
            self.needs
        ))
    }
}

/// Which identity items `bluez` can carry. `has_instance` says whether its `LEAdvertisement1` has `Instance`
/// (known from the version, or probed); `manufacturer` whether the broadcast has manufacturer data configured.
/// The Broadcast Name and the PBA are always wanted.
pub fn identity_support(
    bluez: Option<BluezVersion>,
    has_instance: Option<bool>,
    manufacturer: bool,
) -> IdentitySupport {
    let capable = has_instance.unwrap_or_else(|| bluez.is_some_and(|v| v >= BLUEZ_ADVERTISEMENT_INSTANCE));
    let mut missing = Vec::new();
    if !capable {
        missing.push(IdentityItem::BroadcastName);
        missing.push(IdentityItem::PublicBroadcastAnnouncement);
        if manufacturer {
            missing.push(IdentityItem::ManufacturerData);
        }
    }
    IdentitySupport {
        missing,
        needs: BLUEZ_ADVERTISEMENT_INSTANCE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bap::broadcast::{BroadcastCode, ChannelLayout};

    fn config(preset: &str, code: bool) -> BroadcastConfig {
        let mut c = BroadcastConfig::new(Preset::by_name(preset).unwrap(), ChannelLayout::default());
        if code {
            c.code = Some(BroadcastCode::parse("secret").unwrap());
        }
        c
    }

    #[test]
    fn quality_follows_the_preset() {
        assert_eq!(PbpQuality::of(Preset::by_name("16_2_1").unwrap()), PbpQuality::Standard);
        assert_eq!(PbpQuality::of(Preset::by_name("24_2_2").unwrap()), PbpQuality::Standard);
        assert_eq!(PbpQuality::of(Preset::by_name("48_2_1").unwrap()), PbpQuality::High);
        assert_eq!(PbpQuality::of(Preset::by_name("48_6_2").unwrap()), PbpQuality::High);
        assert_eq!(PbpQuality::of(Preset::by_name("16_1_1").unwrap()), PbpQuality::Other);
        assert_eq!(PbpQuality::of(Preset::by_name("32_2_1").unwrap()), PbpQuality::Other);
    }

    #[test]
    fn features_byte_carries_quality_and_encryption() {
        let hq = BroadcastIdentity::for_broadcast(&config("48_2_1", false), "Kitchen", 1, None);
        assert_eq!(hq.features, 0b100);
        let sq_enc = BroadcastIdentity::for_broadcast(&config("16_2_1", true), "Kitchen", 1, None);
        assert_eq!(sq_enc.features, 0b011);
    }

    /// A high-quality, unencrypted broadcast with no metadata: service data 0x1856, features 0x04, length 0.
    #[test]
    fn pba_without_metadata() {
        let id = BroadcastIdentity::for_broadcast(&config("48_4_2", false), "Kitchen", 1, None);
        assert_eq!(id.pba_ad().unwrap(), vec![0x05, 0x16, 0x56, 0x18, 0x04, 0x00]);
    }

    /// Program info "Jazz" as one LTV (length 5, type 0x03) inside the PBA's metadata.
    #[test]
    fn pba_with_program_info() {
        let mut c = config("16_2_2", true);
        c.metadata.program_info = Some("Jazz".into());
        let id = BroadcastIdentity::for_broadcast(&c, "Kitchen", 1, None);
        assert_eq!(
            id.pba_ad().unwrap(),
            vec![0x0B, 0x16, 0x56, 0x18, 0x03, 0x06, 0x05, 0x03, b'J', b'a', b'z', b'z']
        );
    }

    /// Broadcast_ID 123456 = 0x01E240, little-endian after 0x1852.
    #[test]
    fn broadcast_audio_announcement() {
        let id = BroadcastIdentity::for_broadcast(&config("48_2_1", false), "Kitchen", 123_456, None);
        assert_eq!(id.baa_ad().unwrap(), vec![0x06, 0x16, 0x52, 0x18, 0x40, 0xE2, 0x01]);
        let too_big = BroadcastIdentity {
            broadcast_id: 0x100_0000,
            ..id
        };
        assert_eq!(too_big.baa_ad(), Err(AdvertisingError::BroadcastId(0x100_0000)));
    }

    #[test]
    fn broadcast_name_and_its_bounds() {
        let id = BroadcastIdentity::for_broadcast(&config("48_2_1", false), "Kitchen", 1, None);
        assert_eq!(
            id.broadcast_name_ad().unwrap(),
            vec![0x08, 0x30, b'K', b'i', b't', b'c', b'h', b'e', b'n']
        );
        let short = BroadcastIdentity {
            name: "abc".into(),
            ..id.clone()
        };
        assert_eq!(short.broadcast_name_ad(), Err(AdvertisingError::NameLength(3)));
        let long = BroadcastIdentity {
            name: "x".repeat(33),
            ..id
        };
        assert_eq!(long.broadcast_name_ad(), Err(AdvertisingError::NameLength(33)));
    }

    /// Company 87 (0x0057) goes little-endian before its bytes.
    #[test]
    fn manufacturer_data() {
        let m = ManufacturerData {
            company: 87,
            data: vec![0xAA, 0x01],
        };
        let id = BroadcastIdentity::for_broadcast(&config("48_2_1", false), "Kitchen", 1, Some(m));
        assert_eq!(
            id.manufacturer_ad().unwrap(),
            Some(vec![0x05, 0xFF, 0x57, 0x00, 0xAA, 0x01])
        );
        let big = ManufacturerData {
            company: 87,
            data: vec![0; 253],
        };
        assert_eq!(
            check_manufacturer(&big),
            Err(AdvertisingError::ManufacturerDataLength(253))
        );
        assert!(check_manufacturer(&ManufacturerData {
            company: 87,
            data: vec![0; 252]
        })
        .is_ok());
    }

    #[test]
    fn whole_advertising_data_is_the_structures_in_order() {
        let id = BroadcastIdentity::for_broadcast(&config("48_2_1", false), "Hall", 0x0A0B0C, None);
        assert_eq!(
            id.advertising_data().unwrap(),
            vec![
                0x06, 0x16, 0x52, 0x18, 0x0C, 0x0B, 0x0A, // BAA
                0x05, 0x30, b'H', b'a', b'l', b'l', // name
                0x05, 0x16, 0x56, 0x18, 0x04, 0x00, // PBA
            ]
        );
    }

    #[test]
    fn default_name_from_host() {
        assert_eq!(default_name(Some("livingroom-pi")), "livingroom-pi");
        assert_eq!(default_name(Some("pi")), "bluebridge");
        assert_eq!(default_name(None), "bluebridge");
        assert_eq!(default_name(Some(&"h".repeat(40))).len(), 32);
        // 31 ASCII bytes then a two-byte character: cut before it.
        let host = format!("{}é", "a".repeat(31));
        assert_eq!(default_name(Some(&host)), "a".repeat(31));
    }

    #[test]
    fn bluez_versions_parse_and_order() {
        assert_eq!(BluezVersion::find("5.82\n"), Some(BluezVersion::new(5, 82)));
        assert_eq!(BluezVersion::find("bluez 5.87-1"), Some(BluezVersion::new(5, 87)));
        assert_eq!(BluezVersion::find("none"), None);
        assert!(BluezVersion::new(5, 9) < BluezVersion::new(5, 82));
    }

    #[test]
    fn capability_by_bluez_version() {
        let old = identity_support(Some(BluezVersion::new(5, 82)), None, true);
        assert_eq!(
            old.missing,
            vec![
                IdentityItem::BroadcastName,
                IdentityItem::PublicBroadcastAnnouncement,
                IdentityItem::ManufacturerData
            ]
        );
        let w = old.warning(Some(BluezVersion::new(5, 82))).unwrap();
        assert!(
            w.contains("BlueZ 5.82") && w.contains("BlueZ 5.87") && w.contains("manufacturer data"),
            "{w}"
        );
        let old_no_mfr = identity_support(Some(BluezVersion::new(5, 82)), None, false);
        assert_eq!(old_no_mfr.missing.len(), 2);
        let new = identity_support(Some(BluezVersion::new(5, 87)), None, true);
        assert!(new.complete() && new.warning(None).is_none());
        // A probe wins over the version (a backport that has Instance, or a build without it).
        assert!(identity_support(Some(BluezVersion::new(5, 86)), Some(true), true).complete());
        assert!(!identity_support(Some(BluezVersion::new(5, 90)), Some(false), false).complete());
        assert!(!identity_support(None, None, false).complete());
    }
}
