//! A BlueZ test double: a private `dbus-daemon` started by the test, and a small in-process `org.bluez` on it
//! serving only what bluebridge's broadcast path calls (notes/bluez.md §B.1):
//! - `/`: `org.freedesktop.DBus.ObjectManager.GetManagedObjects` (adapter `hci0` with `Adapter1` and `Media1`,
//!   and the `pac_bcast0` endpoint BlueZ creates for a local broadcast source);
//! - `/org/bluez/hci0`: `org.bluez.Media1` `RegisterEndpoint` / `UnregisterEndpoint`;
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
}

/// How the double misbehaves.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum Behaviour {
    /// Like BlueZ.
    #[default]
    Normal,
    /// `GetManagedObjects` answers with the wrong type (`as` instead of `a{oa{sa{sv}}}`).
    MalformedManagedObjects,
}

struct Shared {
    conn: Arc<SyncConnection>,
    calls: Mutex<Vec<Call>>,
    next_transport: AtomicUsize,
    /// The far ends of the sockets handed out by Acquire (kept open).
    peers: Mutex<Vec<UnixDatagram>>,
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
            ("UUIDs", Box::new(vec![BCAST_SOURCE_UUID.to_string()])),
        ]),
    );
    hci0.insert(
        "org.bluez.Media1".to_string(),
        props(vec![("SupportedUUIDs", Box::new(vec![BCAST_SOURCE_UUID.to_string()]))]),
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
        });
        let mut cr = Crossroads::new();
        let om = cr.register(
            "org.freedesktop.DBus.ObjectManager",
            move |b: &mut IfaceBuilder<Data>| match behaviour {
                Behaviour::Normal => {
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
                    d.record(Call::UnregisterEndpoint {
                        sender: sender(ctx),
                        endpoint: endpoint.to_string(),
                    });
                    Ok(())
                },
            );
            b.property("SupportedUUIDs")
                .get(|_, _: &mut Data| Ok(vec![BCAST_SOURCE_UUID.to_string()]));
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
        cr.insert("/org/bluez/hci0", &[media], shared.clone());
        cr.insert(PAC_BCAST, &[pac], shared.clone());
        for i in 0..TRANSPORTS {
            cr.insert(format!("{PAC_BCAST}/fd{i}"), &[transport], shared.clone());
        }
        let cr = Arc::new(Mutex::new(cr));
        conn.start_receive(
            dbus::message::MatchRule::new_method_call(),
            Box::new(move |msg, conn| {
                let _ = cr.lock().unwrap().handle_message(msg, conn);
                true
            }),
        );
        // Each test starts its own double on the one bus: it takes the name over from the previous test's.
        conn.request_name("org.bluez", true, true, true)
            .await
            .expect("taking org.bluez on the private bus");
        Bluez { shared }
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
