//! bluebridge against the BlueZ test double (`tests/support/bluez_double.rs`): a private `dbus-daemon` as the
//! system bus and an in-process `org.bluez`. Runs anywhere `dbus-daemon` is installed, in seconds. The tests share
//! that bus and the name `org.bluez`, so each holds [`serial`] for its whole run.

#[path = "support/bluez_double.rs"]
mod bluez_double;

use bluebridge::timeline::clock::{Clock, SystemClock};
use bluez_double::{
    name_has_owner, serial, Behaviour, Bluez, Call, PrivateBus, A2DP_SINK_UUID, A2DP_SOURCE_UUID, BCAST_SOURCE_UUID,
    INITIAL_DELAY_DMS, INITIAL_VOLUME, SPEAKER,
};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

/// A broadcast output (two BIS, `48_2_1` stereo) opened the way the service opens one on start and on a reload.
fn open_broadcast() -> Box<dyn bluebridge::output::Output> {
    let cfg = "[source]\nkind = \"tone\"\n[[output]]\nname = \"b\"\nkind = \"broadcast\"\n";
    let (_, specs) = bluebridge::config::Config::parse("t.toml", cfg).expect("config");
    let edge = bluebridge::bluez::edge::BluezEdge::new(tokio::runtime::Handle::current(), 2);
    let ctx = bluebridge::output::OutputContext::new(std::sync::Arc::new(edge));
    bluebridge::output::open(&specs[0], &ctx).expect("opening the broadcast output")
}

/// Opens the broadcast output and waits (up to 10 s) until the double has seen both BIS transports acquired.
async fn broadcast_up(bluez: &Bluez) -> (Box<dyn bluebridge::output::Output>, Vec<Call>) {
    let out = open_broadcast();
    let calls = bluez
        .wait_for(
            "the BIG up (RegisterEndpoint, both BIS acquired)",
            Duration::from_secs(10),
            |c| count(c, |c| matches!(c, Call::Acquire { .. })) >= 2,
        )
        .await;
    (out, calls)
}

fn count(calls: &[Call], f: impl Fn(&Call) -> bool) -> usize {
    calls.iter().filter(|c| f(c)).count()
}

fn registered_by(calls: &[Call]) -> (String, String) {
    calls
        .iter()
        .find_map(|c| match c {
            Call::RegisterEndpoint { sender, endpoint, .. } => Some((sender.clone(), endpoint.clone())),
            _ => None,
        })
        .expect("a RegisterEndpoint")
}

/// Issue 17: a reload that removes (or rebuilds) a broadcast output drops it; its control task must then end,
/// releasing the BIG's transports, unregistering the endpoint and closing its D-Bus connection, and must not set
/// the broadcast up again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_broadcast_output_ends_its_control_task() {
    let _serial = serial().await;
    logs();
    let bus = PrivateBus::system();
    let bluez = Bluez::start(bus, Behaviour::Normal).await;
    let (out, calls) = broadcast_up(&bluez).await;
    let (owner, endpoint) = registered_by(&calls);
    assert!(
        calls
            .iter()
            .any(|c| matches!(c, Call::RegisterEndpoint { uuid, .. } if uuid == BCAST_SOURCE_UUID)),
        "registered as a broadcast source: {calls:#?}"
    );
    assert_eq!(
        count(&calls, |c| matches!(c, Call::AnnouncedTransport { result: Ok(()), .. })),
        2,
        "bluebridge accepts BlueZ's transport announcements: {calls:#?}"
    );
    drop(out);
    let calls = bluez
        .wait_for(
            "UnregisterEndpoint after the output was dropped",
            Duration::from_secs(5),
            |c| {
                c.iter()
                    .any(|c| matches!(c, Call::UnregisterEndpoint { endpoint: e, .. } if *e == endpoint))
            },
        )
        .await;
    assert_eq!(
        count(&calls, |c| matches!(c, Call::Release { .. })),
        2,
        "both BIS transports released: {calls:#?}"
    );
    // Its connection closes: the unique name that registered leaves the bus.
    let probe = bus.connect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while name_has_owner(&probe, &owner).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "bluebridge's D-Bus connection {owner} is still on the bus 5 s after its output was dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // And nothing sets the broadcast up again (the task retried after 1 s before).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let calls = bluez.calls();
    assert_eq!(
        count(&calls, |c| matches!(c, Call::RegisterEndpoint { .. })),
        1,
        "no new registration after the output was dropped: {calls:#?}"
    );
}

