//! The server-clock estimator: `offset = server − local` from Snapcast Time exchanges.
//!
//! Each exchange gives `c2s` (server receive − client send, as the server measured it) and `s2c` (client receive −
//! server send). With a symmetric path, `offset = (c2s − s2c) / 2`. Like snapclient, the estimate is the median of
//! the last [`WINDOW`] samples, which shrugs off the occasional slow round trip; the window is cleared when the
//! previous sample is older than [`STALE_AFTER_NS`] (the machine slept, or the connection was down). One estimator
//! serves every output that listens to the same server.

use super::{LocalTime, ServerTime};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// How many offset samples the median is taken over (snapclient: 200).
pub const WINDOW: usize = 200;
/// A gap this long since the last sample throws the window away.
pub const STALE_AFTER_NS: i64 = 60_000_000_000;

/// Median-filtered estimate of `server − local`.
#[derive(Debug, Clone, Default)]
pub struct ServerClock {
    samples_ns: VecDeque<i64>,
    last_sample: Option<LocalTime>,
    offset_ns: Option<i64>,
    /// This is the local clock itself (a built-in source): never measured, no drift against local outputs.
    local: bool,
    /// Set by [`set_estimate`](Self::set_estimate): the server clock's rate against the local one, ppm, and the
    /// local time `offset_ns` holds at. None for the median estimate (its rate is taken as equal).
    skew: Option<(LocalTime, f64)>,
}

/// The server-to-local mapping at one moment, copied out of a [`ServerClock`] (no lock held while it is used).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClockMapping {
    /// `server − local` at `at`.
    pub offset_ns: i64,
    /// The local time the offset holds at.
    pub at: LocalTime,
    /// How fast the server clock runs against the local one, ppm (0: the same rate).
    pub ppm: f64,
}

impl ClockMapping {
    /// The server time at local time `t`.
    pub fn to_server(&self, t: LocalTime) -> ServerTime {
        let drift = (t.ns_since(self.at) as f64 * self.ppm * 1e-6).round() as i64;
        ServerTime::from_ns(t.as_ns() + self.offset_ns + drift)
    }
}

/// An estimator shared by all connections to one server.
pub type SharedServerClock = Arc<Mutex<ServerClock>>;

impl ServerClock {
    /// An estimator with no samples yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// An estimator that knows the offset exactly (a built-in source runs on the local clock: offset 0).
    pub fn fixed(offset_ns: i64) -> Self {
        Self {
            offset_ns: Some(offset_ns),
            ..Self::default()
        }
    }

    /// The local clock itself, for built-in sources (offset 0 forever). Outputs paced by the local clock need no
    /// rate correction against it.
    pub fn local() -> Self {
        Self {
            local: true,
            ..Self::fixed(0)
        }
    }

    /// True for [`local`](Self::local): the source runs on this machine's clock.
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// Adds one Time exchange measured at local time `now`.
    pub fn add_exchange(&mut self, c2s_ns: i64, s2c_ns: i64, now: LocalTime) {
        self.add_offset_sample((c2s_ns - s2c_ns) / 2, now);
    }

    /// Adds one raw `server − local` sample measured at `now`.
    pub fn add_offset_sample(&mut self, offset_ns: i64, now: LocalTime) {
        self.local = false;
        self.skew = None;
        if let Some(last) = self.last_sample {
            if now.ns_since(last) > STALE_AFTER_NS {
                self.samples_ns.clear();
            }
        }
        self.last_sample = Some(now);
        if self.samples_ns.len() == WINDOW {
            self.samples_ns.pop_front();
        }
        self.samples_ns.push_back(offset_ns);
        let mut sorted: Vec<i64> = self.samples_ns.iter().copied().collect();
        sorted.sort_unstable();
        self.offset_ns = Some(sorted[sorted.len() / 2]);
    }

    /// Replaces the estimate with one a source filtered itself (a capture card's clock fit, see
    /// `source::capture`): `server − local` is `offset_ns` at local time `now` and the server clock runs `ppm`
    /// faster than the local one. No median, no window: the caller's fit is the filter.
    pub fn set_estimate(&mut self, offset_ns: i64, ppm: f64, now: LocalTime) {
        self.local = false;
        self.samples_ns.clear();
        self.last_sample = Some(now);
        self.offset_ns = Some(offset_ns);
        self.skew = Some((now, ppm));
    }

    /// The mapping as it stands, if there is an estimate.
    pub fn mapping(&self) -> Option<ClockMapping> {
        let offset_ns = self.offset_ns?;
        let (at, ppm) = self.skew.unwrap_or((LocalTime::from_ns(0), 0.0));
        Some(ClockMapping { offset_ns, at, ppm })
    }

