//! Players the reference server (aiosendspin 10.2.1, encrypted only, its default) will not play to:
//! - an encrypted player whose client id it does not trust: the server admits the connection but activates no role;
//!   bluebridge says in one clear line which player to accept and under which client id, and waits connected
//!   (one connection, no spinning) for the server to activate it;
//! - a player in plain transition mode: the server refuses it (`server/error`, then it closes); bluebridge logs
//!   why and reconnects with a doubling backoff (a handful of connections in the window, not hundreds).
//!
//! Skips as `sendspin_sync` does without the venv or root.

use super::sendspin_support::{server_root, unavailable, Player};
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long bluebridge runs against the server, s.
const RUN_S: u64 = 9;

/// Runs the server (`server.py` with `args`) and bluebridge (one `sim` output, `source` lines) for [`RUN_S`];
/// returns the server's events and bluebridge's log, or None when the test cannot run here.
fn run(name: &str, server_args: &[&str], source: &str) -> Option<(Vec<serde_json::Value>, String)> {
    if unavailable(name).is_some() {
        return None;
    }
    let root = server_root();
    let script = format!("srv/server-{name}-{}.py", std::process::id());
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sendspin/server.py"),
        root.join(&script),
    )
    .unwrap();
    let mut server = Command::new("chroot")
        .arg(&root)
        .args(["/opt/venv/bin/python", &format!("/{script}")])
        .args(["--port", "0", "--players", "1", "--seconds", "30", "--encrypted-only"])
        .args(server_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chroot");
    let stdout = server.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server did not start");
    assert_eq!(first["event"], "listening", "{first}");
    let url = format!("ws://127.0.0.1:{}{}", first["port"], first["path"].as_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[service]\ncontrol_socket = \"{}\"\nstate_dir = \"{}\"\n\n[source]\nkind = \"sendspin\"\nurl = \"{url}\"\n\
             {source}\n\n[[output]]\nname = \"bb\"\nkind = \"sim\"\n",
            dir.path().join("control.sock").display(),
            dir.path().join("state").display(),
        ),
    )
    .unwrap();
    let bb = Player::start(&cfg, dir.path().join("bb.log"));
    let mut events = vec![first];
    let until = Instant::now() + Duration::from_secs(RUN_S);
    while let Ok(v) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
        events.push(v);
    }
    let mut log = bb.stop();
    let _ = server.kill();
    let _ = server.wait();
    let _ = reader.join();
    let _ = std::fs::remove_file(root.join(&script));
    let key = bluebridge::sendspin::identity::key_path(&dir.path().join("state"), "bb");
    if let Ok(k) = bluebridge::sendspin::identity::read_key(&key) {
        log.push_str(&format!("\nTEST: client id {}\n", k.client_id()));
    }
    Some((events, log))
}

fn count(events: &[serde_json::Value], kind: &str) -> usize {
    events.iter().filter(|e| e["event"] == kind).count()
}

#[test]
fn a_player_the_server_does_not_trust_says_so_and_waits_connected() {
    let Some((events, log)) = run("untrusted", &["--trust-after-ms", "-1"], "") else {
        return;
    };
    let id = log
        .lines()
        .find_map(|l| l.strip_prefix("TEST: client id "))
        .unwrap_or_else(|| panic!("bluebridge made no identity\n{log}"))
        .to_string();
    let line = log
        .lines()
        .find(|l| l.contains("has not accepted player \"bb\" yet"))
        .unwrap_or_else(|| panic!("no clear line about the untrusted player\n{log}"));
    eprintln!("bluebridge said: {line}");
    assert!(line.contains(&id) && line.contains("Music Assistant"), "{line}");
    // The server met the player (under that id) but never activated its role: no player, one connection.
    assert!(
        events.iter().any(|e| e["event"] == "client" && e["id"] == id.as_str()),
        "{events:?}"
    );
    assert_eq!(count(&events, "player"), 0, "{events:?}");
    assert_eq!(count(&events, "connection"), 1, "{events:?}\n{log}");
}

#[test]
fn a_player_the_server_refuses_backs_off() {
    let Some((events, log)) = run("refused", &[], "encryption = false") else {
        return;
    };
    let refusals: Vec<&str> = log.lines().filter(|l| l.contains("reconnecting in")).collect();
    eprintln!(
        "{} connections in {RUN_S} s; first: {}",
        count(&events, "connection"),
        refusals.first().copied().unwrap_or("-")
    );
    assert!(!refusals.is_empty(), "{log}");
    // Backoff 0.5, 1, 2, 4 s…: about five connections in the window; a spinning client makes hundreds.
    let n = count(&events, "connection");
    assert!((3..=7).contains(&n), "{n} connections\n{log}");
    assert_eq!(count(&events, "client"), 0, "{events:?}");
}
