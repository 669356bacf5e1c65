//! The control protocol, version [`VERSION`]: one JSON object per line each way.
//!
//! Requests carry the version and a command, plus the command's arguments:
//!
//! | `cmd` | arguments | reply `result` |
//! |---|---|---|
//! | `status` | — | [`StatusReport`] |
//! | `speakers` | — | [`SpeakersReport`] |
//! | `set-offset` | `name`, `ms` (−5000…5000, positive plays later) | [`Speaker`] after the change |
//! | `set-volume` | `name`, `pct` (0…100) | [`Speaker`] after the change |
//! | `enable`, `disable` | `name` | [`Speaker`] after the change |
//! | `reload` | — | [`ReloadReport`] (the same as SIGHUP) |
//! | `calibrate` | see [`calibrate`] (all optional) | [`CalibrateReport`] |
//!
//! Replies are `{"v":1,"ok":true,"result":…}` (with `"warnings":[…]` when something went half right, e.g. a change
//! applied but not persisted) or `{"v":1,"ok":false,"error":{"code":…,"message":…}}` with an [`ErrorCode`].
//! Unknown keys are errors, so a typo never passes silently. A server speaking a later version answers a request
//! with an older `v` as that version did, or says it does not support it.

//!
//! The parts: `request` and `response` (the wire format), `reports` (the reply types), `human` (how the
//! CLI prints them); `fixtures` holds the test fixtures other modules' tests share.

pub mod calibrate;
#[cfg(test)]
pub(crate) mod fixtures;
mod human;
mod reports;
mod request;
mod response;

use serde::{Deserialize, Serialize};

pub use calibrate::{CalibrateArgs, CalibrateMode, CalibrateReport};
pub use reports::*;
pub use request::Request;
pub use response::Response;

/// The protocol version this build speaks.
pub const VERSION: u64 = 1;
/// Longest request line accepted, bytes (without the newline).
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Every command, in the order `--help` and errors list them.
pub const COMMANDS: &[&str] = &[
    "status",
    "speakers",
    "set-offset",
    "set-volume",
    "enable",
    "disable",
    "reload",
    "calibrate",
];
/// Offsets accepted, ms.
pub const OFFSET_RANGE_MS: std::ops::RangeInclusive<f64> = crate::state::OFFSET_RANGE_MS;

/// What went wrong with a request, machine-readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// Not a JSON object, or a required key is missing or of the wrong type.
    BadRequest,
    /// `v` is not a version this server speaks.
    UnsupportedVersion,
    /// `cmd` is not a known command.
    UnknownCommand,
    /// An argument is out of range or unknown.
    InvalidArgument,
    /// No output has that name.
    UnknownOutput,
    /// The line was longer than [`MAX_LINE_BYTES`]; the connection is closed.
    LineTooLong,
    /// Too many connections; try again.
    Busy,
    /// No complete request in time; the connection is closed.
    Timeout,
    /// The service could not do it (a reload failed, the engine stopped…).
    Failed,
}

/// An error reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ProtocolError {
    /// What kind of error.
    pub code: ErrorCode,
    /// Said plainly, naming the offending input.
    pub message: String,
}

impl ProtocolError {
    /// An error of `code` saying `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

fn bad(message: impl Into<String>) -> ProtocolError {
    ProtocolError::new(ErrorCode::BadRequest, message)
}

fn invalid(message: impl Into<String>) -> ProtocolError {
    ProtocolError::new(ErrorCode::InvalidArgument, message)
}
