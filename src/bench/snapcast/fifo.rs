//! The instrument: FIFO readers that timestamp their reads and place each click's onset (and the level per
//! window) from the block it arrived in, and the readers' own delay floor.

use super::processes::realtime_self;
use crate::report::ClickDetector;
use crate::timeline::lateness::LatenessSummary;
use crate::timeline::{Clock, LocalTime, SystemClock};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
pub(super) fn open_when_written(path: &Path, timeout: Duration) -> Option<std::fs::File> {
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

/// Makes a FIFO at `p` (mode 0600); the error names the path.
pub fn mkfifo(p: &Path) -> Result<(), String> {
    nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| format!("mkfifo {}: {}", p.display(), std::io::Error::from(e)))
}
