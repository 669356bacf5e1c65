//! The Broadcast Assistant's one BlueZ setting: with `-E` bluetoothd's own BASS plugin claims a receiver's Broadcast
//! Audio Scan Service, and a claimed service is exported over D-Bus per `[GATT] ExportClaimedServices` in
//! main.conf (BlueZ ≥ 5.80): `read-only` (the default) refuses bluebridge's control point writes with
//! `NotAuthorized`, `no` hides the service. Read in BlueZ `src/main.c` (`parse_gatt_export_str`: `no`/`false`/`off`,
//! `read-only`, `read-write`, anything else read-only) and `src/gatt-client.c` (the claimed + read-only check in
//! the characteristic's WriteValue).

use super::{found, Finding, Level, Needs};
use crate::doctor::checks::bluez::{switches_from_args, switches_from_main_conf};
use crate::doctor::facts::MachineFacts;

/// What `[GATT] ExportClaimedServices` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportClaimed {
    /// `no` (`false`, `off`): claimed services have no D-Bus object.
    No,
    /// `read-only`, the default (also what BlueZ makes of an unknown value).
    ReadOnly,
    /// `read-write`: what the assistant needs.
    ReadWrite,
}

/// `[GATT] ExportClaimedServices` as bluetoothd reads `text` (a GKeyFile: `#` starts a comment only at the start
/// of a line, spaces around `=` do not count, the value is compared exactly; a repeated key: the last). No
/// main.conf or no key: read-only.
pub fn export_claimed_from_main_conf(text: &str) -> ExportClaimed {
    let mut gatt = false;
    let mut v = ExportClaimed::ReadOnly;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if line.starts_with('[') {
            gatt = line == "[GATT]";
            continue;
        }
        let Some((k, val)) = line.split_once('=') else { continue };
        if gatt && k.trim() == "ExportClaimedServices" {
            v = match val.trim() {
                "no" | "false" | "off" => ExportClaimed::No,
                "read-write" => ExportClaimed::ReadWrite,
                _ => ExportClaimed::ReadOnly,
            };
        }
    }
    v
}

/// The configuration file a bluetoothd with these arguments reads (`-f FILE`, `-fFILE`, `--configfile[=]FILE`), if
/// it names one.
pub fn config_file_from_args(args: &[String]) -> Option<&str> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-f" || a == "--configfile" {
            return it.next().map(String::as_str);
        }
        if let Some(f) = a.strip_prefix("--configfile=") {
            return Some(f);
        }
        if let Some(f) = a.strip_prefix("-f").filter(|f| !f.is_empty() && !a.starts_with("--")) {
            return Some(f);
        }
    }
    None
}

pub(super) fn gatt_export(needs: &Needs, facts: &MachineFacts, out: &mut Vec<Finding>) {
    let assisted: Vec<&str> = needs
        .broadcasts
        .iter()
        .filter(|b| b.receivers > 0)
        .map(|b| b.output.as_str())
        .collect();
    if assisted.is_empty() {
        return;
    }
    let b = &facts.bluez;
    let experimental = b
        .running_args
        .as_deref()
        .is_some_and(|a| switches_from_args(a).experimental)
        || b.main_conf
            .as_deref()
            .is_some_and(|t| switches_from_main_conf(t).experimental);
    let conf = &b.main_conf_path;
    let outputs = assisted.join(", ");
    if !experimental {
        out.push(found(
            "gatt-export-claimed",
            Level::Info,
            format!("{outputs} assist receivers; bluetoothd without Experimental does not claim their BASS"),
            None,
        ));
        return;
    }
    let fix = Some(format!(
        "add `ExportClaimedServices = read-write` under [GATT] in {conf} and sudo systemctl restart bluetooth"
    ));
    let (level, detail) =
        match b.main_conf.as_deref().map(export_claimed_from_main_conf) {
            Some(ExportClaimed::ReadWrite) => (
                Level::Ok,
                format!("{conf} exports the receivers' BASS read-write ([GATT] ExportClaimedServices)"),
            ),
            Some(ExportClaimed::No) => (
                Level::Missing,
                format!(
                    "{outputs} assist receivers, and {conf} hides the BASS that bluetoothd (-E) claims \
                 (ExportClaimedServices = no)"
                ),
            ),
            r => {
                (
                    Level::Missing,
                    format!(
                "{outputs} assist receivers, and bluetoothd (-E) claims their BASS and exports it read-only{}: \
                 bluebridge's Add Source is refused (NotAuthorized)",
                if r.is_none() { format!(" ({conf} not readable)") } else { String::new() }
            ),
                )
            }
        };
    out.push(found(
        "gatt-export-claimed",
        level,
        detail,
        if level == Level::Ok { None } else { fix },
    ));
}
