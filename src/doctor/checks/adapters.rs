//! The Bluetooth controllers the outputs are placed on, and the kernel's ISO socket a broadcast needs.

use super::{found, need, Finding, Level, Needs, MAIN_CONF};
use crate::doctor::facts::{MachineFacts, ISO_SOCKET_UUID};

pub(super) fn adapters(needs: &Needs, facts: &MachineFacts, out: &mut Vec<Finding>) {
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

pub(super) fn iso_socket(needs: &Needs, facts: &MachineFacts, out: &mut Vec<Finding>) {
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
