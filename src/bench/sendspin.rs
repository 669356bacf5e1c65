//! `bench sendspin`: bluebridge and aiosendspin's own reference player side by side in one run of the reference
//! server (aiosendspin 10.2.1, `tests/sendspin/server.py` in the trixie root `scripts/sendspin-server-setup`
//! builds), on loopback, encrypted, both trusted as Music Assistant does on accepting a player. The server streams
//! a click track to both, grouped; each click is measured against the play time the server stamped on it (its
//! clock is CLOCK_MONOTONIC, the machine's own):
//!
//! - bluebridge: the click's onset at its `pipe` output (the FIFO's reads, timed as in `bench snapcast`);
//! - the reference player (`SendspinClient`, which renders nothing itself): the play time its
//!   `compute_play_time()` gives the chunk holding the click, the time any player built on it would play it.

use super::snapcast::{mkfifo, timed_clicks, Children, Deviation};
use crate::timeline::LocalTime;
use serde::Serialize;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The server script, written into the root at run time.
const SERVER_PY: &str = include_str!("../../tests/sendspin/server.py");
/// Seconds of clicks not counted at the start (clock sync, the outputs locking).
pub const SETTLE_S: f64 = 3.0;
/// Clicks every this many ms.
pub const CLICK_INTERVAL_MS: u64 = 500;
/// The reference player's name on the server.
pub const REFERENCE_NAME: &str = "aiosendspin-reference";

/// What `bench sendspin` prints.
#[derive(Debug, Clone, Serialize)]
pub struct SendspinBench {
    /// Seconds measured.
    pub seconds: f64,
    /// bluebridge's output against the server's play times.
    pub bluebridge: Deviation,
    /// aiosendspin's reference player against the same.
    pub reference: Deviation,
    /// bluebridge p50 / reference p50.
    pub ratio_p50: f64,
    /// bluebridge p99 / reference p99.
    pub ratio_p99: f64,
}

impl SendspinBench {
    /// The table.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<22} {:>6} {:>9} {:>9} {:>9} {:>9}",
            "player", "clicks", "p50 µs", "p99 µs", "max µs", "mean µs"
        );
        for (name, d) in [
            ("bluebridge", &self.bluebridge),
            ("aiosendspin reference", &self.reference),
        ] {
            let _ = writeln!(
                s,
                "{name:<22} {:>6} {:>9.0} {:>9.0} {:>9.0} {:>+9.0}",
                d.clicks, d.p50_us, d.p99_us, d.max_us, d.mean_us
            );
        }
        let _ = writeln!(
            s,
            "ratio bluebridge/reference: p50 {:.2}, p99 {:.2} (at most 1: bluebridge is at least as close to the \
             server's play times)",
            self.ratio_p50, self.ratio_p99
        );
        s
    }
}

/// The root `scripts/sendspin-server-setup` builds (`BLUEBRIDGE_SENDSPIN_CACHE` as there).
pub fn server_root() -> PathBuf {
    let cache = std::env::var_os("BLUEBRIDGE_SENDSPIN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(&std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cache/bluebridge-sendspin")
        });
    cache.join("root-trixie")
}

fn json_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<serde_json::Value> {
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    rx
}

fn times(events: &[serde_json::Value], kind: &str, after_ns: i64) -> Vec<LocalTime> {
    events
        .iter()
        .filter(|e| e["event"] == kind)
        .filter_map(|e| e["play_us"].as_f64())
        .map(|us| LocalTime::from_ns((us * 1000.0).round() as i64))
        .filter(|t| t.as_ns() > after_ns)
        .collect()
}

/// Runs the comparison for `seconds` (plus [`SETTLE_S`]) with `bluebridge` (this program).
pub fn run(bluebridge: &Path, seconds: f64) -> Result<SendspinBench, String> {
    let root = server_root();
    if !root.join("opt/venv/.done").exists() {
        return Err(format!(
            "no aiosendspin venv at {} (run scripts/sendspin-server-setup; BLUEBRIDGE_SENDSPIN_CACHE moves it)",
            root.display()
        ));
    }
    if !nix::unistd::geteuid().is_root() {
        return Err("running the aiosendspin server needs root (it runs in its root with chroot)".into());
    }
    let pid = std::process::id();
    let script = format!("srv/bench-sendspin-{pid}.py");
    std::fs::create_dir_all(root.join("srv")).map_err(|e| format!("creating {}/srv: {e}", root.display()))?;
    std::fs::write(root.join(&script), SERVER_PY).map_err(|e| format!("writing the server script: {e}"))?;
    let result = run_in(bluebridge, seconds, &root, &script);
    let _ = std::fs::remove_file(root.join(&script));
    result
}

