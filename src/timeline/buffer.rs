//! The timeline buffer: decoded PCM chunks stamped with the source (server) time of their first frame.
//!
//! Sources push chunks as they arrive; players read frames *by source time*, so a player never needs to know how
//! the source cut its audio. Gaps read as silence. The buffer is bounded by duration: old chunks fall out, and a
//! chunk that would overflow it evicts the oldest, so memory stays bounded whatever a source sends.

use super::{AudioFormat, ServerTime};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// How much audio a buffer keeps by default: more than Snapcast's default 1 s buffer plus margin.
pub const DEFAULT_CAPACITY_NS: i64 = 4_000_000_000;

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
}

/// A timeline buffer shared between one source and its players.
pub type SharedTimeline = Arc<Mutex<TimelineBuffer>>;

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
            capacity_ns,
            generation: 0,
        }
    }

    /// A new shared buffer.
    pub fn shared(format: AudioFormat) -> SharedTimeline {
        Arc::new(Mutex::new(Self::new(format, DEFAULT_CAPACITY_NS)))
    }

    /// Keeps at least `capacity_ns` of audio from now on (a source announced a larger buffer).
    pub fn set_capacity_ns(&mut self, capacity_ns: i64) {
        self.capacity_ns = capacity_ns;
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
    pub fn push(&mut self, chunk: Chunk) -> Result<(), TimelineError> {
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
                self.chunks.pop_back();
                continue;
            }
            if self.chunk_end(last) > chunk.start {
                let keep_ns = chunk.start.ns_since(last.start);
                let keep_frames = (self.format.ns_to_frames_f64(keep_ns).round() as usize).min(self.frames_of(last));
                let last = self.chunks.back_mut().expect("checked above");
                last.samples.truncate(keep_frames * ch);
            }
            break;
        }
        self.chunks.push_back(chunk);
        let newest_end = self.end().expect("just pushed");
        while let Some(first) = self.chunks.front() {
            if newest_end.ns_since(self.chunk_end(first)) > self.capacity_ns {
                self.chunks.pop_front();
            } else {
                break;
            }
        }
        Ok(())
    }

    /// Drops audio that ends before `t` (players have passed it).
    pub fn drop_before(&mut self, t: ServerTime) {
        while let Some(first) = self.chunks.front() {
            if self.chunk_end(first) <= t {
                self.chunks.pop_front();
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
    /// `first + k / rate`; frames no chunk covers are silence.
    pub fn read(&self, first: ServerTime, out: &mut [f32]) -> ReadInfo {
        let ch = self.format.channels as usize;
        let n = out.len() / ch;
        out.fill(0.0);
        let mut info = ReadInfo::default();
        let mut k = 0usize; // next output frame to fill
        for c in &self.chunks {
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
}
