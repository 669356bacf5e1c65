//! The lock-free frame ring under both sound-card hand-offs: interleaved `f32` samples in whole frames through a
//! single-producer single-consumer ring ([`rtrb`]), and the xrun bookkeeping every callback does.
//!
//! The playback hand-off ([`crate::output::local`]) pushes from the engine and pops on the card's callback; the
//! capture hand-off ([`crate::source::capture`]) pushes on the callback and pops in the engine. Each adds its own
//! stamp ring (stamps run the other way for playback, the same way for capture) and its own counters. Nothing here
//! allocates, locks or blocks after [`frame_ring`] made the ring.

use std::sync::atomic::{AtomicU64, Ordering};

/// Stamps a hand-off's stamp ring holds when its reader does not take them (at one per 10 ms period: 2.5 s).
pub const STAMP_CAPACITY: usize = 256;

/// Creates a ring for `capacity_frames` frames of `channels` interleaved samples.
pub fn frame_ring(capacity_frames: usize, channels: usize) -> (FrameProducer, FrameConsumer) {
    let (samples_tx, samples_rx) = rtrb::RingBuffer::new(capacity_frames * channels);
    (
        FrameProducer {
            samples: samples_tx,
            channels,
        },
        FrameConsumer {
            samples: samples_rx,
            channels,
        },
    )
}

/// The pushing end.
pub struct FrameProducer {
    samples: rtrb::Producer<f32>,
    channels: usize,
}

impl FrameProducer {
    /// Samples a frame holds.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Frames that fit now.
    pub fn free_frames(&self) -> usize {
        self.samples.slots() / self.channels
    }

    /// Frames pushed and not yet taken.
    pub fn queued_frames(&self) -> usize {
        (self.samples.buffer().capacity() - self.samples.slots()) / self.channels
    }

    /// Pushes `frames` whole frames, taking their samples from `samples` (at least `frames` × channels of them).
    /// The caller has checked that they fit ([`Self::free_frames`]).
    pub fn push_frames(&mut self, frames: usize, samples: impl Iterator<Item = f32>) {
        let chunk = self
            .samples
            .write_chunk_uninit(frames * self.channels)
            .expect("checked free space");
        chunk.fill_from_iter(samples);
    }

    /// True when the consuming end was dropped.
    pub fn is_abandoned(&self) -> bool {
        self.samples.is_abandoned()
    }
}

/// The popping end.
pub struct FrameConsumer {
    samples: rtrb::Consumer<f32>,
    channels: usize,
}

impl FrameConsumer {
    /// Samples a frame holds.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Whole frames ready to be taken.
    pub fn available_frames(&self) -> usize {
        self.samples.slots() / self.channels
    }

    /// Takes `frames` whole frames (the caller has checked they are there, [`Self::available_frames`]): their
    /// samples, oldest first; each is committed as the iterator hands it out.
    pub fn pop_frames(&mut self, frames: usize) -> impl Iterator<Item = f32> + '_ {
        self.samples
            .read_chunk(frames * self.channels)
            .expect("checked available")
            .into_iter()
    }
}

/// A callback's view of a stream's xrun count: whether the stream reported one since the previous callback.
#[derive(Debug, Default)]
pub struct XrunWatch {
    seen: u64,
}

impl XrunWatch {
    /// True when `xruns` (the count the stream's error callback raises) moved since the last call.
    pub fn moved(&mut self, xruns: &AtomicU64) -> bool {
        let now = xruns.load(Ordering::Relaxed);
        let moved = now != self.seen;
        self.seen = now;
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_frames_pass_in_order_and_the_counts_follow() {
        let (mut p, mut c) = frame_ring(3, 2);
        assert_eq!((p.free_frames(), p.queued_frames(), c.available_frames()), (3, 0, 0));
        p.push_frames(2, [1.0, 2.0, 3.0, 4.0].into_iter());
        assert_eq!((p.free_frames(), p.queued_frames(), c.available_frames()), (1, 2, 2));
        assert_eq!(c.pop_frames(1).collect::<Vec<_>>(), [1.0, 2.0]);
        assert_eq!((p.queued_frames(), c.available_frames()), (1, 1));
        assert!(!p.is_abandoned());
        drop(c);
        assert!(p.is_abandoned());
    }

    #[test]
    fn an_xrun_shows_once() {
        let xruns = AtomicU64::new(0);
        let mut w = XrunWatch::default();
        assert!(!w.moved(&xruns));
        xruns.fetch_add(1, Ordering::Relaxed);
        assert!(w.moved(&xruns));
        assert!(!w.moved(&xruns));
    }
}
