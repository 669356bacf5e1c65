//! The timeline as a source and its players share it, without a lock the real-time side can wait on.
//!
//! A source (a tokio task or a thread of its own) never touches the [`TimelineBuffer`]: it hands each chunk,
//! format reset and capacity change to a bounded single-producer single-consumer queue ([`rtrb`],
//! [`INBOX_ENTRIES`] entries). The buffer is taken by its readers — the engine thread's players, and now and
//! then a status reader — with [`SharedTimeline::lock`], which first applies what waits in the queue. So the
//! only lock the engine takes is one no source holds while it waits for the network or a device.
//!
//! The queue is bounded in entries ([`INBOX_ENTRIES`]) and in bytes ([`INBOX_MAX_BYTES`]): when it is full
//! (nobody has read for a while, e.g. no output runs) the source applies the queue itself if the buffer is free at
//! that moment (then the buffer's own bounds hold), and otherwise drops the chunk, counts it
//! ([`SharedTimeline::inbox_dropped`]) and logs at most once per [`crate::timeline::buffer::OVERFLOW_LOG_INTERVAL`].

use super::buffer::{Chunk, TimelineBuffer, TimelineError, DEFAULT_CAPACITY_NS, OVERFLOW_LOG_INTERVAL};
use super::log_throttle::LogThrottle;
use super::AudioFormat;
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

/// Messages the queue holds at most between two reads (a read happens every engine tick, a few ms; a Snapcast
/// server sends about 50 chunks a second).
pub const INBOX_ENTRIES: usize = 512;
/// Sample bytes the queue holds at most (5 s of 48 kHz stereo).
pub const INBOX_MAX_BYTES: usize = 5 * 48_000 * 2 * 4;

/// What a source tells the timeline.
#[derive(Debug)]
enum Msg {
    Push(Chunk),
    Reset(AudioFormat),
    Capacity(i64),
}

impl Msg {
    /// Sample bytes it holds.
    fn bytes(&self) -> usize {
        match self {
            Msg::Push(c) => c.samples.capacity() * std::mem::size_of::<f32>(),
            _ => 0,
        }
    }
}

#[derive(Debug)]
struct Inner {
    /// The source's end (sources call from one task or thread at a time; readers never take this lock).
    producer: Mutex<rtrb::Producer<Msg>>,
    /// The readers' end, taken together with `store`.
    consumer: Mutex<rtrb::Consumer<Msg>>,
    store: Mutex<TimelineBuffer>,
    /// The channel count of the newest format sent, for checking chunks as they are sent.
    channels: AtomicU16,
    dropped: AtomicU64,
    /// Sample bytes in the queue.
    queued_bytes: AtomicUsize,
    /// Drop lines, at most one per [`OVERFLOW_LOG_INTERVAL`].
    dropped_log: Mutex<LogThrottle>,
}

/// A timeline shared between one source (which sends to it) and its players (which read it). Cloning shares it.
#[derive(Debug, Clone)]
pub struct SharedTimeline(Arc<Inner>);

fn unpoison<'a, T>(r: Result<MutexGuard<'a, T>, std::sync::PoisonError<MutexGuard<'a, T>>>) -> MutexGuard<'a, T> {
    r.unwrap_or_else(|p| p.into_inner())
}

