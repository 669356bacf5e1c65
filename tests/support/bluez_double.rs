//! A BlueZ test double: a private `dbus-daemon` started by the test, and a small in-process `org.bluez` on it
//! serving only what bluebridge's broadcast and A2DP paths call (notes/bluez.md §B.1):
//! - `/`: `org.freedesktop.DBus.ObjectManager.GetManagedObjects` (adapter `hci0` with `Adapter1` and `Media1`,
//!   and the `pac_bcast0` endpoint BlueZ creates for a local broadcast source);
//! - `/org/bluez/hci0`: `org.bluez.Media1` `RegisterEndpoint` / `UnregisterEndpoint`, `org.bluez.Adapter1`
//!   (`Powered`), `org.bluez.LEAdvertisingManager1` `RegisterAdvertisement` / `UnregisterAdvertisement` as BlueZ
//!   5.87 answers them (reads the advertisement's properties, writes `Instance` = 1 when the object has that
//!   property, then replies: `src/advertising.c:1396-1401`; [`Behaviour::NoInstance`] as BlueZ before 5.87);
//! - [`DEVICE`]: `org.bluez.Device1` of one A2DP speaker (`Connected`, `ConnectProfile`, `Disconnect`). On
//!   `ConnectProfile` the double plays BlueZ's part of AVDTP: `SelectConfiguration(`[`SINK_CAPS`]`)` on the A2DP
//!   source endpoint registered, then `SetConfiguration(transport, {Device, Configuration, Delay, State})`;
//! - `DEVICE/sep1/fdN`: its `org.bluez.MediaTransport1` (`State`, `Delay`, `Volume`, `Acquire`, `Release`),
//!   changed by the test with [`Bluez::change_a2dp`], which emits `PropertiesChanged` as BlueZ does;
//! - `/org/bluez/hci0/pac_bcast0`: `org.bluez.MediaEndpoint1.SetConfiguration`, which announces a BIS transport by
//!   calling `SetConfiguration(transport, props)` back on the caller's endpoint, as BlueZ does;
//! - `/org/bluez/hci0/pac_bcast0/fdN`: `org.bluez.MediaTransport1` (`State`, `Acquire`, `TryAcquire`, `Release`;
//!   Acquire hands out one end of a socket pair).
//!
//! Every call is recorded ([`Call`]) so a test can wait, with a deadline, for what bluebridge did.

use dbus::arg::{PropMap, RefArg, Variant};
use dbus::channel::MatchingReceiver;
use dbus::nonblock::SyncConnection;
use dbus_crossroads::{Crossroads, IfaceBuilder};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::fd::IntoRawFd;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The broadcast source UUID (0x1852).
pub const BCAST_SOURCE_UUID: &str = "00001852-0000-1000-8000-00805f9b34fb";
/// Where BlueZ would put the endpoint it creates for a local broadcast source.
pub const PAC_BCAST: &str = "/org/bluez/hci0/pac_bcast0";
/// How many transport objects the double serves.
const TRANSPORTS: usize = 16;
/// The A2DP speaker's address.
pub const SPEAKER: &str = "AA:BB:CC:DD:EE:01";
/// Its device object.
pub const DEVICE: &str = "/org/bluez/hci0/dev_AA_BB_CC_DD_EE_01";
/// The A2DP sink UUID (0x110b) and source UUID (0x110a).
pub const A2DP_SINK_UUID: &str = "0000110b-0000-1000-8000-00805f9b34fb";
/// The A2DP source UUID.
pub const A2DP_SOURCE_UUID: &str = "0000110a-0000-1000-8000-00805f9b34fb";
/// What the speaker offers: every sampling frequency, channel mode, block length, subband count and allocation,
/// bitpool 2..53 (a typical speaker).
pub const SINK_CAPS: [u8; 4] = [0xff, 0xff, 2, 53];
/// The `Delay` the speaker reports when its stream is configured (1/10 ms).
pub const INITIAL_DELAY_DMS: u16 = 1500;
/// The speaker's AVRCP absolute volume when its stream starts.
pub const INITIAL_VOLUME: u16 = 100;

/// The A2DP transport object for stream number `n`.
pub fn a2dp_transport(n: usize) -> String {
    format!("{DEVICE}/sep1/fd{n}")
}