fn run_in(bluebridge: &Path, seconds: f64, root: &Path, script: &str) -> Result<SendspinBench, String> {
    let dir = std::env::temp_dir().join(format!("bluebridge-bench-sendspin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut kids = Children { procs: Vec::new() };
    let total_s = seconds + SETTLE_S;
    let mut server = Command::new("chroot")
        .arg(root)
        .args(["/opt/venv/bin/python", &format!("/{script}")])
        .args([
            "--port",
            "0",
            "--players",
            "2",
            "--encrypted-only",
            "--trust-after-ms",
            "0",
        ])
        .args(["--ref-client", REFERENCE_NAME])
        .args(["--click-interval-ms", &CLICK_INTERVAL_MS.to_string()])
        .args(["--seconds", &format!("{}", total_s + 3.0)])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("server.log")).map_err(|e| format!("log file: {e}"))?)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the aiosendspin server (chroot): {e}"))?;
    let rx = json_lines(&mut server);
    kids.procs.push(server);
    let first = rx.recv_timeout(Duration::from_secs(30)).map_err(|_| {
        format!(
            "the aiosendspin server did not start; see {}",
            dir.join("server.log").display()
        )
    })?;
    let url = format!(
        "ws://127.0.0.1:{}{}",
        first["port"],
        first["path"].as_str().unwrap_or("/sendspin")
    );
    let fifo = dir.join("bb.pcm");
    let _ = std::fs::remove_file(&fifo);
    mkfifo(&fifo)?;
    let cfg = dir.join("bb.toml");
    std::fs::write(
        &cfg,
        format!(
            "[service]\ncontrol_socket = \"{}\"\nstate_dir = \"{}\"\n\n[source]\nkind = \"sendspin\"\nurl = \"{url}\"\n\n\
             [[output]]\nname = \"bluebridge\"\nkind = \"pipe\"\npath = \"{}\"\n",
            dir.join("control.sock").display(),
            dir.join("state").display(),
            fifo.display()
        ),
    )
    .map_err(|e| format!("writing {}: {e}", cfg.display()))?;
    let onsets = timed_clicks(fifo.clone(), total_s, crate::output::player::BLOCK_FRAMES as u64, 0);
    let bb = Command::new(bluebridge)
        .args(["run", "--config", &cfg.to_string_lossy()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("bluebridge.log")).map_err(|e| format!("log file: {e}"))?)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting bluebridge: {e}"))?;
    kids.procs.push(bb);
    let onsets = onsets.join().map_err(|_| "the FIFO reader panicked".to_string())?;
    let mut events = vec![first];
    let until = Instant::now() + Duration::from_secs(20);
    while let Ok(v) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
        let done = v["event"] == "done";
        events.push(v);
        if done {
            break;
        }
    }
    drop(kids);
    let scheduled_all = times(&events, "click", i64::MIN);
    let Some(t0) = scheduled_all.first() else {
        return Err(format!(
            "the server scheduled no click (did both players join?); see {} and {}",
            dir.join("server.log").display(),
            dir.join("bluebridge.log").display()
        ));
    };
    let after = t0.as_ns() + (SETTLE_S * 1e9) as i64;
    let scheduled = times(&events, "click", after);
    let heard: Vec<LocalTime> = onsets.into_iter().filter(|t| t.as_ns() > after).collect();
    let bluebridge = Deviation::of(&heard, &scheduled);
    let reference = Deviation::of(&times(&events, "ref_click", after), &scheduled);
    let want = (seconds * 1000.0 / CLICK_INTERVAL_MS as f64 * 0.5) as usize;
    if bluebridge.clicks < want.max(2) || reference.clicks < want.max(2) {
        return Err(format!(
            "too few clicks matched (bluebridge {}, reference {}, want {want}); see {}",
            bluebridge.clicks,
            reference.clicks,
            dir.display()
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(SendspinBench {
        seconds,
        ratio_p50: bluebridge.p50_us / reference.p50_us.max(1.0),
        ratio_p99: bluebridge.p99_us / reference.p99_us.max(1.0),
        bluebridge,
        reference,
    })
}
