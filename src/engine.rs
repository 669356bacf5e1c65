//! The engine: pumps the sources and ticks every player, in real time or in virtual time.
//!
//! The real-time path is one thread that wakes every [`TICK_NS`]; nothing on it blocks on D-Bus or the network
//! (sources that need the network run on tokio and push into their timeline; slow sinks have writer threads).
//! The same engine runs in virtual time for the benchmark and the tests, with a [`ManualClock`].

use crate::output::player::{Player, PlayerStatus};
use crate::source::Source;
use crate::timeline::{Clock, LocalTime, ManualClock, SystemClock};
use std::sync::atomic::{AtomicBool, Ordering};

/// Engine period.
pub const TICK_NS: i64 = 5_000_000;

/// Sources and players, ticked together.
#[derive(Default)]
pub struct Engine {
    /// Built-in sources pumped each tick.
    pub sources: Vec<Box<dyn Source>>,
    /// One player per output.
    pub players: Vec<Player>,
}

impl Engine {
    /// One tick at `now`.
    pub fn tick(&mut self, now: LocalTime) {
        for s in &mut self.sources {
            s.pump(now);
        }
        for p in &mut self.players {
            p.tick(now);
        }
    }

    /// Status of every player.
    pub fn status(&self) -> Vec<PlayerStatus> {
        self.players.iter().map(|p| p.status()).collect()
    }

    /// Runs in virtual time from the clock's current time for `duration_ns`, with each wake-up late by a random
    /// 0..`wake_jitter_ns` (as a real thread is). Calls `each_tick` after every tick.
    pub fn run_virtual(
        &mut self,
        clock: &ManualClock,
        duration_ns: i64,
        wake_jitter_ns: i64,
        seed: u64,
        mut each_tick: impl FnMut(&mut Engine, LocalTime),
    ) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let start = clock.now();
        let mut k = 0i64;
        loop {
            let nominal = start.add_ns(k * TICK_NS);
            if nominal.ns_since(start) > duration_ns {
                break;
            }
            let jitter = if wake_jitter_ns > 0 {
                rng.i64(0..wake_jitter_ns)
            } else {
                0
            };
            clock.set(nominal.add_ns(jitter));
            let now = clock.now();
            self.tick(now);
            each_tick(self, now);
            k += 1;
        }
    }

    /// Runs in real time until `stop` is set or `until` passes. Calls `each_second` about once a second.
    pub fn run_realtime(
        &mut self,
        until: Option<LocalTime>,
        stop: &AtomicBool,
        mut each_second: impl FnMut(&mut Engine, LocalTime),
    ) {
        let clock = SystemClock;
        let mut next = clock.now();
        let mut next_report = next.add_ns(1_000_000_000);
        while !stop.load(Ordering::Relaxed) {
            let now = clock.now();
            if until.is_some_and(|u| now >= u) {
                break;
            }
            self.tick(now);
            if now >= next_report {
                each_second(self, now);
                next_report = next_report.add_ns(1_000_000_000);
            }
            next = next.add_ns(TICK_NS);
            if next < now {
                // We overslept (machine stalled): don't try to catch up tick by tick.
                next = now.add_ns(TICK_NS);
            }
            SystemClock::sleep_until(next);
        }
    }

    /// Closes every output.
    pub fn close(&mut self) {
        for p in &mut self.players {
            p.close();
        }
    }
}