/// A caller that is not BlueZ (another connection on the bus) calling bluebridge's endpoint is refused with
/// `org.bluez.Error.NotAuthorized`, and the broadcast it tried to disturb carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_is_not_bluez_is_refused() {
    let _serial = serial().await;
    logs();
    let bus = PrivateBus::system();
    let bluez = Bluez::start(bus, Behaviour::Normal).await;
    let (out, calls) = broadcast_up(&bluez).await;
    let (owner, endpoint) = registered_by(&calls);
    let stranger = bus.connect();
    let proxy = dbus::nonblock::Proxy::new(owner, endpoint, Duration::from_secs(5), stranger);
    for (method, r) in [
        (
            "SetConfiguration",
            proxy
                .method_call::<(), _, _, _>(
                    "org.bluez.MediaEndpoint1",
                    "SetConfiguration",
                    (
                        dbus::Path::from("/org/bluez/hci0/pac_bcast0/fd9"),
                        dbus::arg::PropMap::new(),
                    ),
                )
                .await,
        ),
        (
            "ClearConfiguration",
            proxy
                .method_call::<(), _, _, _>(
                    "org.bluez.MediaEndpoint1",
                    "ClearConfiguration",
                    (dbus::Path::from("/org/bluez/hci0/pac_bcast0/fd0"),),
                )
                .await,
        ),
        (
            "Release",
            proxy
                .method_call::<(), _, _, _>("org.bluez.MediaEndpoint1", "Release", ())
                .await,
        ),
    ] {
        let e = r.expect_err(&format!("{method} from a stranger must be refused"));
        assert_eq!(e.name(), Some("org.bluez.Error.NotAuthorized"), "{method}: {e:?}");
    }
    // The refused ClearConfiguration/Release did not tear the broadcast down.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let calls = bluez.calls();
    assert_eq!(count(&calls, |c| matches!(c, Call::Release { .. })), 0, "{calls:#?}");
    assert_eq!(
        count(&calls, |c| matches!(c, Call::RegisterEndpoint { .. })),
        1,
        "{calls:#?}"
    );
    drop(out);
}

/// BlueZ answering `GetManagedObjects` with the wrong type: a clear error naming what was being done, no panic,
/// and the endpoint registered before it is unregistered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_reply_is_a_clear_error() {
    let _serial = serial().await;
    logs();
    let bus = PrivateBus::system();
    let bluez = Bluez::start(bus, Behaviour::MalformedManagedObjects).await;
    let media = bluebridge::bluez::media::MediaBus::connect().expect("connecting to the private system bus");
    let cfg = "[source]\nkind = \"tone\"\n[[output]]\nname = \"b\"\nkind = \"broadcast\"\n";
    let (_, specs) = bluebridge::config::Config::parse("t.toml", cfg).expect("config");
    let bluebridge::output::OutputSettings::Broadcast(b) = &specs[0].settings else {
        panic!("a broadcast config")
    };
    let config = b.config.clone();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        bluebridge::bluez::broadcast_source::start(&media, "hci0", &config, None),
    )
    .await
    .unwrap_or_else(|_| {
        panic!(
            "start did not answer within 10 s; the BlueZ double saw {:#?}",
            bluez.calls()
        )
    });
    let e = match r {
        Ok(_) => panic!("start succeeded on a malformed GetManagedObjects reply"),
        Err(e) => e.to_string(),
    };
    eprintln!("error on a malformed GetManagedObjects reply: {e}");
    assert!(e.contains("listing BlueZ objects"), "{e}");
    assert!(e.contains("\"as\""), "the error names the type received: {e}");
    bluez
        .wait_for(
            "UnregisterEndpoint after the failed setup",
            Duration::from_secs(5),
            |c| c.iter().any(|c| matches!(c, Call::UnregisterEndpoint { .. })),
        )
        .await;
}

