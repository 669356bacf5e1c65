//! The engine: pumps the sources and ticks every player, in real time or in virtual time.
//!
//! The real-time path is one thread that wakes every [`TICK_NS`], or, when every output paces its own packets
//! (a2dp, broadcast), just when the next packet is due ([`Engine::next_wake`]); nothing on it blocks on D-Bus or the network
//! (sources that need the network run on tokio and push into their timeline; slow sinks have writer threads).
//! The same engine runs in virtual time for the benchmark and the tests, with a [`ManualClock`].
//!
//! Control from outside (the service's control socket, config reload) goes through an [`EngineHandle`]: commands
//! are queued on a channel that the loop drains each tick without blocking ([`Engine::serve`]); replies go back on
//! one-shot channels (sending never blocks); a [`StatusSnapshot`] is published about once a second with
//! `try_lock`, so a slow reader can only make the loop skip one publication; and a [`Heartbeat`] (one atomic
//! store per tick) tells the watchdog that the loop is alive. Players and sources leaving the engine are handed
//! back to the control side, so closing them (flushing a file, joining a thread) never happens on the loop.

use crate::output::player::{Player, PlayerStatus};
use crate::source::Source;
use crate::timeline::clock::REALTIME_PRIORITY;
use crate::timeline::lateness::{LatenessHistogram, LatenessSummary};
use crate::timeline::{Clock, LocalTime, ManualClock, SystemClock};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{self, TryRecvError};
use std::sync::{Arc, Mutex};

/// Engine period for outputs that do not name their own wake-up time.
pub const TICK_NS: i64 = 5_000_000;

/// Longest sleep of the real-time loop whatever the outputs ask: commands, the heartbeat and the sources are
/// served at least this often.
pub const MAX_SLEEP_NS: i64 = 20_000_000;

/// Shortest sleep: a wake-up time already past (an output that misjudged) cannot make the real-time thread spin.
pub const MIN_SLEEP_NS: i64 = 100_000;

/// How often the loop publishes a [`StatusSnapshot`] (and also right after it applied commands).
pub const STATUS_PERIOD_NS: i64 = 1_000_000_000;

/// Commands applied per tick at most, so a flood of requests cannot stall a tick (the rest wait a tick).
pub const MAX_COMMANDS_PER_TICK: usize = 64;

/// What the control side can ask of the running engine.
pub enum EngineCommand {
    /// Sets an output's manual offset, ns (positive plays later).
    SetOffset {
        /// Output name.
        name: String,
        /// Offset, ns.
        ns: i64,
    },
    /// Sets an output's local volume, percent.
    SetVolume {
        /// Output name.
        name: String,
        /// Volume, percent (clamped to 100).
        pct: u8,
    },
    /// Enables (plays) or disables (silence, stays in sync) an output.
    Enable {
        /// Output name.
        name: String,
        /// On or off.
        on: bool,
    },
    /// Sets an output's acoustic calibration, ns (positive: the sink is slower than it reports).
    SetCalibration {
        /// Output name.
        name: String,
        /// Calibration, ns.
        ns: i64,
    },
    /// Schedules a calibration burst to be heard through an output at a local time (see
    /// [`Player::schedule_burst`]); `None` removes one not yet played.
    Burst {
        /// Output name.
        name: String,
        /// When it must be heard and the burst (mono, 48 kHz).
        burst: Option<(LocalTime, Arc<Vec<f32>>)>,
    },
    /// Adds a player (opened on the control side). Refused if one with the same name is there.
    Add(Box<Player>),
    /// Removes a player; the reply hands it back to be closed off the real-time path.
    Remove {
        /// Output name.
        name: String,
    },
    /// Replaces every built-in source; the reply hands the old ones back.
    SetSources(Vec<Box<dyn Source>>),
}

impl std::fmt::Debug for EngineCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SetOffset { name, ns } => write!(f, "SetOffset({name}, {ns} ns)"),
            Self::SetVolume { name, pct } => write!(f, "SetVolume({name}, {pct} %)"),
            Self::Enable { name, on } => write!(f, "Enable({name}, {on})"),
            Self::SetCalibration { name, ns } => write!(f, "SetCalibration({name}, {ns} ns)"),
            Self::Burst { name, burst } => write!(f, "Burst({name}, at {:?})", burst.as_ref().map(|b| b.0)),
            Self::Add(p) => write!(f, "Add({})", p.name()),
            Self::Remove { name } => write!(f, "Remove({name})"),
            Self::SetSources(s) => write!(f, "SetSources({} sources)", s.len()),
        }
    }
}

