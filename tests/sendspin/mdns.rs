//! mDNS both ways against the reference server run as Music Assistant runs it (`server.py --mdns-host`:
//! aiosendspin's own `start_server`, advertising `_sendspin-server._tcp` and dialling the `_sendspin._tcp` players
//! it finds): once the server finds bluebridge's player and dials its listener, once bluebridge finds the server
//! and dials it. Either way the click track must play at the server's times, as in `sendspin_sync`.
//!
//! Multicast needs an interface that carries it; loopback does not by default. Each test makes its own veth pair
//! (a private link, so nothing reaches the real network and nothing global changes), puts a /32 address on one end
//! and confines both mDNS responders to it (`[source] interface`; the server's zeroconf binds its host address).
//! The pair is deleted when the test ends. The pairs share one network namespace, which does not keep two tests'
//! multicast apart, so the tests run one at a time ([`MDNS_ONE_AT_A_TIME`]). Where the machine cannot make one (no root, no veth), the test says so
//! and passes, unless `BLUEBRIDGE_CI` is set.

use super::sendspin_support::{unavailable, Server};
use bluebridge::bench::snapcast::{mkfifo, timed_clicks, Deviation};
use bluebridge::timeline::LocalTime;
use std::process::Command;
use std::time::Duration;

/// A veth pair with an address on its first end; deleted on drop.
struct Veth {
    name: String,
    ip: String,
}

impl Veth {
    fn new(n: u32) -> Result<Self, String> {
        let pid = std::process::id();
        let name = format!("bbm{}{n}a", pid % 10_000);
        let peer = format!("bbm{}{n}b", pid % 10_000);
        let ip = format!("10.251.{}.{}", pid % 250, n + 1);
        let ip_cmd = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        ip_cmd(&["link", "add", &name, "type", "veth", "peer", "name", &peer])?;
        let veth = Veth { name, ip };
        ip_cmd(&["addr", "add", &format!("{}/32", veth.ip), "dev", &veth.name])?;
        ip_cmd(&["link", "set", &veth.name, "multicast", "on", "up"])?;
        ip_cmd(&["link", "set", &peer, "up"])?;
        Ok(veth)
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.name]).status();
    }
}

fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One mDNS test at a time. The veth pairs share the test's network namespace, and Linux delivers a multicast
/// datagram to every socket bound to 0.0.0.0:5353 once any socket joined the group on the interface it came in on
/// (`IP_MULTICAST_ALL` defaults on; python-zeroconf's listen socket binds 0.0.0.0), so two tests running at once
/// see each other's records: the browse test's server found the advertise test's player and dialled it first, the
/// player took that (untrusting) server's connection and the test's own server never got a hello.
static MDNS_ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The server on the veth, bluebridge with `discovery`, one pipe output `bb`: the deviations of its clicks, the
/// server's events and bluebridge's log.
fn run(test: &str, n: u32, discovery: &str) -> Option<(Deviation, Vec<serde_json::Value>, String)> {
    if unavailable(test).is_some() {
        return None;
    }
    let _alone = MDNS_ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let veth = match Veth::new(n) {
        Ok(v) => v,
        Err(why) => {
            assert!(
                std::env::var_os("BLUEBRIDGE_CI").is_none(),
                "BLUEBRIDGE_CI is set: {why}"
            );
            eprintln!("SKIPPED {test}: this machine cannot make a veth pair for multicast: {why}");
            return None;
        }
    };
    let secs = 14.0;
    let server = Server::start(
        "server.py",
        &[
            "--mdns-host".into(),
            veth.ip.clone(),
            "--port".into(),
            free_port(&veth.ip).to_string(),
            "--players".into(),
            "1".into(),
            "--seconds".into(),
            format!("{}", secs + 4.0),
            "--encrypted-only".into(),
            "--trust-after-ms".into(),
            "0".into(),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("bb.pcm");
    mkfifo(&fifo).unwrap();
    let cfg = dir.path().join("c.toml");
    let listen = if discovery == "advertise" {
        "listen_port = 0\n"
    } else {
        ""
    };
    std::fs::write(
        &cfg,
        format!(
            "[service]\ncontrol_socket = \"{}\"\nstate_dir = \"{}\"\n\n[source]\nkind = \"sendspin\"\n\
             discovery = \"{discovery}\"\n{listen}interface = \"{}\"\n\n[[output]]\nname = \"bb\"\nkind = \"pipe\"\npath = \"{}\"\n",
            dir.path().join("control.sock").display(),
            dir.path().join("state").display(),
            veth.name,
            fifo.display()
        ),
    )
    .unwrap();
    let onsets = timed_clicks(fifo.clone(), secs, bluebridge::output::player::BLOCK_FRAMES as u64, 0);
    let mut bb = Command::new(env!("CARGO_BIN_EXE_bluebridge"))
        .args(["run", "--config", cfg.to_str().unwrap()])
        .env(
            "RUST_LOG",
            std::env::var("BB_TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stderr(std::fs::File::create(dir.path().join("bb.log")).unwrap())
        .spawn()
        .unwrap();
    let onsets = onsets.join().unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(bb.id() as i32, libc::SIGTERM) };
    let _ = bb.wait();
    let (events, err) = server.finish(Duration::from_secs(20));
    let log = std::fs::read_to_string(dir.path().join("bb.log")).unwrap_or_default();
    let player = super::sendspin_support::last_player(&events, "bb")
        .unwrap_or_else(|| panic!("the server never saw player bb: {events:?}\nserver: {err}\n{log}"));
    let id = bluebridge::sendspin::identity::read_key(&bluebridge::sendspin::identity::key_path(
        &dir.path().join("state"),
        "bb",
    ))
    .unwrap()
    .client_id();
    assert_eq!(player["id"], id.as_str(), "{player}");
    let scheduled: Vec<LocalTime> = events
        .iter()
        .filter(|e| e["event"] == "click")
        .map(|e| LocalTime::from_ns((e["play_us"].as_f64().unwrap() * 1000.0).round() as i64))
        .collect();
    let t_skip = onsets.first().map(|t| t.as_ns() + 2_000_000_000).unwrap_or(0);
    let heard: Vec<LocalTime> = onsets.iter().copied().filter(|t| t.as_ns() > t_skip).collect();
    let d = Deviation::of(&heard, &scheduled);
    eprintln!(
        "{test}: {} clicks, mean {:.0} µs, |diff| p50 {:.0} µs p99 {:.0} µs max {:.0} µs",
        d.clicks, d.mean_us, d.p50_us, d.p99_us, d.max_us
    );
    assert!(
        d.clicks >= 10,
        "too few clicks matched: {} onsets, {} scheduled\nserver: {err}\n{log}",
        onsets.len(),
        scheduled.len()
    );
    assert!(
        d.p50_us <= 1_000.0 && d.p99_us <= 3_000.0,
        "{d:?}\nserver: {err}\n{log}"
    );
    Some((d, events, log))
}

#[test]
fn the_reference_server_finds_the_player_over_mdns_and_dials_it() {
    let Some((_, _, log)) = run(
        "the_reference_server_finds_the_player_over_mdns_and_dials_it",
        0,
        "advertise",
    ) else {
        return;
    };
    assert!(log.contains("advertised the player over mDNS"), "{log}");
    // The server dialled: the connection came in on the listener, bluebridge never dialled out.
    assert!(log.contains("(it dialled)"), "{log}");
}

#[test]
fn the_player_finds_the_reference_server_over_mdns() {
    let Some((_, _, log)) = run("the_player_finds_the_reference_server_over_mdns", 1, "browse") else {
        return;
    };
    assert!(log.contains("found a server over mDNS"), "{log}");
    assert!(log.contains("bluebridge-test"), "{log}");
}
