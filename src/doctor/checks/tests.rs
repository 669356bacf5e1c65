use super::*;
use crate::doctor::facts::{AdapterFacts, BluezFacts, Lc3Facts, RealtimeFacts, SoundDevice, ISO_SOCKET_UUID};

fn broadcast(rate: u32) -> Needs {
    Needs {
        broadcasts: vec![BroadcastNeed {
            output: "hall".into(),
            adapter: "hci0".into(),
            sample_rate_hz: rate,
            manufacturer: false,
            receivers: 0,
        }],
        realtime: true,
        ..Needs::default()
    }
}

/// A trixie Pi set up for a broadcast on BlueZ 5.87.
fn good() -> MachineFacts {
    MachineFacts {
        bluez: BluezFacts {
            version: Some(BluezVersion::new(5, 87)),
            on_dbus: true,
            running_args: Some(vec!["-E".into(), "-K".into()]),
            main_conf_path: "/etc/bluetooth/main.conf".into(),
            main_conf: None,
            adapters: vec![AdapterFacts {
                name: "hci0".into(),
                powered: true,
                roles: vec!["central".into(), "peripheral".into()],
                experimental_features: vec![ISO_SOCKET_UUID.into()],
            }],
        },
        iso_socket: Some(true),
        kernel: Some("6.12.47".into()),
        lc3: Lc3Facts {
            path: Some("/usr/lib/aarch64-linux-gnu/liblc3.so.1".into()),
            version: Some("1.1.3-1".into()),
        },
        dbus_policy: Some("/usr/share/dbus-1/system.d/bluebridge.conf".into()),
        sound_devices: vec![SoundDevice {
            name: "hw:CARD=Headphones,DEV=0".into(),
            description: "bcm2835 Headphones".into(),
            output: true,
        }],
        sound_error: None,
        realtime: RealtimeFacts {
            rlimit_rtprio: 10,
            cap_sys_nice: false,
            fifo_granted: true,
        },
        euid: 998,
    }
}

fn level_of(findings: &[Finding], item: &str) -> Level {
    findings
        .iter()
        .find(|f| f.item == item)
        .unwrap_or_else(|| panic!("no {item} in {findings:#?}"))
        .level
}

fn missing(findings: &[Finding]) -> Vec<&'static str> {
    findings
        .iter()
        .filter(|f| f.level == Level::Missing)
        .map(|f| f.item)
        .collect()
}

#[test]
fn all_good_passes() {
    let f = check(&broadcast(16_000), &good());
    assert!(!failed(&f), "{f:#?}");
    assert!(
        f.iter().all(|x| x.level == Level::Ok || x.level == Level::Info),
        "{f:#?}"
    );
}

#[test]
fn bluez_5_66_without_iso_fails_a_broadcast() {
    let mut m = good();
    m.bluez.version = Some(BluezVersion::new(5, 66));
    m.bluez.running_args = Some(vec![]);
    m.bluez.main_conf = Some("[General]\n#Experimental = false\n".into());
    m.bluez.adapters[0].experimental_features.clear();
    m.iso_socket = Some(false);
    let f = check(&broadcast(48_000), &m);
    assert_eq!(
        missing(&f),
        vec![
            "bluez-version",
            "bluetoothd-experimental",
            "bluetoothd-kernel-iso",
            "iso-socket"
        ]
    );
    assert_eq!(level_of(&f, "broadcast-identity"), Level::Warn);
    // The same machine is fine for a config of simulated speakers only: the items are info.
    let sim = check(&Needs::default(), &m);
    assert!(!failed(&sim), "{sim:#?}");
    assert_eq!(level_of(&sim, "iso-socket"), Level::Info);
}

#[test]
fn bluez_5_82_plays_but_warns_about_identity() {
    let mut m = good();
    m.bluez.version = Some(BluezVersion::new(5, 82));
    let f = check(&broadcast(48_000), &m);
    assert!(!failed(&f), "{f:#?}");
    let w = f.iter().find(|x| x.item == "broadcast-identity").unwrap();
    assert_eq!(w.level, Level::Warn);
    assert!(
        w.detail.contains("Broadcast Name") && w.detail.contains("5.87"),
        "{}",
        w.detail
    );
}

#[test]
fn missing_adapter_is_named_with_the_ones_there() {
    let mut m = good();
    m.bluez.adapters[0].name = "hci1".into();
    let f = check(&broadcast(48_000), &m);
    assert_eq!(missing(&f), vec!["adapter-broadcast"]);
    let a = f.iter().find(|x| x.item == "adapter-broadcast").unwrap();
    assert!(a.detail.contains("hci0") && a.detail.contains("hci1"), "{}", a.detail);
    m.bluez.adapters.clear();
    assert_eq!(missing(&check(&broadcast(48_000), &m)), vec!["adapters"]);
}

