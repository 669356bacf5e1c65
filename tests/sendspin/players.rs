//! Two bluebridge players in one group of the reference Sendspin server (aiosendspin 10.2.1, `server.py`): two
//! `pipe` outputs, "kitchen" with a declared delay of 40 ms and "porch" with none, are two Sendspin players; the
//! server groups them and streams a click track to both. Encrypted, as servers run by default (`--encrypted-only`):
//! each player makes its identity in the state directory and the server trusts it once it appears.
//!
//! - Timing: each click's onset at each pipe (plus the pipe's declared delay: the reader plays it that much later)
//!   against the play time the server stamped on it, p50/p99 per player. A delay counted twice (by the server
//!   and by bluebridge) or not at all is 40 ms off at the kitchen.
//! - The server's view: both players under their output names and ids, with the `output_delay_ms` each reported
//!   equal to bluebridge's own total delay for that output (its status, asked while playing), and the volume and
//!   mute it set echoed back.
//! - Volume and mute from the server: `set_volume(50)` on the kitchen makes its clicks (0.8 full scale) play at
//!   0.8 · 0.5^1.5 (the spec's curve); `set_mute(true)` on the porch silences it.

use super::sendspin_support::{last_player, unavailable, Server};
use bluebridge::bench::snapcast::{mkfifo, timed_clicks_and_levels, Deviation, Level, LEVEL_WINDOW_FRAMES};
use bluebridge::timeline::LocalTime;
use std::process::Command;
use std::time::Duration;

const SECS: f64 = 17.0;
/// When (after the stream starts) the server sets the kitchen's volume to 50, s.
const VOLUME_AT_S: f64 = 10.0;
/// When the server mutes the porch, s.
const MUTE_AT_S: f64 = 12.5;
const KITCHEN_DELAY_MS: i64 = 40;
/// The click's peak at full volume (server.py).
const CLICK_PEAK: f32 = 0.8;
const WINDOW_NS: i64 = LEVEL_WINDOW_FRAMES as i64 * 1_000_000_000 / 48_000;

fn config(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
    let cfg = dir.join("c.toml");
    let out = |name: &str, delay_ms: i64| {
        format!(
            "[[output]]\nname = \"{name}\"\nkind = \"pipe\"\npath = \"{}\"\ndelay_ms = {delay_ms}\n",
            dir.join(format!("{name}.pcm")).display()
        )
    };
    std::fs::write(
        &cfg,
        format!(
            "[service]\ncontrol_socket = \"{}\"\nstate_dir = \"{}\"\n\n[source]\nkind = \"sendspin\"\nurl = \"{url}\"\n\n{}\n{}",
            dir.join("control.sock").display(),
            dir.join("state").display(),
            out("kitchen", KITCHEN_DELAY_MS),
            out("porch", 0)
        ),
    )
    .unwrap();
    cfg
}

/// Peaks of the windows wholly before `t_ns - margin` and wholly after `t_ns + margin` (from `from_ns`).
fn around(levels: &[Level], from_ns: i64, t_ns: i64) -> (Vec<f32>, Vec<f32>) {
    let margin = 400_000_000;
    let before = levels
        .iter()
        .filter(|l| l.at.as_ns() > from_ns && l.at.as_ns() + WINDOW_NS < t_ns - margin)
        .map(|l| l.peak)
        .collect();
    let after = levels
        .iter()
        .filter(|l| l.at.as_ns() > t_ns + margin)
        .map(|l| l.peak)
        .collect();
    (before, after)
}

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(f32::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f32::NAN)
}

