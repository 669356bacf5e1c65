//! The installed BlueZ's release, from `bluetoothd --version` (BlueZ's D-Bus API does not say it), read once.

use crate::bap::advertising::BluezVersion;
use std::sync::OnceLock;

/// Where `bluetoothd` is installed on Debian, Raspberry Pi OS and others (after `PATH`).
pub const BLUETOOTHD_PATHS: &[&str] = &[
    "/usr/libexec/bluetooth/bluetoothd",
    "/usr/lib/bluetooth/bluetoothd",
    "/usr/sbin/bluetoothd",
];

/// `bluetoothd --version` of the first program found; `None` if there is none.
pub fn installed() -> Option<BluezVersion> {
    static VERSION: OnceLock<Option<BluezVersion>> = OnceLock::new();
    *VERSION.get_or_init(|| {
        std::iter::once("bluetoothd")
            .chain(BLUETOOTHD_PATHS.iter().copied())
            .find_map(|p| {
                let out = std::process::Command::new(p).arg("--version").output().ok()?;
                BluezVersion::find(&String::from_utf8_lossy(&out.stdout))
            })
    })
}
