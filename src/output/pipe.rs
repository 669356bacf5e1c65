//! The `pipe` output: raw interleaved S16LE at 48 kHz stereo to a path (typically a FIFO) or stdout, in real
//! time: each frame is written at its play time − `delay_ms` (the declared delay of whatever reads the pipe).
//!
//! Writes happen on a writer thread that sleeps until each block is due, so a slow or absent reader never blocks
//! the real-time path: blocks that cannot be queued are dropped and counted. A FIFO without a reader is retried;
//! a reader that goes away (EPIPE) is waited for again.

use super::local_clocked::LocalClocked;
use super::{Output, OutputError, OutputStatus};
use crate::timeline::{LocalTime, SystemClock};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

/// How far ahead of its due time a block is handed to the writer thread.
const LEAD_NS: i64 = 20_000_000;
/// Blocks the writer thread may hold.
const QUEUE_BLOCKS: usize = 64;
/// How far behind the loop may fall before the pipe's clock restarts (a skip). The reader has the pipe's own
/// buffer (64 KiB, 340 ms of this format) and the writer thread's queue in front of it, so a stall of ours shorter
/// than that is caught up by writing the late blocks at once instead of cutting audio: the snapclient comparison
/// test failed once (3 Dec, 2 cores busy with 32 parallel tests) on an 11 ms stall that became a 31 ms skip.
const LATE_TOLERANCE_NS: i64 = 250_000_000;

/// A pipe (or stdout) written in real time.
pub struct PipeOutput {
    tx: Option<SyncSender<(LocalTime, Vec<u8>)>>,
    thread: Option<std::thread::JoinHandle<()>>,
    clock: LocalClocked,
    dropped_blocks: Arc<AtomicU64>,
    write_errors: Arc<AtomicU64>,
}

impl PipeOutput {
    /// Starts a writer for `path` (`-` for stdout); `delay_ns` is the reader's declared delay.
    pub fn open(path: &str, delay_ns: i64) -> Result<Self, OutputError> {
        let (tx, rx) = sync_channel::<(LocalTime, Vec<u8>)>(QUEUE_BLOCKS);
        let path_owned = path.to_string();
        let write_errors = Arc::new(AtomicU64::new(0));
        let errs = write_errors.clone();
        let thread = std::thread::Builder::new()
            .name(format!("pipe {path}"))
            .spawn(move || writer_thread(&path_owned, rx, &errs))
            .map_err(|e| OutputError::Io {
                what: format!("cannot start the writer for {path}"),
                source: e,
            })?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            clock: LocalClocked::with_late_tolerance(LEAD_NS, delay_ns, LATE_TOLERANCE_NS),
            dropped_blocks: Arc::default(),
            write_errors,
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
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on a file descriptor we own.
    unsafe {
        let fl = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(f.as_raw_fd(), libc::F_SETFL, fl & !libc::O_NONBLOCK);
    }
    Ok(Box::new(f))
}

fn writer_thread(path: &str, rx: std::sync::mpsc::Receiver<(LocalTime, Vec<u8>)>, errors: &AtomicU64) {
    let mut sink: Option<Box<dyn Write>> = None;
    let mut logged = false;
    while let Ok((due, bytes)) = rx.recv() {
        SystemClock::sleep_until(due);
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
                    continue;
                }
            }
        }
        if let Some(s) = sink.as_mut() {
            if let Err(e) = s.write_all(&bytes).and_then(|_| s.flush()) {
                tracing::warn!("pipe {path}: write failed ({e}); reopening");
                errors.fetch_add(1, Ordering::Relaxed);
                sink = None;
            }
        }
    }
}

impl Output for PipeOutput {
    fn kind(&self) -> &'static str {
        "pipe"
    }
    fn status(&mut self, now: LocalTime) -> OutputStatus {
        self.clock.status(now)
    }
    fn write(&mut self, _now: LocalTime, frames: &[i16]) -> Result<(), OutputError> {
        let first = self.clock.written_frames();
        // Due when its first frame is rendered, minus the reader's delay (which the clock adds to the sink).
        let due = self.clock.render_time(first).unwrap_or(_now);
        let mut bytes = Vec::with_capacity(frames.len() * 2);
        for s in frames {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        if let Some(tx) = &self.tx {
            match tx.try_send((due, bytes)) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.dropped_blocks.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.clock.wrote(frames);
        Ok(())
    }
    fn paced_by_local_clock(&self) -> bool {
        true
    }

    fn take_markers(&mut self) -> Vec<LocalTime> {
        self.clock.take_markers()
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("frames", self.clock.written_frames()),
            ("underruns", self.clock.underruns),
            ("dropped_blocks", self.dropped_blocks.load(Ordering::Relaxed)),
            ("write_errors", self.write_errors.load(Ordering::Relaxed)),
        ]
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
