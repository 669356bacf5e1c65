//! The timeline buffer: decoded PCM chunks stamped with the source (server) time of their first frame.
//!
//! Sources push chunks as they arrive; players read frames *by source time*, so a player never needs to know how
//! the source cut its audio. Gaps read as silence.
//!
//! The buffer is bounded twice, so memory stays bounded whatever a source sends:
//! - by duration: audio older than the capacity (at most [`MAX_CAPACITY_NS`]) before the newest frame falls out;
//! - by size: the chunks never hold more than [`TimelineBuffer::max_bytes`] =
//!   capacity × rate × channels × 4 B × 2 + [`SLACK_BYTES`] (e.g. 4 s at 48 kHz stereo: 3 MB + 64 KiB), counting
//!   each chunk's allocated samples plus [`CHUNK_OVERHEAD_BYTES`]. A source sending faster than real time with
//!   every chunk stamped inside the window (each one trimming the one before) would otherwise pile up entries;
//!   beyond the bound the oldest chunks are dropped, counted ([`TimelineBuffer::overflow_dropped`]) and logged at
//!   most once per [`OVERFLOW_LOG_INTERVAL`].

use super::log_throttle::LogThrottle;
use super::{AudioFormat, ServerTime};
use std::collections::VecDeque;

/// How much audio a buffer keeps by default: more than Snapcast's default 1 s buffer plus margin.
pub const DEFAULT_CAPACITY_NS: i64 = 4_000_000_000;
/// The longest capacity a source may ask for (a server's buffer setting is a 32-bit count of milliseconds).
pub const MAX_CAPACITY_NS: i64 = 30_000_000_000;
/// Fixed allowance on top of the size bound, in bytes.
pub const SLACK_BYTES: usize = 64 * 1024;
/// What one held chunk costs besides its samples, as counted against the size bound, in bytes.
pub const CHUNK_OVERHEAD_BYTES: usize = std::mem::size_of::<Chunk>();
/// Overflow drops are logged at most this often.
pub const OVERFLOW_LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// One run of interleaved PCM whose first frame has source time `start`.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Source time of the first frame.
    pub start: ServerTime,
    /// Interleaved samples in [-1, 1).
    pub samples: Vec<f32>,
}

/// Why a chunk was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TimelineError {
    /// The chunk's sample count is not a whole number of frames.
    #[error("chunk of {samples} samples is not a whole number of {channels}-channel frames")]
    PartialFrame {
        /// Samples in the chunk.
        samples: usize,
        /// Channels of the buffer's format.
        channels: u16,
    },
}

/// A bounded, time-indexed store of PCM.
#[derive(Debug)]
pub struct TimelineBuffer {
    format: AudioFormat,
    chunks: VecDeque<Chunk>,
    capacity_ns: i64,
    generation: u64,
    /// Bytes the chunks hold (allocated samples plus [`CHUNK_OVERHEAD_BYTES`] each).
    held_bytes: usize,
    /// Chunks and bytes dropped by the size bound, in total.
    overflow_chunks: u64,
    overflow_bytes: u64,
    /// Overflow lines, at most one per [`OVERFLOW_LOG_INTERVAL`].
    overflow_log: LogThrottle,
}

/// Bytes a chunk counts against the size bound.
fn cost(c: &Chunk) -> usize {
    c.samples.capacity() * std::mem::size_of::<f32>() + CHUNK_OVERHEAD_BYTES
}

pub use super::shared::SharedTimeline;

/// What a [`TimelineBuffer::read`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadInfo {
    /// Frames that came from audio (the rest were gaps, filled with silence).
    pub audio_frames: usize,
}

impl TimelineBuffer {
    /// An empty buffer for `format` keeping at most `capacity_ns` of audio.
    pub fn new(format: AudioFormat, capacity_ns: i64) -> Self {
        Self {
            format,
            chunks: VecDeque::new(),
            capacity_ns: capacity_ns.max(0),
            generation: 0,
            held_bytes: 0,
            overflow_chunks: 0,
            overflow_bytes: 0,
            overflow_log: LogThrottle::new(OVERFLOW_LOG_INTERVAL),
        }
    }

    /// Bytes the chunks hold now (allocated samples plus per-chunk overhead); never above [`Self::max_bytes`].
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// The size bound: capacity × rate × channels × 4 B × 2 + [`SLACK_BYTES`].
    pub fn max_bytes(&self) -> usize {
        let per_s = self.format.rate_hz as u128 * self.format.channels as u128 * std::mem::size_of::<f32>() as u128;
        (self.capacity_ns.max(0) as u128 * per_s * 2 / 1_000_000_000) as usize + SLACK_BYTES
    }