/// The double's tests share one bus and the name `org.bluez`: each holds this for its whole run.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// A private `dbus-daemon` (allow-all policy, a unix socket in a temp dir): the test process's system bus.
pub struct PrivateBus {
    _child: Child,
    /// Its address (`unix:path=…`).
    pub address: String,
    _dir: tempfile::TempDir,
}

impl PrivateBus {
    /// The test process's one private bus, started on first use, with `DBUS_SYSTEM_BUS_ADDRESS` pointing at it.
    /// One per process because libdbus reads `DBUS_SYSTEM_BUS_ADDRESS` once, on the first system-bus connection.
    /// The daemon is started from a thread that lives as long as the process and dies with it (PR_SET_PDEATHSIG).
    pub fn system() -> &'static PrivateBus {
        static BUS: OnceLock<PrivateBus> = OnceLock::new();
        BUS.get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(Self::start());
                loop {
                    std::thread::park();
                }
            });
            match rx.recv() {
                Ok(Ok(bus)) => bus,
                Ok(Err(e)) => panic!("{e}"),
                Err(_) => panic!("the thread starting dbus-daemon died"),
            }
        })
    }

    fn start() -> Result<PrivateBus, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = dir.path().join("bus.conf");
        let socket = dir.path().join("bus");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                socket.display()
            ),
        )
        .expect("writing the bus config");
        let mut cmd = Command::new("dbus-daemon");
        cmd.arg(format!("--config-file={}", conf.display()))
            .arg("--print-address")
            .arg("--nofork")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: prctl is async-signal-safe; the daemon is killed when the thread that started it (alive until
        // the process exits) ends.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(
                    "the BlueZ double needs dbus-daemon, which is not installed: install the `dbus` \
                            package (Debian/Ubuntu: apt-get install dbus; Fedora: dnf install dbus-daemon)"
                        .into(),
                )
            }
            Err(e) => return Err(format!("starting dbus-daemon: {e}")),
        };
        // The daemon prints its address once it listens.
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("reading dbus-daemon's address");
        let address = line.trim().to_string();
        if !address.starts_with("unix:") {
            return Err(format!("dbus-daemon printed {line:?}, not an address"));
        }
        std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &address);
        Ok(PrivateBus {
            _child: child,
            address,
            _dir: dir,
        })
    }

    /// A new connection to the bus (registered, driven on the current tokio runtime).
    pub fn connect(&self) -> Arc<SyncConnection> {
        let mut ch = dbus::channel::Channel::open_private(&self.address).expect("connecting to the private bus");
        ch.register().expect("registering on the private bus");
        let (res, conn) = dbus_tokio::connection::from_channel::<SyncConnection>(ch).expect("dbus-tokio");
        tokio::spawn(async move {
            let _ = res.await;
        });
        conn
    }
}

/// A call the double received (or made).
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// `Media1.RegisterEndpoint`.
    RegisterEndpoint {
        /// The caller's unique name.
        sender: String,
        /// The endpoint object.
        endpoint: String,
        /// Its `UUID`.
        uuid: String,
    },
    /// `Media1.UnregisterEndpoint`.
    UnregisterEndpoint {
        /// The caller's unique name.
        sender: String,
        /// The endpoint object.
        endpoint: String,
    },
    /// `SetConfiguration` on `pac_bcast0` (one BIS).
    PacSetConfiguration {
        /// The caller's endpoint.
        endpoint: String,
    },
    /// The double's own `SetConfiguration(transport, props)` back on the caller's endpoint, and its outcome.
    AnnouncedTransport {
        /// The transport.
        transport: String,
        /// Ok, or the D-Bus error name.
        result: Result<(), String>,
    },
    /// `MediaTransport1.Acquire` / `TryAcquire`.
    Acquire {
        /// The transport.
        transport: String,
    },
    /// `MediaTransport1.Release`.
    Release {
        /// The transport.
        transport: String,
    },
    /// `GetManagedObjects`.
    GetManagedObjects,
    /// `Device1.ConnectProfile`.
    ConnectProfile {
        /// The UUID asked for.
        uuid: String,
    },
    /// `Device1.Disconnect`.
    Disconnect,
    /// The double's `SelectConfiguration(SINK_CAPS)` on the A2DP endpoint, and bluebridge's answer.
    SelectConfiguration {
        /// The configuration chosen, or the D-Bus error name.
        result: Result<Vec<u8>, String>,
    },
    /// A `Volume` set on an A2DP transport (AVRCP SetAbsoluteVolume).
    SetVolume {
        /// The level, 0…127.
        level: u16,
    },
    /// `LEAdvertisingManager1.RegisterAdvertisement`: what the advertisement's `GetAll` gave, and whether the
    /// double's `Set("Instance", 1)` succeeded (`None`: not tried, no such property or BlueZ before 5.87).
    RegisterAdvertisement {
        /// `Type`.
        kind: String,
        /// `ServiceData` keys and values.
        service_data: Vec<(String, Vec<u8>)>,
        /// `Data` (AD type → bytes).
        data: Vec<(u8, Vec<u8>)>,
        /// `ManufacturerData`.
        manufacturer: Vec<(u16, Vec<u8>)>,
        /// The outcome of setting `Instance`.
        instance_set: Option<Result<(), String>>,
    },
    /// `LEAdvertisingManager1.UnregisterAdvertisement`.
    UnregisterAdvertisement,
}

