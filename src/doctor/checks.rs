//! The checks of `bluebridge doctor`: pure functions from what the config needs ([`Needs`]) and what the machine
//! has ([`MachineFacts`]) to findings, one per line, each with its fix.

use super::facts::{MachineFacts, ISO_SOCKET_UUID};
use crate::bap::advertising::{identity_support, BluezVersion};
use crate::output::kinds::{OutputSettings, OutputSpec};
use serde::Serialize;

/// The oldest BlueZ bluebridge's broadcast is tested on (the rig's guest; Debian and Raspberry Pi OS trixie).
pub const BROADCAST_MIN_BLUEZ: BluezVersion = BluezVersion::new(5, 82);
/// The first liblc3 whose downsampling (48 kHz PCM into a 16/24/32 kHz stream) is right; with an older one the
/// broadcast works around it (its own low-pass and decimation, `docs/configuration.md`), so it is a warning.
pub const LC3_FIXED_DOWNSAMPLING: (u32, u32, u32) = (1, 1, 0);
/// Where bluetoothd's configuration lives (for the fixes' words).
const MAIN_CONF: &str = "/etc/bluetooth/main.conf";

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
                }),
                OutputSettings::Local(l) => n.locals.push((o.name.clone(), l.device.clone())),
                OutputSettings::Sim(_) | OutputSettings::File(_) | OutputSettings::Pipe(_) => continue,
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

fn bluez(needs: &Needs, facts: &MachineFacts, out: &mut Vec<Finding>) {
    let bt = needs.bluetooth();
    let b = &facts.bluez;
    out.push(if b.on_dbus {
        found(
            "bluez-running",
            Level::Ok,
            "bluetoothd is on the system bus (org.bluez)",
            None,
        )
    } else {
        found(
            "bluez-running",
            need(bt, Level::Missing),
            "bluetoothd is not on the system bus (no org.bluez)",
            Some("sudo apt install bluez && sudo systemctl enable --now bluetooth".into()),
        )
    });
    match b.version {
        None => out.push(found(
            "bluez-version",
            need(bt, Level::Missing),
            "bluetoothd not found (tried PATH, /usr/libexec/bluetooth, /usr/lib/bluetooth, /usr/sbin)",
            Some("sudo apt install bluez".into()),
        )),
        Some(v) if !needs.broadcasts.is_empty() && v < BROADCAST_MIN_BLUEZ => out.push(found(
            "bluez-version",
            Level::Missing,
            format!("BlueZ {v}; a broadcast needs BlueZ {BROADCAST_MIN_BLUEZ} or newer"),
            Some("upgrade to Debian / Raspberry Pi OS trixie (BlueZ 5.82) or newer".into()),
        )),
        Some(v) => out.push(found("bluez-version", Level::Ok, format!("BlueZ {v}"), None)),
    }
    if !needs.broadcasts.is_empty() {
        let want_mfr = needs.broadcasts.iter().any(|b| b.manufacturer);
        let support = identity_support(b.version, None, want_mfr);
        if let Some(w) = support.warning(b.version) {
            out.push(found(
                "broadcast-identity",
                Level::Warn,
                w,
                Some(format!("BlueZ {} (Debian sid as of this writing)", support.needs)),
            ));
        } else {
            out.push(found(
                "broadcast-identity",
                Level::Ok,
                "this BlueZ can advertise the Broadcast Name, PBP and manufacturer data",
                None,
            ));
        }
    }
}

/// bluetoothd's experimental switches: from its command line, else from main.conf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Switches {
    /// `-E` / `Experimental = true`.
    pub experimental: bool,
    /// `-K` / `KernelExperimental` covering the ISO socket feature.
    pub kernel_iso: bool,
}

/// The switches in bluetoothd's arguments (`-E`, `--experimental`, `-K`, `--kernel[=UUIDs]`, combined `-EK`).
pub fn switches_from_args(args: &[String]) -> Switches {
    let mut s = Switches::default();
    for a in args {
        if a == "--experimental" {
            s.experimental = true;
        } else if a == "--kernel" {
            s.kernel_iso = true;
        } else if let Some(list) = a.strip_prefix("--kernel=") {
            s.kernel_iso |= list.split(',').any(|u| u.trim().eq_ignore_ascii_case(ISO_SOCKET_UUID));
        } else if let Some(short) = a.strip_prefix('-').filter(|r| !r.starts_with('-')) {
            s.experimental |= short.contains('E');
            // `-K` with no value is every feature; `-K<uuids>` is not used by the packaging and counts only if
            // it names the ISO feature.
            if let Some(rest) = short.split_once('K').map(|(_, r)| r) {
                s.kernel_iso |= rest.is_empty() || rest.eq_ignore_ascii_case(ISO_SOCKET_UUID);
            }
        }
    }
    s
}

