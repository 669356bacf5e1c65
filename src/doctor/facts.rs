//! What `bluebridge doctor` knows about this machine: [`MachineFacts`], plain data, and [`gather`], the one
//! place that reads it (processes, files, D-Bus, a socket probe, rlimits). The checks ([`super::checks`]) only
//! read the struct, so tests fake any machine.

use crate::bap::advertising::BluezVersion;
use serde::Serialize;

/// The kernel's experimental feature that registers ISO sockets (BlueZ `src/main.c`'s list, kernel `mgmt.c`).
pub const ISO_SOCKET_UUID: &str = "6fbaf188-05e0-496a-9885-d6ddfdb4e03e";
/// Where the package installs the D-Bus policy.
pub const DBUS_POLICY_PATHS: &[&str] = &[
    "/usr/share/dbus-1/system.d/bluebridge.conf",
    "/etc/dbus-1/system.d/bluebridge.conf",
];

/// One Bluetooth adapter as BlueZ reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AdapterFacts {
    /// `hci0`…
    pub name: String,
    /// Powered.
    pub powered: bool,
    /// `Adapter1.Roles` (`central`, `peripheral`, `central-peripheral`).
    pub roles: Vec<String>,
    /// `Adapter1.ExperimentalFeatures`: the experimental UUIDs bluetoothd enabled on it.
    pub experimental_features: Vec<String>,
}

/// `bluetoothd`, as installed and as running.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BluezFacts {
    /// `bluetoothd --version`, if the program was found.
    pub version: Option<BluezVersion>,
    /// Something owns `org.bluez` on the system bus.
    pub on_dbus: bool,
    /// The running bluetoothd's arguments (after the program), if one runs.
    pub running_args: Option<Vec<String>>,
    /// The file bluetoothd reads its configuration from: the running one's `-f FILE`, else [`MAIN_CONF`].
    pub main_conf_path: String,
    /// That file's text, if readable.
    pub main_conf: Option<String>,
    /// Adapters (empty when BlueZ could not be asked).
    pub adapters: Vec<AdapterFacts>,
}

/// The LC3 library this program runs with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Lc3Facts {
    /// The mapped file (from `/proc/self/maps`), if found.
    pub path: Option<String>,
    /// The version: the package's (`dpkg-query`) or the file name's.
    pub version: Option<String>,
}

/// Real-time scheduling rights of this process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RealtimeFacts {
    /// `RLIMIT_RTPRIO` soft limit (`u64::MAX` = unlimited).
    pub rlimit_rtprio: u64,
    /// `CAP_SYS_NICE` in the effective set.
    pub cap_sys_nice: bool,
    /// A test `sched_setscheduler(SCHED_FIFO)` on a helper thread succeeded.
    pub fifo_granted: bool,
}

/// One sound device, as `bluebridge devices` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SoundDevice {
    /// The name a `local` output's `device` accepts.
    pub name: String,
    /// cpal's description (also accepted).
    pub description: String,
    /// It can play.
    pub output: bool,
}

/// Everything the checks look at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MachineFacts {
    /// BlueZ.
    pub bluez: BluezFacts,
    /// `socket(AF_BLUETOOTH, SOCK_SEQPACKET, BTPROTO_ISO)` works; `None` if it could not be tried.
    pub iso_socket: Option<bool>,
    /// `uname -r`.
    pub kernel: Option<String>,
    /// liblc3.
    pub lc3: Lc3Facts,
    /// The D-Bus policy file found, if any.
    pub dbus_policy: Option<String>,
    /// Sound devices.
    pub sound_devices: Vec<SoundDevice>,
    /// Why sound devices could not be listed, if they could not.
    pub sound_error: Option<String>,
    /// Real-time priority.
    pub realtime: RealtimeFacts,
    /// Effective user id.
    pub euid: u32,
}

/// bluetoothd's configuration file when it is not given `-f`.
pub const MAIN_CONF: &str = "/etc/bluetooth/main.conf";
/// Linux `AF_BLUETOOTH`.
const AF_BLUETOOTH: libc::c_int = 31;
/// Linux `BTPROTO_ISO`.
const BTPROTO_ISO: libc::c_int = 8;
/// `CAP_SYS_NICE`'s bit in `/proc/self/status` `CapEff`.
const CAP_SYS_NICE: u32 = 23;
/// How long a D-Bus call may take.
const DBUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Reads this machine. Never fails: what cannot be read stays empty or `None`, and the checks say so.
pub fn gather() -> MachineFacts {
    let (sound_devices, sound_error) = match crate::output::local::device::list_devices() {
        Ok(list) => (
            list.into_iter()
                .map(|d| SoundDevice {
                    name: d.name,
                    description: d.description,
                    output: d.output,
                })
                .collect(),
            None,
        ),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    MachineFacts {
        bluez: bluez(),
        iso_socket: iso_socket(),
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|s| s.trim().to_string()),
        lc3: lc3(),
        dbus_policy: DBUS_POLICY_PATHS
            .iter()
            .find(|p| std::path::Path::new(p).exists())
            .map(|p| p.to_string()),
        sound_devices,
        sound_error,
        realtime: realtime(),
        euid: nix::unistd::geteuid().as_raw(),
    }
}

