//! The BlueZ release bluebridge talks to, from `bluetoothd --version` (BlueZ's D-Bus API does not say it), read
//! once: the running daemon's own program first (found in `/proc` by its name; a machine may have a second BlueZ
//! installed beside the packaged one, as the rig runs sid's 5.87 next to trixie's 5.82), else the first
//! `bluetoothd` on `PATH` or at the usual install paths. Under the shipped unit (`ProtectProc=invisible`) other
//! users' processes are hidden, and the install paths answer.

use crate::bap::advertising::BluezVersion;
use std::sync::OnceLock;

/// Where `bluetoothd` is installed on Debian, Raspberry Pi OS and others (after `PATH`).
pub const BLUETOOTHD_PATHS: &[&str] = &[
    "/usr/libexec/bluetooth/bluetoothd",
    "/usr/lib/bluetooth/bluetoothd",
    "/usr/sbin/bluetoothd",
];

/// Most `/proc` entries looked at for the running daemon.
const PROC_SCAN_MAX: usize = 4096;

/// The BlueZ release: the running `bluetoothd`'s, else the installed one's; `None` if there is none.
pub fn installed() -> Option<BluezVersion> {
    static VERSION: OnceLock<Option<BluezVersion>> = OnceLock::new();
    *VERSION.get_or_init(|| {
        running_program()
            .into_iter()
            .chain(std::iter::once("bluetoothd".to_string()))
            .chain(BLUETOOTHD_PATHS.iter().map(|p| p.to_string()))
            .find_map(|p| {
                let out = std::process::Command::new(&p).arg("--version").output().ok()?;
                let v = BluezVersion::find(&String::from_utf8_lossy(&out.stdout))?;
                tracing::debug!("BlueZ {v} ({p} --version)");
                Some(v)
            })
    })
}

/// The program of the running `bluetoothd`, if `/proc` shows one.
fn running_program() -> Option<String> {
    let dir = std::fs::read_dir("/proc").ok()?;
    dir.take(PROC_SCAN_MAX).flatten().find_map(|e| {
        let name = e.file_name();
        if !name.to_str()?.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
        if comm.trim() != "bluetoothd" {
            return None;
        }
        program_of(&std::fs::read(e.path().join("cmdline")).ok()?)
    })
}

/// argv\[0\] of a `/proc/PID/cmdline` when it is an absolute path.
fn program_of(cmdline: &[u8]) -> Option<String> {
    let argv0 = cmdline.split(|b| *b == 0).next()?;
    let p = std::str::from_utf8(argv0).ok()?;
    p.starts_with('/').then(|| p.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_program_is_argv0_when_absolute() {
        assert_eq!(
            program_of(b"/opt/bluez-sid/libexec/bluetoothd\0-n\0-d\0-E\0"),
            Some("/opt/bluez-sid/libexec/bluetoothd".into())
        );
        assert_eq!(program_of(b"bluetoothd\0-n\0"), None);
        assert_eq!(program_of(b""), None);
    }
}
