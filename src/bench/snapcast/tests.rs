//! Tests of the bench's instrument.

use super::fifo::open_when_written;
use super::*;
use std::io::Read;

#[test]
fn a_fifo_nobody_writes_ends_the_wait_and_one_written_is_read() {
    let dir = std::env::temp_dir().join(format!("bb-fifo-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("f");
    mkfifo(&p).unwrap();
    let t = Instant::now();
    assert!(open_when_written(&p, Duration::from_millis(300)).is_none());
    assert!(t.elapsed() >= Duration::from_millis(300));
    let p2 = p.clone();
    let writer = std::thread::spawn(move || {
        let mut w = std::fs::OpenOptions::new().write(true).open(&p2).unwrap();
        w.write_all(&[1, 2, 3, 4]).unwrap();
    });
    let mut f = open_when_written(&p, Duration::from_secs(10)).expect("written");
    writer.join().unwrap();
    let mut got = Vec::new();
    f.read_to_end(&mut got).unwrap();
    assert_eq!(got, [1, 2, 3, 4]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn deviation_matches_each_click_with_the_nearest_truth_and_ignores_strays() {
    let t = |ms: i64| LocalTime::from_ns(ms * 1_000_000);
    let truth = [t(1000), t(2000), t(3000), t(4000)];
    let measured = [
        LocalTime::from_ns(1_000_000_000 + 100_000), // 100 µs late
        LocalTime::from_ns(2_000_000_000 - 300_000), // 300 µs early
        t(3000),
        t(9000), // no truth within 0.5 s
    ];
    let d = Deviation::of(&measured, &truth);
    assert_eq!(d.clicks, 3);
    assert!((d.mean_us - (-200.0 / 3.0)).abs() < 1e-6, "{d:?}");
    assert_eq!(d.max_us, 300.0);
    assert_eq!(d.p50_us, 100.0);
}
