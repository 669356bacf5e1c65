//! The engine: pumps the sources and ticks every player, in real time or in virtual time.
//!
//! The real-time path is one thread that wakes every [`TICK_NS`], or, when every output paces its own packets
//! (a2dp, broadcast), just when the next packet is due ([`Engine::next_wake`]); nothing on it blocks on D-Bus or the network
//! (sources that need the network run on tokio and push into their timeline; slow sinks have writer threads).
//! The same engine runs in virtual time for the benchmark and the tests, with a [`ManualClock`](crate::timeline::ManualClock).
//!
//! Control from outside (the service's control socket, config reload) goes through an [`EngineHandle`]: commands
//! are queued on a channel that the loop drains each tick without blocking ([`Engine::serve`]); replies go back on
//! one-shot channels (sending never blocks); a [`StatusSnapshot`] is published about once a second with
//! `try_lock`, so a slow reader can only make the loop skip one publication; and a [`Heartbeat`] (one atomic
//! store per tick) tells the watchdog that the loop is alive. Players and sources leaving the engine are handed
//! back to the control side, so closing them (flushing a file, joining a thread) never happens on the loop.

mod command;
mod control;
mod load;
mod run;
#[cfg(test)]
mod tests;

pub use command::{EngineCommand, EngineReply};
pub use control::{control_channel, EngineControl, EngineGone, EngineHandle, Heartbeat, StatusSnapshot};
pub use load::{EngineLoad, LOAD_WINDOW_NS};
pub use run::ENGINE_RT_PRIORITY;

use crate::output::player::{Player, PlayerStatus};
use crate::source::Source;
use crate::timeline::LocalTime;

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

    /// Closes every output.
    pub fn close(&mut self) {
        for p in &mut self.players {
            p.close();
        }
    }
}