/// The switches in main.conf's `[General]` section.
pub fn switches_from_main_conf(text: &str) -> Switches {
    let mut s = Switches::default();
    let mut general = false;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.starts_with('[') {
            general = line == "[General]";
            continue;
        }
        let Some((k, v)) = line.split_once('=') else { continue };
        if !general {
            continue;
        }
        let v = v.trim();
        match k.trim() {
            "Experimental" => s.experimental = v.eq_ignore_ascii_case("true"),
            "KernelExperimental" => {
                s.kernel_iso = v.eq_ignore_ascii_case("true")
                    || v.split(',').any(|u| u.trim().eq_ignore_ascii_case(ISO_SOCKET_UUID))
            }
            _ => {}
        }
    }
    s
}

fn flags(needs: &Needs, facts: &MachineFacts, out: &mut Vec<Finding>) {
    let bc = !needs.broadcasts.is_empty();
    let from_args = facts
        .bluez
        .running_args
        .as_deref()
        .map(switches_from_args)
        .unwrap_or_default();
    let from_conf = facts
        .bluez
        .main_conf
        .as_deref()
        .map(switches_from_main_conf)
        .unwrap_or_default();
    let enabled_on_adapter = facts.bluez.adapters.iter().any(|a| {
        a.experimental_features
            .iter()
            .any(|u| u.eq_ignore_ascii_case(ISO_SOCKET_UUID))
    });
    let running = facts.bluez.running_args.is_some();
    let src = |a: bool, c: bool| match (a, c) {
        (true, _) => "bluetoothd's command line",
        (false, true) => MAIN_CONF,
        _ => "",
    };
    let restart = if running {
        " and sudo systemctl restart bluetooth"
    } else {
        ""
    };
    if from_args.experimental || from_conf.experimental {
        out.push(found(
            "bluetoothd-experimental",
            Level::Ok,
            format!(
                "Experimental is on ({})",
                src(from_args.experimental, from_conf.experimental)
            ),
            None,
        ));
    } else {
        out.push(found(
            "bluetoothd-experimental",
            need(bc, Level::Missing),
            "Experimental is off: BlueZ hides the broadcast source endpoint (pac_bcast)",
            Some(format!(
                "set Experimental = true under [General] in {MAIN_CONF}{restart}"
            )),
        ));
    }
    if from_args.kernel_iso || from_conf.kernel_iso || enabled_on_adapter {
        let why = if enabled_on_adapter {
            "an adapter reports it in ExperimentalFeatures"
        } else {
            src(from_args.kernel_iso, from_conf.kernel_iso)
        };
        out.push(found(
            "bluetoothd-kernel-iso",
            Level::Ok,
            format!("KernelExperimental covers the ISO socket feature ({why})"),
            None,
        ));
    } else {
        out.push(found(
            "bluetoothd-kernel-iso",
            need(bc, Level::Missing),
            "KernelExperimental does not enable the kernel's ISO socket feature",
            Some(format!(
                "set KernelExperimental = {ISO_SOCKET_UUID} under [General] in {MAIN_CONF}{restart}"
            )),
        ));
    }
}