#[test]
fn adapter_that_cannot_advertise_fails_a_broadcast_not_a2dp() {
    let mut m = good();
    m.bluez.adapters[0].roles = vec!["central".into()];
    assert_eq!(missing(&check(&broadcast(48_000), &m)), vec!["adapter-broadcast"]);
    let a2dp = Needs {
        a2dp: vec![("kitchen".into(), Some("hci0".into()))],
        realtime: true,
        ..Needs::default()
    };
    assert!(!failed(&check(&a2dp, &m)));
}

#[test]
fn no_rtprio_warns_but_does_not_fail() {
    let mut m = good();
    m.realtime = RealtimeFacts::default();
    let f = check(&broadcast(48_000), &m);
    assert!(!failed(&f));
    assert_eq!(level_of(&f, "realtime"), Level::Warn);
    assert_eq!(level_of(&check(&Needs::default(), &m), "realtime"), Level::Info);
}

#[test]
fn liblc3_1_0_4_warns_about_a_downsampled_broadcast() {
    let mut m = good();
    m.lc3.version = Some("1.0.4-1".into());
    let f = check(&broadcast(16_000), &m);
    assert!(!failed(&f), "{f:#?}");
    assert_eq!(level_of(&f, "liblc3"), Level::Warn);
    assert_eq!(level_of(&check(&broadcast(48_000), &m), "liblc3"), Level::Info);
}

#[test]
fn lc3_versions_parse() {
    assert_eq!(parse_lc3_version("1.0.1-1+b1"), Some((1, 0, 1)));
    assert_eq!(parse_lc3_version("1.1.3"), Some((1, 1, 3)));
    assert_eq!(parse_lc3_version("1:1.1.0~rc1-2"), Some((1, 1, 0)));
    assert_eq!(parse_lc3_version("x"), None);
}

#[test]
fn switches_from_command_line_and_main_conf() {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        switches_from_args(&args(&["-E", "-K"])),
        Switches {
            experimental: true,
            kernel_iso: true
        }
    );
    assert_eq!(
        switches_from_args(&args(&["-EK"])),
        Switches {
            experimental: true,
            kernel_iso: true
        }
    );
    assert_eq!(
        switches_from_args(&args(&[
            "--experimental",
            "--kernel=15c0a148-c273-11ea-b3de-0242ac130004"
        ])),
        Switches {
            experimental: true,
            kernel_iso: false
        }
    );
    assert!(switches_from_args(&args(&[&format!("--kernel={ISO_SOCKET_UUID}")])).kernel_iso);
    assert_eq!(switches_from_args(&args(&["-n", "-d"])), Switches::default());
    let conf = format!("[General]\nExperimental = true\nKernelExperimental = {ISO_SOCKET_UUID}\n[Policy]\n");
    assert_eq!(
        switches_from_main_conf(&conf),
        Switches {
            experimental: true,
            kernel_iso: true
        }
    );
    // Keys of another section, or commented out, do not count.
    assert_eq!(
        switches_from_main_conf("[Policy]\nExperimental = true\n[General]\n#KernelExperimental = true\n"),
        Switches::default()
    );
}

#[test]
fn flags_from_main_conf_when_bluetoothd_is_not_running() {
    let mut m = good();
    m.bluez.running_args = None;
    m.bluez.adapters[0].experimental_features.clear();
    m.bluez.main_conf = Some("[General]\nExperimental=true\nKernelExperimental=true\n".into());
    assert!(!failed(&check(&broadcast(48_000), &m)));
    m.bluez.main_conf = Some("[General]\nExperimental=true\n".into());
    assert_eq!(missing(&check(&broadcast(48_000), &m)), vec!["bluetoothd-kernel-iso"]);
}

#[test]
fn local_outputs_need_their_devices() {
    let needs = Needs {
        locals: vec![
            ("desk".into(), Some("bcm2835 Headphones".into())),
            ("den".into(), Some("hw:CARD=USB,DEV=0".into())),
        ],
        realtime: true,
        ..Needs::default()
    };
    let f = check(&needs, &good());
    assert_eq!(missing(&f), vec!["sound-device"]);
    assert!(f.iter().any(|x| x.level == Level::Missing && x.detail.contains("den")));
    let mut m = good();
    m.sound_error = Some("no ALSA".into());
    assert_eq!(missing(&check(&needs, &m)), vec!["sound-devices"]);
}

#[test]
fn dbus_policy_matters_for_the_service_user_not_root() {
    let mut m = good();
    m.dbus_policy = None;
    assert_eq!(missing(&check(&broadcast(48_000), &m)), vec!["dbus-policy"]);
    m.euid = 0;
    assert!(!failed(&check(&broadcast(48_000), &m)));
}

#[test]
fn no_bluez_at_all_fails_an_a2dp_config() {
    // An ordinary user (euid 1000) on a machine without BlueZ.
    let m = MachineFacts {
        euid: 1000,
        ..MachineFacts::default()
    };
    let a2dp = Needs {
        a2dp: vec![("kitchen".into(), None)],
        realtime: true,
        ..Needs::default()
    };
    assert_eq!(
        missing(&check(&a2dp, &m)),
        vec!["bluez-running", "bluez-version", "dbus-policy"]
    );
}