/// Issue 14 on a BlueZ 5.87 double: the broadcast's advertisement is registered before any BIS is acquired (so the
/// kernel can put the BIG on its set), carries the Broadcast Name, PBA, Broadcast_ID and manufacturer data as
/// `LEAdvertisement1` fields, takes the `Instance` BlueZ writes into it, and is unregistered with the broadcast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broadcast_advertises_its_identity_before_its_big() {
    let _serial = serial().await;
    logs();
    let bus = PrivateBus::system();
    let bluez = Bluez::start(bus, Behaviour::Normal).await;
    let media = bluebridge::bluez::media::MediaBus::connect().expect("connecting to the private system bus");
    let cfg =
        "[source]\nkind = \"tone\"\n[[output]]\nname = \"b\"\nkind = \"broadcast\"\nbroadcast_name = \"Kitchen\"\n\
               preset = \"16_2_1\"\nbroadcast_code = \"secret\"\nprogram_info = \"Jazz\"\n\
               manufacturer_data = { company = 87, data = \"01ab\" }\n";
    let (_, specs) = bluebridge::config::Config::parse("t.toml", cfg).expect("config");
    let bluebridge::output::OutputSettings::Broadcast(b) = &specs[0].settings else {
        panic!("a broadcast config")
    };
    let fields = b.identity(Some("host"), 0x123456).advertisement().expect("fits");
    let (bc, _link) = tokio::time::timeout(
        Duration::from_secs(20),
        bluebridge::bluez::broadcast_source::start(&media, "hci0", &b.config, Some(&fields)),
    )
    .await
    .expect("start answered within 20 s")
    .expect("the broadcast starts");
    let calls = bluez.calls();
    let adv_at = calls
        .iter()
        .position(|c| matches!(c, Call::RegisterAdvertisement { .. }))
        .unwrap_or_else(|| panic!("no RegisterAdvertisement: {calls:#?}"));
    let first_acquire = calls
        .iter()
        .position(|c| matches!(c, Call::Acquire { .. }))
        .expect("an Acquire");
    assert!(
        adv_at < first_acquire,
        "advertised after the BIG was acquired: {calls:#?}"
    );
    let Call::RegisterAdvertisement {
        kind,
        service_data,
        data,
        manufacturer,
        instance_set,
    } = &calls[adv_at]
    else {
        unreachable!()
    };
    assert_eq!(kind, "broadcast");
    assert_eq!(
        service_data,
        &vec![
            (
                "00001852-0000-1000-8000-00805f9b34fb".to_string(),
                vec![0x56, 0x34, 0x12]
            ),
            // Encrypted + standard quality; Program_Info "Jazz".
            (
                "00001856-0000-1000-8000-00805f9b34fb".to_string(),
                vec![0x03, 0x06, 0x05, 0x03, b'J', b'a', b'z', b'z']
            ),
        ]
    );
    assert_eq!(data, &vec![(0x30u8, b"Kitchen".to_vec())]);
    assert_eq!(manufacturer, &vec![(87u16, vec![0x01, 0xab])]);
    assert_eq!(instance_set, &Some(Ok(())), "BlueZ could write Instance");
    let adv = bc
        .advertisement
        .as_ref()
        .expect("the advertisement is kept with the broadcast");
    assert_eq!(adv.instance(), Some(1));
    assert_eq!(adv.check_instance(), Ok(1));
    drop(bc);
    bluez
        .wait_for(
            "UnregisterAdvertisement with the broadcast",
            Duration::from_secs(5),
            |c| c.iter().any(|c| matches!(c, Call::UnregisterAdvertisement)),
        )
        .await;
}

/// A BlueZ that never writes `Instance` (before 5.87): the broadcast still comes up, and the advertisement says it
/// cannot tell whether it is on the BIG's set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_instance_the_broadcast_still_starts() {
    let _serial = serial().await;
    logs();
    let bus = PrivateBus::system();
    let bluez = Bluez::start(bus, Behaviour::NoInstance).await;
    let media = bluebridge::bluez::media::MediaBus::connect().expect("connecting to the private system bus");
    let cfg = "[source]\nkind = \"tone\"\n[[output]]\nname = \"b\"\nkind = \"broadcast\"\n";
    let (_, specs) = bluebridge::config::Config::parse("t.toml", cfg).expect("config");
    let bluebridge::output::OutputSettings::Broadcast(b) = &specs[0].settings else {
        panic!("a broadcast config")
    };
    let fields = b.identity(Some("host"), 7).advertisement().expect("fits");
    let (bc, _link) = tokio::time::timeout(
        Duration::from_secs(20),
        bluebridge::bluez::broadcast_source::start(&media, "hci0", &b.config, Some(&fields)),
    )
    .await
    .expect("start answered within 20 s")
    .expect("the broadcast starts");
    let adv = bc.advertisement.as_ref().expect("registered");
    assert_eq!(adv.instance(), None);
    let w = adv.check_instance().unwrap_err();
    assert!(w.contains("5.87"), "{w}");
    assert_eq!(count(&bluez.calls(), |c| matches!(c, Call::Acquire { .. })), 2);
}