/// The engine's answer to one command.
pub enum EngineReply {
    /// Applied.
    Done,
    /// No output has that name; these are the known ones.
    UnknownOutput {
        /// The known names, in engine order.
        known: Vec<String>,
    },
    /// `Add` refused: an output with that name is already playing (the player is handed back).
    AlreadyThere(Box<Player>),
    /// `Remove`: the player, to be closed by the caller.
    Removed(Box<Player>),
    /// The command could not be carried out, and why.
    Refused(String),
    /// `SetSources`: the previous sources, to be dropped by the caller.
    OldSources(Vec<Box<dyn Source>>),
}

impl std::fmt::Debug for EngineReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Done => write!(f, "Done"),
            Self::UnknownOutput { known } => write!(f, "UnknownOutput(known: {known:?})"),
            Self::AlreadyThere(p) => write!(f, "AlreadyThere({})", p.name()),
            Self::Removed(p) => write!(f, "Removed({})", p.name()),
            Self::OldSources(s) => write!(f, "OldSources({})", s.len()),
            Self::Refused(why) => write!(f, "Refused({why})"),
        }
    }
}

struct Envelope {
    cmd: EngineCommand,
    reply: Option<tokio::sync::oneshot::Sender<EngineReply>>,
}

/// What the loop publishes about itself: every player's status and when it was taken.
#[derive(Debug, Clone, Default)]
pub struct StatusSnapshot {
    /// One entry per player, in engine order.
    pub players: Vec<PlayerStatus>,
    /// When it was taken (None: not published yet).
    pub taken_at: Option<LocalTime>,
    /// The sources' counters (see [`Source::counters`]), all sources together.
    pub source_counters: Vec<(&'static str, u64)>,
    /// Ticks run so far.
    pub ticks: u64,
    /// The loop's load over the last [`LOAD_WINDOW_NS`] (None: no window completed yet).
    pub load: Option<EngineLoad>,
}

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
struct LoadMeter {
    start: LocalTime,
    cpu_start_ns: i64,
    wakeups: u64,
    sources_ns: i64,
    players_ns: Vec<(String, i64)>,
    /// Each wake-up's lateness (kept across windows: cleared, never reallocated, on the real-time thread).
    wake_late: LatenessHistogram,
    realtime: bool,
}

impl LoadMeter {
    fn new(now: LocalTime) -> Self {
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

    fn add_player(&mut self, name: &str, ns: i64) {
        match self.players_ns.iter_mut().find(|(n, _)| n == name) {
            Some((_, t)) => *t += ns,
            None => self.players_ns.push((name.to_string(), ns)),
        }
    }

    /// The load when the window is over at `now` (and a new window begins), else None.
    fn finish(&mut self, now: LocalTime) -> Option<EngineLoad> {
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

/// The loop's pulse: the local time of its last tick, stored once per tick.
#[derive(Debug, Default)]
pub struct Heartbeat {
    last_tick_ns: AtomicI64,
    ticks: AtomicU64,
}

impl Heartbeat {
    /// Records a tick at `now`.
    pub fn beat(&self, now: LocalTime) {
        self.last_tick_ns.store(now.as_ns(), Ordering::Relaxed);
        self.ticks.fetch_add(1, Ordering::Relaxed);
    }

    /// Time since the last tick at `now`, ns (None: it never ticked).
    pub fn age_ns(&self, now: LocalTime) -> Option<i64> {
        match self.ticks.load(Ordering::Relaxed) {
            0 => None,
            _ => Some(now.ns_since(LocalTime::from_ns(self.last_tick_ns.load(Ordering::Relaxed)))),
        }
    }

    /// Ticks so far.
    pub fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }
}

/// The control side of a running engine. Cheap to clone; every method is safe to call from async code (none
/// blocks on the loop: sends are unbounded, the snapshot lock is only ever `try_lock`ed by the loop).
#[derive(Clone)]
pub struct EngineHandle {
    commands: mpsc::Sender<Envelope>,
    status: Arc<Mutex<StatusSnapshot>>,
    heartbeat: Arc<Heartbeat>,
}

/// Why a command got no reply.
#[derive(Debug, thiserror::Error)]
#[error("the engine is not running")]
pub struct EngineGone;

impl EngineHandle {
    /// Queues `cmd` and waits for the loop's reply (within a tick or two while it runs).
    pub async fn call(&self, cmd: EngineCommand) -> Result<EngineReply, EngineGone> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.commands
            .send(Envelope { cmd, reply: Some(tx) })
            .map_err(|_| EngineGone)?;
        rx.await.map_err(|_| EngineGone)
    }

    /// [`Self::call`] from a thread outside the async runtime (the calibration's): waits for the reply.
    pub fn call_blocking(&self, cmd: EngineCommand) -> Result<EngineReply, EngineGone> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.commands
            .send(Envelope { cmd, reply: Some(tx) })
            .map_err(|_| EngineGone)?;
        rx.blocking_recv().map_err(|_| EngineGone)
    }

