//! The control channel between the service and the loop: the [`EngineHandle`] (control side), the
//! [`EngineControl`] (loop side, served by [`Engine::serve`] each tick), the published [`StatusSnapshot`] and the
//! [`Heartbeat`].

use super::command::Envelope;
use super::{Engine, EngineCommand, EngineLoad, EngineReply, MAX_COMMANDS_PER_TICK, STATUS_PERIOD_NS};
use crate::output::player::PlayerStatus;
use crate::timeline::LocalTime;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{self, TryRecvError};
use std::sync::{Arc, Mutex};

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
    pub(super) status: Arc<Mutex<StatusSnapshot>>,
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
    pub(super) load: Option<EngineLoad>,
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

impl Engine {
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
}