    /// Forgets every sample (after a reconnect to a possibly different server).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// The current estimate of `server − local`, if any sample has arrived.
    pub fn offset_ns(&self) -> Option<i64> {
        self.offset_ns
    }

    /// How many samples the current estimate is based on.
    pub fn sample_count(&self) -> usize {
        self.samples_ns.len()
    }

    /// The local time at which the server clock shows `t`.
    pub fn to_local(&self, t: ServerTime) -> Option<LocalTime> {
        let m = self.mapping()?;
        // Invert to_server: t = l + offset + (l − at)·ppm ⇒ l = (t − offset + at·ppm) / (1 + ppm).
        let k = m.ppm * 1e-6;
        let l = (t.as_ns() as f64 - m.offset_ns as f64 + m.at.as_ns() as f64 * k) / (1.0 + k);
        Some(LocalTime::from_ns(l.round() as i64))
    }

    /// The server time at local time `t`.
    pub fn to_server(&self, t: LocalTime) -> Option<ServerTime> {
        self.mapping().map(|m| m.to_server(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    #[test]
    fn symmetric_exchange_gives_exact_offset() {
        // server = local + 5 s; one-way delay 1 ms each way.
        let offset = 5_000 * MS;
        let mut c = ServerClock::new();
        let c2s = MS + offset; // server_recv − client_send
        let s2c = MS - offset; // client_recv − server_send
        c.add_exchange(c2s, s2c, LocalTime::from_ns(0));
        assert_eq!(c.offset_ns(), Some(offset));
        assert_eq!(
            c.to_server(LocalTime::from_ns(10)),
            Some(ServerTime::from_ns(10 + offset))
        );
        assert_eq!(c.to_local(ServerTime::from_ns(offset)), Some(LocalTime::from_ns(0)));
    }

    #[test]
    fn a_set_estimate_with_a_rate_maps_both_ways() {
        // A capture card 300 ppm fast: server − local grows 300 ns per ms of local time.
        let mut c = ServerClock::new();
        c.set_estimate(5 * MS, 300.0, LocalTime::from_ns(1_000 * MS));
        assert!(!c.is_local());
        assert_eq!(
            c.to_server(LocalTime::from_ns(1_000 * MS)),
            Some(ServerTime::from_ns(1_005 * MS))
        );
        // 1 s later: 300 µs more.
        assert_eq!(
            c.to_server(LocalTime::from_ns(2_000 * MS)),
            Some(ServerTime::from_ns(2_005 * MS + 300_000))
        );
        let back = c.to_local(ServerTime::from_ns(2_005 * MS + 300_000)).unwrap();
        assert!((back.as_ns() - 2_000 * MS).abs() <= 1, "{back:?}");
        // A median sample afterwards drops the rate again.
        c.add_offset_sample(7 * MS, LocalTime::from_ns(3_000 * MS));
        assert_eq!(c.mapping().unwrap().ppm, 0.0);
        assert_eq!(c.to_server(LocalTime::from_ns(0)), Some(ServerTime::from_ns(7 * MS)));
    }

    #[test]
    fn median_rejects_outliers_from_slow_round_trips() {
        let mut c = ServerClock::new();
        for i in 0..100 {
            // one in five exchanges has a 30 ms delay on the way back: a skewed sample.
            let s2c = if i % 5 == 0 { 30 * MS } else { MS };
            c.add_exchange(MS + 7 * MS, s2c - 7 * MS, LocalTime::from_ns(i * 1_000 * MS));
        }
        assert_eq!(c.offset_ns(), Some(7 * MS));
    }

    #[test]
    fn window_is_bounded_and_stale_samples_are_dropped() {
        let mut c = ServerClock::new();
        for i in 0..(WINDOW as i64 + 50) {
            c.add_offset_sample(1, LocalTime::from_ns(i * MS));
        }
        assert_eq!(c.sample_count(), WINDOW);
        c.add_offset_sample(99, LocalTime::from_ns(STALE_AFTER_NS + 1_000 * MS));
        assert_eq!(c.sample_count(), 1);
        assert_eq!(c.offset_ns(), Some(99));
    }

    #[test]
    fn no_estimate_before_first_sample() {
        let c = ServerClock::new();
        assert_eq!(c.offset_ns(), None);
        assert_eq!(c.to_local(ServerTime::from_ns(1)), None);
        assert_eq!(
            ServerClock::fixed(3).to_local(ServerTime::from_ns(3)),
            Some(LocalTime::from_ns(0))
        );
    }
}
