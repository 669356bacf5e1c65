//! The `bluebridge` binary driven as a user would: config checking, the demo, the sync benchmark, `run` with
//! file and pipe outputs, clean stop on SIGTERM.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bluebridge"))
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn check_config_accepts_good_files_and_names_line_and_key_of_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.toml",
        "[source]\nkind = \"snapcast\"\nurl = \"tcp://127.0.0.1:1704\"\n\n[[output]]\nname = \"kitchen\"\nkind = \"sim\"\noffset_ms = 0\n\n[[output]]\nname = \"recorder\"\nkind = \"pipe\"\npath = \"/run/bluebridge/recorder.pcm\"\ndelay_ms = 10\n",
    );
    let out = bin().args(["check-config", &good]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ok: source snapcast tcp://127.0.0.1:1704; 2 outputs:"),
        "{stdout}"
    );
    assert!(stdout.contains("\n  \"kitchen\" (sim): volume 100 %\n"), "{stdout}");
    assert!(
        stdout.contains("\n  \"recorder\" (pipe): /run/bluebridge/recorder.pcm, volume 100 %, delay 10 ms\n"),
        "{stdout}"
    );
    let bad = write(
        dir.path(),
        "bad.toml",
        "[source]\nkind = \"tone\"\n\n[[output]]\nname = \"a\"\nkind = \"sim\"\nvolume = 250\n",
    );
    let out = bin().args(["check-config", &bad]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:7:") && err.contains("volume"), "{err}");
    let out = bin().args(["check-config", "/nonexistent/x.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim_end(),
        "bluebridge: cannot read config /nonexistent/x.toml: No such file or directory"
    );
}

#[test]
fn bench_sync_meets_the_sync_targets() {
    let out = bin()
        .args(["bench", "sync", "--seconds", "60", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let conv = v["converged_after_s"].as_f64().unwrap();
    assert!(conv <= 10.0, "{v}");
    assert!(v["skew_us"]["p99"].as_f64().unwrap() <= 50.0, "{v}");
    let outs = v["outputs"].as_array().unwrap();
    assert_eq!(outs.len(), 4);
    for o in outs {
        assert!(o["deviation_us"]["p99"].as_f64().unwrap() <= 50.0, "{o}");
        assert!(o["clicks"].as_u64().unwrap() >= 45, "{o}");
    }
}

#[test]
fn demo_prints_a_json_report_for_every_speaker() {
    let out = bin()
        .args(["demo", "--seconds", "3", "--outputs", "6", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let outs = v["outputs"].as_array().unwrap();
    assert_eq!(outs.len(), 6);
    for o in outs {
        assert_eq!(o["kind"], "sim");
        assert!(o["clicks"].as_u64().unwrap() >= 2, "{o}");
        // Real time on a busy machine: loose bound, the benchmark gives the real figures.
        assert!(o["deviation_us"]["p50"].as_f64().unwrap() < 2_000.0, "{o}");
    }
    assert!(v["skew_us"]["max"].is_number());
}

fn sigterm(child: &std::process::Child) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
}

fn wait_with_deadline(child: &mut std::process::Child, d: Duration) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(t.elapsed() < d, "did not stop within {d:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn run_writes_the_tone_to_a_wav_file_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("out.wav");
    let cfg = write(
        dir.path(),
        "c.toml",
        &format!("[source]\nkind = \"tone\"\nbuffer_ms = 100\n\n[[output]]\nname = \"rec\"\nkind = \"file\"\npath = \"{}\"\n", wav.display()),
    );
    let mut child = bin()
        .args(["run", "--config", &cfg])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(3_500));
    sigterm(&child);
    let status = wait_with_deadline(&mut child, Duration::from_secs(2));
    assert!(status.success(), "{status:?}");
    let mut r = hound::WavReader::open(&wav).unwrap();
    assert_eq!(r.spec().sample_rate, 48_000);
    let left: Vec<f32> = r
        .samples::<i16>()
        .step_by(2)
        .map(|s| s.unwrap() as f32 / 32768.0)
        .collect();
    assert!(left.len() > 48_000 * 2, "only {} frames", left.len());
    let mut clicks = vec![];
    bluebridge::report::ClickDetector::new().push(0, left, &mut clicks);
    assert!(clicks.len() >= 2, "{clicks:?}");
    for w in clicks.windows(2) {
        // One click per second of source audio, rendered at the local clock: 48000 frames apart, ±0.5 frame.
        assert!((w[1] - w[0] - 48_000.0).abs() < 0.5, "{clicks:?}");
    }
}

#[test]
fn pipe_output_streams_in_real_time_to_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("out.pcm");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let cfg = write(
        dir.path(),
        "c.toml",
        &format!(
            "[source]\nkind = \"tone\"\nbuffer_ms = 100\n\n[[output]]\nname = \"p\"\nkind = \"pipe\"\npath = \"{}\"\n",
            fifo.display()
        ),
    );
    let mut child = bin()
        .args(["run", "--config", &cfg])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut f = std::fs::File::open(&fifo).unwrap();
    let mut buf = vec![0u8; 4096];
    let mut total = 0usize;
    let mut first: Option<Instant> = None;
    while first.is_none_or(|t| t.elapsed() < Duration::from_secs(3)) {
        let n = f.read(&mut buf).unwrap();
        assert!(n > 0, "pipe closed early");
        first.get_or_insert_with(Instant::now);
        total += n;
    }
    let secs = first.unwrap().elapsed().as_secs_f64();
    sigterm(&child);
    let status = wait_with_deadline(&mut child, Duration::from_secs(2));
    assert!(status.success());
    let rate = total as f64 / 4.0 / secs;
    // Written in real time: 48000 frames per second (20 ms of lead at most, so within a few percent over 3 s).
    assert!((rate - 48_000.0).abs() < 48_000.0 * 0.05, "{rate} frames/s");
}

#[test]
fn demo_calibrate_json_aligns_four_misreporting_speakers_within_half_a_millisecond() {
    // One run: about 30 s in a debug build (FFTs of 2^19 points), under 2 s in release.
    let out = bin()
        .args(["demo", "--calibrate", "--json", "--seed", "3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let speakers = v["speakers"].as_array().unwrap();
    assert_eq!(speakers.len(), 4, "{v}");
    assert_eq!(v["seed"], 3);
    assert_eq!(v["repeats"], 3);
    for s in speakers {
        let hidden = s["hidden_error_ms"].as_f64().unwrap();
        assert!((-60.0..=60.0).contains(&hidden), "{s}");
        assert!(s["relative_error_ms"].as_f64().unwrap().abs() <= 0.5, "{s}");
        assert!(s["measured"]["spread_ms"].as_f64().unwrap() <= 1.0, "{s}");
        assert_eq!(s["measured"]["repeats_ms"].as_array().unwrap().len(), 3, "{s}");
    }
    // Hidden errors of up to ±60 ms leave the speakers well apart before; the calibration brings them together.
    assert!(v["skew_before_ms"].as_f64().unwrap() > 5.0, "{v}");
    assert!(v["skew_after_ms"].as_f64().unwrap() <= 0.5, "{v}");
    assert!(v["skew_after_measured_ms"].as_f64().unwrap() <= 0.5, "{v}");
    assert!(v["max_relative_error_ms"].as_f64().unwrap() <= 0.5, "{v}");
}
