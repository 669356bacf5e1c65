//! The loops that drive an [`Engine`]: in virtual time ([`Engine::run_virtual`]) and in real time
//! ([`Engine::run_realtime`], [`Engine::run_controlled`]), timing each part into the load meter.

use super::load::LoadMeter;
use super::{Engine, EngineControl, TICK_NS};
use crate::timeline::clock::REALTIME_PRIORITY;
use crate::timeline::{Clock, LocalTime, ManualClock, SystemClock};
use std::sync::atomic::{AtomicBool, Ordering};

impl Engine {
    /// [`Engine::tick`], timing each part into `meter`.
    fn tick_measured(&mut self, now: LocalTime, meter: &mut LoadMeter) {
        let clock = SystemClock;
        let t0 = clock.now();
        for s in &mut self.sources {
            s.pump(now);
        }
        let mut t = clock.now();
        meter.sources_ns += t.ns_since(t0);
        for p in &mut self.players {
            p.tick(now);
            let t1 = clock.now();
            meter.add_player(p.name(), t1.ns_since(t));
            t = t1;
        }
        meter.wakeups += 1;
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
        each_second: impl FnMut(&mut Engine, LocalTime),
    ) {
        self.run_loop(until, stop, None, each_second)
    }

    /// Runs in real time until `stop` is set, under control of the [`EngineHandle`] paired with `ctl`.
    pub fn run_controlled(&mut self, stop: &AtomicBool, ctl: &mut EngineControl) {
        self.run_loop(None, stop, Some(ctl), |_, _| {})
    }

    fn run_loop(
        &mut self,
        until: Option<LocalTime>,
        stop: &AtomicBool,
        mut ctl: Option<&mut EngineControl>,
        mut each_second: impl FnMut(&mut Engine, LocalTime),
    ) {
        let realtime = request_realtime_priority();
        // Where real-time priority is refused, the tick's sleeps would otherwise end up to 50 µs late.
        SystemClock::precise_wakeups();
        let clock = SystemClock;
        let mut next = clock.now();
        let mut next_report = next.add_ns(1_000_000_000);
        let mut meter = LoadMeter::new(next);
        meter.realtime = realtime;
        while !stop.load(Ordering::Relaxed) {
            let now = clock.now();
            meter.wake_late.record_ns(now.ns_since(next));
            if until.is_some_and(|u| now >= u) {
                break;
            }
            self.tick_measured(now, &mut meter);
            if let Some(load) = meter.finish(now) {
                tracing::debug!(
                    "engine load: {:.1} % of a core; in sources {:.1} %, {}; {:.0} wake-ups/s",
                    load.cpu_pct,
                    load.sources_pct,
                    load.players_pct
                        .iter()
                        .map(|(n, p)| format!("{n} {p:.1} %"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    load.wakeups_per_s
                );
                if let Some(ctl) = ctl.as_deref_mut() {
                    ctl.load = Some(load);
                }
            }
            if let Some(ctl) = ctl.as_deref_mut() {
                self.serve(ctl, now);
            }
            if now >= next_report {
                each_second(self, now);
                next_report = next_report.add_ns(1_000_000_000);
            }
            let mut grid = next.add_ns(TICK_NS);
            if grid < now {
                // We overslept (machine stalled): don't try to catch up tick by tick.
                grid = now.add_ns(TICK_NS);
            }
            next = self.next_wake(now, grid);
            SystemClock::sleep_until(next);
        }
    }
}

/// Real-time priority asked for by the engine thread (see [`REALTIME_PRIORITY`]).
pub const ENGINE_RT_PRIORITY: i32 = REALTIME_PRIORITY;

/// Asks for SCHED_FIFO on the calling thread, so a busy machine delays the 5 ms tick less; true if granted.
fn request_realtime_priority() -> bool {
    match SystemClock::realtime_priority(ENGINE_RT_PRIORITY) {
        Ok(()) => {
            tracing::info!("engine thread runs SCHED_FIFO priority {ENGINE_RT_PRIORITY}");
            true
        }
        Err(e) => {
            tracing::warn!(
                "engine thread stays at normal priority: SCHED_FIFO {ENGINE_RT_PRIORITY} refused ({e}); under \
                 systemd allow it with RestrictRealtime=no and LimitRTPRIO={ENGINE_RT_PRIORITY}"
            );
            false
        }
    }
}
