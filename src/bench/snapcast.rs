//! `bluebridge bench snapcast`: bluebridge and the reference client, snapclient, side by side on a real snapserver
//! on loopback, each measured against the truth.
//!
//! The truth: a snapserver chunk's timestamp is the server's steady clock (CLOCK_MONOTONIC on Linux) when its first
//! sample was captured, and every client should play that sample at timestamp + the server's buffer (latency 0). On
//! one host the server's clock is this machine's CLOCK_MONOTONIC, so a third client of our own (the protocol
//! client alone, no player) reads each click's intended play time straight from the chunks. bluebridge plays into
//! a FIFO through a `pipe` output (declared delay 0), snapclient through `--player file` into another (it assumes a
//! fixed 10 ms DAC delay); both FIFOs are read by threads that timestamp their reads, and each click's onset is
//! placed from the block it arrived in (the earliest read of a block bounds its write time; see
//! [`timed_clicks`]). Both clients and both readers run at the same real-time priority (SCHED_FIFO 10, the
//! engine's) when this process may set it.
//!
//! bluebridge's deviation is also taken apart ([`Parts`]): its status, read every [`STATUS_PERIOD`], gives the
//! server-clock estimate, the sync loop's own error, the pipe writer's hand-off lateness and the engine's wake-up
//! lateness; [`reader_floor`] measures the instrument's own FIFO delay. The table prints each with the mean they
//! predict beside the mean measured.

use crate::control::protocol::{Request, StatusReport};
use crate::report::{ClickDetector, Percentiles};
use crate::snapcast::{self, ClientConfig, SnapEvent};
use crate::source::tone::TestSignal;
use crate::timeline::lateness::LatenessSummary;
use crate::timeline::server_clock::{ServerClock, SharedServerClock};
use crate::timeline::{Clock, LocalTime, SystemClock};
use serde::Serialize;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The real-time priority of the clients and readers (bluebridge's engine priority).
pub const RT_PRIORITY: i32 = 10;
/// Clicks in the first seconds are left out: the clients start, measure the server clock and lock.
pub const SETTLE_S: f64 = 5.0;
/// The server's buffer (`--stream.buffer`), ms.
pub const SERVER_BUFFER_MS: i64 = 1000;
/// snapclient's file player writes blocks of 50 ms.
pub const SNAPCLIENT_BLOCK_FRAMES: u64 = 2_400;
/// …and assumes this DAC delay.
pub const SNAPCLIENT_DAC_DELAY_NS: i64 = 10_000_000;

/// One client's deviation from the truth over the clicks matched, µs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Deviation {
    /// Clicks matched with a truth click.
    pub clicks: usize,
    /// Mean signed deviation (positive: late).
    pub mean_us: f64,
    /// |deviation| percentiles.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Largest.
    pub max_us: f64,
}

impl Deviation {
    /// `measured` clicks against `truth` clicks: each measured click is matched with the nearest truth click
    /// within 0.5 s.
    pub fn of(measured: &[LocalTime], truth: &[LocalTime]) -> Self {
        let devs: Vec<f64> = measured
            .iter()
            .filter_map(|m| truth.iter().map(|t| m.ns_since(*t)).min_by_key(|d| d.abs()))
            .filter(|d| d.abs() < 500_000_000)
            .map(|d| d as f64 / 1000.0)
            .collect();
        let p = Percentiles::of_abs(&devs);
        Self {
            clicks: devs.len(),
            mean_us: devs.iter().sum::<f64>() / devs.len().max(1) as f64,
            p50_us: p.p50,
            p99_us: p.p99,
            max_us: p.max,
        }
    }
}

/// What `bench snapcast` prints.
#[derive(Debug, Clone, Serialize)]
pub struct SnapcastBench {
    /// Seconds measured (after [`SETTLE_S`]).
    pub seconds: f64,
    /// Whether the clients and readers ran at real-time priority.
    pub realtime: bool,
    /// Truth clicks seen by the protocol-only client.
    pub truth_clicks: usize,
    /// The protocol client's server-clock offset estimate at the end, µs (should be about 0 on one host).
    pub server_offset_us: Option<f64>,
    /// bluebridge against the truth.
    pub bluebridge: Deviation,
    /// snapclient against the truth.
    pub snapclient: Deviation,
    /// bluebridge's p50 / snapclient's p50 (below 1: bluebridge is closer).
    pub ratio_p50: f64,
    /// bluebridge's p99 / snapclient's p99.
    pub ratio_p99: f64,
    /// bluebridge's deviation taken apart, from its own status during the run.
    pub parts: Parts,
}