fn adapters(needs: &Needs, facts: &MachineFacts, out: &mut Vec<Finding>) {
    let b = &facts.bluez;
    if !b.on_dbus {
        return;
    }
    let names: Vec<_> = b.adapters.iter().map(|a| a.name.as_str()).collect();
    let listed = if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    };
    if b.adapters.is_empty() {
        out.push(found(
            "adapters",
            need(needs.bluetooth(), Level::Missing),
            "BlueZ knows no Bluetooth adapter",
            Some("plug in a Bluetooth adapter, or check `rfkill list` and `dmesg | grep -i bluetooth`".into()),
        ));
        return;
    }
    let mut wanted: Vec<(String, &'static str, String)> = Vec::new();
    for (name, adapter) in &needs.a2dp {
        if let Some(a) = adapter {
            wanted.push((a.clone(), "a2dp", name.clone()));
        }
    }
    for bc in &needs.broadcasts {
        wanted.push((bc.adapter.clone(), "broadcast", bc.output.clone()));
    }
    if !needs.a2dp.is_empty() && !b.adapters.iter().any(|a| a.powered) {
        out.push(found(
            "adapters",
            Level::Missing,
            format!("no adapter is powered ({listed})"),
            Some("bluetoothctl power on (and AutoEnable = true under [Policy] in main.conf)".into()),
        ));
    }
    for (adapter, kind, output) in wanted {
        let item = if kind == "broadcast" {
            "adapter-broadcast"
        } else {
            "adapter-a2dp"
        };
        let Some(a) = b.adapters.iter().find(|a| a.name == adapter) else {
            out.push(found(
                item,
                Level::Missing,
                format!(
                    "output {output:?} ({kind}) wants adapter {adapter}, which BlueZ does not know (it knows {listed})"
                ),
                Some(format!(
                    "set adapter = one of {listed} on output {output:?}, or plug that adapter in"
                )),
            ));
            continue;
        };
        if !a.powered {
            out.push(found(
                item,
                Level::Missing,
                format!("adapter {adapter} (output {output:?}) is off"),
                Some(format!("bluetoothctl select <{adapter}'s address> then power on")),
            ));
            continue;
        }
        if kind == "broadcast" && !a.roles.iter().any(|r| r == "peripheral") {
            out.push(found(
                item,
                Level::Missing,
                format!(
                    "adapter {adapter} (output {output:?}) cannot advertise (Roles: {}): a broadcast needs LE \
                     advertising",
                    a.roles.join(", ")
                ),
                Some("use an LE Audio capable controller (Bluetooth 5.2 or newer with ISO broadcaster)".into()),
            ));
            continue;
        }
        out.push(found(
            item,
            Level::Ok,
            format!("adapter {adapter} (output {output:?}) is powered"),
            None,
        ));
    }
}

fn iso_socket(needs: &Needs, facts: &MachineFacts, out: &mut Vec<Finding>) {
    let bc = !needs.broadcasts.is_empty();
    let fix = || {
        Some(format!(
            "enable the ISO socket feature (KernelExperimental = {ISO_SOCKET_UUID} in {MAIN_CONF}), restart \
             bluetooth; the kernel needs CONFIG_BT_LE (Debian / Raspberry Pi OS trixie's 6.12 has it)"
        ))
    };
    out.push(match facts.iso_socket {
        Some(true) => found("iso-socket", Level::Ok, "the kernel opens Bluetooth ISO sockets", None),
        Some(false) => found(
            "iso-socket",
            need(bc, Level::Missing),
            "the kernel refuses Bluetooth ISO sockets (not enabled, or no Bluetooth LE)",
            fix(),
        ),
        None => found(
            "iso-socket",
            need(bc, Level::Warn),
            "could not probe an ISO socket (permission?)",
            if bc { fix() } else { None },
        ),
    });
}

/// `1.0.1-1+b1` → (1, 0, 1).
pub fn parse_lc3_version(v: &str) -> Option<(u32, u32, u32)> {
    let core = v.split(['-', '+', '~']).next()?;
    let core = core.rsplit(':').next()?;
    let mut it = core.split('.').map(|p| p.parse::<u32>());
    let major = it.next()?.ok()?;
    let minor = it.next()?.ok()?;
    let patch = it.next().and_then(Result::ok).unwrap_or(0);
    Some((major, minor, patch))
}

fn lc3(needs: &Needs, facts: &MachineFacts, out: &mut Vec<Finding>) {
    let bc = !needs.broadcasts.is_empty();
    let downsampled: Vec<_> = needs
        .broadcasts
        .iter()
        .filter(|b| b.sample_rate_hz != 48_000)
        .map(|b| b.output.as_str())
        .collect();
    let Some(v) = facts.lc3.version.as_deref() else {
        let at = facts.lc3.path.as_deref().unwrap_or("not mapped");
        out.push(found(
            "liblc3",
            need(bc, Level::Warn),
            format!("liblc3's version is unknown ({at})"),
            None,
        ));
        return;
    };
    match parse_lc3_version(v) {
        Some(parsed) if parsed < LC3_FIXED_DOWNSAMPLING => {
            let (ma, mi, pa) = LC3_FIXED_DOWNSAMPLING;
            if downsampled.is_empty() {
                out.push(found(
                    "liblc3",
                    Level::Info,
                    format!(
                        "liblc3 {v}: its downsampling is faulty before {ma}.{mi}.{pa}, which only 16/24/32 kHz \
                         presets use"
                    ),
                    None,
                ));
            } else {
                out.push(found(
                    "liblc3",
                    Level::Warn,
                    format!(
                        "liblc3 {v} downsamples wrongly (fixed in {ma}.{mi}.{pa}); output(s) {} encode 48 kHz into \
                         a lower rate, so bluebridge low-passes and decimates itself (0.5-2 ms more delay)",
                        downsampled.join(", ")
                    ),
                    Some("upgrade to Debian / Raspberry Pi OS trixie (liblc3-1), or use a 48_x preset".into()),
                ));
            }
        }
        Some(_) => out.push(found("liblc3", Level::Ok, format!("liblc3 {v}"), None)),
        None => out.push(found(
            "liblc3",
            need(bc, Level::Warn),
            format!("liblc3 version {v:?} not understood"),
            None,
        )),
    }
}

