//! The `pipe` kind's settings: the FIFO (or `-`) and its reader's declared delay. (Beside [`super::pipe`].)

use super::settings::{Keys, SettingError};

/// The keys of kind `pipe` (besides the common ones).
pub const KEYS: &[&str] = &["path", "delay_ms"];

/// Raw PCM to a FIFO or stdout.
#[derive(Debug, Clone, PartialEq)]
pub struct PipeSettings {
    /// The FIFO, or `-` for stdout (default `/run/bluebridge/NAME.pcm`).
    pub path: String,
    /// The declared delay of the pipe's reader, ns.
    pub delay_ns: i64,
}

impl PipeSettings {
    /// Parses the kind's keys for output `name`.
    pub fn parse(name: &str, keys: &mut Keys) -> Result<Self, SettingError> {
        Ok(Self {
            path: keys
                .path("path")?
                .unwrap_or_else(|| format!("/run/bluebridge/{name}.pcm")),
            delay_ns: keys.ms_ns("delay_ms", 0.0, 5_000.0)?.unwrap_or(0),
        })
    }
}
