//! The paced packet sender shared by the `a2dp` and `broadcast` outputs: packets wait in a queue, each stamped
//! with the output frame its audio starts at, and leave when that frame is due on the output's schedule
//! ([`LocalClocked::is_due`]), written without blocking to the transport (an A2DP transport socket, one ISO socket
//! per BIS) through [`SduSink`]s. A packet is one buffer per sink (A2DP: one RTP packet; a broadcast: one SDU per
//! BIS), taken from a pool preallocated when a link is attached and given back after sending, so the steady state
//! allocates nothing. It counts what was sent, what a congested link refused (dropped, logged at powers of two)
//! and write failures, which it returns to the output to drop the link.
//!
//! The test-only breakage hook ([`super::test_drop_packets`], the rig's `RIG_BREAK=send`) is read once when the
//! sender is made: with it, every packet is counted as sent and written nowhere.

use super::iso_sink::SduSink;
use super::local_clocked::LocalClocked;
use crate::timeline::LocalTime;
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;

/// Packets preallocated per link: more than the deepest the queue gets (lead + send-ahead + late tolerance: 290 ms
/// of A2DP packets of ≈ 19 ms, or 180 ms of 10 ms SDU intervals). Beyond it the pool grows (and keeps what it grew).
pub const POOL_PACKETS: usize = 32;

/// What a sender has done, over its whole life (every link).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendCounts {
    /// Buffers written (or, with the test hook, dropped as if written).
    pub sent: u64,
    /// Buffers a congested link refused (`EWOULDBLOCK`): dropped rather than fall behind.
    pub dropped: u64,
    /// Writes that failed otherwise (the link is gone).
    pub write_errors: u64,
}

/// One paced packet queue in front of a set of sinks.
pub struct PacedSender {
    /// The output's name and what one buffer is called (`packets`, `SDUs`), for the logs.
    name: String,
    unit: &'static str,
    /// What happens after a write failure, for the log (`the speaker task will reconnect`).
    on_failure: &'static str,
    buffers_per_packet: usize,
    sinks: Vec<Box<dyn SduSink>>,
    /// (first output frame, one buffer per sink), in sending order.
    queue: VecDeque<(u64, Vec<Vec<u8>>)>,
    pool: Vec<Vec<Vec<u8>>>,
    /// TEST-ONLY (`RIG_BREAK=send`): drop every packet as if sent. Read once, in [`PacedSender::new`].
    drop_all: bool,
    counts: SendCounts,
}