fn bluez() -> BluezFacts {
    let version = crate::bluez::version::installed();
    let (on_dbus, adapters) = bluez_dbus();
    let running_args = running_bluetoothd();
    // The file the running bluetoothd reads (`-f FILE`), else the default.
    let main_conf_path = running_args
        .as_deref()
        .and_then(crate::doctor::checks::config_file_from_args)
        .unwrap_or(MAIN_CONF)
        .to_string();
    BluezFacts {
        version,
        on_dbus,
        main_conf: std::fs::read_to_string(&main_conf_path).ok(),
        main_conf_path,
        running_args,
        adapters,
    }
}

/// The first process named `bluetoothd`: its arguments.
fn running_bluetoothd() -> Option<Vec<String>> {
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let dir = entry.path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        if comm.trim() != "bluetoothd" {
            continue;
        }
        let cmdline = std::fs::read(dir.join("cmdline")).ok()?;
        return Some(
            cmdline
                .split(|b| *b == 0)
                .skip(1)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect(),
        );
    }
    None
}

/// Whether `org.bluez` is on the system bus, and its adapters.
fn bluez_dbus() -> (bool, Vec<AdapterFacts>) {
    use dbus::blocking::stdintf::org_freedesktop_dbus::ObjectManager;
    use dbus::blocking::Connection;
    let Ok(conn) = Connection::new_system() else {
        return (false, Vec::new());
    };
    let bus = conn.with_proxy("org.freedesktop.DBus", "/org/freedesktop/DBus", DBUS_TIMEOUT);
    let owned: Result<(bool,), _> = bus.method_call("org.freedesktop.DBus", "NameHasOwner", ("org.bluez",));
    if !matches!(owned, Ok((true,))) {
        return (false, Vec::new());
    }
    let bluez = conn.with_proxy("org.bluez", "/", DBUS_TIMEOUT);
    let Ok(objects) = bluez.get_managed_objects() else {
        return (true, Vec::new());
    };
    let mut adapters: Vec<AdapterFacts> = objects
        .iter()
        .filter_map(|(path, ifaces)| {
            let props = ifaces.get("org.bluez.Adapter1")?;
            let strings = |key: &str| {
                dbus::arg::prop_cast::<Vec<String>>(props, key)
                    .cloned()
                    .unwrap_or_default()
            };
            Some(AdapterFacts {
                name: path.rsplit('/').next().unwrap_or_default().to_string(),
                powered: dbus::arg::prop_cast::<bool>(props, "Powered").copied().unwrap_or(false),
                roles: strings("Roles"),
                experimental_features: strings("ExperimentalFeatures"),
            })
        })
        .collect();
    adapters.sort_by(|a, b| a.name.cmp(&b.name));
    (true, adapters)
}

/// Tries to open an ISO socket: `Some(false)` when the kernel has none (protocol or family unsupported).
fn iso_socket() -> Option<bool> {
    // SAFETY: socket() takes plain integers; a returned descriptor is closed at once.
    let fd = unsafe { libc::socket(AF_BLUETOOTH, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, BTPROTO_ISO) };
    if fd >= 0 {
        // SAFETY: fd was just opened by us.
        unsafe { libc::close(fd) };
        return Some(true);
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EPROTONOSUPPORT) | Some(libc::EAFNOSUPPORT) | Some(libc::ESOCKTNOSUPPORT) => Some(false),
        _ => None,
    }
}

/// The liblc3 mapped into this process, and its version.
fn lc3() -> Lc3Facts {
    let path = std::fs::read_to_string("/proc/self/maps").ok().and_then(|maps| {
        maps.lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .find(|p| p.rsplit('/').next().is_some_and(|f| f.starts_with("liblc3.so")))
            .map(str::to_string)
    });
    let package = ["liblc3-1", "liblc3-0", "liblc3"].iter().find_map(|pkg| {
        let out = std::process::Command::new("dpkg-query")
            .args(["-W", "-f", "${Version}\n", pkg])
            .output()
            .ok()?;
        // One line per installed architecture (multiarch): the first is enough.
        let v = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        (out.status.success() && !v.is_empty()).then_some(v)
    });
    let from_file = path.as_ref().and_then(|p| {
        let real = std::fs::canonicalize(p).ok()?;
        let name = real.file_name()?.to_string_lossy().into_owned();
        let v = name.strip_prefix("liblc3.so.")?;
        (v.matches('.').count() >= 2).then(|| v.to_string())
    });
    Lc3Facts {
        path,
        version: package.or(from_file),
    }
}

fn realtime() -> RealtimeFacts {
    let rlimit_rtprio =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_RTPRIO).map_or(0, |(cur, _)| cur);
    let cap_sys_nice = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim().to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_NICE) != 0);
    // On a thread of its own, which ends at once: this process keeps its normal priority.
    let fifo_granted = std::thread::spawn(|| crate::timeline::SystemClock::realtime_priority(1).is_ok())
        .join()
        .unwrap_or(false);
    RealtimeFacts {
        rlimit_rtprio,
        cap_sys_nice,
        fifo_granted,
    }
}
