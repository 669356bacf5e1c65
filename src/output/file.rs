//! The `file` output: writes what it renders to a WAV file (48 kHz stereo S16), consumed at the local clock.
//!
//! The disk is written on a writer thread, never on the real-time path: a stalled disk (an SD card busy with its
//! own housekeeping) must not stall every speaker. Blocks go to the writer in a fixed pool of buffers made when
//! the file is opened, and come back after they are written, so steady state allocates nothing. When the writer
//! has not returned any buffer (the disk is [`QUEUE_BLOCKS`] blocks behind), the block is dropped and counted
//! (a gap in the recording) and the real-time path goes on.

use super::local_clocked::{self, LocalClocked};
use super::player::BLOCK_FRAMES;
use super::writer_thread;
use super::{Output, OutputError, OUTPUT_FORMAT};
use crate::timeline::LocalTime;
use std::io;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::thread::JoinHandle;

/// Frames kept queued ahead of rendering.
const LEAD_NS: i64 = 20_000_000;
/// How far behind the loop may fall before the file's clock restarts (a skip in the recording). A file has no
/// real-time reader, so a stall of ours is caught up by writing more afterwards instead of cutting audio; the
/// integration test that checks click spacing to half a frame failed 1 run in 5 on a loaded host with a 60 ms
/// skip before this.
const LATE_TOLERANCE_NS: i64 = 500_000_000;
/// Buffers in the pool: 256 player blocks of 5 ms, so the disk may stall 1.28 s before audio is dropped
/// (240 KiB).
pub const QUEUE_BLOCKS: usize = 256;

/// Where the writer thread puts the samples: the WAV file (a stalled stand-in in tests).
pub trait SampleSink: Send + 'static {
    /// Appends interleaved samples.
    fn write_samples(&mut self, samples: &[i16]) -> io::Result<()>;
    /// Completes the file (the WAV header's lengths).
    fn finish(self: Box<Self>) -> io::Result<()>;
}

