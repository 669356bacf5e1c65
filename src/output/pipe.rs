//! The `pipe` output: raw interleaved S16LE at 48 kHz stereo to a path (typically a FIFO) or stdout, in real
//! time: each frame is written at its play time − `delay_ms` (the declared delay of whatever reads the pipe).
//!
//! Writes happen on a writer thread that sleeps until each block is due, so a slow or absent reader never blocks
//! the real-time path. Blocks go to it in a fixed pool of [`QUEUE_BLOCKS`] byte buffers made when the pipe is
//! opened and come back after they are written, so steady state allocates nothing; when the writer has returned
//! none (it is that many blocks behind), the block is dropped and counted. A FIFO without a reader is retried; a
//! reader that goes away (EPIPE) is waited for again.

use super::local_clocked::{self, LocalClocked};
use super::player::BLOCK_FRAMES;
use super::writer_thread;
use super::{Output, OutputError};
use crate::timeline::lateness::{LatenessHistogram, LatenessSummary, WakeLead};
use crate::timeline::{Clock, LocalTime, SystemClock};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

/// How far ahead of its due time a block is handed to the writer thread.
const LEAD_NS: i64 = 20_000_000;
/// Buffers in the pool (blocks the writer thread may hold): 64 player blocks of 5 ms (60 KiB).
pub const QUEUE_BLOCKS: usize = 64;
/// How far behind the loop may fall before the pipe's clock restarts (a skip). The reader has the pipe's own
/// buffer (64 KiB, 340 ms of this format) and the writer thread's queue in front of it, so a stall of ours shorter
/// than that is caught up by writing the late blocks at once instead of cutting audio: the snapclient comparison
/// test failed once (3 Dec, 2 cores busy with 32 parallel tests) on an 11 ms stall that became a 31 ms skip.
const LATE_TOLERANCE_NS: i64 = 250_000_000;
/// The writer's hand-off lateness is summed up over windows this long (as the engine's load).
const LATENESS_WINDOW_NS: i64 = 10_000_000_000;

/// A pipe (or stdout) written in real time.
pub struct PipeOutput {
    tx: Option<SyncSender<(LocalTime, Vec<u8>)>>,
    /// Written buffers back from the writer thread, to be filled again.
    free: Receiver<Vec<u8>>,
    thread: Option<std::thread::JoinHandle<()>>,
    clock: LocalClocked,
    dropped_blocks: Arc<AtomicU64>,
    write_errors: Arc<AtomicU64>,
    /// The writer thread's last window of hand-off lateness (written once a window, read with `try_lock`).
    lateness: Arc<Mutex<Option<LatenessSummary>>>,
}

impl PipeOutput {
    /// Starts a writer for `path` (`-` for stdout); `delay_ns` is the reader's declared delay.
    pub fn open(path: &str, delay_ns: i64) -> Result<Self, OutputError> {
        let (tx, rx) = sync_channel::<(LocalTime, Vec<u8>)>(QUEUE_BLOCKS);
        let (free_tx, free_rx) = writer_thread::buffer_pool(QUEUE_BLOCKS, || Vec::with_capacity(BLOCK_FRAMES * 4));
        let path_owned = path.to_string();
        let write_errors = Arc::new(AtomicU64::new(0));
        let errs = write_errors.clone();
        let lateness: Arc<Mutex<Option<LatenessSummary>>> = Arc::default();
        let late = lateness.clone();
        let thread = writer_thread::spawn(format!("pipe {path}"), path, move || {
            write_when_due(&path_owned, rx, &free_tx, &errs, &late)
        })?;
        Ok(Self {
            tx: Some(tx),
            free: free_rx,
            thread: Some(thread),
            clock: LocalClocked::with_late_tolerance(LEAD_NS, delay_ns, LATE_TOLERANCE_NS),
            dropped_blocks: Arc::default(),
            write_errors,
            lateness,
        })
    }
}

fn open_sink(path: &str) -> std::io::Result<Box<dyn Write>> {
    if path == "-" {
        return Ok(Box::new(std::io::stdout()));
    }
    // O_NONBLOCK so that opening a FIFO with no reader fails (ENXIO) instead of hanging; then back to blocking.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    set_blocking(&f)?;
    Ok(Box::new(f))
}

/// Clears O_NONBLOCK on `f` (opened non-blocking only so that opening a FIFO without a reader does not hang).
pub fn set_blocking(f: &impl std::os::fd::AsRawFd) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let fd = f.as_raw_fd();
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    Ok(())
}

