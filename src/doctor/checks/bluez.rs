//! The BlueZ daemon: its version, its experimental switches (command line or main.conf) and the D-Bus policy
//! that lets bluebridge talk to it.

use super::{found, need, Finding, Level, Needs, BROADCAST_MIN_BLUEZ, MAIN_CONF};
use crate::bap::advertising::identity_support;
use crate::doctor::facts::{MachineFacts, ISO_SOCKET_UUID};

pub(super) fn bluez(needs: &Needs, facts: &MachineFacts, out: &mut Vec<Finding>) {
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

pub(super) fn flags(needs: &Needs, facts: &MachineFacts, out: &mut Vec<Finding>) {
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

pub(super) fn dbus_policy(needs: &Needs, facts: &MachineFacts, out: &mut Vec<Finding>) {
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