fn wav_error(e: hound::Error) -> io::Error {
    match e {
        hound::Error::IoError(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

impl SampleSink for hound::WavWriter<io::BufWriter<std::fs::File>> {
    fn write_samples(&mut self, samples: &[i16]) -> io::Result<()> {
        for &s in samples {
            self.write_sample(s).map_err(wav_error)?;
        }
        Ok(())
    }
    fn finish(self: Box<Self>) -> io::Result<()> {
        (*self).finalize().map_err(wav_error)
    }
}

/// A WAV file as an output.
pub struct FileOutput {
    path: String,
    /// Filled blocks to the writer (None once closed).
    blocks: Option<SyncSender<Vec<i16>>>,
    /// Written blocks back from the writer, emptied.
    free: Receiver<Vec<i16>>,
    writer: Option<JoinHandle<io::Result<()>>>,
    /// Why the writer stopped, once known.
    error: Option<String>,
    clock: LocalClocked,
    dropped_blocks: u64,
    dropped_frames: u64,
}

/// The `file` kind's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSettings {
    /// The WAV file (default `NAME.wav`).
    pub path: String,
}

impl FileSettings {
    /// The keys of kind `file` (besides the common ones).
    pub const KEYS: &'static [&'static str] = &["path"];

    /// Parses the kind's keys for output `name`.
    pub fn parse(name: &str, keys: &mut super::settings::Keys) -> Result<Self, super::settings::SettingError> {
        Ok(Self {
            path: keys.path("path")?.unwrap_or_else(|| format!("{name}.wav")),
        })
    }
}

impl FileOutput {
    /// Creates (truncates) `path`.
    pub fn create(path: &str) -> Result<Self, OutputError> {
        let spec = hound::WavSpec {
            channels: OUTPUT_FORMAT.channels,
            sample_rate: OUTPUT_FORMAT.rate_hz,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(path, spec)
            .map_err(|e| OutputError::Other(format!("cannot create WAV file {path}: {e}")))?;
        Self::with_sink(path, Box::new(writer))
    }

    /// Writes to `sink` (named `path` in messages) on a writer thread of its own.
    pub fn with_sink(path: &str, sink: Box<dyn SampleSink>) -> Result<Self, OutputError> {
        let (blocks_tx, blocks_rx) = sync_channel::<Vec<i16>>(QUEUE_BLOCKS);
        let (free_tx, free_rx) = writer_thread::buffer_pool(QUEUE_BLOCKS, || Vec::with_capacity(BLOCK_FRAMES * 2));
        let writer = writer_thread::spawn(format!("file {path}"), path, move || {
            write_blocks(sink, blocks_rx, free_tx)
        })?;
        Ok(Self {
            path: path.to_string(),
            blocks: Some(blocks_tx),
            free: free_rx,
            writer: Some(writer),
            error: None,
            clock: LocalClocked::with_late_tolerance(LEAD_NS, 0, LATE_TOLERANCE_NS),
            dropped_blocks: 0,
            dropped_frames: 0,
        })
    }

    /// The error to report once the writer has stopped (its I/O error when it has ended).
    fn writer_gone(&mut self) -> OutputError {
        if self.writer.as_ref().is_some_and(|t| t.is_finished()) {
            self.error = Some(match self.writer.take().map(|t| t.join()) {
                Some(Ok(Err(e))) => format!("cannot write {}: {e}", self.path),
                _ => format!("the writer of {} stopped", self.path),
            });
        }
        OutputError::Other(
            self.error
                .clone()
                .unwrap_or_else(|| format!("the writer of {} stopped", self.path)),
        )
    }
}

/// Writes each block to `sink` and hands its buffer back; ends when the output closes (and completes the file)
/// or at the first error (the output then reports it).
fn write_blocks(
    mut sink: Box<dyn SampleSink>,
    blocks: Receiver<Vec<i16>>,
    free: SyncSender<Vec<i16>>,
) -> io::Result<()> {
    while let Ok(mut block) = blocks.recv() {
        sink.write_samples(&block)?;
        block.clear();
        // Never full: the channel holds the whole pool.
        let _ = free.try_send(block);
    }
    sink.finish()
}

impl Output for FileOutput {
    fn kind(&self) -> &'static str {
        "file"
    }
    local_clocked::paced_by_its_local_clock!();
    fn write(&mut self, _now: LocalTime, frames: &[i16]) -> Result<(), OutputError> {
        let Some(blocks) = &self.blocks else {
            return Err(OutputError::Other(format!("{} is closed", self.path)));
        };
        match self.free.try_recv() {
            Ok(mut buf) => {
                buf.extend_from_slice(frames);
                match blocks.try_send(buf) {
                    Ok(()) => {}
                    Err(TrySendError::Full(_)) => unreachable!("the channel holds the whole pool"),
                    Err(TrySendError::Disconnected(_)) => return Err(self.writer_gone()),
                }
            }
            Err(TryRecvError::Empty) => {
                self.dropped_blocks += 1;
                self.dropped_frames += (frames.len() / 2) as u64;
                if self.dropped_blocks.is_power_of_two() {
                    tracing::warn!(
                        "file {}: the disk is {QUEUE_BLOCKS} blocks behind; {} blocks dropped so far",
                        self.path,
                        self.dropped_blocks
                    );
                }
            }
            Err(TryRecvError::Disconnected) => return Err(self.writer_gone()),
        }
        self.clock.wrote(frames);
        Ok(())
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        let mut c = self.clock.counters();
        c.extend([
            ("dropped_blocks", self.dropped_blocks),
            ("dropped_frames", self.dropped_frames),
        ]);
        c
    }
    /// Waits for the writer to write what is queued and complete the file.
    fn close(&mut self) -> Result<(), OutputError> {
        self.blocks = None;
        match self.writer.take().map(|t| t.join()) {
            None | Some(Ok(Ok(()))) => match &self.error {
                Some(e) => Err(OutputError::Other(e.clone())),
                None => Ok(()),
            },
            Some(Ok(Err(e))) => Err(OutputError::Other(format!("cannot finish {}: {e}", self.path))),
            Some(Err(_)) => Err(OutputError::Other(format!("the writer of {} panicked", self.path))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// A disk that stalls: every write waits until the test drops `release`'s sender, then keeps the samples.
    struct Stalled {
        release: Receiver<()>,
        got: Arc<Mutex<Vec<i16>>>,
    }

    impl SampleSink for Stalled {
        fn write_samples(&mut self, samples: &[i16]) -> io::Result<()> {
            let _ = self.release.recv();
            self.got.lock().unwrap().extend_from_slice(samples);
            Ok(())
        }
        fn finish(self: Box<Self>) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_disk_never_blocks_the_real_time_path_and_drops_are_counted() {
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Stalled {
            release: gate,
            got: got.clone(),
        };
        let mut out = FileOutput::with_sink("stalled.wav", Box::new(sink)).unwrap();
        let n = QUEUE_BLOCKS * 3;
        let mut slowest = Duration::ZERO;
        for i in 0..n {
            let block = [i as i16; BLOCK_FRAMES * 2];
            let t = Instant::now();
            out.write(LocalTime::from_ns(i as i64 * 5_000_000), &block).unwrap();
            slowest = slowest.max(t.elapsed());
        }
        // Before the writer thread, the first write waited for the disk: here, forever.
        assert!(slowest < Duration::from_millis(100), "a write took {slowest:?}");
        let c: HashMap<_, _> = out.counters().into_iter().collect();
        // The whole pool is with the writer (one block in its stalled write, the rest queued); the rest dropped.
        assert_eq!(c["dropped_blocks"], (n - QUEUE_BLOCKS) as u64);
        assert_eq!(c["dropped_frames"], ((n - QUEUE_BLOCKS) * BLOCK_FRAMES) as u64);
        assert_eq!(c["frames"], (n * BLOCK_FRAMES) as u64, "the clock went on");
        drop(release);
        out.close().unwrap();
        let got = got.lock().unwrap();
        assert_eq!(got.len(), QUEUE_BLOCKS * BLOCK_FRAMES * 2);
        assert!(
            got.chunks(BLOCK_FRAMES * 2)
                .enumerate()
                .all(|(i, b)| b.iter().all(|&v| v == i as i16)),
            "the blocks queued before the drops reach the disk, in order"
        );
    }

    #[test]
    fn the_wav_file_holds_every_block_after_close() {
        let path = std::env::temp_dir().join(format!("bluebridge-file-{}.wav", std::process::id()));
        let path = path.to_str().unwrap();
        let mut out = FileOutput::create(path).unwrap();
        for i in 0..100i16 {
            out.write(LocalTime::from_ns(0), &[i; BLOCK_FRAMES * 2]).unwrap();
        }
        out.close().unwrap();
        let samples: Vec<i16> = hound::WavReader::open(path)
            .unwrap()
            .samples::<i16>()
            .map(|s| s.unwrap())
            .collect();
        std::fs::remove_file(path).unwrap();
        assert_eq!(samples.len(), 100 * BLOCK_FRAMES * 2);
        assert!(samples
            .chunks(BLOCK_FRAMES * 2)
            .enumerate()
            .all(|(i, b)| b.iter().all(|&v| v == i as i16)));
    }
}