    /// Queues `cmd` without waiting for a reply.
    pub fn send(&self, cmd: EngineCommand) -> Result<(), EngineGone> {
        self.commands
            .send(Envelope { cmd, reply: None })
            .map_err(|_| EngineGone)
    }

    /// The latest published snapshot.
    pub fn status(&self) -> StatusSnapshot {
        self.status.lock().expect("status lock").clone()
    }

    /// The loop's heartbeat.
    pub fn heartbeat(&self) -> &Arc<Heartbeat> {
        &self.heartbeat
    }
}

/// The loop's side of the control channel; see [`Engine::serve`].
pub struct EngineControl {
    commands: mpsc::Receiver<Envelope>,
    status: Arc<Mutex<StatusSnapshot>>,
    heartbeat: Arc<Heartbeat>,
    next_publish: Option<LocalTime>,
    ticks: u64,
    /// The last completed load window, published with the next snapshot.
    load: Option<EngineLoad>,
}

/// A connected pair: the handle for the control side, the receiver for the loop.
pub fn control_channel() -> (EngineHandle, EngineControl) {
    let (tx, rx) = mpsc::channel();
    let status = Arc::new(Mutex::new(StatusSnapshot::default()));
    let heartbeat = Arc::new(Heartbeat::default());
    (
        EngineHandle {
            commands: tx,
            status: status.clone(),
            heartbeat: heartbeat.clone(),
        },
        EngineControl {
            commands: rx,
            status,
            heartbeat,
            next_publish: None,
            ticks: 0,
            load: None,
        },
    )
}

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

    /// When the real-time loop, having run at `now`, runs next: the earliest time a player asks for
    /// ([`Player::wake_at`]), `grid` for players that ask for none (the fixed tick), and never later than
    /// [`MAX_SLEEP_NS`] from now (nor sooner than [`MIN_SLEEP_NS`]).
    pub fn next_wake(&self, now: LocalTime, grid: LocalTime) -> LocalTime {
        self.players
            .iter()
            .map(|p| p.wake_at(now).unwrap_or(grid))
            .fold(now.add_ns(MAX_SLEEP_NS), std::cmp::min)
            .max(now.add_ns(MIN_SLEEP_NS))
    }

    /// Status of every player.
    pub fn status(&self) -> Vec<PlayerStatus> {
        self.players.iter().map(|p| p.status()).collect()
    }

    fn player_mut(&mut self, name: &str) -> Result<&mut Player, EngineReply> {
        match self.players.iter().position(|p| p.name() == name) {
            Some(i) => Ok(&mut self.players[i]),
            None => Err(EngineReply::UnknownOutput {
                known: self.players.iter().map(|p| p.name().to_string()).collect(),
            }),
        }
    }

