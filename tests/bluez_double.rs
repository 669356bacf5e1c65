//! bluebridge against the BlueZ test double (`tests/support/bluez_double.rs`): a private `dbus-daemon` as the
//! system bus and an in-process `org.bluez`. Runs anywhere `dbus-daemon` is installed, in seconds. The tests share
//! that bus and the name `org.bluez`, so each holds [`serial`] for its whole run.

#[path = "support/bluez_double.rs"]
mod bluez_double;

use bluez_double::{name_has_owner, serial, Behaviour, Bluez, Call, PrivateBus, BCAST_SOURCE_UUID};
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
        bluebridge::bluez::broadcast_source::start(&media, "hci0", &config),
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