#[test]
fn two_players_follow_the_reference_servers_clock_volume_and_mute() {
    if unavailable("two_players_follow_the_reference_servers_clock_volume_and_mute").is_some() {
        return;
    }
    let server = Server::start(
        "server.py",
        &[
            "--players".into(),
            "2".into(),
            "--seconds".into(),
            format!("{}", SECS + 2.0),
            "--click-interval-ms".into(),
            "500".into(),
            "--encrypted-only".into(),
            "--trust-after-ms".into(),
            "0".into(),
            "--command".into(),
            format!("{VOLUME_AT_S}:kitchen:volume:50"),
            "--command".into(),
            format!("{MUTE_AT_S}:porch:mute:true"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &server.url());
    let block = bluebridge::output::player::BLOCK_FRAMES as u64;
    let readers: Vec<_> = [("kitchen", KITCHEN_DELAY_MS), ("porch", 0)]
        .into_iter()
        .map(|(name, delay_ms)| {
            let fifo = dir.path().join(format!("{name}.pcm"));
            mkfifo(&fifo).unwrap();
            std::thread::spawn(move || timed_clicks_and_levels(fifo, SECS, block, delay_ms * 1_000_000))
        })
        .collect();
    let mut bb = Command::new(env!("CARGO_BIN_EXE_bluebridge"))
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stderr(std::fs::File::create(dir.path().join("bb.log")).unwrap())
        .spawn()
        .unwrap();
    // bluebridge's own view of each output's delay, while both play (the players report it once it settles).
    std::thread::sleep(Duration::from_secs(8));
    let status = Command::new(env!("CARGO_BIN_EXE_bluebridge"))
        .args(["status", "--json", "--socket"])
        .arg(dir.path().join("control.sock"))
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
    let results: Vec<_> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(bb.id() as i32, libc::SIGTERM) };
    let _ = bb.wait();
    let (events, err) = server.finish(Duration::from_secs(20));
    let log = std::fs::read_to_string(dir.path().join("bb.log")).unwrap_or_default();
    let ctx = format!("server: {err}\nbluebridge: {log}");

    let at = |name: &str, what: &str| {
        events
            .iter()
            .find(|e| e["event"] == "command" && e["name"] == name && e["command"] == what)
            .and_then(|e| e["at_us"].as_i64())
            .unwrap_or_else(|| panic!("the server sent no {what} to {name}: {events:?}\n{ctx}"))
            * 1000
    };
    let (volume_at, mute_at) = (at("kitchen", "volume"), at("porch", "mute"));
    let scheduled: Vec<LocalTime> = events
        .iter()
        .filter(|e| e["event"] == "click")
        .map(|e| LocalTime::from_ns((e["play_us"].as_f64().unwrap() * 1000.0).round() as i64))
        .collect();

    // Timing, per player: clicks after the first 2 s, before the command that changes that player's level (a
    // click at volume 50 is under the detector's threshold; a muted one is not there).
    for ((name, until), (onsets, _)) in [("kitchen", volume_at), ("porch", mute_at)].iter().zip(&results) {
        let skip = onsets.first().map(|t| t.as_ns() + 2_000_000_000).unwrap_or(0);
        let heard: Vec<LocalTime> = onsets
            .iter()
            .copied()
            .filter(|t| t.as_ns() > skip && t.as_ns() < *until)
            .collect();
        let d = Deviation::of(&heard, &scheduled);
        eprintln!(
            "{name} vs aiosendspin's play times: {} clicks, mean {:.0} µs, |diff| p50 {:.0} µs p99 {:.0} µs max {:.0} µs",
            d.clicks, d.mean_us, d.p50_us, d.p99_us, d.max_us
        );
        assert!(d.clicks >= 8, "{name}: too few clicks matched: {d:?}\n{ctx}");
        assert!(d.p50_us <= 1_000.0 && d.p99_us <= 3_000.0, "{name}: {d:?}\n{ctx}");
    }

    // The server's view: names, ids, delays as bluebridge has them, the volume and mute it set.
    let total_ms = |name: &str| {
        status["outputs"]
            .as_array()
            .and_then(|o| o.iter().find(|o| o["name"] == name))
            .and_then(|o| o["delay"]["total_ms"].as_f64())
            .unwrap_or_else(|| panic!("no delay for {name} in bluebridge's status: {status}\n{ctx}"))
    };
    for name in ["kitchen", "porch"] {
        let p = last_player(&events, name).unwrap_or_else(|| panic!("the server never saw {name}: {events:?}\n{ctx}"));
        // Its id is the public key of the identity it made in the state directory.
        let key = bluebridge::sendspin::identity::key_path(&dir.path().join("state"), name);
        let id = bluebridge::sendspin::identity::read_key(&key).unwrap().client_id();
        assert_eq!(p["id"], id.as_str(), "{p}");
        let reported = p["output_delay_ms"].as_f64().unwrap();
        let own = total_ms(name);
        eprintln!("{name}: the server has output_delay_ms {reported}, bluebridge's status total {own:.2} ms");
        assert!(
            (reported - own).abs() <= 3.0,
            "{name}: reported {reported} ms, status says {own} ms\n{ctx}"
        );
    }
    let kitchen = last_player(&events, "kitchen").unwrap();
    let porch = last_player(&events, "porch").unwrap();
    let gap = kitchen["output_delay_ms"].as_f64().unwrap() - porch["output_delay_ms"].as_f64().unwrap();
    assert!(
        (gap - KITCHEN_DELAY_MS as f64).abs() <= 3.0,
        "kitchen − porch delay {gap} ms\n{ctx}"
    );
    assert_eq!(kitchen["volume"], 50, "{kitchen}");
    assert_eq!(kitchen["muted"], false, "{kitchen}");
    assert_eq!(porch["volume"], 100, "{porch}");
    assert_eq!(porch["muted"], true, "{porch}");

    // What was played: the kitchen's clicks at 0.5^1.5 of their level after the volume command, the porch silent
    // after the mute (and both at the click's level before).
    let start = |levels: &[Level]| levels.first().map(|l| l.at.as_ns() + 2_000_000_000).unwrap_or(0);
    let (k_before, k_after) = around(&results[0].1, start(&results[0].1), volume_at);
    let (p_before, p_after) = around(&results[1].1, start(&results[1].1), mute_at);
    assert!(k_after.len() >= 4 && p_after.len() >= 4, "too few level windows\n{ctx}");
    let (kb, ka, pb, pa) = (
        median(k_before),
        median(k_after),
        median(p_before),
        median(p_after.clone()),
    );
    eprintln!(
        "kitchen peak {kb:.4} → {ka:.4} after volume 50 (ratio {:.4}); porch peak {pb:.4} → {pa:.4} after mute",
        ka / kb
    );
    // A click's peak lands between output frames after the rate converter, so it reads a little under 0.8 and
    // varies by ~2 % from click to click: the bound tells the spec's curve (0.354) from Snapcast's (0.240) and a
    // linear one (0.5).
    assert!(
        (kb - CLICK_PEAK).abs() < 0.05 && (pb - CLICK_PEAK).abs() < 0.05,
        "full-volume peaks {kb} {pb}"
    );
    let want = 0.5f32.powf(1.5);
    assert!(
        ((ka / kb) - want).abs() < 0.02,
        "volume 50 played at {} of full, the spec's curve says {want}",
        ka / kb
    );
    assert!(
        p_after.iter().all(|&p| p < 1e-3),
        "the porch plays after the mute: {p_after:?}"
    );
}