    /// Applies one command (never blocks; what leaves the engine is handed back in the reply).
    pub fn apply(&mut self, cmd: EngineCommand) -> EngineReply {
        let set = |r: Result<&mut Player, EngineReply>, f: &dyn Fn(&mut Player)| match r {
            Ok(p) => {
                f(p);
                EngineReply::Done
            }
            Err(e) => e,
        };
        match cmd {
            EngineCommand::SetOffset { name, ns } => set(self.player_mut(&name), &|p| p.set_offset_ns(ns)),
            EngineCommand::SetVolume { name, pct } => set(self.player_mut(&name), &|p| p.set_volume_pct(pct)),
            EngineCommand::Enable { name, on } => set(self.player_mut(&name), &|p| p.set_enabled(on)),
            EngineCommand::SetCalibration { name, ns } => set(self.player_mut(&name), &|p| p.set_calibration_ns(ns)),
            EngineCommand::Burst { name, burst } => match (self.player_mut(&name), burst) {
                (Err(e), _) => e,
                (Ok(p), None) => {
                    p.clear_burst();
                    EngineReply::Done
                }
                (Ok(p), Some((at, b))) => match p.schedule_burst(at, b) {
                    Ok(_) => EngineReply::Done,
                    Err(why) => EngineReply::Refused(why.to_string()),
                },
            },
            EngineCommand::Add(p) => {
                if self.players.iter().any(|q| q.name() == p.name()) {
                    EngineReply::AlreadyThere(p)
                } else {
                    self.players.push(*p);
                    EngineReply::Done
                }
            }
            EngineCommand::Remove { name } => match self.players.iter().position(|p| p.name() == name) {
                Some(i) => EngineReply::Removed(Box::new(self.players.remove(i))),
                None => EngineReply::UnknownOutput {
                    known: self.players.iter().map(|p| p.name().to_string()).collect(),
                },
            },
            EngineCommand::SetSources(new) => EngineReply::OldSources(std::mem::replace(&mut self.sources, new)),
        }
    }