// ---- A2DP ------------------------------------------------------------------------------------------------------

/// What the output said at one tick.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Seen {
    linked: bool,
    sink_reported_ns: Option<i64>,
    device_volume: Option<(u16, u16)>,
}

/// An `a2dp` output for the double's speaker, driven like the engine drives it (poll, status, write what it
/// wants of a 440 Hz tone, every 5 ms) on a thread of its own. Every distinct [`Seen`] is kept.
struct Driver {
    stop: Arc<AtomicBool>,
    volume_pct: Arc<AtomicU8>,
    seen: Arc<Mutex<Vec<Seen>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Driver {
    fn start() -> Driver {
        let cfg = format!(
            "[source]\nkind = \"tone\"\n[[output]]\nname = \"speaker\"\nkind = \"a2dp\"\naddress = \"{SPEAKER}\"\nadapter = \"hci0\"\n"
        );
        let (_, specs) = bluebridge::config::Config::parse("t.toml", &cfg).expect("config");
        let edge = bluebridge::bluez::edge::BluezEdge::new(tokio::runtime::Handle::current(), 2);
        let ctx = bluebridge::output::OutputContext::new(Arc::new(edge));
        let mut out = bluebridge::output::open(&specs[0], &ctx).expect("opening the a2dp output");
        let stop = Arc::new(AtomicBool::new(false));
        let volume_pct = Arc::new(AtomicU8::new(100));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (stop2, vol2, seen2) = (stop.clone(), volume_pct.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let clock = SystemClock;
            let mut phase = 0f64;
            let mut frames = Vec::new();
            while !stop2.load(Ordering::Relaxed) {
                let now = clock.now();
                out.poll(now);
                let st = out.status(now);
                if let Some(dev) = out.device_mut() {
                    dev.set_volume(vol2.load(Ordering::Relaxed));
                }
                let s = Seen {
                    linked: out.linked(),
                    sink_reported_ns: st.sink_reported_ns,
                    device_volume: out.device().and_then(|d| d.volume()),
                };
                {
                    let mut v = seen2.lock().unwrap();
                    if v.last() != Some(&s) {
                        v.push(s);
                    }
                }
                frames.clear();
                for _ in 0..st.want_frames {
                    let x = (phase.sin() * 8000.0) as i16;
                    phase += 2.0 * std::f64::consts::PI * 440.0 / 48_000.0;
                    frames.extend_from_slice(&[x, x]);
                }
                out.write(now, &frames).expect("write");
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Driver {
            stop,
            volume_pct,
            seen,
            thread: Some(thread),
        }
    }

    fn last(&self) -> Option<Seen> {
        self.seen.lock().unwrap().last().copied()
    }

    /// Waits up to `timeout` until the output's latest state satisfies `done`; panics naming `what` if not.
    async fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(s) = self.last().filter(|s| done(s)) {
                return s;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; the output went through {:#?}",
                    self.seen.lock().unwrap()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits for the A2DP stream: the endpoint registered, the speaker connected and configured, the transport
/// acquired, the output linked.
async fn a2dp_up(bluez: &Bluez, driver: &Driver) -> Vec<Call> {
    let calls = bluez
        .wait_for("the A2DP transport acquired", Duration::from_secs(15), |c| {
            c.iter()
                .any(|c| matches!(c, Call::Acquire { transport } if transport.contains("/dev_")))
        })
        .await;
    driver
        .wait_for("the output linked", Duration::from_secs(5), |s| s.linked)
        .await;
    calls
}

/// Collects the A2DP packets for up to `timeout` until `n` arrived.
async fn packets(bluez: &Bluez, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < n && tokio::time::Instant::now() < deadline {
        got.extend(bluez.a2dp_packets());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    got
}

/// An RTP packet (version 2) carrying SBC frames (the media payload header, then the SBC sync word 0x9c).
fn is_rtp_sbc(p: &[u8]) -> bool {
    p.len() > 14 && p[0] >> 6 == 2 && p[12] & 0x0f > 0 && p[13] == 0x9c
}

/// Issue 17: the A2DP path end to end against the double: an SBC source endpoint registered, the speaker
/// connected with ConnectProfile, a configuration chosen from its capabilities, the transport acquired, and
/// RTP/SBC packets leave on the socket; the speaker's Delay is in the output's status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_a2dp_speaker_is_configured_acquired_and_sent_sbc() {
    let _serial = serial().await;
    logs();
    let bus = PrivateBus::system();
    let bluez = Bluez::start(bus, Behaviour::Normal).await;
    let driver = Driver::start();
    let calls = a2dp_up(&bluez, &driver).await;
    assert!(
        calls
            .iter()
            .any(|c| matches!(c, Call::RegisterEndpoint { uuid, .. } if uuid == A2DP_SOURCE_UUID)),
        "registered as an A2DP source: {calls:#?}"
    );
    assert!(calls
        .iter()
        .any(|c| matches!(c, Call::ConnectProfile { uuid } if uuid == A2DP_SINK_UUID)));
    let chosen = calls
        .iter()
        .find_map(|c| match c {
            Call::SelectConfiguration { result: Ok(conf) } => Some(conf.clone()),
            _ => None,
        })
        .expect("a configuration chosen");
    assert_eq!(chosen.len(), 4);
    assert_eq!(chosen[0] >> 4, 0x1, "48 kHz: {chosen:02x?}");
    assert!(chosen[3] <= 53, "within the speaker's bitpool range: {chosen:02x?}");
    assert!(calls
        .iter()
        .any(|c| matches!(c, Call::AnnouncedTransport { result: Ok(()), .. })));
    let got = packets(&bluez, 20, Duration::from_secs(10)).await;
    assert!(
        got.len() >= 20,
        "20 packets within 10 s of the stream starting, got {}",
        got.len()
    );
    let bad: Vec<_> = got
        .iter()
        .filter(|p| !is_rtp_sbc(p))
        .map(|p| p[..p.len().min(16)].to_vec())
        .collect();
    assert!(
        bad.is_empty(),
        "every packet is RTP carrying SBC; these are not: {bad:02x?}"
    );
    let s = driver.last().expect("a state");
    assert_eq!(s.sink_reported_ns, Some(INITIAL_DELAY_DMS as i64 * 100_000), "{s:?}");
}

/// Issue 17: Delay, Volume and State are followed from BlueZ's PropertiesChanged, not polled: a change the
/// double signals (while a read would still give the old value) reaches the output; the same signal from another
/// connection is ignored; bluebridge sets the speaker's absolute volume; State going idle (the speaker suspended)
/// releases the stream, and bluebridge starts it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delay_volume_and_state_follow_bluez_signals_and_only_bluez() {
    let _serial = serial().await;
    logs();
    let bus = PrivateBus::system();
    let bluez = Bluez::start(bus, Behaviour::Normal).await;
    let driver = Driver::start();
    let calls = a2dp_up(&bluez, &driver).await;
    let (owner, _) = calls
        .iter()
        .find_map(|c| match c {
            Call::RegisterEndpoint { sender, endpoint, uuid } if uuid == A2DP_SOURCE_UUID => {
                Some((sender.clone(), endpoint.clone()))
            }
            _ => None,
        })
        .expect("the A2DP registration");
    let transport = bluez.a2dp_transport().expect("a transport");

    // A stranger's PropertiesChanged, sent straight to bluebridge's connection: ignored.
    {
        use dbus::channel::Sender;
        use dbus::message::SignalArgs;
        let stranger = bus.connect();
        let mut changed = dbus::arg::PropMap::new();
        changed.insert("Delay".into(), dbus::arg::Variant(Box::new(9999u16)));
        let sig = dbus::nonblock::stdintf::org_freedesktop_dbus::PropertiesPropertiesChanged {
            interface_name: "org.bluez.MediaTransport1".into(),
            changed_properties: changed,
            invalidated_properties: Vec::new(),
        };
        let mut msg = sig.to_emit_message(&dbus::Path::from(transport.clone()));
        msg.set_destination(Some(owner.clone().into()));
        stranger.send(msg).expect("sending the spoofed signal");
    }
    // BlueZ's own: followed although a read still says 1500.
    tokio::time::sleep(Duration::from_millis(300)).await;
    bluez.change_a2dp(Some(2500), None, None, false);
    driver
        .wait_for("Delay 250 ms from the signal", Duration::from_secs(3), |s| {
            s.sink_reported_ns == Some(250_000_000)
        })
        .await;
    bluez.store_a2dp(2500);
    let spoofed = driver
        .seen
        .lock()
        .unwrap()
        .iter()
        .any(|s| s.sink_reported_ns == Some(999_900_000));
    assert!(
        !spoofed,
        "a stranger's PropertiesChanged was followed: {:#?}",
        driver.seen.lock().unwrap()
    );

    // Volume: bluebridge sets the speaker to our level (50 % -> 64/127); a press on the speaker is shown.
    driver.volume_pct.store(50, Ordering::Relaxed);
    bluez
        .wait_for("SetVolume 64", Duration::from_secs(5), |c| {
            c.iter().any(|c| matches!(c, Call::SetVolume { level: 64 }))
        })
        .await;
    bluez.change_a2dp(None, None, Some(64), true);
    driver
        .wait_for("the device volume 64/127", Duration::from_secs(3), |s| {
            s.device_volume == Some((64, 127))
        })
        .await;
    bluez.change_a2dp(None, None, Some(90), true);
    driver
        .wait_for("the speaker's own change to 90/127", Duration::from_secs(3), |s| {
            s.device_volume == Some((90, 127))
        })
        .await;
    assert_ne!(INITIAL_VOLUME, 90);

    // The speaker suspends the stream (State idle): released, then acquired again.
    let acquired = count(&bluez.calls(), |c| matches!(c, Call::Acquire { .. }));
    bluez.change_a2dp(None, Some("idle"), None, true);
    let calls = bluez
        .wait_for("Release, then Acquire again", Duration::from_secs(15), |c| {
            c.iter()
                .any(|c| matches!(c, Call::Release { transport: t } if *t == transport))
                && count(c, |c| matches!(c, Call::Acquire { .. })) > acquired
        })
        .await;
    drop(driver);
    drop(calls);
}

/// Issue 17: the speaker walks out of range (BlueZ clears the configuration and drops the transport; connecting
/// fails): the output stops calling itself linked, keeps retrying, and streams again once the speaker is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speaker_that_disappears_is_streamed_to_again_when_it_returns() {
    let _serial = serial().await;
    logs();
    let bus = PrivateBus::system();
    let bluez = Bluez::start(bus, Behaviour::Normal).await;
    let driver = Driver::start();
    a2dp_up(&bluez, &driver).await;
    let first = bluez.a2dp_transport().expect("a transport");
    bluez.speaker_gone().await;
    driver
        .wait_for("the output unlinked", Duration::from_secs(5), |s| !s.linked)
        .await;
    let tries = bluez
        .wait_for(
            "a reconnect attempt while the speaker is away",
            Duration::from_secs(10),
            |c| count(c, |c| matches!(c, Call::ConnectProfile { .. })) >= 2,
        )
        .await;
    assert!(tries
        .iter()
        .all(|c| !matches!(c, Call::Acquire { transport } if *transport != first)));
    bluez.speaker_back();
    bluez
        .wait_for("a new transport acquired", Duration::from_secs(40), |c| {
            c.iter()
                .any(|c| matches!(c, Call::Acquire { transport } if transport.contains("/dev_") && *transport != first))
        })
        .await;
    driver
        .wait_for("the output linked again", Duration::from_secs(5), |s| s.linked)
        .await;
    let got = packets(&bluez, 10, Duration::from_secs(10)).await;
    assert!(
        got.len() >= 10 && got.iter().all(|p| is_rtp_sbc(p)),
        "{} packets after the return",
        got.len()
    );
}

/// Issue 17: capabilities that are not SBC's four bytes get a named D-Bus error back (no panic, no stream), and
/// bluebridge keeps trying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_speaker_capabilities_are_refused_by_name() {
    let _serial = serial().await;
    logs();
    let bus = PrivateBus::system();
    let bluez = Bluez::start(bus, Behaviour::MalformedSinkCaps).await;
    let driver = Driver::start();
    let calls = bluez
        .wait_for("SelectConfiguration answered", Duration::from_secs(15), |c| {
            c.iter().any(|c| matches!(c, Call::SelectConfiguration { .. }))
        })
        .await;
    let answer = calls
        .iter()
        .find_map(|c| match c {
            Call::SelectConfiguration { result } => Some(result.clone()),
            _ => None,
        })
        .expect("an answer");
    assert_eq!(answer, Err("org.bluez.Error.InvalidArguments".to_string()));
    assert!(!driver.last().is_some_and(|s| s.linked));
    assert_eq!(count(&calls, |c| matches!(c, Call::Acquire { .. })), 0);
    drop(driver);
}
