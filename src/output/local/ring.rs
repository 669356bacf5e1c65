//! The lock-free hand-off from the engine to a sound card's callback thread.
//!
//! The engine converts audio to the device's rate and channel count and pushes interleaved `f32` samples into the
//! shared frame ring ([`crate::audio::ring`]); the card's callback pops them, converts each to the device's
//! sample format and plays silence for whatever is missing (an underrun, counted). Nothing on the callback side
//! allocates, locks or blocks: the ring, the stamp ring and the counters are preallocated atomics.
//!
//! Every callback also sends the engine a [`Stamp`]: which card frame it starts with, which ring frame that is, and
//! the local time at which that card frame is played. The engine fits the card's clock to these stamps
//! ([`crate::timeline::envelope_clock`]), so it knows when every frame it writes will be heard.

use crate::audio::ring::{frame_ring, FrameConsumer, FrameProducer, XrunWatch};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

pub use crate::audio::ring::STAMP_CAPACITY;

/// One callback's timing: card frame `card_frame` (frames the card was given since the stream started, silence
/// included) is ring frame `ring_frame` (frames taken from the ring so far) and plays at local time
/// `playback_local_ns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    /// Card frames handed to the device before this callback.
    pub card_frame: u64,
    /// Ring frames consumed before this callback.
    pub ring_frame: u64,
    /// When `card_frame` is played, on the local clock (ns).
    pub playback_local_ns: i64,
    /// The device's own delay at this callback: playback time − callback time (ns).
    pub device_delay_ns: i64,
    /// The stream reported an xrun since the previous callback: the card's timeline jumped (it played silence
    /// of its own, or restarted), so the clock fit must start again here.
    pub after_xrun: bool,
}

/// Counters shared by both sides (atomics: the callback never locks).
#[derive(Debug, Default)]
pub struct RingCounters {
    /// Callbacks that found fewer frames than they needed, after the first audio arrived.
    pub underruns: AtomicU64,
    /// Frames of silence played for them.
    pub underrun_frames: AtomicU64,
    /// Callbacks run.
    pub callbacks: AtomicU64,
    /// Stamps lost because the engine did not take them in time.
    pub stamps_dropped: AtomicU64,
    /// Buffer underruns or overruns the stream reported (ALSA xruns; the stream recovers by itself).
    pub xruns: AtomicU64,
    /// Set by the stream's error callback (the device vanished or failed): the engine drops the link.
    pub failed: AtomicBool,
}

/// Creates a ring for `capacity_frames` frames of `channels` interleaved samples.
pub fn ring(capacity_frames: usize, channels: usize) -> (RingWriter, RingReader) {
    let (frames_tx, frames_rx) = frame_ring(capacity_frames, channels);
    let (stamps_tx, stamps_rx) = rtrb::RingBuffer::new(STAMP_CAPACITY);
    let counters = Arc::new(RingCounters::default());
    let writer = RingWriter {
        frames: frames_tx,
        stamps: stamps_rx,
        counters: counters.clone(),
        written_frames: 0,
    };
    let reader = RingReader {
        frames: frames_rx,
        stamps: stamps_tx,
        counters,
        card_frames: 0,
        ring_frames: 0,
        primed: false,
        xruns: XrunWatch::default(),
    };
    (writer, reader)
}

/// The engine's end.
pub struct RingWriter {
    frames: FrameProducer,
    stamps: rtrb::Consumer<Stamp>,
    counters: Arc<RingCounters>,
    written_frames: u64,
}

impl RingWriter {
    /// Pushes as many whole frames of `interleaved` as fit; returns how many frames were pushed.
    pub fn push(&mut self, interleaved: &[f32]) -> usize {
        let frames = (interleaved.len() / self.frames.channels()).min(self.free_frames());
        if frames == 0 {
            return 0;
        }
        self.frames.push_frames(frames, interleaved.iter().copied());
        self.written_frames += frames as u64;
        frames
    }

    /// Frames that fit now.
    pub fn free_frames(&self) -> usize {
        self.frames.free_frames()
    }

    /// Frames pushed and not yet taken by the callback.
    pub fn queued_frames(&self) -> usize {
        self.frames.queued_frames()
    }

    /// Frames pushed since the ring was made (ring frame index of the next frame pushed).
    pub fn written_frames(&self) -> u64 {
        self.written_frames
    }

    /// Hands every stamp received since the last call to `f`, oldest first.
    pub fn take_stamps(&mut self, mut f: impl FnMut(Stamp)) {
        while let Ok(s) = self.stamps.pop() {
            f(s);
        }
    }

    /// The counters.
    pub fn counters(&self) -> &Arc<RingCounters> {
        &self.counters
    }

    /// True when the reader was dropped (the stream is gone).
    pub fn is_abandoned(&self) -> bool {
        self.frames.is_abandoned()
    }
}

/// The callback's end. Its methods never allocate, lock or block.
pub struct RingReader {
    frames: FrameConsumer,
    stamps: rtrb::Producer<Stamp>,
    counters: Arc<RingCounters>,
    card_frames: u64,
    ring_frames: u64,
    /// Audio has arrived at least once (silence before the first audio is not an underrun).
    primed: bool,
    /// The xrun count the last callback saw.
    xruns: XrunWatch,
}