/// Where bluebridge's deviation comes from, part by part, read from its `status` every [`STATUS_PERIOD`] after
/// [`SETTLE_S`]. Each part's sign is its effect on the deviation (positive: makes the sound late).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Parts {
    /// Status reads that succeeded.
    pub samples: usize,
    /// The server-clock estimate's error, µs: `−(server − local)` as estimated (the truth is 0 on one host; an
    /// estimate of +e maps every server time e early). Percentiles of |value|.
    pub server_clock: Signed,
    /// The sync loop's own measured error, µs, as it affects the sound: `−error_us` (where it believes the output
    /// is against where it should be: the resampler's position bookkeeping and the control loop's residual).
    pub sync_loop: Signed,
    /// The real-time loop's wake-up lateness over its 10 s windows (median of their medians, largest p99 and max).
    pub engine_wake: Option<LatenessSummary>,
    /// The engine ran at real-time priority.
    pub engine_realtime: Option<bool>,
    /// The pipe writer's hand-off lateness (written into the pipe against the block's due time), same summary.
    pub writer_handoff: Option<LatenessSummary>,
    /// The FIFO readers' own delay after a write (see [`reader_floor`]): the instrument's part, the same for both
    /// clients; its minimum is in every measured click.
    pub reader_floor: Option<LatenessSummary>,
    /// The mean deviation these parts predict, µs: server clock + sync loop means + the writer's hand-off at its
    /// 1st percentile (the FIFO reader places each second's clicks by the earliest of the ~400 blocks around them,
    /// see [`timed_clicks`]) + the reader's floor.
    pub predicted_mean_us: f64,
}

/// Mean and |value| percentiles of one signed series, µs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Signed {
    /// Values in the series.
    pub count: usize,
    /// Mean (signed).
    pub mean_us: f64,
    /// Median of |value|.
    pub p50_us: f64,
    /// 99th percentile of |value|.
    pub p99_us: f64,
}

impl Signed {
    fn of(v: &[f64]) -> Self {
        let p = Percentiles::of_abs(v);
        Self {
            count: v.len(),
            mean_us: v.iter().sum::<f64>() / v.len().max(1) as f64,
            p50_us: p.p50,
            p99_us: p.p99,
        }
    }
}

/// How often the bench reads bluebridge's status.
pub const STATUS_PERIOD: Duration = Duration::from_millis(500);