fn try_unpoison<'a, T>(r: Result<MutexGuard<'a, T>, TryLockError<MutexGuard<'a, T>>>) -> Option<MutexGuard<'a, T>> {
    match r {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

impl SharedTimeline {
    /// An empty timeline of `format`, holding [`DEFAULT_CAPACITY_NS`].
    pub fn new(format: AudioFormat) -> Self {
        Self::with_capacity_ns(format, DEFAULT_CAPACITY_NS)
    }

    /// An empty timeline of `format`, holding `capacity_ns` (see [`TimelineBuffer::new`]).
    pub fn with_capacity_ns(format: AudioFormat, capacity_ns: i64) -> Self {
        let (producer, consumer) = rtrb::RingBuffer::new(INBOX_ENTRIES);
        Self(Arc::new(Inner {
            producer: Mutex::new(producer),
            consumer: Mutex::new(consumer),
            store: Mutex::new(TimelineBuffer::new(format, capacity_ns)),
            channels: AtomicU16::new(format.channels),
            dropped: AtomicU64::new(0),
            queued_bytes: AtomicUsize::new(0),
            dropped_log: Mutex::new(LogThrottle::new(OVERFLOW_LOG_INTERVAL)),
        }))
    }

    /// Sends a chunk. A chunk that is not a whole number of frames of the newest format is refused here.
    pub fn push(&self, chunk: Chunk) -> Result<(), TimelineError> {
        let channels = self.0.channels.load(Ordering::Relaxed);
        if chunk.samples.len() % channels as usize != 0 {
            return Err(TimelineError::PartialFrame {
                samples: chunk.samples.len(),
                channels,
            });
        }
        if chunk.samples.is_empty() {
            return Ok(());
        }
        let mut chunk = chunk;
        // Its memory is trimmed here, not on the reader's (real-time) thread.
        chunk.samples.shrink_to_fit();
        self.send(Msg::Push(chunk));
        Ok(())
    }

    /// Starts over with a new format: everything sent before is dropped (players see a new generation).
    pub fn reset(&self, format: AudioFormat) {
        self.0.channels.store(format.channels, Ordering::Relaxed);
        self.send(Msg::Reset(format));
    }

    /// Keeps at least `capacity_ns` of audio from now on (see [`TimelineBuffer::set_capacity_ns`]).
    pub fn set_capacity_ns(&self, capacity_ns: i64) {
        self.send(Msg::Capacity(capacity_ns));
    }

    /// Holds the source's end as a source stuck in `push` would (tests of readers elsewhere).
    #[cfg(test)]
    pub(crate) fn hold_source_end_for_test(&self) -> impl Drop + '_ {
        struct Held<'a>(#[allow(dead_code)] MutexGuard<'a, rtrb::Producer<Msg>>);
        impl Drop for Held<'_> {
            fn drop(&mut self) {}
        }
        Held(self.0.producer.lock().unwrap())
    }

    /// Chunks dropped because the queue was full and the buffer busy, in total.
    pub fn inbox_dropped(&self) -> u64 {
        self.0.dropped.load(Ordering::Relaxed)
    }

    /// The buffer, with everything sent so far applied. For readers: the engine's players and status.
    pub fn lock(&self) -> MutexGuard<'_, TimelineBuffer> {
        let mut consumer = unpoison(self.0.consumer.lock());
        let mut store = unpoison(self.0.store.lock());
        self.drain(&mut consumer, &mut store);
        store
    }

    fn send(&self, msg: Msg) {
        let bytes = msg.bytes();
        let mut producer = unpoison(self.0.producer.lock());
        let fits = |p: &rtrb::Producer<Msg>| {
            p.slots() > 0 && self.0.queued_bytes.load(Ordering::Relaxed) + bytes <= INBOX_MAX_BYTES.max(bytes)
        };
        if !fits(&producer) {
            // Full: nobody has read for a while. Apply the queue here if the buffer is free now, else drop.
            if let Some(mut consumer) = try_unpoison(self.0.consumer.try_lock()) {
                if let Some(mut store) = try_unpoison(self.0.store.try_lock()) {
                    self.drain(&mut consumer, &mut store);
                }
            }
            if !fits(&producer) {
                drop(msg);
                self.dropped(1);
                return;
            }
        }
        self.0.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if producer.push(msg).is_err() {
            unreachable!("a slot was checked free and only this producer fills it");
        }
    }

    fn drain(&self, consumer: &mut rtrb::Consumer<Msg>, store: &mut TimelineBuffer) {
        while let Ok(msg) = consumer.pop() {
            self.0.queued_bytes.fetch_sub(msg.bytes(), Ordering::Relaxed);
            match msg {
                Msg::Push(c) => {
                    if let Err(e) = store.push(c) {
                        tracing::warn!("timeline: chunk dropped: {e}");
                    }
                }
                Msg::Reset(f) => store.reset(f),
                Msg::Capacity(ns) => store.set_capacity_ns(ns),
            }
        }
    }

    fn dropped(&self, n: u64) {
        let total = self.0.dropped.fetch_add(n, Ordering::Relaxed) + n;
        let Some(dropped) = unpoison(self.0.dropped_log.lock()).due(std::time::Instant::now(), total) else {
            return;
        };
        tracing::warn!(
            dropped,
            total_dropped = total,
            "timeline: {INBOX_ENTRIES} chunks queued and none read (is an output running?); dropping new audio"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::ServerTime;

    fn chunk(ms: i64, frames: usize) -> Chunk {
        Chunk {
            start: ServerTime::from_ns(ms * 1_000_000),
            samples: vec![0.25; frames * 2],
        }
    }

    #[test]
    fn what_a_source_sends_is_there_when_a_reader_looks_in_order() {
        let tl = SharedTimeline::new(AudioFormat::STEREO_48K);
        tl.push(chunk(0, 480)).unwrap();
        tl.set_capacity_ns(8_000_000_000);
        tl.push(chunk(10, 480)).unwrap();
        {
            let b = tl.lock();
            assert_eq!(b.start(), Some(ServerTime::from_ns(0)));
            assert_eq!(b.end(), Some(ServerTime::from_ns(20_000_000)));
        }
        let mono = AudioFormat {
            rate_hz: 48_000,
            channels: 1,
        };
        tl.reset(mono);
        assert_eq!(tl.push(chunk(30, 1)), Ok(()), "2 samples are 2 mono frames");
        let b = tl.lock();
        assert_eq!((b.format(), b.generation()), (mono, 1));
        assert_eq!(
            b.start(),
            Some(ServerTime::from_ns(30_000_000)),
            "the reset dropped what came before"
        );
    }

    #[test]
    fn a_partial_frame_is_refused_at_once() {
        let tl = SharedTimeline::new(AudioFormat::STEREO_48K);
        let e = tl
            .push(Chunk {
                start: ServerTime::from_ns(0),
                samples: vec![0.0; 3],
            })
            .unwrap_err();
        assert_eq!(
            e,
            TimelineError::PartialFrame {
                samples: 3,
                channels: 2
            }
        );
    }

    /// The bound in entries: with nobody reading and the buffer held, chunks beyond the queue are dropped and
    /// counted; with the buffer free the source applies the queue itself and nothing is lost.
    #[test]
    fn a_full_queue_drops_and_counts_only_while_the_buffer_is_held() {
        // 1 ms chunks (48 frames, 384 bytes) every 10 ms: the entries bound is met long before the bytes bound.
        let tl = SharedTimeline::new(AudioFormat::STEREO_48K);
        tl.set_capacity_ns(30_000_000_000);
        {
            let held = tl.0.store.lock().unwrap();
            for i in 0..INBOX_ENTRIES as i64 + 9 {
                tl.push(chunk(i * 10, 48)).unwrap();
            }
            drop(held);
        }
        // The capacity message took one entry: INBOX_ENTRIES - 1 chunks fit, 10 were dropped.
        assert_eq!(tl.inbox_dropped(), 10);
        let last_start_ms = (INBOX_ENTRIES as i64 - 2) * 10;
        assert_eq!(
            tl.lock().end(),
            Some(ServerTime::from_ns((last_start_ms + 1) * 1_000_000))
        );
        for i in 0..2 * INBOX_ENTRIES as i64 {
            tl.push(chunk(10_000 + i * 10, 48)).unwrap();
        }
        assert_eq!(
            tl.inbox_dropped(),
            10,
            "the buffer was free: the source applied the queue"
        );
        let last_start_ms = 10_000 + (2 * INBOX_ENTRIES as i64 - 1) * 10;
        assert_eq!(
            tl.lock().end(),
            Some(ServerTime::from_ns((last_start_ms + 1) * 1_000_000))
        );
    }

    /// The bound in bytes: big chunks nobody reads, with the buffer held, stop at [`INBOX_MAX_BYTES`].
    #[test]
    fn the_queue_holds_at_most_its_bytes() {
        let tl = SharedTimeline::new(AudioFormat::STEREO_48K);
        let held = tl.0.store.lock().unwrap();
        for i in 0..20 {
            tl.push(chunk(i * 1000, 48_000)).unwrap(); // 1 s, 384 kB each
        }
        assert!(tl.0.queued_bytes.load(Ordering::Relaxed) <= INBOX_MAX_BYTES);
        assert_eq!(tl.inbox_dropped(), 20 - (INBOX_MAX_BYTES / (48_000 * 2 * 4)) as u64);
        drop(held);
        assert!(tl.lock().end().is_some());
        assert_eq!(tl.0.queued_bytes.load(Ordering::Relaxed), 0);
    }

    /// The reader never waits for a source: a source stuck while sending (here: holding its own end) does not
    /// keep a reader out.
    #[test]
    fn a_reader_does_not_wait_for_a_source() {
        let tl = SharedTimeline::new(AudioFormat::STEREO_48K);
        tl.push(chunk(0, 480)).unwrap();
        let stuck = tl.0.producer.lock().unwrap();
        let tl2 = tl.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let end = tl2.lock().end();
            tx.send(end).unwrap();
        });
        let end = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("the reader waited for the source");
        assert_eq!(end, Some(ServerTime::from_ns(10_000_000)));
        drop(stuck);
    }
}
