//! How late things happen against when they were due: a fixed histogram of lateness with 1 µs bins, for the
//! real-time loop's wake-ups and an output writer's hand-offs (see `bench snapcast`, which reports them part by
//! part), and the [`WakeLead`] that takes a timer's fixed overshoot out of a writer's sleeps. Recording never
//! allocates, locks or blocks, so it may run on the real-time thread.
//!
//! The bins run from [`MIN_BIN_US`] (early) to [`MAX_BIN_US`]; anything beyond counts in the end bins, and the
//! minimum and maximum are kept exactly.

use serde::{Deserialize, Serialize};

/// The earliest bin, µs (also holding everything earlier).
pub const MIN_BIN_US: i64 = -200;
/// The latest bin, µs (also holding everything later).
pub const MAX_BIN_US: i64 = 2_000;
const BINS: usize = (MAX_BIN_US - MIN_BIN_US + 1) as usize;

/// A summary of one window of lateness samples, µs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatenessSummary {
    /// Samples in the window.
    pub count: u64,
    /// The earliest sample, µs (exact; signed).
    #[serde(default)]
    pub min_us: f64,
    /// Mean lateness, µs (signed: early samples count below 0).
    pub mean_us: f64,
    /// 1st percentile, µs (to the bin: 1 µs).
    #[serde(default)]
    pub p01_us: f64,
    /// Median, µs (to the bin).
    pub p50_us: f64,
    /// 99th percentile, µs (to the bin).
    pub p99_us: f64,
    /// The latest sample, µs (exact).
    pub max_us: f64,
}

/// Lateness samples of one window (see the module doc).
#[derive(Debug, Clone)]
pub struct LatenessHistogram {
    bins: Box<[u32; BINS]>,
    count: u64,
    sum_ns: i128,
    min_ns: i64,
    max_ns: i64,
}

impl Default for LatenessHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatenessHistogram {
    /// An empty histogram (the only allocation it makes).
    pub fn new() -> Self {
        Self {
            bins: Box::new([0; BINS]),
            count: 0,
            sum_ns: 0,
            min_ns: i64::MAX,
            max_ns: i64::MIN,
        }
    }

    /// Counts one sample: done `late_ns` after it was due (negative: early).
    pub fn record_ns(&mut self, late_ns: i64) {
        let bin = (late_ns.div_euclid(1_000).clamp(MIN_BIN_US, MAX_BIN_US) - MIN_BIN_US) as usize;
        self.bins[bin] = self.bins[bin].saturating_add(1);
        self.count += 1;
        self.sum_ns += late_ns as i128;
        self.min_ns = self.min_ns.min(late_ns);
        self.max_ns = self.max_ns.max(late_ns);
    }

    /// Samples counted since the last [`clear`](Self::clear).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The summary of what was counted (None when nothing was).
    pub fn summary(&self) -> Option<LatenessSummary> {
        if self.count == 0 {
            return None;
        }
        let at = |q: f64| -> f64 {
            let rank = ((self.count as f64 * q).ceil() as u64).max(1);
            let mut seen = 0u64;
            for (i, n) in self.bins.iter().enumerate() {
                seen += *n as u64;
                if seen >= rank {
                    return (i as i64 + MIN_BIN_US) as f64;
                }
            }
            MAX_BIN_US as f64
        };
        Some(LatenessSummary {
            count: self.count,
            min_us: self.min_ns as f64 / 1_000.0,
            mean_us: self.sum_ns as f64 / self.count as f64 / 1_000.0,
            p01_us: at(0.01),
            p50_us: at(0.50),
            p99_us: at(0.99),
            max_us: self.max_ns as f64 / 1_000.0,
        })
    }

    /// Starts a new window.
    pub fn clear(&mut self) {
        self.bins.fill(0);
        self.count = 0;
        self.sum_ns = 0;
        self.min_ns = i64::MAX;
        self.max_ns = i64::MIN;
    }
}

/// Wake-ups measured per [`WakeLead`] round.
pub const LEAD_ROUND: u32 = 200;
/// The largest lead a [`WakeLead`] takes, ns: a timer worse than this is a stall, not an overshoot to take out.
pub const MAX_LEAD_NS: i64 = 200_000;