/// The windows of a lateness series, each seen once, as one summary: the median of the windows' minimums, 1st
/// percentiles, medians and means, the largest p99 and max (None without a window).
fn combine(windows: &[LatenessSummary]) -> Option<LatenessSummary> {
    if windows.is_empty() {
        return None;
    }
    let median = |f: fn(&LatenessSummary) -> f64| {
        let mut v: Vec<f64> = windows.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Some(LatenessSummary {
        count: windows.iter().map(|w| w.count).sum(),
        min_us: median(|w| w.min_us),
        p01_us: median(|w| w.p01_us),
        mean_us: median(|w| w.mean_us),
        p50_us: median(|w| w.p50_us),
        p99_us: windows.iter().map(|w| w.p99_us).fold(f64::MIN, f64::max),
        max_us: windows.iter().map(|w| w.max_us).fold(f64::MIN, f64::max),
    })
}

impl Parts {
    /// The parts from the status reports read after the settling time.
    pub fn of(reports: &[StatusReport], reader_floor: Option<LatenessSummary>) -> Self {
        let server: Vec<f64> = reports
            .iter()
            .filter_map(|r| r.source.server_offset_us)
            .map(|o| -o)
            .collect();
        let out = |r: &StatusReport| r.outputs.first().cloned();
        let sync: Vec<f64> = reports
            .iter()
            .filter_map(out)
            .filter(|o| o.synced)
            .map(|o| -o.error_us)
            .collect();
        let mut wake: Vec<LatenessSummary> = Vec::new();
        let mut handoff: Vec<LatenessSummary> = Vec::new();
        for r in reports {
            // A window is reported until the next one ends: keep each once.
            if let Some(w) = r.engine.wake_late_us {
                if wake.last() != Some(&w) {
                    wake.push(w);
                }
            }
            if let Some(w) = out(r).and_then(|o| o.handoff_late_us) {
                if handoff.last() != Some(&w) {
                    handoff.push(w);
                }
            }
        }
        let (server_clock, sync_loop) = (Signed::of(&server), Signed::of(&sync));
        let writer_handoff = combine(&handoff);
        Self {
            samples: reports.len(),
            predicted_mean_us: server_clock.mean_us
                + sync_loop.mean_us
                + writer_handoff.map_or(0.0, |w| w.p01_us)
                + reader_floor.map_or(0.0, |r| r.min_us),
            reader_floor,
            server_clock,
            sync_loop,
            engine_wake: combine(&wake),
            engine_realtime: reports.iter().rev().find_map(|r| r.engine.realtime),
            writer_handoff,
        }
    }
}

impl SnapcastBench {
    /// The human-readable report `bench snapcast` prints.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<11} {:>6} {:>9} {:>9} {:>9} {:>9}",
            "client", "clicks", "p50 µs", "p99 µs", "max µs", "mean µs"
        );
        for (name, d) in [("bluebridge", &self.bluebridge), ("snapclient", &self.snapclient)] {
            let _ = writeln!(
                s,
                "{name:<11} {:>6} {:>9.0} {:>9.0} {:>9.0} {:>+9.0}",
                d.clicks, d.p50_us, d.p99_us, d.max_us, d.mean_us
            );
        }
        let _ = writeln!(
            s,
            "ratio bluebridge/snapclient: p50 {:.2}, p99 {:.2} (below 1: bluebridge is closer to the truth)",
            self.ratio_p50, self.ratio_p99
        );
        let p = &self.parts;
        let _ = writeln!(
            s,
            "bluebridge's parts ({} status reads; mean is signed, + makes it late; p50/p99 of |value|):",
            p.samples
        );
        let _ = writeln!(s, "  {:<34} {:>9} {:>9} {:>9}", "part", "mean µs", "p50 µs", "p99 µs");
        // (A lateness row's p50/p99 are of the lateness itself, and it shows its minimum and maximum.)
        for (name, v) in [
            ("server-clock estimate error", &p.server_clock),
            ("sync loop's own error", &p.sync_loop),
        ] {
            let _ = writeln!(
                s,
                "  {name:<34} {:>+9.1} {:>9.1} {:>9.1}",
                v.mean_us, v.p50_us, v.p99_us
            );
        }
        for (name, v) in [
            ("pipe writer hand-off lateness", &p.writer_handoff),
            ("engine wake-up lateness (*)", &p.engine_wake),
            ("FIFO reader's delay (instrument)", &p.reader_floor),
        ] {
            match v {
                Some(w) => {
                    let _ = writeln!(
                        s,
                        "  {name:<34} {:>+9.1} {:>9.0} {:>9.0}  (min {:.0}, p1 {:.0}, max {:.0})",
                        w.mean_us, w.p50_us, w.p99_us, w.min_us, w.p01_us, w.max_us
                    );
                }
                None => {
                    let _ = writeln!(s, "  {name:<34} {:>9}", "none");
                }
            }
        }
        let _ = writeln!(
            s,
            "  predicted mean (server clock + sync loop + the writer's p1 hand-off + the reader's min) {:+.1} µs, measured {:+.1} \
             µs.\n  (*) the engine's lateness moves no sound: a block's time is decided by its frame count, and the \
             writer waits for it",
            p.predicted_mean_us, self.bluebridge.mean_us
        );
        let _ = writeln!(
            s,
            "{} truth clicks; the truth client's own server-clock estimate {}; real-time priority: {}{}",
            self.truth_clicks,
            self.server_offset_us.map_or("none".into(), |o| format!("{o:+.0} µs")),
            if self.realtime {
                "yes"
            } else {
                "no (run as root for SCHED_FIFO)"
            },
            match p.engine_realtime {
                Some(false) => " (bluebridge's engine: refused)",
                _ => "",
            }
        );
        s
    }
}

