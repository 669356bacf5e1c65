//! Which BlueZ can carry a broadcast's identity on the broadcast's own advertising set: the release ([`BluezVersion`]),
//! the items ([`IdentityItem`]) and the warning when some cannot be carried ([`IdentitySupport::warning`]).

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
