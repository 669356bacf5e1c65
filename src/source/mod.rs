//! Where audio enters: sources push decoded PCM, stamped with source time, into a timeline buffer.
//!
//! A [`Source`] is pumped by the engine with the current local time and appends whatever audio is due. Built-in
//! sources (test signal, WAV file) run on the local clock, so their server clock is the local one (offset 0).
//! The Snapcast source is asynchronous and lives in [`crate::snapcast`]; it feeds the same kind of buffer. The
//! capture source ([`capture`]) runs on a capture card's clock, estimated against the local one.

pub mod capture;
pub mod sendspin;
pub mod snapcast;
pub mod tone;
pub mod wav;

use crate::timeline::LocalTime;

/// Why a source could not deliver audio.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A file could not be opened or decoded.
    #[error("cannot read {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The capture device could not be opened (the message names it and lists the ones there are).
    #[error("capture source: {0}")]
    Capture(crate::output::local::device::DeviceError),
}

// Not `#[from]`: the variant prints its cause itself, and a `source` too would print it twice in `{e:#}`.
impl From<crate::output::local::device::DeviceError> for SourceError {
    fn from(e: crate::output::local::device::DeviceError) -> Self {
        Self::Capture(e)
    }
}

/// A source pumped by the engine. Object-safe.
pub trait Source: Send {
    /// Appends to the timeline every frame captured up to `now`. Called every engine tick.
    fn pump(&mut self, now: LocalTime);
    /// Counters worth showing in `status` (a capture card's overruns, clock restarts…), as `(name, value)`; the
    /// default has none. Called about once a second on the real-time loop: must not block.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}