/// Reads a FIFO for `secs` after its first byte, timestamping reads, and returns each click's time.
///
/// The writer writes blocks of `block_frames` at the time of their first frame; a read returns at or after that
/// time (the reader may wake late). So for each read, `t_read − block_start / rate` is an upper bound of the
/// stream's origin, and its minimum over the reads within a second of a click is a tight estimate, immune to late
/// wake-ups. A click at frame `p` is then heard at `origin + p / rate + dac_delay`. 16-bit stereo at 48 kHz.
/// A writer that has not written within [`FIRST_BYTE_TIMEOUT`] ends the read with no clicks (a client that failed
/// to start does not hang the caller).
pub fn timed_clicks(
    path: PathBuf,
    secs: f64,
    block_frames: u64,
    dac_delay_ns: i64,
) -> std::thread::JoinHandle<Vec<LocalTime>> {
    std::thread::spawn(move || timed_clicks_and_levels(path, secs, block_frames, dac_delay_ns).0)
}

/// The loudest left-channel sample of one [`LEVEL_WINDOW_FRAMES`] window of a FIFO's stream, and when the window
/// started (local time, from the same origin estimate as the clicks).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// When the window's first frame was heard.
    pub at: LocalTime,
    /// Its largest |sample|, full scale 1.0.
    pub peak: f32,
}

/// The window of [`Level`]s: 0.5 s at 48 kHz (one click of the test signals in each).
pub const LEVEL_WINDOW_FRAMES: u64 = 24_000;

/// [`timed_clicks`]' reader on the calling thread, also returning the stream's [`Level`]s (for checking that a
/// volume or mute changed what was played).
pub fn timed_clicks_and_levels(
    path: PathBuf,
    secs: f64,
    block_frames: u64,
    dac_delay_ns: i64,
) -> (Vec<LocalTime>, Vec<Level>) {
    realtime_self();
    let Some(mut f) = open_when_written(&path, FIRST_BYTE_TIMEOUT) else {
        return (Vec::new(), Vec::new());
    };
    let mut peaks: Vec<f32> = vec![];
    let mut buf = vec![0u8; 1 << 16];
    let mut pending: Vec<u8> = vec![];
    let mut frame = 0u64;
    let mut det = ClickDetector::new();
    let mut found = vec![];
    let mut origins: Vec<(LocalTime, f64)> = vec![];
    let clock = SystemClock;
    let mut start = None;
    while start.is_none_or(|s: LocalTime| clock.now().ns_since(s) < (secs * 1e9) as i64) {
        let n = match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let t = clock.now();
        start.get_or_insert(t);
        pending.extend_from_slice(&buf[..n]);
        let whole = pending.len() / 4 * 4;
        for (i, b) in pending[..whole].chunks_exact(4).enumerate() {
            let w = ((frame + i as u64) / LEVEL_WINDOW_FRAMES) as usize;
            if peaks.len() <= w {
                peaks.resize(w + 1, 0.0);
            }
            peaks[w] = peaks[w].max((i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0).abs());
        }
        let left = pending[..whole]
            .chunks_exact(4)
            .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0);
        let before = frame;
        det.push(before, left, &mut found);
        frame += (whole / 4) as u64;
        pending.drain(..whole);
        if frame > 0 {
            let block_start = (frame - 1) / block_frames * block_frames;
            origins.push((t, t.as_ns() as f64 - block_start as f64 * 1e9 / 48_000.0));
        }
    }
    // Clicks in the last 2 s have origin estimates from one side only: leave them out.
    let last = frame as f64 - 2.0 * 48_000.0;
    let first_origin = origins.iter().map(|o| o.1).fold(f64::MAX, f64::min);
    let levels = peaks
        .iter()
        .enumerate()
        .map(|(w, &peak)| Level {
            at: LocalTime::from_ns(
                (first_origin + (w as u64 * LEVEL_WINDOW_FRAMES) as f64 * 1e9 / 48_000.0).round() as i64 + dac_delay_ns,
            ),
            peak,
        })
        .collect();
    let clicks = found
        .iter()
        .filter(|&&pos| pos < last)
        .filter_map(|&pos| {
            let approx = first_origin + pos * 1e9 / 48_000.0;
            let origin = origins
                .iter()
                .filter(|(t, _)| (t.as_ns() as f64 - approx).abs() < 1e9)
                .map(|o| o.1)
                .fold(f64::MAX, f64::min);
            (origin < f64::MAX)
                .then(|| LocalTime::from_ns((origin + pos * 1e9 / 48_000.0).round() as i64 + dac_delay_ns))
        })
        .collect();
    (clicks, levels)
}

