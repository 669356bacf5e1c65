//! When to send Time requests and what to make of the replies, as snapclient does it (pure, no I/O).
//!
//! After connecting: a burst of [`QUICK_SYNCS`] requests, each sent [`QUICK_GAP_NS`] after the previous reply, so
//! the median estimate settles within a few hundred milliseconds; then one request every [`INTERVAL_NS`]. Only
//! one request is in flight at a time; if it stays unanswered for [`REPLY_TIMEOUT_NS`] the connection is
//! considered dead. Each reply gives one exchange for the [`ServerClock`](crate::timeline::server_clock):
//! `c2s` = the server's `latency` field (server receive − client send) and `s2c` = client receive − server send.

use crate::timeline::LocalTime;

/// Requests in the initial burst (snapclient: 50).
pub const QUICK_SYNCS: u32 = 50;
/// Pause between a reply and the next request during the burst, in nanoseconds (snapclient: 100 µs).
pub const QUICK_GAP_NS: i64 = 100_000;
/// Pause between a reply and the next request after the burst, in nanoseconds (snapclient: 1 s).
pub const INTERVAL_NS: i64 = 1_000_000_000;
/// A request unanswered this long means the connection is dead, in nanoseconds (snapclient: 2 s).
pub const REPLY_TIMEOUT_NS: i64 = 2_000_000_000;

/// One clock-sync exchange, ready for `ServerClock::add_exchange`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchange {
    /// Server receive − client send, nanoseconds.
    pub c2s_ns: i64,
    /// Client receive − server send, nanoseconds.
    pub s2c_ns: i64,
}

/// The schedule of one connection.
#[derive(Debug, Clone)]
pub struct TimeSync {
    quick_left: u32,
    in_flight: Option<(u16, LocalTime)>,
    next_at: LocalTime,
}

/// What the connection should do next about time sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Send a request now.
    Send,
    /// Nothing until this local time.
    WaitUntil(LocalTime),
    /// The request with this id has been unanswered for longer than [`REPLY_TIMEOUT_NS`].
    TimedOut(u16),
}

impl TimeSync {
    /// A schedule for a connection made at `now`: the first request is due at once.
    pub fn new(now: LocalTime) -> Self {
        Self {
            quick_left: QUICK_SYNCS,
            in_flight: None,
            next_at: now,
        }
    }

    /// What to do at `now`.
    pub fn due(&self, now: LocalTime) -> Due {
        match self.in_flight {
            Some((id, sent)) if now.ns_since(sent) > REPLY_TIMEOUT_NS => Due::TimedOut(id),
            Some((_, sent)) => Due::WaitUntil(sent.add_ns(REPLY_TIMEOUT_NS + 1)),
            None if now >= self.next_at => Due::Send,
            None => Due::WaitUntil(self.next_at),
        }
    }

    /// Records that request `id` went out at `now`.
    pub fn sent(&mut self, id: u16, now: LocalTime) {
        self.in_flight = Some((id, now));
    }

    /// Handles a Time reply (`refers_to` from its header, `latency_ns` its payload, `server_sent_ns` its header's
    /// `sent` stamp, `received` when its header arrived). Returns the exchange if it answers the request in flight;
    /// a stale or unsolicited reply is ignored.
    pub fn on_reply(
        &mut self,
        refers_to: u16,
        latency_ns: i64,
        server_sent_ns: i64,
        received: LocalTime,
    ) -> Option<Exchange> {
        match self.in_flight {
            Some((id, _)) if id == refers_to => {}
            _ => return None,
        }
        self.in_flight = None;
        let gap_ns = if self.quick_left > 0 {
            self.quick_left -= 1;
            QUICK_GAP_NS
        } else {
            INTERVAL_NS
        };
        self.next_at = received.add_ns(gap_ns);
        Some(Exchange {
            c2s_ns: latency_ns,
            s2c_ns: received.as_ns() - server_sent_ns,
        })
    }

    /// Requests of the initial burst not yet answered.
    pub fn quick_left(&self) -> u32 {
        self.quick_left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    #[test]
    fn burst_then_once_a_second() {
        let mut t = LocalTime::from_ns(1_000 * MS);
        let mut s = TimeSync::new(t);
        let mut sent = 0;
        while s.quick_left() > 0 {
            assert_eq!(s.due(t), Due::Send);
            s.sent(sent as u16 + 1, t);
            sent += 1;
            assert!(matches!(s.due(t), Due::WaitUntil(_)));
            t = t.add_ns(MS);
            // Server 5 s ahead, 0.5 ms each way.
            let x = s
                .on_reply(sent as u16, 5_000 * MS + MS / 2, t.as_ns() + 5_000 * MS - MS / 2, t)
                .unwrap();
            assert_eq!((x.c2s_ns - x.s2c_ns) / 2, 5_000 * MS);
            assert_eq!(s.due(t), Due::WaitUntil(t.add_ns(QUICK_GAP_NS)));
            t = t.add_ns(QUICK_GAP_NS);
        }
        assert_eq!(sent, QUICK_SYNCS);
        s.sent(99, t);
        s.on_reply(99, 0, 0, t).unwrap();
        assert_eq!(s.due(t), Due::WaitUntil(t.add_ns(INTERVAL_NS)));
        assert_eq!(s.due(t.add_ns(INTERVAL_NS)), Due::Send);
    }

    #[test]
    fn stale_replies_are_ignored_and_silence_times_out() {
        let t0 = LocalTime::from_ns(0);
        let mut s = TimeSync::new(t0);
        s.sent(7, t0);
        assert_eq!(s.on_reply(6, 0, 0, t0), None);
        assert_eq!(
            s.due(t0.add_ns(REPLY_TIMEOUT_NS)),
            Due::WaitUntil(t0.add_ns(REPLY_TIMEOUT_NS + 1))
        );
        assert_eq!(s.due(t0.add_ns(REPLY_TIMEOUT_NS + 1)), Due::TimedOut(7));
        assert!(s.on_reply(7, 0, 0, t0.add_ns(MS)).is_some());
        assert_eq!(s.on_reply(7, 0, 0, t0.add_ns(MS)), None);
    }
}