/// `send(2)` of one datagram without blocking and without SIGPIPE.
pub fn send_nonblocking(fd: RawFd, buf: &[u8]) -> io::Result<()> {
    // SAFETY: send(2) on a descriptor the caller keeps open; the buffer is valid for its length.
    let rc = unsafe {
        libc::send(
            fd,
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

impl PacedSender {
    /// A sender for output `name` whose packets carry `buffers_per_packet` buffers (one per sink), each called a
    /// `unit` in the logs, which say `on_failure` after a write failure. No link yet; the test hook is read now.
    pub fn new(name: &str, unit: &'static str, on_failure: &'static str, buffers_per_packet: usize) -> Self {
        Self {
            name: name.to_string(),
            unit,
            on_failure,
            buffers_per_packet,
            sinks: Vec::new(),
            queue: VecDeque::new(),
            pool: Vec::new(),
            drop_all: super::test_drop_packets(),
            counts: SendCounts::default(),
        }
    }

    /// Overrides the test hook (tests).
    #[cfg(test)]
    pub(crate) fn with_drop_all(mut self, drop_all: bool) -> Self {
        self.drop_all = drop_all;
        self
    }

    /// Starts sending to `sinks` (one per buffer of a packet); the pool is filled up to [`POOL_PACKETS`] packets
    /// with buffers of at least `buffer_bytes` each. Whatever was queued for an earlier link is discarded.
    pub fn attach(&mut self, sinks: Vec<Box<dyn SduSink>>, buffer_bytes: usize) {
        debug_assert_eq!(sinks.len(), self.buffers_per_packet);
        self.detach();
        self.sinks = sinks;
        while self.pool.len() < POOL_PACKETS {
            self.pool.push(Vec::new());
        }
        for packet in &mut self.pool {
            packet.resize_with(self.buffers_per_packet, Vec::new);
            for b in packet.iter_mut() {
                b.reserve(buffer_bytes.saturating_sub(b.len()));
            }
        }
    }

    /// Stops sending: the sinks are dropped and the queue goes back to the pool.
    pub fn detach(&mut self) {
        self.sinks.clear();
        while let Some((_, packet)) = self.queue.pop_front() {
            self.pool.push(packet);
        }
    }

    /// The sinks, e.g. to read their backlog.
    pub fn sinks_mut(&mut self) -> &mut [Box<dyn SduSink>] {
        &mut self.sinks
    }

    /// A packet's buffers to fill (from the pool; allocated only when the pool ran dry), one per sink, holding
    /// whatever they held before: the caller sets their contents and length, then [`queue`](Self::queue)s them.
    pub fn take_buffers(&mut self) -> Vec<Vec<u8>> {
        self.pool
            .pop()
            .unwrap_or_else(|| vec![Vec::new(); self.buffers_per_packet])
    }

    /// Queues a packet whose audio starts at output frame `first_frame` (after those queued before it).
    pub fn queue(&mut self, first_frame: u64, buffers: Vec<Vec<u8>>) {
        debug_assert_eq!(buffers.len(), self.buffers_per_packet);
        self.queue.push_back((first_frame, buffers));
    }

    /// First frame of the next packet to send.
    pub fn next_frame(&self) -> Option<u64> {
        self.queue.front().map(|(n, _)| *n)
    }

    /// When the loop should run next for this sender (see [`LocalClocked::wake_at`]).
    pub fn wake_at(&self, clock: &LocalClocked, now: LocalTime) -> LocalTime {
        clock.wake_at(self.next_frame(), now)
    }

    /// Packets queued.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Counts so far.
    pub fn counts(&self) -> SendCounts {
        self.counts
    }

    /// Sends every queued packet that is due at `now` on `clock`, in order. A congested sink drops its buffer
    /// (counted) and sending goes on; any other write error is logged, ends the flush, detaches the link and is
    /// returned (the output tells its control side to set the link up again).
    pub fn flush_due(&mut self, clock: &LocalClocked, now: LocalTime) -> Result<(), io::Error> {
        if self.sinks.is_empty() {
            return Ok(());
        }
        while let Some(&(first, _)) = self.queue.front() {
            if !clock.is_due(first, now) {
                break;
            }
            let (_, packet) = self.queue.pop_front().expect("front exists");
            let mut failed = None;
            for (sink, buf) in self.sinks.iter_mut().zip(&packet) {
                if self.drop_all {
                    self.counts.sent += 1; // TEST-ONLY (RIG_BREAK=send): dropped as if sent
                    continue;
                }
                match sink.send(buf) {
                    Ok(()) => {
                        self.counts.sent += 1;
                        if self.counts.sent % 1000 == 0 {
                            tracing::debug!(
                                output = self.name,
                                "{} {} sent, {} dropped",
                                self.counts.sent,
                                self.unit,
                                self.counts.dropped
                            );
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.counts.dropped += 1;
                        if self.counts.dropped.is_power_of_two() {
                            tracing::warn!(
                                output = self.name,
                                "link congested: {} {} dropped so far",
                                self.counts.dropped,
                                self.unit
                            );
                        }
                    }
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            self.pool.push(packet);
            if let Some(e) = failed {
                tracing::warn!(
                    output = self.name,
                    "{} write failed ({e}); {}",
                    self.unit,
                    self.on_failure
                );
                self.counts.write_errors += 1;
                self.detach();
                return Err(e);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A sink that records what it got and answers with the errors queued in `fail` (then Ok).
    #[derive(Clone, Default)]
    struct Recorder {
        got: Arc<Mutex<Vec<Vec<u8>>>>,
        fail: Arc<Mutex<Vec<io::ErrorKind>>>,
    }

    impl SduSink for Recorder {
        fn send(&mut self, sdu: &[u8]) -> io::Result<()> {
            if let Some(kind) = self.fail.lock().unwrap().pop() {
                return Err(kind.into());
            }
            self.got.lock().unwrap().push(sdu.to_vec());
            Ok(())
        }
        fn backlog_sdus(&mut self) -> Option<u32> {
            None
        }
    }

    /// A clock anchored at 0 with a 10 ms lead: frame n is due at 10 ms + n / 48 kHz (less the 0.5 ms early
    /// margin).
    fn clock() -> LocalClocked {
        let mut c = LocalClocked::new(10_000_000, 0);
        c.status(LocalTime::from_ns(0));
        c
    }

    fn sender(sinks: &[Recorder], drop_all: bool) -> PacedSender {
        let mut s = PacedSender::new("t", "packets", "test", sinks.len()).with_drop_all(drop_all);
        s.attach(
            sinks.iter().map(|r| Box::new(r.clone()) as Box<dyn SduSink>).collect(),
            64,
        );
        s
    }

    fn queue_packets(s: &mut PacedSender, firsts: &[u64]) {
        for &f in firsts {
            let mut bufs = s.take_buffers();
            for (i, b) in bufs.iter_mut().enumerate() {
                b.clear();
                b.extend_from_slice(&[f as u8, i as u8]);
            }
            s.queue(f, bufs);
        }
    }

    #[test]
    fn sends_each_packet_when_its_first_frame_is_due_in_order() {
        let sinks = [Recorder::default(), Recorder::default()];
        let mut s = sender(&sinks, false);
        let c = clock();
        queue_packets(&mut s, &[0, 96, 192]); // due at 10, 12, 14 ms
        s.flush_due(&c, LocalTime::from_ns(9_000_000)).unwrap();
        assert!(sinks[0].got.lock().unwrap().is_empty(), "nothing before 9.5 ms");
        assert_eq!(
            s.wake_at(&c, LocalTime::from_ns(9_000_000)),
            LocalTime::from_ns(10_000_000)
        );
        s.flush_due(&c, LocalTime::from_ns(12_000_000)).unwrap();
        assert_eq!(*sinks[0].got.lock().unwrap(), vec![vec![0, 0], vec![96, 0]]);
        assert_eq!(*sinks[1].got.lock().unwrap(), vec![vec![0, 1], vec![96, 1]]);
        assert_eq!((s.queued(), s.next_frame()), (1, Some(192)));
        assert_eq!(s.counts().sent, 4, "counted per buffer");
    }

    #[test]
    fn a_congested_sink_drops_and_a_failed_one_detaches_the_link() {
        let sinks = [Recorder::default()];
        let mut s = sender(&sinks, false);
        let c = clock();
        sinks[0].fail.lock().unwrap().push(io::ErrorKind::WouldBlock);
        queue_packets(&mut s, &[0, 48]);
        s.flush_due(&c, LocalTime::from_ns(20_000_000)).unwrap();
        assert_eq!(sinks[0].got.lock().unwrap().len(), 1);
        assert_eq!(
            s.counts(),
            SendCounts {
                sent: 1,
                dropped: 1,
                write_errors: 0
            }
        );
        sinks[0].fail.lock().unwrap().push(io::ErrorKind::BrokenPipe);
        queue_packets(&mut s, &[96, 144]);
        let e = s.flush_due(&c, LocalTime::from_ns(20_000_000)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(s.counts().write_errors, 1);
        assert_eq!(s.queued(), 0, "the rest of the queue is discarded with the link");
        queue_packets(&mut s, &[192]);
        s.flush_due(&c, LocalTime::from_ns(30_000_000)).unwrap();
        assert_eq!(sinks[0].got.lock().unwrap().len(), 1, "nothing is sent without a link");
    }

    #[test]
    fn the_drop_hook_counts_packets_as_sent_and_writes_none() {
        let sinks = [Recorder::default()];
        let mut s = sender(&sinks, true);
        queue_packets(&mut s, &[0, 48]);
        s.flush_due(&clock(), LocalTime::from_ns(20_000_000)).unwrap();
        assert!(sinks[0].got.lock().unwrap().is_empty());
        assert_eq!(s.counts().sent, 2);
    }

    #[test]
    fn buffers_come_back_to_the_pool_and_are_reused() {
        let sinks = [Recorder::default()];
        let mut s = sender(&sinks, false);
        let c = clock();
        assert_eq!(s.pool.len(), POOL_PACKETS);
        assert!(s.pool.iter().all(|p| p[0].capacity() >= 64), "preallocated at attach");
        let mut seen = std::collections::HashSet::new();
        for i in 0..10 * POOL_PACKETS as u64 {
            let bufs = s.take_buffers();
            seen.insert(bufs[0].as_ptr() as usize);
            s.queue(i * 48, bufs);
            s.flush_due(&c, LocalTime::from_ns(1_000_000_000)).unwrap();
        }
        assert!(seen.len() <= POOL_PACKETS, "{} distinct buffers", seen.len());
        assert_eq!(s.pool.len(), POOL_PACKETS);
    }
}