    /// Chunks and bytes dropped so far because the size bound was reached.
    pub fn overflow_dropped(&self) -> (u64, u64) {
        (self.overflow_chunks, self.overflow_bytes)
    }

    fn pop_front_counted(&mut self) -> Option<Chunk> {
        let c = self.chunks.pop_front()?;
        self.held_bytes -= cost(&c);
        Some(c)
    }

    fn pop_back_counted(&mut self) -> Option<Chunk> {
        let c = self.chunks.pop_back()?;
        self.held_bytes -= cost(&c);
        Some(c)
    }

    /// A new shared buffer.
    pub fn shared(format: AudioFormat) -> SharedTimeline {
        SharedTimeline::new(format)
    }

    /// Keeps at least `capacity_ns` of audio from now on (a source announced a larger buffer). Clamped to [`MAX_CAPACITY_NS`].
    pub fn set_capacity_ns(&mut self, capacity_ns: i64) {
        self.capacity_ns = capacity_ns.clamp(0, MAX_CAPACITY_NS);
    }

    /// The format of the audio held.
    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// Bumped each time the format changes or the buffer is cleared: players re-synchronise when it moves.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Drops everything and switches to `format` (a source switched streams).
    pub fn reset(&mut self, format: AudioFormat) {
        self.format = format;
        self.chunks.clear();
        self.held_bytes = 0;
        self.generation += 1;
    }

    /// Source time just after the last frame held, if any.
    pub fn end(&self) -> Option<ServerTime> {
        self.chunks.back().map(|c| self.chunk_end(c))
    }

    /// Source time of the first frame held, if any.
    pub fn start(&self) -> Option<ServerTime> {
        self.chunks.front().map(|c| c.start)
    }

    fn frames_of(&self, c: &Chunk) -> usize {
        c.samples.len() / self.format.channels as usize
    }

    fn chunk_end(&self, c: &Chunk) -> ServerTime {
        c.start.add_ns(self.format.frames_to_ns(self.frames_of(c) as i64))
    }

    /// Adds a chunk. A chunk that starts before the end of the previous one replaces the overlapped audio from its
    /// start on (a source restarted its timeline); old audio beyond the capacity is dropped.
    /// Then, while the chunks hold more than [`Self::max_bytes`], the oldest are dropped and counted.
    pub fn push(&mut self, mut chunk: Chunk) -> Result<(), TimelineError> {
        let ch = self.format.channels as usize;
        if chunk.samples.len() % ch != 0 {
            return Err(TimelineError::PartialFrame {
                samples: chunk.samples.len(),
                channels: self.format.channels,
            });
        }
        if chunk.samples.is_empty() {
            return Ok(());
        }
        // Remove (or trim) anything at or after the new chunk's start: the newest word wins.
        while let Some(last) = self.chunks.back() {
            if last.start >= chunk.start {
                self.pop_back_counted();
                continue;
            }
            if self.chunk_end(last) > chunk.start {
                let keep_ns = chunk.start.ns_since(last.start);
                let keep_frames = (self.format.ns_to_frames_f64(keep_ns).round() as usize).min(self.frames_of(last));
                let last = self.chunks.back_mut().expect("checked above");
                let before = cost(last);
                last.samples.truncate(keep_frames * ch);
                // A trimmed chunk gives its memory back: otherwise chunks stamped close together keep it all.
                last.samples.shrink_to_fit();
                self.held_bytes = self.held_bytes - before + cost(last);
            }
            break;
        }
        chunk.samples.shrink_to_fit();
        self.held_bytes += cost(&chunk);
        self.chunks.push_back(chunk);
        let newest_end = self.end().expect("just pushed");
        while let Some(first) = self.chunks.front() {
            if newest_end.ns_since(self.chunk_end(first)) > self.capacity_ns {
                self.pop_front_counted();
            } else {
                break;
            }
        }
        let max = self.max_bytes();
        let mut dropped = 0u64;
        while self.held_bytes > max && self.chunks.len() > 1 {
            let c = self.pop_front_counted().expect("len > 1");
            dropped += 1;
            self.overflow_bytes += cost(&c) as u64;
        }
        if dropped > 0 {
            self.overflow_chunks += dropped;
            self.log_overflow(max);
        }
        Ok(())
    }

    /// Logs the overflow drops, at most once per [`OVERFLOW_LOG_INTERVAL`].
    fn log_overflow(&mut self, max: usize) {
        let Some(dropped) = self.overflow_log.due(std::time::Instant::now(), self.overflow_chunks) else {
            return;
        };
        tracing::warn!(
            dropped_chunks = dropped,
            total_dropped_chunks = self.overflow_chunks,
            total_dropped_bytes = self.overflow_bytes,
            max_bytes = max,
            "source sends audio faster than real time: oldest audio dropped to keep the buffer under {max} bytes"
        );
    }