/// The FIFO readers' own delay: how long after a write a reader like [`timed_clicks`]'s (same priority, same
/// calls) has its bytes, measured by a writer at the same priority sending its `CLOCK_MONOTONIC` stamp every 5 ms
/// for `secs`. Its minimum is what [`timed_clicks`] adds to every click of both clients (it takes the earliest read
/// around each click); the bench reports it as the instrument's own part. None if the FIFO cannot be made.
pub fn reader_floor(dir: &Path, secs: f64) -> Option<LatenessSummary> {
    let path = dir.join("floor.fifo");
    mkfifo(&path).ok()?;
    let writer = {
        let path = path.clone();
        std::thread::spawn(move || {
            realtime_self();
            SystemClock::precise_wakeups();
            let mut f = std::fs::OpenOptions::new().write(true).open(&path).ok()?;
            let clock = SystemClock;
            let mut next = clock.now();
            for _ in 0..(secs * 200.0) as usize {
                next = next.add_ns(5_000_000);
                SystemClock::sleep_until(next);
                f.write_all(&clock.now().as_ns().to_le_bytes()).ok()?;
            }
            Some(())
        })
    };
    realtime_self();
    let mut f = std::fs::File::open(&path).ok()?;
    let mut h = crate::timeline::lateness::LatenessHistogram::new();
    let mut stamp = [0u8; 8];
    while f.read_exact(&mut stamp).is_ok() {
        h.record_ns(SystemClock.now().as_ns() - i64::from_le_bytes(stamp));
    }
    let _ = writer.join();
    let _ = std::fs::remove_file(&path);
    h.summary()
}