/// How the double misbehaves.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Behaviour {
    /// Like BlueZ.
    #[default]
    Normal,
    /// `GetManagedObjects` answers with the wrong type (`as` instead of `a{oa{sa{sv}}}`).
    MalformedManagedObjects,
    /// The speaker's capabilities are 2 bytes, not SBC's 4.
    MalformedSinkCaps,
    /// A BlueZ before 5.87: `RegisterAdvertisement` never writes `Instance`.
    NoInstance,
}

/// The A2DP speaker as the double holds it.
#[derive(Debug)]
struct Speaker {
    /// In range: `ConnectProfile` succeeds.
    present: bool,
    connected: bool,
    /// The A2DP source endpoint bluebridge registered: (its unique name, its path).
    endpoint: Option<(String, String)>,
    /// Streams configured so far (the current one is `a2dp_transport(streams - 1)`).
    streams: usize,
    /// The current transport's properties.
    state: String,
    delay_dms: u16,
    volume: u16,
}

impl Default for Speaker {
    fn default() -> Self {
        Self {
            present: true,
            connected: false,
            endpoint: None,
            streams: 0,
            state: "idle".into(),
            delay_dms: INITIAL_DELAY_DMS,
            volume: INITIAL_VOLUME,
        }
    }
}

struct Shared {
    conn: Arc<SyncConnection>,
    calls: Mutex<Vec<Call>>,
    next_transport: AtomicUsize,
    /// The far ends of the sockets handed out by Acquire (kept open).
    peers: Mutex<Vec<UnixDatagram>>,
    /// The far end of the last A2DP transport acquired.
    a2dp_peer: Mutex<Option<UnixDatagram>>,
    speaker: Mutex<Speaker>,
    behaviour: Behaviour,
}

impl Shared {
    fn record(&self, c: Call) {
        self.calls.lock().unwrap().push(c);
    }
}

type Data = Arc<Shared>;

fn sender(ctx: &dbus_crossroads::Context) -> String {
    ctx.message().sender().map(|s| s.to_string()).unwrap_or_default()
}

fn props(entries: Vec<(&str, Box<dyn RefArg>)>) -> PropMap {
    entries.into_iter().map(|(k, v)| (k.to_string(), Variant(v))).collect()
}

fn managed_objects() -> HashMap<dbus::Path<'static>, HashMap<String, PropMap>> {
    let mut objects = HashMap::new();
    let mut hci0 = HashMap::new();
    hci0.insert(
        "org.bluez.Adapter1".to_string(),
        props(vec![
            ("Address", Box::new("00:11:22:33:44:55".to_string())),
            ("Name", Box::new("hci0".to_string())),
            ("Alias", Box::new("bluez-double".to_string())),
            ("Powered", Box::new(true)),
            (
                "UUIDs",
                Box::new(vec![BCAST_SOURCE_UUID.to_string(), A2DP_SOURCE_UUID.to_string()]),
            ),
        ]),
    );
    hci0.insert(
        "org.bluez.Media1".to_string(),
        props(vec![(
            "SupportedUUIDs",
            Box::new(vec![BCAST_SOURCE_UUID.to_string(), A2DP_SOURCE_UUID.to_string()]),
        )]),
    );
    objects.insert(dbus::Path::from("/org/bluez/hci0"), hci0);
    let mut pac = HashMap::new();
    pac.insert(
        "org.bluez.MediaEndpoint1".to_string(),
        props(vec![
            ("UUID", Box::new(BCAST_SOURCE_UUID.to_string())),
            ("Codec", Box::new(6u8)),
        ]),
    );
    objects.insert(dbus::Path::from(PAC_BCAST), pac);
    objects
}