    /// The control work of one tick at `now`, after [`Engine::tick`]: beats the heartbeat, applies queued
    /// commands (at most [`MAX_COMMANDS_PER_TICK`]), publishes a snapshot when one is due or commands changed
    /// something. Never blocks: the channel is drained with `try_recv`, replies are one-shot sends, and the
    /// snapshot lock is only tried.
    pub fn serve(&mut self, ctl: &mut EngineControl, now: LocalTime) {
        ctl.ticks += 1;
        ctl.heartbeat.beat(now);
        let mut applied = 0;
        while applied < MAX_COMMANDS_PER_TICK {
            match ctl.commands.try_recv() {
                Ok(env) => {
                    let reply = self.apply(env.cmd);
                    if let Some(tx) = env.reply {
                        // The asker may have gone away; what the reply carries is then dropped here, which is
                        // the rare case of a player closed on the loop.
                        let _ = tx.send(reply);
                    }
                    applied += 1;
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if applied > 0 || ctl.next_publish.is_none_or(|t| now >= t) {
            if let Ok(mut st) = ctl.status.try_lock() {
                st.players = self.status();
                st.source_counters = self.sources.iter().flat_map(|s| s.counters()).collect();
                st.taken_at = Some(now);
                st.ticks = ctl.ticks;
                st.load = ctl.load.clone();
                ctl.next_publish = Some(now.add_ns(STATUS_PERIOD_NS));
            }
        }
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

    /// Closes every output.
    pub fn close(&mut self) {
        for p in &mut self.players {
            p.close();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo;

    fn engine(n: usize, clock: &ManualClock) -> Engine {
        demo::build(&demo::profiles(n), clock.now(), true)
    }

    /// Runs `ms` of virtual time, serving `ctl` every tick.
    fn run(e: &mut Engine, ctl: &mut EngineControl, clock: &ManualClock, ms: i64) {
        for _ in 0..ms * 1_000_000 / TICK_NS {
            clock.advance_ns(TICK_NS);
            let now = clock.now();
            e.tick(now);
            e.serve(ctl, now);
        }
    }

    #[test]
    fn commands_reach_the_named_player_and_unknown_names_list_the_known_ones() {
        let clock = ManualClock::new(LocalTime::from_ns(1_000_000_000));
        let mut e = engine(2, &clock);
        let (handle, mut ctl) = control_channel();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let name = e.players[1].name().to_string();
        let (a, b) = (handle.clone(), name.clone());
        let pending = std::thread::spawn(move || {
            rt.block_on(async {
                let r1 = a
                    .call(EngineCommand::SetOffset {
                        name: b.clone(),
                        ns: 7_000_000,
                    })
                    .await
                    .unwrap();
                let r2 = a
                    .call(EngineCommand::Enable {
                        name: "nope".into(),
                        on: false,
                    })
                    .await
                    .unwrap();
                (r1, r2)
            })
        });
        // The asker blocks until the loop serves it: keep ticking until both replies are in.
        while !pending.is_finished() {
            run(&mut e, &mut ctl, &clock, 5);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let (r1, r2) = pending.join().unwrap();
        assert!(matches!(r1, EngineReply::Done), "{r1:?}");
        assert_eq!(e.players[1].offset_ns(), 7_000_000);
        assert_eq!(e.players[0].offset_ns(), 0);
        match r2 {
            EngineReply::UnknownOutput { known } => assert_eq!(known, vec![e.players[0].name(), name.as_str()]),
            other => panic!("{other:?}"),
        }
    }

    /// An output that asks to be woken at a set time.
    struct WakesAt(Option<LocalTime>);

    impl crate::output::Output for WakesAt {
        fn kind(&self) -> &'static str {
            "wakes-at"
        }
        fn status(&mut self, _now: LocalTime) -> crate::output::OutputStatus {
            crate::output::OutputStatus::default()
        }
        fn write(&mut self, _now: LocalTime, _frames: &[i16]) -> Result<(), crate::output::OutputError> {
            Ok(())
        }
        fn wake_at(&self, _now: LocalTime) -> Option<LocalTime> {
            self.0
        }
    }

    fn wakes_at(name: &str, t: Option<LocalTime>) -> Player {
        use crate::output::player::{Feed, PlayerConfig};
        let feed = Feed {
            timeline: crate::timeline::buffer::SharedTimeline::with_capacity_ns(
                crate::output::OUTPUT_FORMAT,
                1_000_000_000,
            ),
            server_clock: Arc::new(Mutex::new(crate::timeline::server_clock::ServerClock::local())),
            settings: Arc::default(),
        };
        Player::new(PlayerConfig::named(name), feed, Box::new(WakesAt(t)))
    }

    #[test]
    fn the_loop_sleeps_until_the_earliest_output_asks_within_bounds() {
        let now = LocalTime::from_ns(1_000_000_000);
        let grid = now.add_ns(TICK_NS);
        let at = |ms: i64| Some(now.add_ns(ms * 1_000_000));
        let mut e = Engine::default();
        assert_eq!(
            e.next_wake(now, grid),
            now.add_ns(MAX_SLEEP_NS),
            "nothing to play: the longest sleep"
        );
        e.players.push(wakes_at("a2dp-a", at(17)));
        assert_eq!(
            e.next_wake(now, grid),
            now.add_ns(17_000_000),
            "one paced output: its packet time"
        );
        e.players.push(wakes_at("a2dp-b", at(9)));
        assert_eq!(e.next_wake(now, grid), now.add_ns(9_000_000), "the earliest of two");
        e.players.push(wakes_at("far", at(500)));
        assert_eq!(
            e.next_wake(now, grid),
            now.add_ns(9_000_000),
            "a far wish changes nothing"
        );
        e.players.push(wakes_at("pipe", None));
        assert_eq!(
            e.next_wake(now, grid),
            grid,
            "an output without a wish keeps the fixed tick"
        );
        let mut e = Engine::default();
        e.players.push(wakes_at("far", at(500)));
        assert_eq!(
            e.next_wake(now, grid),
            now.add_ns(MAX_SLEEP_NS),
            "never longer than the longest sleep"
        );
        e.players.push(wakes_at("past", at(-3)));
        assert_eq!(
            e.next_wake(now, grid),
            now.add_ns(MIN_SLEEP_NS),
            "a time already past cannot spin the loop"
        );
    }

    #[test]
    fn the_load_meter_sums_each_part_over_its_window() {
        let t0 = LocalTime::from_ns(5_000_000_000);
        let mut m = LoadMeter::new(t0);
        for _ in 0..1000 {
            m.sources_ns += 100_000;
            m.add_player("a", 1_000_000);
            m.add_player("b", 500_000);
            m.wakeups += 1;
        }
        assert_eq!(m.finish(t0.add_ns(LOAD_WINDOW_NS - 1)), None, "the window is not over");
        let load = m.finish(t0.add_ns(LOAD_WINDOW_NS)).expect("a window");
        assert!((load.sources_pct - 1.0).abs() < 1e-9, "{load:?}");
        assert_eq!(load.players_pct, vec![("a".to_string(), 10.0), ("b".to_string(), 5.0)]);
        assert!((load.wakeups_per_s - 100.0).abs() < 1e-9);
        assert!(load.cpu_pct >= 0.0);
        assert_eq!(
            (m.wakeups, m.sources_ns, m.players_ns.len()),
            (0, 0, 0),
            "a new window begins"
        );
    }

    #[test]
    fn add_refuses_duplicates_and_remove_hands_the_player_back() {
        let clock = ManualClock::new(LocalTime::from_ns(1_000_000_000));
        let mut e = engine(2, &clock);
        let mut other = engine(2, &clock);
        let dup = other.players.remove(0);
        let name = dup.name().to_string();
        assert!(matches!(
            e.apply(EngineCommand::Add(Box::new(dup))),
            EngineReply::AlreadyThere(_)
        ));
        let back = match e.apply(EngineCommand::Remove { name: name.clone() }) {
            EngineReply::Removed(p) => p,
            other => panic!("{other:?}"),
        };
        assert_eq!(back.name(), name);
        assert_eq!(e.players.len(), 1);
        assert!(matches!(e.apply(EngineCommand::Add(back)), EngineReply::Done));
        assert_eq!(e.players.len(), 2);
        assert!(matches!(
            e.apply(EngineCommand::Remove { name: "ghost".into() }),
            EngineReply::UnknownOutput { .. }
        ));
        match e.apply(EngineCommand::SetSources(vec![])) {
            EngineReply::OldSources(old) => assert_eq!(old.len(), 1),
            other => panic!("{other:?}"),
        }
        assert!(e.sources.is_empty());
    }

    #[test]
    fn the_loop_publishes_status_about_once_a_second_and_beats_every_tick() {
        let clock = ManualClock::new(LocalTime::from_ns(1_000_000_000));
        let mut e = engine(2, &clock);
        let (handle, mut ctl) = control_channel();
        assert!(handle.heartbeat().age_ns(clock.now()).is_none());
        run(&mut e, &mut ctl, &clock, 5);
        let first = handle.status();
        assert_eq!(first.players.len(), 2);
        let t0 = first.taken_at.unwrap();
        run(&mut e, &mut ctl, &clock, 500);
        assert_eq!(
            handle.status().taken_at,
            Some(t0),
            "published again before a second passed"
        );
        run(&mut e, &mut ctl, &clock, 600);
        let later = handle.status();
        assert!(later.taken_at.unwrap().ns_since(t0) >= STATUS_PERIOD_NS);
        assert!(later.players.iter().all(|p| p.synced), "{:?}", later.players);
        assert_eq!(handle.heartbeat().age_ns(clock.now()), Some(0));
        assert_eq!(handle.heartbeat().ticks(), 221);
        clock.advance_ns(3_000_000_000);
        assert_eq!(handle.heartbeat().age_ns(clock.now()), Some(3_000_000_000));
    }

    #[test]
    fn a_held_snapshot_lock_never_stalls_the_loop() {
        let clock = ManualClock::new(LocalTime::from_ns(1_000_000_000));
        let mut e = engine(1, &clock);
        let (handle, mut ctl) = control_channel();
        let guard = handle.status.lock().unwrap();
        run(&mut e, &mut ctl, &clock, 2_000);
        assert_eq!(guard.taken_at, None);
        drop(guard);
        run(&mut e, &mut ctl, &clock, 5);
        assert!(handle.status().taken_at.is_some());
    }

    #[test]
    fn a_flood_of_commands_is_spread_over_ticks() {
        let clock = ManualClock::new(LocalTime::from_ns(1_000_000_000));
        let mut e = engine(1, &clock);
        let (handle, mut ctl) = control_channel();
        let name = e.players[0].name().to_string();
        for i in 0..(MAX_COMMANDS_PER_TICK as i64 + 10) {
            handle
                .send(EngineCommand::SetOffset {
                    name: name.clone(),
                    ns: i,
                })
                .unwrap();
        }
        run(&mut e, &mut ctl, &clock, 5);
        assert_eq!(e.players[0].offset_ns(), MAX_COMMANDS_PER_TICK as i64 - 1);
        run(&mut e, &mut ctl, &clock, 5);
        assert_eq!(e.players[0].offset_ns(), MAX_COMMANDS_PER_TICK as i64 + 9);
    }
}