#[test]
fn needs_come_from_the_config() {
    let text = "[source]\nkind = \"tone\"\n\n[[output]]\nname = \"hall\"\nkind = \"broadcast\"\npreset = \"16_2_1\"\nadapter = \"hci1\"\n\n[[output]]\nname = \"s\"\nkind = \"sim\"\n";
    let (_, outputs) = crate::config::Config::parse("t.toml", text).unwrap();
    let n = Needs::of(&outputs);
    assert_eq!(
        n.broadcasts,
        vec![BroadcastNeed {
            output: "hall".into(),
            adapter: "hci1".into(),
            sample_rate_hz: 16_000,
            manufacturer: false,
            receivers: 0,
        }]
    );
    assert!(n.realtime && n.a2dp.is_empty() && n.locals.is_empty());
}

fn assisting() -> Needs {
    let mut n = broadcast(48_000);
    n.broadcasts[0].receivers = 1;
    n
}

#[test]
fn export_claimed_is_read_as_bluetoothd_reads_it() {
    use ExportClaimed::*;
    let f = export_claimed_from_main_conf;
    assert_eq!(f(""), ReadOnly);
    assert_eq!(f("[GATT]\nExportClaimedServices = read-write\n"), ReadWrite);
    assert_eq!(f("[GATT]\nExportClaimedServices=read-write"), ReadWrite);
    // the stock file's commented line, another section's key, an unknown value
    assert_eq!(f("[GATT]\n#ExportClaimedServices = read-write\n"), ReadOnly);
    assert_eq!(f("[General]\nExportClaimedServices = read-write\n"), ReadOnly);
    assert_eq!(f("[GATT]\nExportClaimedServices = Read-Write\n"), ReadOnly);
    // GKeyFile: `#` after a value is part of it; the last repeated key counts
    assert_eq!(f("[GATT]\nExportClaimedServices = read-write # assistant\n"), ReadOnly);
    assert_eq!(
        f("[GATT]\nExportClaimedServices = read-write\nExportClaimedServices = off\n"),
        No
    );
    assert_eq!(
        f("[GATT]\nCache = always\n\n[CSIS]\n[GATT]\nExportClaimedServices = no\n"),
        No
    );
}

#[test]
fn config_file_comes_from_bluetoothd_args() {
    let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        config_file_from_args(&a(&["-E", "-f", "/tmp/main.conf"])),
        Some("/tmp/main.conf")
    );
    assert_eq!(config_file_from_args(&a(&["-f/tmp/x"])), Some("/tmp/x"));
    assert_eq!(
        config_file_from_args(&a(&["--configfile=/tmp/y", "-E"])),
        Some("/tmp/y")
    );
    assert_eq!(config_file_from_args(&a(&["--configfile", "/tmp/z"])), Some("/tmp/z"));
    assert_eq!(config_file_from_args(&a(&["-n", "-d", "-E", "-K"])), None);
}

#[test]
fn assisting_needs_read_write_export() {
    let mut m = good();
    // -E and no main.conf: the default, read-only
    let f = check(&assisting(), &m);
    assert_eq!(missing(&f), vec!["gatt-export-claimed"], "{f:#?}");
    let g = f.iter().find(|x| x.item == "gatt-export-claimed").unwrap();
    assert!(g.detail.contains("read-only"), "{}", g.detail);
    let fix = g.fix.as_deref().unwrap();
    assert!(
        fix.contains("ExportClaimedServices = read-write") && fix.contains("/etc/bluetooth/main.conf"),
        "{fix}"
    );
    // the file the running bluetoothd reads is the one named
    m.bluez.running_args = Some(vec!["-E".into(), "-K".into(), "-f".into(), "/tmp/main.conf".into()]);
    m.bluez.main_conf_path = "/tmp/main.conf".into(); // as facts::gather derives it from -f
    m.bluez.main_conf = Some("[GATT]\nExportClaimedServices = no\n".into());
    let f = check(&assisting(), &m);
    let g = f.iter().find(|x| x.item == "gatt-export-claimed").unwrap();
    assert_eq!(g.level, Level::Missing);
    assert!(
        g.detail.contains("hides") && g.fix.as_deref().unwrap().contains("/tmp/main.conf"),
        "{g:#?}"
    );
    m.bluez.main_conf = Some("[GATT]\nExportClaimedServices = read-write\n".into());
    let f = check(&assisting(), &m);
    assert!(!failed(&f), "{f:#?}");
    assert_eq!(level_of(&f, "gatt-export-claimed"), Level::Ok);
}

#[test]
fn export_is_not_asked_without_receivers_or_experimental() {
    let f = check(&broadcast(48_000), &good());
    assert!(f.iter().all(|x| x.item != "gatt-export-claimed"), "{f:#?}");
    let mut m = good();
    m.bluez.running_args = Some(vec!["-K".into()]);
    let f = check(&assisting(), &m);
    assert_eq!(level_of(&f, "gatt-export-claimed"), Level::Info);
}
