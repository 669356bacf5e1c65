//! The reference server's `--signal tone` (what the rig's `mixed-sendspin` scenario streams) as bluebridge plays
//! it: aiosendspin 10.2.1 (`tests/sendspin/server.py`) on loopback streams bluebridge's own test signal
//! (`source/tone.rs` TestSignal: a 440 Hz tone at 0.1, a Gaussian click centred on frame 4800 of every second) to
//! one player whose `pipe` output writes to a plain file; the file has to hold that signal: both channels equal,
//! the tone at 440 Hz and 0.1 (RMS 0.0707), continuous (no gap, no phase jump), one click per second, each on the
//! tone's rising zero crossing (frame 4800 = 44 whole cycles into the second). The server must also have
//! scheduled the clicks exactly one second apart (no `rebase` event: it never fell behind and moved its timeline).
//! Once with the server's codec choice (FLAC) and once with PCM forced, as the rig runs it.
//!
//! Without the venv (or root) it says so and passes, unless `BLUEBRIDGE_CI` is set (see `sendspin_support`).

use super::sendspin_support::{unavailable, Player, Server};
use std::sync::Mutex;
use std::time::Duration;

/// The two runs take turns (run side by side on a 2-core machine, one failed the continuity check once).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const RATE: f64 = 48_000.0;
/// Frames per tone cycle (48000 / 440).
const CYCLE_FRAMES: f64 = RATE / 440.0;

/// What the analysis found wrong with the played signal, or Ok with (clicks, tone Hz, tone RMS).
fn judge(pcm: &[i16]) -> Result<(usize, f64, f64), String> {
    let left: Vec<f64> = pcm.chunks_exact(2).map(|f| f[0] as f64 / 32767.0).collect();
    if let Some(i) = pcm.chunks_exact(2).position(|f| f[0] != f[1]) {
        return Err(format!("channels differ at frame {i}"));
    }
    // The clicks: local maxima above 0.5 (the tone alone stays at 0.1).
    let clicks: Vec<usize> = (1..left.len().saturating_sub(1))
        .filter(|&i| left[i] > 0.5 && left[i] >= left[i - 1] && left[i] > left[i + 1])
        .collect();
    if clicks.len() < 4 {
        return Err(format!("{} clicks in {} frames", clicks.len(), left.len()));
    }
    let (mut hz, mut rms) = (Vec::new(), Vec::new());
    for w in clicks.windows(2) {
        let (a, b) = (w[0], w[1]);
        // bluebridge's drift control may resample by a frame or so per second.
        if (b - a).abs_diff(48_000) > 3 {
            return Err(format!("clicks at frames {a} and {b}: {} apart, want 48000", b - a));
        }
        let seg = &left[a + 24..b - 24];
        // Continuity: a 440 Hz sine at 0.1 moves at most 0.0058 a frame; a gap or a phase jump moves far more.
        if let Some(i) = seg.windows(2).position(|p| (p[1] - p[0]).abs() > 0.012) {
            return Err(format!(
                "discontinuity at frame {} ({:.4} -> {:.4})",
                a + 24 + i,
                seg[i],
                seg[i + 1]
            ));
        }
        // Rising zero crossings, interpolated to a fraction of a frame.
        let ups: Vec<f64> = seg
            .windows(2)
            .enumerate()
            .filter(|(_, p)| p[0] < 0.0 && p[1] >= 0.0)
            .map(|(i, p)| (a + 24 + i) as f64 + p[0] / (p[0] - p[1]))
            .collect();
        if ups.len() < 2 {
            return Err(format!("no tone between the clicks at frames {a} and {b}"));
        }
        let (first, last) = (ups[0], ups[ups.len() - 1]);
        hz.push((ups.len() - 1) as f64 * RATE / (last - first));
        // The click sits on a rising crossing: whole cycles from it to the first crossing after it.
        let cycles = (first - a as f64) / CYCLE_FRAMES;
        if (cycles - cycles.round()).abs() * CYCLE_FRAMES > 1.5 {
            return Err(format!(
                "click at frame {a} is {:.1} frames off the tone's rising zero crossing",
                (cycles - cycles.round()) * CYCLE_FRAMES
            ));
        }
        rms.push((seg.iter().map(|x| x * x).sum::<f64>() / seg.len() as f64).sqrt());
    }
    let worst_hz = hz.iter().copied().fold(
        440.0_f64,
        |w, h| if (h - 440.0).abs() > (w - 440.0).abs() { h } else { w },
    );
    let worst_rms = rms.iter().copied().fold(
        0.0707_f64,
        |w, r| if (r - 0.0707).abs() > (w - 0.0707).abs() { r } else { w },
    );
    if (worst_hz - 440.0).abs() > 0.5 {
        return Err(format!("tone at {worst_hz:.2} Hz, want 440"));
    }
    if (worst_rms - 0.0707).abs() > 0.003 {
        return Err(format!("tone RMS {worst_rms:.4}, want 0.0707 (amplitude 0.1)"));
    }
    Ok((clicks.len(), worst_hz, worst_rms))
}