fn write_when_due(
    path: &str,
    rx: Receiver<(LocalTime, Vec<u8>)>,
    free: &SyncSender<Vec<u8>>,
    errors: &AtomicU64,
    lateness: &Mutex<Option<LatenessSummary>>,
) {
    // Each block is written when due: without this, up to 50 µs late (the default timer slack); and at the
    // engine's priority where allowed, so ordinary work does not delay the write either.
    SystemClock::precise_wakeups();
    let _ = SystemClock::realtime_priority(crate::timeline::clock::REALTIME_PRIORITY);
    let mut sink: Option<Box<dyn Write>> = None;
    let mut logged = false;
    let mut late = LatenessHistogram::new();
    let mut window_start = SystemClock.now();
    let mut lead = WakeLead::new();
    while let Ok((due, bytes)) = rx.recv() {
        // Set the timer early by its own measured overshoot, so the block goes in at its due time, not ~20 µs after.
        let target = lead.target(due);
        let slept = SystemClock.now() < target;
        SystemClock::sleep_until(target);
        lead.woke(target, SystemClock.now(), slept);
        if sink.is_none() {
            match open_sink(path) {
                Ok(s) => {
                    sink = Some(s);
                    logged = false;
                }
                Err(e) => {
                    if !logged {
                        tracing::warn!("pipe {path}: cannot open ({e}); dropping audio until a reader appears");
                        logged = true;
                    }
                    errors.fetch_add(1, Ordering::Relaxed);
                    let _ = free.try_send(bytes);
                    continue;
                }
            }
        }
        if let Some(s) = sink.as_mut() {
            // How late the block goes in against its due time (taken before the write: a reader of higher priority
            // may run as soon as the bytes are in, and its time is not ours).
            let now = SystemClock.now();
            match s.write_all(&bytes).and_then(|_| s.flush()) {
                Ok(()) => {
                    late.record_ns(now.ns_since(due));
                    if now.ns_since(window_start) >= LATENESS_WINDOW_NS {
                        if let Ok(mut l) = lateness.lock() {
                            *l = late.summary();
                        }
                        late.clear();
                        window_start = now;
                    }
                }
                Err(e) => {
                    tracing::warn!("pipe {path}: write failed ({e}); reopening");
                    errors.fetch_add(1, Ordering::Relaxed);
                    sink = None;
                }
            }
        }
        // Back to the pool (it has room: every buffer came from it).
        let _ = free.try_send(bytes);
    }
}

impl Output for PipeOutput {
    fn kind(&self) -> &'static str {
        "pipe"
    }
    local_clocked::paced_by_its_local_clock!();
    fn write(&mut self, _now: LocalTime, frames: &[i16]) -> Result<(), OutputError> {
        let first = self.clock.written_frames();
        // Due when its first frame is rendered, minus the reader's delay (which the clock adds to the sink).
        let due = self.clock.render_time(first).unwrap_or(_now);
        // A buffer from the pool; none back from the writer: it is QUEUE_BLOCKS behind (or gone), drop the block.
        match (&self.tx, self.free.try_recv()) {
            (Some(tx), Ok(mut bytes)) => {
                bytes.clear();
                for s in frames {
                    bytes.extend_from_slice(&s.to_le_bytes());
                }
                if tx.try_send((due, bytes)).is_err() {
                    self.dropped_blocks.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {
                self.dropped_blocks.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.clock.wrote(frames);
        Ok(())
    }
    fn handoff_lateness(&self) -> Option<LatenessSummary> {
        // Never wait on the writer thread (this runs on the real-time loop): None for this status, then.
        self.lateness.try_lock().ok().and_then(|l| *l)
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut c = self.clock.counters();
        c.extend([
            ("dropped_blocks", self.dropped_blocks.load(Ordering::Relaxed)),
            ("write_errors", self.write_errors.load(Ordering::Relaxed)),
        ]);
        c
    }
    fn close(&mut self) -> Result<(), OutputError> {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        Ok(())
    }
}

impl Drop for PipeOutput {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every block reaches the file in order, more blocks than the pool holds (the buffers are reused, each one
    /// holding only its own block).
    #[test]
    fn writes_every_block_in_order_through_the_reused_buffers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.raw");
        let path = path.to_str().unwrap();
        let mut out = PipeOutput::open(path, 0).unwrap();
        let blocks = 3 * QUEUE_BLOCKS;
        let mut want = Vec::new();
        for b in 0..blocks {
            let frames: Vec<i16> = (0..BLOCK_FRAMES * 2).map(|i| (b * 7 + i) as i16).collect();
            // Due long ago: the writer writes at once. After each pool's worth, let it catch up (so no block is
            // dropped for want of a buffer and the next ones reuse the returned buffers).
            out.write(LocalTime::from_ns(0), &frames).unwrap();
            want.extend(frames.iter().flat_map(|s| s.to_le_bytes()));
            if (b + 1) % QUEUE_BLOCKS == 0 {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
                while std::fs::metadata(path).map_or(0, |m| m.len()) < want.len() as u64 {
                    assert!(std::time::Instant::now() < deadline, "the writer is stuck");
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
        out.close().unwrap();
        assert_eq!(out.counters()[2], ("dropped_blocks", 0));
        assert_eq!(std::fs::read(path).unwrap(), want);
    }
}
