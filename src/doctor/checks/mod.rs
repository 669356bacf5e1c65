//! The checks of `bluebridge doctor`: pure functions from what the config needs ([`Needs`]) and what the machine
//! has ([`MachineFacts`]) to findings, one per line, each with its fix.

use super::facts::MachineFacts;
use crate::bap::advertising::BluezVersion;
use crate::output::kinds::{OutputSettings, OutputSpec};
use serde::Serialize;

/// The oldest BlueZ bluebridge's broadcast is tested on (the rig's guest; Debian and Raspberry Pi OS trixie).
pub const BROADCAST_MIN_BLUEZ: BluezVersion = BluezVersion::new(5, 82);
/// The first liblc3 whose downsampling (48 kHz PCM into a 16/24/32 kHz stream) is right; with an older one the
/// broadcast works around it (its own low-pass and decimation, `docs/configuration.md`), so it is a warning.
pub const LC3_FIXED_DOWNSAMPLING: (u32, u32, u32) = (1, 1, 0);
/// Where bluetoothd's configuration lives (for the fixes' words).
use crate::doctor::facts::MAIN_CONF;

/// How a finding counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Present.
    Ok,
    /// Needed by the config and missing: doctor fails.
    Missing,
    /// Missing or unknown, and the config works without it, less well.
    Warn,
    /// Not needed by this config, or for information.
    Info,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was checked, e.g. `bluez-version`.
    pub item: &'static str,
    /// How it counts.
    pub level: Level,
    /// What was found.
    pub detail: String,
    /// How to fix it, when it is not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// One broadcast output's needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastNeed {
    /// The output.
    pub output: String,
    /// Its adapter.
    pub adapter: String,
    /// Its stream's sampling rate, Hz.
    pub sample_rate_hz: u32,
    /// It has manufacturer data configured.
    pub manufacturer: bool,
    /// How many receivers it assists (`receivers`).
    pub receivers: usize,
}

/// What the config needs of the machine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Needs {
    /// Each A2DP output: (name, pinned adapter).
    pub a2dp: Vec<(String, Option<String>)>,
    /// Each broadcast.
    pub broadcasts: Vec<BroadcastNeed>,
    /// Each local output: (name, device; `None` = the default device).
    pub locals: Vec<(String, Option<String>)>,
    /// Some output plays to real hardware (and so wants real-time priority).
    pub realtime: bool,
}

impl Needs {
    /// The needs of a config's outputs.
    pub fn of(outputs: &[OutputSpec]) -> Self {
        let mut n = Self::default();
        for o in outputs {
            match &o.settings {
                OutputSettings::A2dp(a) => n.a2dp.push((o.name.clone(), a.adapter.clone())),
                OutputSettings::Broadcast(b) => n.broadcasts.push(BroadcastNeed {
                    output: o.name.clone(),
                    adapter: b.adapter().to_string(),
                    sample_rate_hz: b.config.preset.sample_rate_hz,
                    manufacturer: b.manufacturer.is_some(),
                    receivers: b.receivers.len(),
                }),
                OutputSettings::Local(l) => n.locals.push((o.name.clone(), l.device.clone())),
                // sim, file, pipe (and a new kind until it names a need here) ask nothing of the machine.
                _ => continue,
            }
            n.realtime = true;
        }
        n
    }

    fn bluetooth(&self) -> bool {
        !self.a2dp.is_empty() || !self.broadcasts.is_empty()
    }
}

fn found(item: &'static str, level: Level, detail: impl Into<String>, fix: Option<String>) -> Finding {
    Finding {
        item,
        level,
        detail: detail.into(),
        fix,
    }
}

/// `level` when `needed`, else [`Level::Info`].
fn need(needed: bool, level: Level) -> Level {
    if needed {
        level
    } else {
        Level::Info
    }
}

/// Every check, in the order a reader fixes them.
pub fn check(needs: &Needs, facts: &MachineFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    bluez(needs, facts, &mut out);
    if !needs.broadcasts.is_empty() || facts.bluez.on_dbus {
        flags(needs, facts, &mut out);
    }
    gatt_export(needs, facts, &mut out);
    adapters(needs, facts, &mut out);
    iso_socket(needs, facts, &mut out);
    lc3(needs, facts, &mut out);
    dbus_policy(needs, facts, &mut out);
    sound(needs, facts, &mut out);
    realtime(needs, facts, &mut out);
    if let Some(k) = &facts.kernel {
        out.push(found("kernel", Level::Info, format!("Linux {k}"), None));
    }
    out
}

/// True when something the config needs is missing.
pub fn failed(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.level == Level::Missing)
}

mod adapters;
mod bluez;
mod gatt;
mod host;
mod lc3;
#[cfg(test)]
mod tests;

use adapters::{adapters, iso_socket};
use bluez::{bluez, dbus_policy, flags};
pub use bluez::{switches_from_args, switches_from_main_conf, Switches};
use gatt::gatt_export;
pub use gatt::{config_file_from_args, export_claimed_from_main_conf, ExportClaimed};
use host::{realtime, sound};
use lc3::lc3;
pub use lc3::parse_lc3_version;
