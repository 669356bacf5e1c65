//! Where the real-time loop's time goes: the [`LoadMeter`] sums each part over a [`LOAD_WINDOW_NS`] window into an
//! [`EngineLoad`].

use crate::timeline::lateness::{LatenessHistogram, LatenessSummary};
use crate::timeline::{LocalTime, SystemClock};

/// How often the real-time loop's load is summed up (logged at debug level and published).
pub const LOAD_WINDOW_NS: i64 = 10_000_000_000;

/// Where the real-time loop's time went over one window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineLoad {
    /// The loop thread's CPU time over the window, percent of one core (what `top` shows for it).
    pub cpu_pct: f64,
    /// Wall time spent in the sources' pump, percent of the window.
    pub sources_pct: f64,
    /// Wall time spent ticking each player, percent of the window, in engine order.
    pub players_pct: Vec<(String, f64)>,
    /// Wake-ups per second.
    pub wakeups_per_s: f64,
    /// How late the loop woke against the time it slept until (None: no wake-up in the window).
    pub wake_late: Option<LatenessSummary>,
    /// The loop runs at real-time priority (SCHED_FIFO); false where it was refused.
    pub realtime: bool,
}

/// Sums the loop's time per part over a window (wall time around each part, thread CPU time for the whole).
#[derive(Debug)]
pub(super) struct LoadMeter {
    pub(super) start: LocalTime,
    pub(super) cpu_start_ns: i64,
    pub(super) wakeups: u64,
    pub(super) sources_ns: i64,
    pub(super) players_ns: Vec<(String, i64)>,
    /// Each wake-up's lateness (kept across windows: cleared, never reallocated, on the real-time thread).
    pub(super) wake_late: LatenessHistogram,
    pub(super) realtime: bool,
}

impl LoadMeter {
    pub(super) fn new(now: LocalTime) -> Self {
        Self {
            start: now,
            cpu_start_ns: SystemClock::thread_cpu_ns(),
            wakeups: 0,
            sources_ns: 0,
            players_ns: Vec::new(),
            wake_late: LatenessHistogram::new(),
            realtime: false,
        }
    }

    pub(super) fn add_player(&mut self, name: &str, ns: i64) {
        match self.players_ns.iter_mut().find(|(n, _)| n == name) {
            Some((_, t)) => *t += ns,
            None => self.players_ns.push((name.to_string(), ns)),
        }
    }

    /// The load when the window is over at `now` (and a new window begins), else None.
    pub(super) fn finish(&mut self, now: LocalTime) -> Option<EngineLoad> {
        let window_ns = now.ns_since(self.start);
        if window_ns < LOAD_WINDOW_NS {
            return None;
        }
        let pct = |ns: i64| ns as f64 * 100.0 / window_ns as f64;
        let load = EngineLoad {
            cpu_pct: pct(SystemClock::thread_cpu_ns() - self.cpu_start_ns),
            sources_pct: pct(self.sources_ns),
            players_pct: self.players_ns.iter().map(|(n, t)| (n.clone(), pct(*t))).collect(),
            wakeups_per_s: self.wakeups as f64 * 1e9 / window_ns as f64,
            wake_late: self.wake_late.summary(),
            realtime: self.realtime,
        };
        self.start = now;
        self.cpu_start_ns = SystemClock::thread_cpu_ns();
        self.wakeups = 0;
        self.sources_ns = 0;
        self.players_ns.clear();
        self.wake_late.clear();
        Some(load)
    }
}