impl RingReader {
    /// Fills `out` (interleaved, the device's channels) from the ring, converting each sample with `convert`,
    /// silence (`silence`) for what is missing. `playback_local_ns` is when `out`'s first frame is played and
    /// `device_delay_ns` the device's delay (playback − callback time), both from the stream's timestamps.
    pub fn fill<T: Copy>(
        &mut self,
        out: &mut [T],
        silence: T,
        convert: impl Fn(f32) -> T,
        playback_local_ns: i64,
        device_delay_ns: i64,
    ) {
        let ch = self.frames.channels();
        let want_frames = out.len() / ch;
        let stamp = Stamp {
            card_frame: self.card_frames,
            ring_frame: self.ring_frames,
            playback_local_ns,
            device_delay_ns,
            after_xrun: self.xruns.moved(&self.counters.xruns),
        };
        if self.stamps.push(stamp).is_err() {
            self.counters.stamps_dropped.fetch_add(1, Ordering::Relaxed);
        }
        let frames = self.frames.available_frames().min(want_frames);
        let n = frames * ch;
        if n > 0 {
            // `out` has room for all n samples, and each is committed as it is handed out.
            for (o, s) in out.iter_mut().zip(self.frames.pop_frames(frames)) {
                *o = convert(s);
            }
            self.primed = true;
        }
        out[n..].fill(silence);
        if frames < want_frames && self.primed {
            self.counters.underruns.fetch_add(1, Ordering::Relaxed);
            self.counters
                .underrun_frames
                .fetch_add((want_frames - frames) as u64, Ordering::Relaxed);
        }
        self.counters.callbacks.fetch_add(1, Ordering::Relaxed);
        self.card_frames += want_frames as u64;
        self.ring_frames += frames as u64;
    }

    /// Marks the link failed (called from the stream's error callback).
    pub fn fail(&self) {
        self.counters.failed.store(true, Ordering::Relaxed);
    }

    /// The counters (for the error callback).
    pub fn counters(&self) -> Arc<RingCounters> {
        self.counters.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_pass_in_order_and_the_stamps_map_card_to_ring_frames() {
        let (mut w, mut r) = ring(8, 2);
        assert_eq!(w.push(&[1.0, -1.0, 2.0, -2.0, 3.0, -3.0]), 3);
        assert_eq!(w.queued_frames(), 3);
        let mut out = [0i16; 4];
        r.fill(&mut out, 0, |s| (s * 10.0) as i16, 1_000, 500);
        assert_eq!(out, [10, -10, 20, -20]);
        // One frame left, two wanted: an underrun of one frame, the rest silence.
        r.fill(&mut out, 7, |s| (s * 10.0) as i16, 2_000, 500);
        assert_eq!(out, [30, -30, 7, 7]);
        let mut stamps = vec![];
        w.take_stamps(|s| stamps.push(s));
        assert_eq!(
            stamps,
            vec![
                Stamp {
                    card_frame: 0,
                    ring_frame: 0,
                    playback_local_ns: 1_000,
                    device_delay_ns: 500,
                    after_xrun: false,
                },
                Stamp {
                    card_frame: 2,
                    ring_frame: 2,
                    playback_local_ns: 2_000,
                    device_delay_ns: 500,
                    after_xrun: false,
                },
            ]
        );
        // After the underrun the card is one frame ahead of the ring.
        r.fill(&mut out, 0, |s| s as i16, 3_000, 500);
        w.take_stamps(|s| stamps.push(s));
        assert_eq!((stamps[2].card_frame, stamps[2].ring_frame), (4, 3));
        let c = w.counters();
        assert_eq!(c.underruns.load(Ordering::Relaxed), 2);
        assert_eq!(c.underrun_frames.load(Ordering::Relaxed), 3);
        assert_eq!(c.callbacks.load(Ordering::Relaxed), 3);
        // An xrun reported by the stream: the next stamp says so, the one after it no longer.
        r.counters().xruns.fetch_add(1, Ordering::Relaxed);
        r.fill(&mut out, 0, |s| (s * 10.0) as i16, 3_000, 500);
        r.fill(&mut out, 0, |s| (s * 10.0) as i16, 4_000, 500);
        let mut after = vec![];
        w.take_stamps(|s| after.push(s.after_xrun));
        assert_eq!(after, [true, false]);
    }

    #[test]
    fn silence_before_the_first_audio_is_not_an_underrun_and_a_full_ring_refuses() {
        let (mut w, mut r) = ring(4, 2);
        let mut out = [1.0f32; 4];
        r.fill(&mut out, 0.0, |s| s, 0, 0);
        assert_eq!(out, [0.0; 4]);
        assert_eq!(w.counters().underruns.load(Ordering::Relaxed), 0);
        // Only whole frames go in, and only what fits.
        assert_eq!(w.push(&[0.5; 11]), 4);
        assert_eq!(w.push(&[0.5; 2]), 0);
        assert_eq!((w.free_frames(), w.written_frames()), (0, 4));
    }

    #[test]
    fn it_wraps_around_many_times_without_losing_a_sample() {
        let (mut w, mut r) = ring(5, 2);
        let mut next_in = 0u32;
        let mut next_out = 0u32;
        let mut out = [0u32; 6];
        for round in 0..1_000 {
            let block: Vec<f32> = (0..(round % 4 + 1) * 2).map(|i| (next_in + i) as f32).collect();
            next_in += 2 * w.push(&block) as u32;
            r.fill(&mut out, u32::MAX, |s| s as u32, 0, 0);
            for v in out.iter().take_while(|v| **v != u32::MAX) {
                assert_eq!(*v, next_out);
                next_out += 1;
            }
        }
        assert!(next_out > 1_000, "{next_out}");
    }

    #[test]
    fn a_lagging_engine_loses_stamps_not_audio_and_counts_them() {
        let (mut w, mut r) = ring(4, 1);
        let mut out = [0.0f32; 1];
        for _ in 0..STAMP_CAPACITY + 10 {
            r.fill(&mut out, 0.0, |s| s, 0, 0);
        }
        let mut n = 0;
        w.take_stamps(|_| n += 1);
        assert_eq!(n, STAMP_CAPACITY);
        assert_eq!(w.counters().stamps_dropped.load(Ordering::Relaxed), 10);
    }
}