/// How long a FIFO reader waits for its writer's first byte.
pub const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens a FIFO for reading without waiting for a writer, waits (up to `timeout`) until there is something to
/// read, then makes it blocking again. None if nothing came.
fn open_when_written(path: &Path, timeout: Duration) -> Option<std::fs::File> {
    use nix::poll::{poll, PollFd, PollFlags};
    use std::os::fd::AsFd;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let deadline = Instant::now() + timeout;
    loop {
        let mut p = [PollFd::new(f.as_fd(), PollFlags::POLLIN)];
        let n = poll(&mut p, 100u16).unwrap_or(0);
        if n > 0 && p[0].revents().is_some_and(|r| r.contains(PollFlags::POLLIN)) {
            break;
        }
        if Instant::now() > deadline {
            return None;
        }
        if n > 0 {
            // POLLHUP without data (a writer came and went): wait for the next one.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    crate::output::pipe::set_blocking(&f).ok()?;
    Some(f)
}

/// SCHED_FIFO at [`RT_PRIORITY`] for the calling thread, where allowed; true if set.
pub fn realtime_self() -> bool {
    crate::timeline::clock::SystemClock::realtime_priority(RT_PRIORITY).is_ok()
}

/// `program` under `chrt -f RT_PRIORITY` when that is allowed here, else plain.
pub fn realtime_command(program: &str) -> Command {
    let rt = Command::new("chrt")
        .args(["-f", &RT_PRIORITY.to_string(), "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if rt {
        let mut c = Command::new("chrt");
        c.args(["-f", &RT_PRIORITY.to_string(), program]);
        c
    } else {
        Command::new(program)
    }
}

/// Makes a FIFO at `p` (mode 0600); the error names the path.
pub fn mkfifo(p: &Path) -> Result<(), String> {
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| format!("mkfifo {}: {}", p.display(), std::io::Error::from(e)))
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Child processes stopped when dropped (the work directory stays; [`run`] removes it after a good run).
pub(crate) struct Children {
    pub(crate) procs: Vec<Child>,
}

impl Drop for Children {
    fn drop(&mut self) {
        for p in &mut self.procs {
            // SIGTERM first: bluebridge exits cleanly on it.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.id() as i32), nix::sys::signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        for p in &mut self.procs {
            while p.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

/// Runs the comparison for `seconds` (plus [`SETTLE_S`]) with `bluebridge` (this program) and `snapclient`.
pub fn run(bluebridge: &Path, seconds: f64) -> Result<SnapcastBench, String> {
    for (prog, pkg) in [("snapserver", "snapserver"), ("snapclient", "snapclient")] {
        let ok = Command::new(prog)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!(
                "{prog} is not installed or does not run: apt-get install {pkg} (scripts/setup does)"
            ));
        }
    }
    let dir = std::env::temp_dir().join(format!("bluebridge-bench-snapcast-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut kids = Children { procs: Vec::new() };
    let total_s = seconds + SETTLE_S + 3.0;
    let (stream_port, control_port) = (free_port()?, free_port()?);
    let source = dir.join("source.fifo");
    let log = |name: &str| std::fs::File::create(dir.join(name)).map_err(|e| format!("log file: {e}"));
    let server = Command::new("snapserver")
        .env("HOME", &dir)
        .arg("-c")
        .arg("/dev/null")
        .arg(format!("--server.datadir={}", dir.display()))
        .arg("--stream.bind_to_address=127.0.0.1")
        .arg(format!("--stream.port={stream_port}"))
        .arg("--tcp.bind_to_address=127.0.0.1")
        .arg(format!("--tcp.port={control_port}"))
        .arg("--http.enabled=false")
        .arg(format!("--stream.buffer={SERVER_BUFFER_MS}"))
        .arg("--logging.sink=stdout")
        .arg(format!(
            "--stream.source=pipe://{}?name=default&sampleformat=48000:16:2&codec=pcm&chunk_ms=20",
            source.display()
        ))
        .stdout(log("snapserver.log")?)
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting snapserver: {e}"))?;
    kids.procs.push(server);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(std::net::TcpStream::connect(("127.0.0.1", control_port)).is_ok() && source.exists()) {
        if Instant::now() > deadline {
            return Err(format!(
                "snapserver did not come up; see {}",
                dir.join("snapserver.log").display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("tcp://127.0.0.1:{stream_port}");

    // The source: the test signal at about real time (the server paces its reads).
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (source, stop) = (source.clone(), stop.clone());
        std::thread::spawn(move || {
            let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&source) else {
                return;
            };
            let sig = TestSignal::standard();
            let mut n = 0u64;
            let mut block = Vec::with_capacity(960 * 4);
            while !stop.load(Ordering::Relaxed) {
                block.clear();
                for _ in 0..960 {
                    let v = ((sig.sample(n) * 32767.0) as i16).to_le_bytes();
                    block.extend_from_slice(&[v[0], v[1], v[0], v[1]]);
                    n += 1;
                }
                if f.write_all(&block).is_err() {
                    return;
                }
            }
        });
    }

    // The truth: our protocol client alone, on a runtime of its own.
    let truth: Arc<Mutex<Vec<LocalTime>>> = Arc::default();
    let server_clock: SharedServerClock = Arc::new(Mutex::new(ServerClock::new()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let (sd_tx, sd_rx) = tokio::sync::watch::channel(false);
    {
        let (truth, server_clock) = (truth.clone(), server_clock.clone());
        let url = url.clone();
        runtime.spawn(async move {
            let (ev_tx, mut events) = tokio::sync::mpsc::channel(256);
            let (_cmd_tx, cmd_rx) = tokio::sync::mpsc::channel(8);
            let cfg = ClientConfig::new(url, "bench-truth");
            tokio::spawn(snapcast::run(
                cfg,
                Arc::new(SystemClock),
                server_clock,
                ev_tx,
                cmd_rx,
                sd_rx,
            ));
            let mut det = ClickDetector::new();
            let (mut frame, mut channels, mut buffer_ns) = (0u64, 2usize, SERVER_BUFFER_MS * 1_000_000);
            let mut starts: Vec<(u64, i64)> = Vec::new(); // (first frame, server time ns) of each chunk
            let mut found = Vec::new();
            while let Some(ev) = events.recv().await {
                match ev {
                    SnapEvent::Format(f) => channels = f.channels.max(1) as usize,
                    SnapEvent::Settings { buffer_ms, .. } => buffer_ns = buffer_ms.max(0) as i64 * 1_000_000,
                    SnapEvent::Audio { start, samples } => {
                        starts.push((frame, start.as_ns()));
                        let n = samples.len() / channels;
                        det.push(frame, samples.chunks_exact(channels).map(|f| f[0]), &mut found);
                        frame += n as u64;
                        for pos in found.drain(..) {
                            let Some(&(f0, t0)) = starts.iter().rev().find(|(f0, _)| (*f0 as f64) <= pos) else {
                                continue;
                            };
                            let t = t0 as f64 + (pos - f0 as f64) * 1e9 / 48_000.0 + buffer_ns as f64;
                            truth
                                .lock()
                                .expect("truth lock")
                                .push(LocalTime::from_ns(t.round() as i64));
                        }
                        if starts.len() > 500 {
                            starts.drain(..250);
                        }
                    }
                    _ => {}
                }
            }
        });
    }

    // The two clients, each into a FIFO read by a timestamping thread.
    let ours = dir.join("bluebridge.pcm");
    let theirs = dir.join("snapclient.pcm");
    mkfifo(&ours)?;
    mkfifo(&theirs)?;
    let cfg = dir.join("bluebridge.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nkind = \"snapcast\"\nurl = \"{url}\"\n\n[service]\ncontrol_socket = \"{}\"\nstate_dir = \"{}\"\n\n[[output]]\nname = \"bench\"\nkind = \"pipe\"\npath = \"{}\"\n",
            dir.join("control.sock").display(),
            dir.join("state").display(),
            ours.display()
        ),
    )
    .map_err(|e| format!("writing {}: {e}", cfg.display()))?;
    let ours_clicks = timed_clicks(ours, total_s, crate::output::player::BLOCK_FRAMES as u64, 0);
    let ref_clicks = timed_clicks(
        theirs.clone(),
        total_s,
        SNAPCLIENT_BLOCK_FRAMES,
        SNAPCLIENT_DAC_DELAY_NS,
    );
    let bb = Command::new(bluebridge)
        .args(["run", "--config"])
        .arg(&cfg)
        .env("BLUEBRIDGE_LOG", "warn")
        .stderr(log("bluebridge.log")?)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bluebridge.display()))?;
    kids.procs.push(bb);
    let statuses = {
        let (sock, stop) = (dir.join("control.sock"), stop.clone());
        std::thread::spawn(move || {
            let (t0, mut got) = (Instant::now(), Vec::new());
            while !stop.load(Ordering::Relaxed) && t0.elapsed().as_secs_f64() < total_s + 10.0 {
                std::thread::sleep(STATUS_PERIOD);
                if t0.elapsed().as_secs_f64() < SETTLE_S + 2.0 {
                    continue;
                }
                let reply = crate::control::client::call(&sock, &Request::Status, Duration::from_secs(2));
                if let Ok(r) = reply.map(|(v, _)| serde_json::from_value::<StatusReport>(v)) {
                    got.extend(r.ok());
                }
            }
            got
        })
    };
    let sc = realtime_command("snapclient")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &stream_port.to_string(),
            "--hostID",
            "bench-snapclient",
            "-i",
            "1",
        ])
        .arg(format!("--player=file:filename={}", theirs.display()))
        .args(["--logsink", "null"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting snapclient: {e}"))?;
    kids.procs.push(sc);
    let realtime = realtime_self();
    let ours_clicks = ours_clicks.join().map_err(|_| "the bluebridge reader panicked")?;
    let ref_clicks = ref_clicks.join().map_err(|_| "the snapclient reader panicked")?;
    stop.store(true, Ordering::Relaxed);
    let parts = Parts::of(
        &statuses.join().map_err(|_| "the status reader panicked")?,
        reader_floor(&dir, 2.0),
    );
    let offset = server_clock.lock().ok().and_then(|c| c.offset_ns());
    let _ = sd_tx.send(true);
    drop(kids);
    runtime.shutdown_timeout(Duration::from_secs(2));
    let truth = truth.lock().map(|t| t.clone()).unwrap_or_default();
    let settle = |c: &[LocalTime]| -> Vec<LocalTime> {
        let t0 = c
            .first()
            .copied()
            .unwrap_or(LocalTime::from_ns(0))
            .add_ns((SETTLE_S * 1e9) as i64);
        c.iter().copied().filter(|t| *t > t0).collect()
    };
    let (ours, theirs) = (settle(&ours_clicks), settle(&ref_clicks));
    if truth.is_empty() || ours.is_empty() || theirs.is_empty() {
        return Err(format!(
            "too few clicks: truth {}, bluebridge {}, snapclient {} (logs in {})",
            truth.len(),
            ours.len(),
            theirs.len(),
            dir.display()
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let bluebridge = Deviation::of(&ours, &truth);
    let snapclient = Deviation::of(&theirs, &truth);
    Ok(SnapcastBench {
        seconds,
        realtime,
        truth_clicks: truth.len(),
        server_offset_us: offset.map(|o| o as f64 / 1000.0),
        ratio_p50: bluebridge.p50_us / snapclient.p50_us.max(1e-9),
        ratio_p99: bluebridge.p99_us / snapclient.p99_us.max(1e-9),
        parts,
        bluebridge,
        snapclient,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
