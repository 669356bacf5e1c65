//! End to end against the reference client: a real snapserver on loopback plays the click track; bluebridge (a
//! `pipe` output, declared delay 0) and `snapclient --player file` (which assumes a fixed 10 ms DAC delay) both
//! write into FIFOs whose reads are timestamped. Each click's onset at bluebridge is compared with snapclient's
//! estimated DAC time of the same click. Both should land at the same moment (the sample's play time).
//!
//! Both clients and both timestamping readers run at the same real-time priority (SCHED_FIFO 10, bluebridge's
//! engine priority) when the test may set it (root): on a loaded machine (a build beside the test) a reader or
//! snapclient at normal priority woke up to 275 ms late and the comparison measured the load, not the clients.

use crate::snap_support::{FifoWriter, SnapServer, StreamSpec};
use bluebridge::report::Percentiles;
use bluebridge::source::tone::TestSignal;
use bluebridge::timeline::LocalTime;
use std::process::Command;

use bluebridge::bench::snapcast::{reference_snapclient, timed_clicks};

fn mkfifo(p: &std::path::Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn bluebridge_plays_clicks_when_snapclient_does() {
    let server = SnapServer::start(&[StreamSpec::new("default", "pcm", "48000:16:2")]);
    let sig = TestSignal::standard();
    // BLUEBRIDGE_SYNC_SECS lengthens the run for the benchmark figure (README).
    let secs: f64 = std::env::var("BLUEBRIDGE_SYNC_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20.0);
    let total_frames = 48_000 * (secs as u64 + 20);
    let samples: Vec<i16> = (0..total_frames)
        .flat_map(|n| {
            let v = (sig.sample(n) * 32767.0) as i16;
            [v, v]
        })
        .collect();
    let _writer = FifoWriter::start(&server.fifo("default"), samples);
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.pcm");
    let theirs = dir.path().join("theirs.pcm");
    mkfifo(&ours);
    mkfifo(&theirs);
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nkind = \"snapcast\"\nurl = \"{}\"\n\n[[output]]\nname = \"bb\"\nkind = \"pipe\"\npath = \"{}\"\n",
            server.url(),
            ours.display()
        ),
    )
    .unwrap();
    let ours_clicks = timed_clicks(ours.clone(), secs, bluebridge::output::player::BLOCK_FRAMES as u64, 0);
    // snapclient's file player writes 50 ms blocks and assumes a 10 ms DAC delay.
    let ref_clicks = timed_clicks(theirs.clone(), secs, 2_400, 10_000_000);
    let mut bb = Command::new(env!("CARGO_BIN_EXE_bluebridge"))
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stderr(std::fs::File::create(dir.path().join("bb.log")).unwrap())
        .spawn()
        .unwrap();
    let mut sc = reference_snapclient(server.stream_port, "reference", &theirs)
        .spawn()
        .expect("snapclient (run scripts/setup)");
    let ours_clicks = ours_clicks.join().unwrap();
    let ref_clicks = ref_clicks.join().unwrap();
    let _ = sc.kill();
    let _ = sc.wait();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(bb.id() as i32, libc::SIGTERM) };
    let _ = bb.wait();
    let log = std::fs::read_to_string(dir.path().join("bb.log")).unwrap_or_default();
    // Skip the first 5 s: both clients start up, measure the server clock and lock.
    let t_skip = ours_clicks
        .first()
        .copied()
        .unwrap_or(LocalTime::from_ns(0))
        .add_ns(5_000_000_000);
    let diffs_us: Vec<f64> = ours_clicks
        .iter()
        .filter(|t| **t > t_skip)
        .filter_map(|t| ref_clicks.iter().map(|r| t.ns_since(*r)).min_by_key(|d| d.abs()))
        .filter(|d| d.abs() < 500_000_000)
        .map(|d| d as f64 / 1000.0)
        .collect();
    let p = Percentiles::of_abs(&diffs_us);
    let mean = diffs_us.iter().sum::<f64>() / diffs_us.len().max(1) as f64;
    eprintln!(
        "bluebridge vs snapclient: {} clicks, mean {mean:.0} µs, |diff| p50 {:.0} µs p99 {:.0} µs max {:.0} µs",
        diffs_us.len(),
        p.p50,
        p.p99,
        p.max
    );
    assert!(
        diffs_us.len() >= 5,
        "too few clicks matched: ours {:?} ref {:?}\n{log}",
        ours_clicks.len(),
        ref_clicks.len()
    );
    // The benchmark figure is in the README; this machine is noisy, so the test bound is loose but would catch
    // any real error in the timing model (a wrong sign of latency or buffer is ≥ 10 ms).
    let spacing = |c: &[LocalTime]| -> Vec<f64> {
        c.windows(2)
            .map(|w| w[1].ns_since(w[0]) as f64 / 1000.0 - 1e6)
            .collect()
    };
    assert!(
        p.p50 <= 1_000.0 && p.p99 <= 3_000.0,
        "{diffs_us:?}\nspacing − 1 s (µs), bluebridge: {:?}\nsnapclient: {:?}\n{log}",
        spacing(&ours_clicks),
        spacing(&ref_clicks)
    );
}
