//! The lock-free hand-off from a capture device's callback thread to the engine.
//!
//! Every callback pushes its frames (interleaved `f32`, the device's channel count) into the shared frame ring
//! ([`crate::audio::ring`]) and then one [`Stamp`]: which card frame the callback's data starts with, how
//! many frames it holds and when its first frame was captured on the local clock. The samples are committed before
//! the stamp, so when the engine sees a stamp, that callback's frames are there. A callback whose data does not fit
//! (the engine fell behind) is dropped whole and counted; the card-frame count still advances, so the next stamp
//! shows the gap and nothing after it is misplaced in time. Nothing on the callback side allocates, locks or
//! blocks: the rings and counters are preallocated.

use crate::audio::ring::{frame_ring, FrameConsumer, FrameProducer, XrunWatch};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub use crate::audio::ring::STAMP_CAPACITY;

/// One callback's data: `frames` frames starting at card frame `card_frame` (frames the device delivered since the
/// stream started, dropped ones included), the first captured at local time `capture_local_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    /// Card frames delivered before this callback.
    pub card_frame: u64,
    /// Frames in this callback.
    pub frames: u32,
    /// When the first of them was captured, on the local clock (ns).
    pub capture_local_ns: i64,
    /// The stream reported an overrun since the previous callback: frames were lost that the card-frame count
    /// does not know of, so the clock fit must start again here.
    pub after_xrun: bool,
}

/// Counters shared by both sides (atomics: the callback never locks).
#[derive(Debug, Default)]
pub struct CaptureCounters {
    /// Callbacks run.
    pub callbacks: AtomicU64,
    /// Callbacks dropped because the ring was full (the engine fell behind).
    pub overflows: AtomicU64,
    /// Frames in them.
    pub overflow_frames: AtomicU64,
    /// Overruns the stream reported (ALSA xruns; the stream recovers by itself).
    pub xruns: AtomicU64,
    /// Set by the stream's error callback (the device vanished or failed): the source reopens it.
    pub failed: AtomicBool,
}

/// Creates a ring for `capacity_frames` frames of `channels` interleaved samples.
pub fn ring(capacity_frames: usize, channels: usize) -> (CaptureWriter, CaptureReader) {
    let (frames_tx, frames_rx) = frame_ring(capacity_frames.max(1), channels.max(1));
    let (stamps_tx, stamps_rx) = rtrb::RingBuffer::new(STAMP_CAPACITY);
    let counters = Arc::new(CaptureCounters::default());
    let writer = CaptureWriter {
        frames: frames_tx,
        stamps: stamps_tx,
        counters: counters.clone(),
        card_frames: 0,
        xruns: XrunWatch::default(),
    };
    let reader = CaptureReader {
        frames: frames_rx,
        stamps: stamps_rx,
        counters,
    };
    (writer, reader)
}

/// The callback's end. Its methods never allocate, lock or block.
pub struct CaptureWriter {
    frames: FrameProducer,
    stamps: rtrb::Producer<Stamp>,
    counters: Arc<CaptureCounters>,
    card_frames: u64,
    xruns: XrunWatch,
}

impl CaptureWriter {
    /// Takes one callback's `data` (interleaved, the device's channels; a trailing partial frame is ignored),
    /// converting each sample with `to_f32`; its first frame was captured at `capture_local_ns`.
    pub fn write<T: Copy>(&mut self, data: &[T], to_f32: impl Fn(T) -> f32, capture_local_ns: i64) {
        let c = &self.counters;
        c.callbacks.fetch_add(1, Ordering::Relaxed);
        let frames = data.len() / self.frames.channels();
        if frames == 0 {
            return;
        }
        let after_xrun = self.xruns.moved(&c.xruns);
        let card_frame = self.card_frames;
        self.card_frames += frames as u64;
        if self.frames.free_frames() < frames || self.stamps.slots() == 0 {
            c.overflows.fetch_add(1, Ordering::Relaxed);
            c.overflow_frames.fetch_add(frames as u64, Ordering::Relaxed);
            return;
        }
        self.frames.push_frames(frames, data.iter().map(|&s| to_f32(s)));
        // After the samples: a stamp the engine sees always has its frames in the ring.
        let _ = self.stamps.push(Stamp {
            card_frame,
            frames: frames as u32,
            capture_local_ns,
            after_xrun,
        });
    }

