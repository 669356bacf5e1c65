//! Issue 17: a server flooding one-second chunks as fast as TCP carries them, all stamped inside the buffer window
//! (1 ms apart), must not grow the client's memory. Bound stated: the timeline holds at most
//! 4 s × 48000 Hz × 2 ch × 4 B × 2 + 64 KiB (3.1 MB), the event queue 16 chunks (6 MB), the socket queue 4
//! messages (0.8 MB); the test allows 100 MB of resident growth for all that plus allocator slack. Before the fix
//! every trimmed chunk kept its allocation: 600 chunks held 230 MB.

use crate::snap_hostile::{scenario, Conn, FakeServer, SAME_CLOCK};
use bluebridge::source::snapcast::SnapcastIngest;
use bluebridge::timeline::{Clock, SystemClock};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

static FLOOD_DONE: AtomicBool = AtomicBool::new(false);

/// Resident memory of this process, in bytes.
fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 1024
}

async fn flood(c: Conn) {
    c.settings().await;
    c.pcm_header(48_000, 2).await;
    let payload = vec![0x10u8; 48_000 * 2 * 2];
    let t0 = SystemClock.now().as_ns();
    for i in 0..600i64 {
        c.chunk(t0 + i * 1_000_000, payload.clone()).await;
    }
    FLOOD_DONE.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(60)).await;
}

/// Set in the child process that runs the measurement alone.
const CHILD_ENV: &str = "BLUEBRIDGE_TEST_FLOOD_CHILD";

/// Resident memory is per process, and the integration binary runs its other tests in parallel: the measurement
/// runs in a child process of this test binary that runs only this test.
#[test]
fn a_flood_inside_the_window_does_not_grow_memory() {
    if std::env::var_os(CHILD_ENV).is_some() {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(measure_flood());
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "snap_flood::a_flood_inside_the_window_does_not_grow_memory",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "the flood measurement failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("1 passed"), "the child ran no test:\n{stdout}");
}

async fn measure_flood() {
    let server = FakeServer::start(SAME_CLOCK, scenario(flood)).await;
    let baseline = rss_bytes();
    let ingest = SnapcastIngest::start(
        &tokio::runtime::Handle::current(),
        &server.url,
        &["flood".to_string()],
        Arc::new(SystemClock),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut peak = 0;
    let mut settle = 0;
    while settle < 50 {
        assert!(tokio::time::Instant::now() < deadline, "flood not sent within 60 s");
        peak = peak.max(rss_bytes().saturating_sub(baseline));
        if FLOOD_DONE.load(Ordering::SeqCst) {
            settle += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let end = ingest.feeds[0].timeline.lock().end();
    ingest.stop();
    eprintln!("flood: peak resident growth {:.1} MB", peak as f64 / 1e6);
    assert!(end.is_some(), "no audio reached the timeline");
    assert!(
        peak < 100_000_000,
        "resident memory grew by {peak} bytes during the flood (bound 100 MB)"
    );
}