fn dbus_policy(needs: &Needs, facts: &MachineFacts, out: &mut Vec<Finding>) {
    out.push(match &facts.dbus_policy {
        Some(p) => found("dbus-policy", Level::Ok, p.clone(), None),
        None => {
            let level = if !needs.bluetooth() || facts.euid == 0 { Level::Info } else { Level::Missing };
            found(
                "dbus-policy",
                level,
                "no bluebridge D-Bus policy: user bluebridge (the service) may not talk to BlueZ; root may",
                Some("install the .deb, or sudo cp systemd/bluebridge-dbus.conf /usr/share/dbus-1/system.d/bluebridge.conf".into()),
            )
        }
    });
}

fn sound(needs: &Needs, facts: &MachineFacts, out: &mut Vec<Finding>) {
    if needs.locals.is_empty() {
        let n = facts.sound_devices.iter().filter(|d| d.output).count();
        out.push(found(
            "sound-devices",
            Level::Info,
            format!("{n} output device(s)"),
            None,
        ));
        return;
    }
    if let Some(e) = &facts.sound_error {
        out.push(found(
            "sound-devices",
            Level::Missing,
            format!("cannot list sound devices: {e}"),
            Some("is ALSA there? (aplay -l); run bluebridge devices".into()),
        ));
        return;
    }
    let outputs: Vec<_> = facts.sound_devices.iter().filter(|d| d.output).collect();
    let names = || outputs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ");
    for (output, device) in &needs.locals {
        match device {
            None if outputs.is_empty() => out.push(found(
                "sound-device",
                Level::Missing,
                format!("output {output:?} plays on the default sound device, and there is none"),
                Some("connect a sound card; bluebridge devices lists them".into()),
            )),
            None => out.push(found(
                "sound-device",
                Level::Ok,
                format!("output {output:?}: the default device (devices: {})", names()),
                None,
            )),
            Some(d) => {
                if outputs.iter().any(|x| &x.name == d || &x.description == d) {
                    out.push(found(
                        "sound-device",
                        Level::Ok,
                        format!("output {output:?}: {d}"),
                        None,
                    ));
                } else {
                    out.push(found(
                        "sound-device",
                        Level::Missing,
                        format!(
                            "output {output:?} wants device {d:?}, which is not there (there are: {})",
                            names()
                        ),
                        Some("set device = one of the names bluebridge devices prints".into()),
                    ));
                }
            }
        }
    }
}

fn realtime(needs: &Needs, facts: &MachineFacts, out: &mut Vec<Finding>) {
    let r = facts.realtime;
    let limit = if r.rlimit_rtprio == u64::MAX {
        "unlimited".to_string()
    } else {
        r.rlimit_rtprio.to_string()
    };
    let detail = format!(
        "RLIMIT_RTPRIO {limit}, CAP_SYS_NICE {}",
        if r.cap_sys_nice { "yes" } else { "no" }
    );
    out.push(if r.fifo_granted {
        found("realtime", Level::Ok, format!("SCHED_FIFO granted ({detail})"), None)
    } else {
        found(
            "realtime",
            need(needs.realtime, Level::Warn),
            format!("SCHED_FIFO refused to this process ({detail}): audio threads run at normal priority"),
            Some(
                "the shipped unit grants it to the service (LimitRTPRIO=10, RestrictRealtime=no); elsewhere run as \
                 root or raise rtprio in /etc/security/limits.d"
                    .into(),
            ),
        )
    });
}

#[cfg(test)]
mod tests;