    /// The counters.
    pub fn counters(&self) -> Arc<CaptureCounters> {
        self.counters.clone()
    }
}

/// The engine's end.
pub struct CaptureReader {
    frames: FrameConsumer,
    stamps: rtrb::Consumer<Stamp>,
    counters: Arc<CaptureCounters>,
}

impl CaptureReader {
    /// The oldest callback not yet taken: its stamp, with its samples in `out` (cleared first; its capacity is
    /// kept, so a reused buffer stops allocating). None when there is none.
    pub fn pop(&mut self, out: &mut Vec<f32>) -> Option<Stamp> {
        let stamp = self.stamps.pop().ok()?;
        out.clear();
        // The writer committed these samples before pushing the stamp.
        out.extend(self.frames.pop_frames(stamp.frames as usize));
        Some(stamp)
    }

    /// The device's channel count.
    pub fn channels(&self) -> usize {
        self.frames.channels()
    }

    /// The counters.
    pub fn counters(&self) -> &Arc<CaptureCounters> {
        &self.counters
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callbacks_arrive_in_order_with_their_stamps() {
        let (mut w, mut r) = ring(1_000, 2);
        w.write(&[1i16, 2, 3, 4, 5], |s| s as f32, 100);
        w.write(&[6i16, 7], |s| s as f32, 200);
        let mut buf = Vec::new();
        assert_eq!(
            r.pop(&mut buf),
            Some(Stamp {
                card_frame: 0,
                frames: 2,
                capture_local_ns: 100,
                after_xrun: false,
            })
        );
        assert_eq!(buf, [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(r.pop(&mut buf).map(|s| (s.card_frame, s.frames)), Some((2, 1)));
        assert_eq!(buf, [6.0, 7.0]);
        assert_eq!(r.pop(&mut buf), None);
        assert_eq!(r.counters().callbacks.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_full_ring_drops_whole_callbacks_counts_them_and_the_next_stamp_shows_the_gap() {
        let (mut w, mut r) = ring(10, 1);
        let data = [0.5f32; 8];
        w.write(&data, |s| s, 0); // frames 0..8
        w.write(&data, |s| s, 1); // does not fit: dropped
        let mut buf = Vec::new();
        assert_eq!(r.pop(&mut buf).map(|s| s.card_frame), Some(0));
        w.write(&data, |s| s, 2); // fits again: card frames 16..24
        let s = r.pop(&mut buf).unwrap();
        assert_eq!((s.card_frame, s.frames, s.capture_local_ns), (16, 8, 2));
        let c = r.counters();
        assert_eq!(c.overflows.load(Ordering::Relaxed), 1);
        assert_eq!(c.overflow_frames.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn it_wraps_around_many_times_without_losing_a_sample() {
        let (mut w, mut r) = ring(7, 2);
        let mut buf = Vec::new();
        let mut next = 0.0f32;
        let mut expect = 0.0f32;
        for i in 0..1_000 {
            let frames = 1 + i % 3;
            let data: Vec<f32> = (0..frames * 2).map(|k| next + k as f32).collect();
            next += (frames * 2) as f32;
            w.write(&data, |s| s, i as i64);
            let s = r.pop(&mut buf).unwrap();
            assert_eq!(s.frames as usize, frames);
            for v in &buf {
                assert_eq!(*v, expect);
                expect += 1.0;
            }
        }
        assert_eq!(r.counters().overflows.load(Ordering::Relaxed), 0);
    }
}