fn plays_the_test_signal(test: &str, codec: Option<&str>) {
    if unavailable(test).is_some() {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut args: Vec<String> = [
        "--players",
        "1",
        "--seconds",
        "6",
        "--signal",
        "tone",
        "--encrypted-only",
        "--trust-after-ms",
        "0",
    ]
    .map(String::from)
    .into();
    if let Some(c) = codec {
        args.extend(["--codec".into(), c.into()]);
    }
    let server = Server::start("server.py", &args);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bb.pcm");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[service]\ncontrol_socket = \"{}\"\nstate_dir = \"{}\"\n\n[source]\nkind = \"sendspin\"\nurl = \"{}\"\n\n\
             [[output]]\nname = \"bb\"\nkind = \"pipe\"\npath = \"{}\"\n",
            dir.path().join("control.sock").display(),
            dir.path().join("state").display(),
            server.url(),
            out.display()
        ),
    )
    .unwrap();
    let bb = Player::start(&cfg, dir.path().join("bb.log"));
    // `done` comes 2 s after the last chunk was sent, i.e. once it has played.
    let (events, err) = server.finish(Duration::from_secs(40));
    let log = bb.stop();
    assert!(
        events.iter().any(|e| e["event"] == "done"),
        "the server did not finish: {events:?}\nserver: {err}\n{log}"
    );
    let rebases: Vec<_> = events.iter().filter(|e| e["event"] == "rebase").collect();
    assert!(rebases.is_empty(), "the server moved its timeline: {rebases:?}");
    let play: Vec<f64> = events
        .iter()
        .filter(|e| e["event"] == "click")
        .map(|e| e["play_us"].as_f64().unwrap())
        .collect();
    assert!(play.len() >= 5, "{} clicks scheduled", play.len());
    for w in play.windows(2) {
        assert!(
            (w[1] - w[0] - 1e6).abs() < 1.0,
            "clicks scheduled {} µs apart",
            w[1] - w[0]
        );
    }
    let bytes = std::fs::read(&out).unwrap_or_default();
    let pcm: Vec<i16> = bytes
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    match judge(&pcm) {
        Ok((clicks, hz, rms)) => {
            eprintln!("{test}: {clicks} clicks 48000 ± 3 frames apart, tone {hz:.3} Hz (worst second), RMS {rms:.4}")
        }
        Err(e) => panic!("{test}: {e}\nserver: {err}\n{log}"),
    }
}

#[test]
fn the_servers_tone_signal_plays_as_the_tone_source() {
    plays_the_test_signal("the_servers_tone_signal_plays_as_the_tone_source", None);
}

#[test]
fn the_servers_tone_signal_plays_as_the_tone_source_over_pcm() {
    plays_the_test_signal("the_servers_tone_signal_plays_as_the_tone_source_over_pcm", Some("pcm"));
}

#[test]
fn the_judge_rejects_a_wrong_signal() {
    // The signal itself passes; a doubled frequency, a gap and a moved click do not.
    let make = |f: &dyn Fn(u64) -> f64| -> Vec<i16> {
        (0..5 * 48_000u64)
            .flat_map(|n| {
                let v = (f(n) * 32767.0).round() as i16;
                [v, v]
            })
            .collect()
    };
    let click = |n: u64, centre: u64| {
        let d = (n % 48_000) as f64 - centre as f64;
        if d.abs() < 12.0 {
            0.8 * (-(d * d) / 4.5).exp()
        } else {
            0.0
        }
    };
    let tone = |n: u64, hz: f64| 0.1 * (2.0 * std::f64::consts::PI * hz * n as f64 / RATE).sin();
    assert!(judge(&make(&|n| tone(n, 440.0) + click(n, 4_800))).is_ok());
    assert!(judge(&make(&|n| tone(n, 880.0) + click(n, 4_800))).is_err());
    assert!(judge(&make(&|n| tone(n, 440.0) + click(n, 4_850))).is_err());
    let gap = |n: u64| {
        if (100_000..100_960).contains(&n) {
            0.0
        } else {
            tone(n, 440.0) + click(n, 4_800)
        }
    };
    assert!(judge(&make(&gap)).is_err());
}
