//! What the control side asks of the running engine ([`EngineCommand`]) and what it answers ([`EngineReply`]).

use crate::output::player::Player;
use crate::source::Source;
use crate::timeline::LocalTime;
use std::sync::Arc;

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

pub(super) struct Envelope {
    pub(super) cmd: EngineCommand,
    pub(super) reply: Option<tokio::sync::oneshot::Sender<EngineReply>>,
}