/// The in-process `org.bluez`.
pub struct Bluez {
    shared: Arc<Shared>,
    cr: Arc<Mutex<Crossroads>>,
}

/// Plays BlueZ's part after a profile connection: asks the endpoint for a configuration, then announces the
/// transport to it (as BlueZ does after AVDTP SET_CONFIGURATION).
/// BlueZ 5.87's `RegisterAdvertisement` (`src/advertising.c`): reads the advertisement's properties from its owner,
/// and, if it has `Instance`, writes the instance (1: the first free) into it before the reply.
async fn register_advertisement(d: Data, owner: String, path: dbus::Path<'static>) {
    use dbus::nonblock::stdintf::org_freedesktop_dbus::Properties;
    const IFACE: &str = "org.bluez.LEAdvertisement1";
    let proxy = dbus::nonblock::Proxy::new(owner, path, Duration::from_secs(5), d.conn.clone());
    let props: PropMap = proxy.get_all(IFACE).await.unwrap_or_default();
    let kind = dbus::arg::prop_cast::<String>(&props, "Type")
        .cloned()
        .unwrap_or_default();
    // A dictionary of `ay` variants, read the way BlueZ does: entry by entry (`prop_cast` cannot see into it).
    fn pairs<K: Ord>(props: &PropMap, key: &str, k: impl Fn(&dyn RefArg) -> Option<K>) -> Vec<(K, Vec<u8>)> {
        let Some(dict) = props.get(key).and_then(|v| v.0.as_iter()) else {
            return Vec::new();
        };
        let items: Vec<&dyn RefArg> = dict.collect();
        let mut out: Vec<(K, Vec<u8>)> = items
            .chunks(2)
            .filter_map(|kv| {
                let key = k(kv.first()?)?;
                let bytes = kv.get(1)?.as_iter()?.next()?.as_iter()?;
                Some((key, bytes.filter_map(|b| b.as_u64().map(|b| b as u8)).collect()))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
    let instance_set = if d.behaviour == Behaviour::NoInstance || !props.contains_key("Instance") {
        None
    } else {
        let r: Result<(), dbus::Error> = proxy.set(IFACE, "Instance", 1u8).await;
        Some(r.map_err(|e| e.name().unwrap_or("?").to_string()))
    };
    d.record(Call::RegisterAdvertisement {
        kind,
        service_data: pairs(&props, "ServiceData", |k| k.as_str().map(str::to_string)),
        data: pairs(&props, "Data", |k| k.as_u64().map(|k| k as u8)),
        manufacturer: pairs(&props, "ManufacturerData", |k| k.as_u64().map(|k| k as u16)),
        instance_set,
    });
}

async fn configure_stream(d: Data) {
    let (endpoint, n, delay) = {
        let mut sp = d.speaker.lock().unwrap();
        let Some(e) = sp.endpoint.clone() else { return };
        sp.streams += 1;
        sp.state = "idle".into();
        sp.delay_dms = INITIAL_DELAY_DMS;
        sp.volume = INITIAL_VOLUME;
        (e, sp.streams - 1, sp.delay_dms)
    };
    let proxy = dbus::nonblock::Proxy::new(endpoint.0, endpoint.1, Duration::from_secs(5), d.conn.clone());
    let caps: Vec<u8> = match d.behaviour {
        Behaviour::MalformedSinkCaps => SINK_CAPS[..2].to_vec(),
        _ => SINK_CAPS.to_vec(),
    };
    let r: Result<(Vec<u8>,), dbus::Error> = proxy
        .method_call("org.bluez.MediaEndpoint1", "SelectConfiguration", (caps,))
        .await;
    let conf = match r {
        Ok((c,)) => {
            d.record(Call::SelectConfiguration { result: Ok(c.clone()) });
            c
        }
        Err(e) => {
            d.record(Call::SelectConfiguration {
                result: Err(e.name().unwrap_or("?").to_string()),
            });
            return;
        }
    };
    let transport = a2dp_transport(n);
    let p = props(vec![
        ("Device", Box::new(dbus::Path::from(DEVICE))),
        ("UUID", Box::new(A2DP_SINK_UUID.to_string())),
        ("Codec", Box::new(0u8)),
        ("Configuration", Box::new(conf)),
        ("Delay", Box::new(delay)),
        ("State", Box::new("idle".to_string())),
    ]);
    let r: Result<(), dbus::Error> = proxy
        .method_call(
            "org.bluez.MediaEndpoint1",
            "SetConfiguration",
            (dbus::Path::from(transport.clone()), p),
        )
        .await;
    d.record(Call::AnnouncedTransport {
        transport,
        result: r.map_err(|e| e.name().unwrap_or("?").to_string()),
    });
}

/// Emits `PropertiesChanged` on `path` for `MediaTransport1` from the double's connection (BlueZ's name).
fn emit_transport_changed(conn: &SyncConnection, path: &str, changed: PropMap) {
    use dbus::channel::Sender;
    use dbus::message::SignalArgs;
    let sig = dbus::nonblock::stdintf::org_freedesktop_dbus::PropertiesPropertiesChanged {
        interface_name: "org.bluez.MediaTransport1".to_string(),
        changed_properties: changed,
        invalidated_properties: Vec::new(),
    };
    let _ = conn.send(sig.to_emit_message(&dbus::Path::from(path.to_string())));
}

impl Bluez {
    /// Serves the double on `bus` and takes the name `org.bluez`.
    pub async fn start(bus: &PrivateBus, behaviour: Behaviour) -> Bluez {
        let conn = bus.connect();
        let shared = Arc::new(Shared {
            conn: conn.clone(),
            calls: Mutex::default(),
            next_transport: AtomicUsize::new(0),
            peers: Mutex::default(),
            a2dp_peer: Mutex::default(),
            speaker: Mutex::default(),
            behaviour,
        });
        let mut cr = Crossroads::new();
        cr.set_async_support(Some((
            conn.clone(),
            Box::new(|f| {
                tokio::spawn(f);
            }),
        )));
        let om = cr.register(
            "org.freedesktop.DBus.ObjectManager",
            move |b: &mut IfaceBuilder<Data>| match behaviour {
                Behaviour::Normal | Behaviour::MalformedSinkCaps | Behaviour::NoInstance => {
                    b.method("GetManagedObjects", (), ("objects",), |_, d: &mut Data, (): ()| {
                        d.record(Call::GetManagedObjects);
                        Ok((managed_objects(),))
                    });
                }
                Behaviour::MalformedManagedObjects => {
                    b.method("GetManagedObjects", (), ("objects",), |_, d: &mut Data, (): ()| {
                        d.record(Call::GetManagedObjects);
                        Ok((vec!["/org/bluez/hci0".to_string()],))
                    });
                }
            },
        );
        let media = cr.register("org.bluez.Media1", |b: &mut IfaceBuilder<Data>| {
            b.method(
                "RegisterEndpoint",
                ("endpoint", "properties"),
                (),
                |ctx, d: &mut Data, (endpoint, p): (dbus::Path<'static>, PropMap)| {
                    let uuid = dbus::arg::prop_cast::<String>(&p, "UUID").cloned().unwrap_or_default();
                    if uuid == A2DP_SOURCE_UUID {
                        d.speaker.lock().unwrap().endpoint = Some((sender(ctx), endpoint.to_string()));
                    }
                    d.record(Call::RegisterEndpoint {
                        sender: sender(ctx),
                        endpoint: endpoint.to_string(),
                        uuid,
                    });
                    Ok(())
                },
            );
            b.method(
                "UnregisterEndpoint",
                ("endpoint",),
                (),
                |ctx, d: &mut Data, (endpoint,): (dbus::Path<'static>,)| {
                    let mut sp = d.speaker.lock().unwrap();
                    if sp.endpoint.as_ref().is_some_and(|e| e.1 == *endpoint) {
                        sp.endpoint = None;
                    }
                    drop(sp);
                    d.record(Call::UnregisterEndpoint {
                        sender: sender(ctx),
                        endpoint: endpoint.to_string(),
                    });
                    Ok(())
                },
            );
            b.property("SupportedUUIDs")
                .get(|_, _: &mut Data| Ok(vec![BCAST_SOURCE_UUID.to_string(), A2DP_SOURCE_UUID.to_string()]));
        });
        let adapter = cr.register("org.bluez.Adapter1", |b: &mut IfaceBuilder<Data>| {
            b.property("Powered")
                .get(|_, _: &mut Data| Ok(true))
                .set(|_, _, _: bool| Ok(None));
            b.property("Address")
                .get(|_, _: &mut Data| Ok("00:11:22:33:44:55".to_string()));
        });
        let device = cr.register("org.bluez.Device1", |b: &mut IfaceBuilder<Data>| {
            b.method(
                "ConnectProfile",
                ("uuid",),
                (),
                |_, d: &mut Data, (uuid,): (String,)| {
                    d.record(Call::ConnectProfile { uuid: uuid.clone() });
                    let mut sp = d.speaker.lock().unwrap();
                    if !sp.present {
                        return Err(dbus::MethodErr::from((
                            "org.bluez.Error.Failed",
                            "br-connection-page-timeout",
                        )));
                    }
                    if uuid != A2DP_SINK_UUID {
                        return Err(dbus::MethodErr::from(("org.bluez.Error.InvalidArguments", "not A2DP")));
                    }
                    let first = !sp.connected;
                    sp.connected = true;
                    drop(sp);
                    if first {
                        tokio::spawn(configure_stream(d.clone()));
                    }
                    Ok(())
                },
            );
            b.method("Disconnect", (), (), |_, d: &mut Data, (): ()| {
                d.record(Call::Disconnect);
                d.speaker.lock().unwrap().connected = false;
                Ok(())
            });
            b.property("Connected")
                .get(|_, d: &mut Data| Ok(d.speaker.lock().unwrap().connected));
            b.property("Address").get(|_, _: &mut Data| Ok(SPEAKER.to_string()));
        });
        let a2dp_transport_iface = cr.register("org.bluez.MediaTransport1", |b: &mut IfaceBuilder<Data>| {
            b.method("Acquire", (), ("fd", "mtu_r", "mtu_w"), |ctx, d: &mut Data, (): ()| {
                d.record(Call::Acquire {
                    transport: ctx.path().to_string(),
                });
                let (ours, theirs) = UnixDatagram::pair().map_err(|e| dbus::MethodErr::failed(&e))?;
                theirs.set_nonblocking(true).map_err(|e| dbus::MethodErr::failed(&e))?;
                *d.a2dp_peer.lock().unwrap() = Some(theirs);
                d.speaker.lock().unwrap().state = "active".into();
                emit_transport_changed(
                    &d.conn,
                    &ctx.path().to_string(),
                    props(vec![("State", Box::new("active".to_string()))]),
                );
                // SAFETY: the descriptor was just taken out of its owner.
                let fd = unsafe { dbus::arg::OwnedFd::new(ours.into_raw_fd()) };
                Ok((fd, 672u16, 672u16))
            });
            b.method("Release", (), (), |ctx, d: &mut Data, (): ()| {
                d.record(Call::Release {
                    transport: ctx.path().to_string(),
                });
                d.speaker.lock().unwrap().state = "idle".into();
                Ok(())
            });
            b.property("State")
                .get(|_, d: &mut Data| Ok(d.speaker.lock().unwrap().state.clone()));
            b.property("Delay")
                .get(|_, d: &mut Data| Ok(d.speaker.lock().unwrap().delay_dms));
            b.property("Volume")
                .get(|_, d: &mut Data| Ok(d.speaker.lock().unwrap().volume))
                .set(|_, d: &mut Data, level: u16| {
                    d.record(Call::SetVolume { level });
                    d.speaker.lock().unwrap().volume = level;
                    Ok(Some(level))
                });
        });
        let pac = cr.register("org.bluez.MediaEndpoint1", |b: &mut IfaceBuilder<Data>| {
            b.method(
                "SetConfiguration",
                ("endpoint", "properties"),
                (),
                |ctx, d: &mut Data, (endpoint, _p): (dbus::Path<'static>, PropMap)| {
                    d.record(Call::PacSetConfiguration {
                        endpoint: endpoint.to_string(),
                    });
                    let i = d.next_transport.fetch_add(1, Ordering::SeqCst) % TRANSPORTS;
                    let transport = format!("{PAC_BCAST}/fd{i}");
                    let to = sender(ctx);
                    let d = d.clone();
                    // BlueZ announces the BIS transport to the endpoint's owner after answering.
                    tokio::spawn(async move {
                        let proxy = dbus::nonblock::Proxy::new(to, endpoint, Duration::from_secs(5), d.conn.clone());
                        let p = props(vec![
                            ("UUID", Box::new(BCAST_SOURCE_UUID.to_string())),
                            ("Codec", Box::new(6u8)),
                            ("Configuration", Box::new(Vec::<u8>::new())),
                            ("State", Box::new("idle".to_string())),
                        ]);
                        let r: Result<(), dbus::Error> = proxy
                            .method_call(
                                "org.bluez.MediaEndpoint1",
                                "SetConfiguration",
                                (dbus::Path::from(transport.clone()), p),
                            )
                            .await;
                        d.record(Call::AnnouncedTransport {
                            transport,
                            result: r.map_err(|e| e.name().unwrap_or("?").to_string()),
                        });
                    });
                    Ok(())
                },
            );
            b.property("UUID")
                .get(|_, _: &mut Data| Ok(BCAST_SOURCE_UUID.to_string()));
        });
        let transport = cr.register("org.bluez.MediaTransport1", |b: &mut IfaceBuilder<Data>| {
            fn acquire(
                ctx: &mut dbus_crossroads::Context,
                d: &mut Data,
            ) -> Result<(dbus::arg::OwnedFd, u16, u16), dbus::MethodErr> {
                d.record(Call::Acquire {
                    transport: ctx.path().to_string(),
                });
                let (ours, theirs) = UnixDatagram::pair().map_err(|e| dbus::MethodErr::failed(&e))?;
                d.peers.lock().unwrap().push(theirs);
                // SAFETY: the descriptor was just taken out of its owner.
                let fd = unsafe { dbus::arg::OwnedFd::new(ours.into_raw_fd()) };
                Ok((fd, 100, 100))
            }
            b.method("Acquire", (), ("fd", "mtu_r", "mtu_w"), |ctx, d: &mut Data, (): ()| {
                acquire(ctx, d)
            });
            b.method(
                "TryAcquire",
                (),
                ("fd", "mtu_r", "mtu_w"),
                |ctx, d: &mut Data, (): ()| acquire(ctx, d),
            );
            b.method("Release", (), (), |ctx, d: &mut Data, (): ()| {
                d.record(Call::Release {
                    transport: ctx.path().to_string(),
                });
                Ok(())
            });
            b.property("State").get(|_, _: &mut Data| Ok("idle".to_string()));
        });
        cr.insert("/", &[om], shared.clone());
        let advertising = cr.register("org.bluez.LEAdvertisingManager1", |b: &mut IfaceBuilder<Data>| {
            b.method_with_cr_async(
                "RegisterAdvertisement",
                ("advertisement", "options"),
                (),
                |mut ctx, cr, (path, _options): (dbus::Path<'static>, PropMap)| {
                    let d: Data = cr.data_mut::<Data>(ctx.path()).expect("the adapter's data").clone();
                    let owner = ctx.message().sender().map(|s| s.to_string()).unwrap_or_default();
                    async move {
                        register_advertisement(d, owner, path).await;
                        ctx.reply(Ok(()))
                    }
                },
            );
            b.method(
                "UnregisterAdvertisement",
                ("advertisement",),
                (),
                |_, d: &mut Data, (_path,): (dbus::Path<'static>,)| {
                    d.record(Call::UnregisterAdvertisement);
                    Ok(())
                },
            );
        });
        cr.insert("/org/bluez/hci0", &[media, adapter, advertising], shared.clone());
        cr.insert(DEVICE, &[device], shared.clone());
        for n in 0..TRANSPORTS {
            cr.insert(a2dp_transport(n), &[a2dp_transport_iface], shared.clone());
        }
        cr.insert(PAC_BCAST, &[pac], shared.clone());
        for i in 0..TRANSPORTS {
            cr.insert(format!("{PAC_BCAST}/fd{i}"), &[transport], shared.clone());
        }
        let cr = Arc::new(Mutex::new(cr));
        let cr2 = cr.clone();
        conn.start_receive(
            dbus::message::MatchRule::new_method_call(),
            Box::new(move |msg, conn| {
                let _ = cr2.lock().unwrap().handle_message(msg, conn);
                true
            }),
        );
        // Each test starts its own double on the one bus: it takes the name over from the previous test's.
        conn.request_name("org.bluez", true, true, true)
            .await
            .expect("taking org.bluez on the private bus");
        Bluez { shared, cr }
    }

    /// The A2DP transport streaming now (the last configured), if any was.
    pub fn a2dp_transport(&self) -> Option<String> {
        let n = self.shared.speaker.lock().unwrap().streams;
        n.checked_sub(1).map(a2dp_transport)
    }

    /// Changes the current A2DP transport's `Delay` / `State` / `Volume` and emits `PropertiesChanged`, as BlueZ
    /// does when the speaker reports them. `store` false: the signal goes out but a read still gets the old value
    /// (so a test can tell that the signal was followed, not a re-read).
    pub fn change_a2dp(&self, delay_dms: Option<u16>, state: Option<&str>, volume: Option<u16>, store: bool) {
        let Some(path) = self.a2dp_transport() else {
            panic!("no A2DP stream configured yet")
        };
        let mut changed: Vec<(&str, Box<dyn RefArg>)> = Vec::new();
        {
            let mut sp = self.shared.speaker.lock().unwrap();
            if let Some(d) = delay_dms {
                changed.push(("Delay", Box::new(d)));
                if store {
                    sp.delay_dms = d;
                }
            }
            if let Some(s) = state {
                changed.push(("State", Box::new(s.to_string())));
                if store {
                    sp.state = s.to_string();
                }
            }
            if let Some(v) = volume {
                changed.push(("Volume", Box::new(v)));
                if store {
                    sp.volume = v;
                }
            }
        }
        emit_transport_changed(&self.shared.conn, &path, props(changed));
    }

    /// Stores the current A2DP transport's properties without a signal (after a `store: false` change).
    pub fn store_a2dp(&self, delay_dms: u16) {
        self.shared.speaker.lock().unwrap().delay_dms = delay_dms;
    }

    /// The speaker walks out of range: BlueZ clears the stream configuration on the endpoint, the transport
    /// object goes, the device is disconnected and `ConnectProfile` fails until [`Bluez::speaker_back`].
    pub async fn speaker_gone(&self) {
        let (endpoint, transport) = {
            let mut sp = self.shared.speaker.lock().unwrap();
            sp.present = false;
            sp.connected = false;
            (sp.endpoint.clone(), sp.streams.checked_sub(1).map(a2dp_transport))
        };
        let (Some((owner, path)), Some(transport)) = (endpoint, transport) else {
            panic!("no A2DP stream to take away")
        };
        self.cr
            .lock()
            .unwrap()
            .remove::<Data>(&dbus::Path::from(transport.clone()));
        let proxy = dbus::nonblock::Proxy::new(owner, path, Duration::from_secs(5), self.shared.conn.clone());
        let r: Result<(), dbus::Error> = proxy
            .method_call(
                "org.bluez.MediaEndpoint1",
                "ClearConfiguration",
                (dbus::Path::from(transport),),
            )
            .await;
        r.expect("bluebridge accepts BlueZ's ClearConfiguration");
    }

    /// The speaker is back in range: `ConnectProfile` succeeds again.
    pub fn speaker_back(&self) {
        self.shared.speaker.lock().unwrap().present = true;
    }

    /// Takes the packets waiting on the A2DP socket's far end (one datagram = one packet).
    pub fn a2dp_packets(&self) -> Vec<Vec<u8>> {
        let peer = self.shared.a2dp_peer.lock().unwrap();
        let Some(peer) = peer.as_ref() else { return Vec::new() };
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok(n) = peer.recv(&mut buf) {
            out.push(buf[..n].to_vec());
        }
        out
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.lock().unwrap().clone()
    }

    /// Waits up to `timeout` until `done` holds for the calls seen; panics naming `what` and listing them if not.
    pub async fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&[Call]) -> bool) -> Vec<Call> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let calls = self.calls();
            if done(&calls) {
                return calls;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("timed out after {timeout:?} waiting for {what}; the BlueZ double saw: {calls:#?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Whether `name` is on the bus, asked over `conn`.
pub async fn name_has_owner(conn: &Arc<SyncConnection>, name: &str) -> bool {
    let proxy = dbus::nonblock::Proxy::new(
        "org.freedesktop.DBus",
        "/org/freedesktop/DBus",
        Duration::from_secs(5),
        conn.clone(),
    );
    let (has,): (bool,) = proxy
        .method_call("org.freedesktop.DBus", "NameHasOwner", (name,))
        .await
        .expect("NameHasOwner");
    has
}