    /// Drops audio that ends before `t` (players have passed it).
    pub fn drop_before(&mut self, t: ServerTime) {
        while let Some(first) = self.chunks.front() {
            if self.chunk_end(first) <= t {
                self.pop_front_counted();
            } else {
                break;
            }
        }
    }

    /// The source time of the held frame nearest to `t`, or `t` itself if no audio covers it. Players start on a
    /// real frame so their bookkeeping of source position stays exact.
    pub fn align(&self, t: ServerTime) -> ServerTime {
        for c in &self.chunks {
            if t < c.start.add_ns(-self.format.frames_to_ns(1)) {
                break;
            }
            if t < self.chunk_end(c) {
                let idx = self.format.ns_to_frames_f64(t.ns_since(c.start)).round() as i64;
                let idx = idx.clamp(0, self.frames_of(c) as i64);
                return c.start.add_ns(self.format.frames_to_ns(idx));
            }
        }
        t
    }

    /// Fills `out` (interleaved, a whole number of frames) with the frames at source times
    /// `first + k / rate`; frames no chunk covers are silence. The first chunk that can hold `first` is found by
    /// bisection (chunks are kept in time order without overlap, so their ends increase), not by a scan.
    pub fn read(&self, first: ServerTime, out: &mut [f32]) -> ReadInfo {
        let ch = self.format.channels as usize;
        let n = out.len() / ch;
        out.fill(0.0);
        let mut info = ReadInfo::default();
        let mut k = 0usize; // next output frame to fill
        let from = self.chunks.partition_point(|c| self.chunk_end(c) <= first);
        for c in self.chunks.range(from..) {
            if k >= n {
                break;
            }
            let c_frames = self.frames_of(c) as i64;
            let c_end = self.chunk_end(c);
            let t_k = first.add_ns(self.format.frames_to_ns(k as i64));
            if c_end <= t_k {
                continue;
            }
            // Index in this chunk of output frame k (may be negative: the chunk starts later).
            let idx_f = self.format.ns_to_frames_f64(t_k.ns_since(c.start));
            let mut idx = idx_f.round() as i64;
            if idx < 0 {
                // Skip output frames that fall in the gap before this chunk.
                let skip = (-idx) as usize;
                k += skip;
                idx = 0;
                if k >= n {
                    break;
                }
            }
            let avail = (c_frames - idx).max(0) as usize;
            let take = avail.min(n - k);
            let src = &c.samples[idx as usize * ch..(idx as usize + take) * ch];
            out[k * ch..(k + take) * ch].copy_from_slice(src);
            k += take;
            info.audio_frames += take;
        }
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: AudioFormat = AudioFormat {
        rate_hz: 1000,
        channels: 1,
    };
    const MS: i64 = 1_000_000;

    fn ramp(start_ms: i64, n: usize, base: f32) -> Chunk {
        Chunk {
            start: ServerTime::from_ns(start_ms * MS),
            samples: (0..n).map(|i| base + i as f32).collect(),
        }
    }

    #[test]
    fn a_read_deep_into_many_chunks_finds_its_chunk_by_bisection() {
        // 1000 chunks of 10 ms (10 frames at 1 kHz), each filled with its own index; every 7th is missing (a gap).
        let mut b = TimelineBuffer::new(F, 60_000_000_000);
        for i in 0..1000i64 {
            if i % 7 == 3 {
                continue;
            }
            b.push(Chunk {
                start: ServerTime::from_ns(i * 10_000_000),
                samples: vec![i as f32; 10],
            })
            .unwrap();
        }
        for start_ms in [0i64, 5, 29, 31, 4_995, 9_985] {
            let mut out = [f32::NAN; 20];
            let info = b.read(ServerTime::from_ns(start_ms * 1_000_000), &mut out);
            for (k, v) in out.iter().enumerate() {
                let t_ms = start_ms + k as i64;
                let chunk = t_ms / 10;
                let want = if chunk >= 1000 || chunk % 7 == 3 {
                    0.0
                } else {
                    chunk as f32
                };
                assert_eq!(*v, want, "frame {k} of a read at {start_ms} ms");
            }
            let audio = (0..20)
                .filter(|k| {
                    let c = (start_ms + k) / 10;
                    c < 1000 && c % 7 != 3
                })
                .count();
            assert_eq!(info.audio_frames, audio, "at {start_ms} ms");
        }
    }

    #[test]
    fn reads_across_chunks_and_gaps() {
        let mut b = TimelineBuffer::new(F, 10_000 * MS);
        b.push(ramp(0, 10, 0.0)).unwrap();
        b.push(ramp(10, 10, 10.0)).unwrap();
        b.push(ramp(25, 5, 25.0)).unwrap(); // gap 20..25
        let mut out = vec![-1.0; 32];
        let info = b.read(ServerTime::from_ns(-2 * MS), &mut out);
        let expect: Vec<f32> = (-2..30)
            .map(|t| {
                if (0..20).contains(&t) || (25..30).contains(&t) {
                    t as f32
                } else {
                    0.0
                }
            })
            .collect();
        assert_eq!(out, expect);
        assert_eq!(info.audio_frames, 25);
    }

    #[test]
    fn overlap_replaces_newer_and_capacity_bounds_memory() {
        let mut b = TimelineBuffer::new(F, 50 * MS);
        b.push(ramp(0, 20, 0.0)).unwrap();
        b.push(ramp(10, 20, 100.0)).unwrap(); // restarts at 10
        let mut out = vec![0.0; 4];
        b.read(ServerTime::from_ns(8 * MS), &mut out);
        assert_eq!(out, vec![8.0, 9.0, 100.0, 101.0]);
        for i in 0..100 {
            b.push(ramp(30 + i * 10, 10, 0.0)).unwrap();
        }
        assert!(b.chunks.len() <= 7, "kept {} chunks", b.chunks.len());
        assert!(b.end().unwrap().ns_since(b.start().unwrap()) <= 60 * MS);
    }

    #[test]
    fn refuses_partial_frames_and_aligns_to_real_frames() {
        let mut b = TimelineBuffer::new(
            AudioFormat {
                rate_hz: 1000,
                channels: 2,
            },
            1000 * MS,
        );
        assert!(matches!(
            b.push(Chunk {
                start: ServerTime::from_ns(0),
                samples: vec![0.0; 3]
            }),
            Err(TimelineError::PartialFrame { .. })
        ));
        b.push(Chunk {
            start: ServerTime::from_ns(300_000),
            samples: vec![0.0; 20],
        })
        .unwrap();
        assert_eq!(b.align(ServerTime::from_ns(2_600_000)), ServerTime::from_ns(2_300_000));
        assert_eq!(b.align(ServerTime::from_ns(50 * MS)), ServerTime::from_ns(50 * MS));
        b.reset(F);
        assert_eq!(b.generation(), 1);
        assert_eq!(b.end(), None);
    }

    /// Heap bytes the buffer's chunks hold (allocated sample capacity plus per-entry overhead), measured from the
    /// outside so the same measure works whatever the buffer's own accounting says.
    fn held(b: &TimelineBuffer) -> usize {
        b.chunks
            .iter()
            .map(|c| c.samples.capacity() * std::mem::size_of::<f32>() + std::mem::size_of::<Chunk>())
            .sum()
    }

    /// Issue 17: a source flooding faster than real time, every chunk stamped inside the window (each 1 s chunk
    /// starts 1 ms after the previous one, so each push trims the previous chunk to 1 ms), must not grow memory.
    /// Bound stated here: capacity (4 s) × 48000 Hz × 2 ch × 4 B × 2 + 64 KiB. Before the fix a trimmed chunk kept
    /// its 1 s allocation: 200 chunks held ~77 MB.
    #[test]
    fn flood_inside_the_window_stays_under_the_byte_bound() {
        let f = AudioFormat::STEREO_48K;
        let cap_ns = DEFAULT_CAPACITY_NS;
        let bound = (cap_ns as usize / 1_000_000) * 48 * 2 * 4 * 2 + 64 * 1024;
        let mut b = TimelineBuffer::new(f, cap_ns);
        let mut worst = 0;
        for i in 0..200i64 {
            b.push(Chunk {
                start: ServerTime::from_ns(i * MS),
                samples: vec![0.25; 48_000 * 2],
            })
            .unwrap();
            worst = worst.max(held(&b));
        }
        assert!(worst <= bound, "held {worst} bytes, bound {bound}");
        // Tiny chunks one frame apart: entry overhead counts too.
        for i in 0..200_000i64 {
            b.push(Chunk {
                start: ServerTime::from_ns(1_000 * MS + f.frames_to_ns(i)),
                samples: vec![0.25; 2],
            })
            .unwrap();
        }
        worst = worst.max(held(&b));
        assert!(worst <= bound, "held {worst} bytes, bound {bound}");
        assert_eq!(b.held_bytes(), held(&b));
        assert_eq!(b.max_bytes(), bound);
        let (chunks, bytes) = b.overflow_dropped();
        assert!(chunks > 0 && bytes > 0, "drops counted");
        // The newest audio is still there.
        let mut out = vec![0.0; 2];
        b.read(ServerTime::from_ns(1_000 * MS + f.frames_to_ns(199_999)), &mut out);
        assert_eq!(out, [0.25, 0.25]);
    }
}