/// How early to set a timer so that it fires on time: a timed sleep always ends some µs after the time asked for
/// (`bench snapcast` measured at least 16–18 µs, even at real-time priority, on these virtual machines), and a
/// writer whose block content is fixed in advance cannot make up for waking late. Each round of [`LEAD_ROUND`]
/// wake-ups, the lead becomes the *smallest* overshoot of the round (at most [`MAX_LEAD_NS`]), so the earliest
/// wake-ups land on time and almost none early; the jitter above that floor stays.
#[derive(Debug, Clone, Default)]
pub struct WakeLead {
    lead_ns: i64,
    round_min_ns: i64,
    round_n: u32,
}

impl WakeLead {
    /// No lead until the first round is measured.
    pub fn new() -> Self {
        Self {
            round_min_ns: i64::MAX,
            ..Self::default()
        }
    }

    /// When to set the timer for something due at `due`.
    pub fn target(&self, due: super::LocalTime) -> super::LocalTime {
        due.add_ns(-self.lead_ns)
    }

    /// The current lead, ns.
    pub fn lead_ns(&self) -> i64 {
        self.lead_ns
    }

    /// A timer set for `target` fired at `woke`. A target already past when the sleep began is no measure of the
    /// timer: leave those out (`slept` false).
    pub fn woke(&mut self, target: super::LocalTime, woke: super::LocalTime, slept: bool) {
        if !slept {
            return;
        }
        self.round_min_ns = self.round_min_ns.min(woke.ns_since(target).max(0));
        self.round_n += 1;
        if self.round_n >= LEAD_ROUND {
            self.lead_ns = self.round_min_ns.min(MAX_LEAD_NS);
            self.round_min_ns = i64::MAX;
            self.round_n = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::LocalTime;

    #[test]
    fn the_lead_becomes_each_rounds_smallest_overshoot_within_bounds() {
        let t = LocalTime::from_ns;
        let mut w = WakeLead::new();
        assert_eq!(w.target(t(1_000_000)), t(1_000_000));
        // Overshoots of 17–80 µs: after a round the lead is 17 µs, and a wake-up with the floor overshoot is on time.
        for i in 0..LEAD_ROUND as i64 {
            let target = w.target(t(i * 5_000_000));
            w.woke(target, target.add_ns(17_000 + (i * 7919) % 63_000), true);
        }
        assert_eq!(w.lead_ns(), 17_000);
        assert_eq!(w.target(t(10_000_000)), t(10_000_000 - 17_000));
        // Targets already past (no sleep) do not count; a stalled timer's lead is capped.
        for _ in 0..LEAD_ROUND {
            w.woke(t(0), t(0), false);
        }
        assert_eq!(w.lead_ns(), 17_000);
        for _ in 0..LEAD_ROUND {
            w.woke(t(0), t(5_000_000), true);
        }
        assert_eq!(w.lead_ns(), MAX_LEAD_NS);
    }

    #[test]
    fn percentiles_come_from_the_bins_and_the_maximum_is_exact() {
        let mut h = LatenessHistogram::new();
        assert_eq!(h.summary(), None);
        // 98 samples at 3.x µs, one at 40 µs, one at 5 ms (beyond the last bin).
        for i in 0..98 {
            h.record_ns(3_000 + i * 5);
        }
        h.record_ns(40_000);
        h.record_ns(5_000_123);
        let s = h.summary().unwrap();
        assert_eq!(s.count, 100);
        assert_eq!(s.p50_us, 3.0);
        assert_eq!(s.p99_us, 40.0);
        assert_eq!(s.max_us, 5_000.123);
        let mean_ns = (98 * 3_000 + 5 * (97 * 98 / 2) + 40_000 + 5_000_123) as f64 / 100.0;
        assert!((s.mean_us - mean_ns / 1_000.0).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn early_samples_have_bins_of_their_own_down_to_the_first() {
        let mut h = LatenessHistogram::new();
        h.record_ns(-10_000);
        h.record_ns(10_000);
        let s = h.summary().unwrap();
        assert_eq!(s.p01_us, -10.0);
        assert_eq!(s.p50_us, -10.0);
        assert_eq!(s.p99_us, 10.0);
        assert_eq!(s.mean_us, 0.0);
        assert_eq!(s.max_us, 10.0);
        assert_eq!(s.min_us, -10.0);
        h.record_ns(-1_000_000);
        assert_eq!(h.summary().unwrap().p01_us, MIN_BIN_US as f64);
        h.clear();
        assert_eq!(h.count(), 0);
        assert_eq!(h.summary(), None);
    }
}
