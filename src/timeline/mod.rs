//! The timing core: clocks, the server-clock estimator, the timeline buffer, output delay and drift control.
//!
//! Everything here is pure logic (no sockets, no D-Bus, no threads) so it runs in virtual time in tests.

pub mod backoff;
pub mod buffer;
pub mod clock;
pub mod delay;
pub mod drift;
pub mod envelope_clock;
pub mod lateness;
pub mod log_throttle;
pub mod server_clock;
pub mod shared;

pub use clock::{Clock, LocalTime, ManualClock, ServerTime, SystemClock};

/// Sample rate and channel count of interleaved PCM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AudioFormat {
    /// Frames per second.
    pub rate_hz: u32,
    /// Interleaved channels per frame.
    pub channels: u16,
}

impl AudioFormat {
    /// 48 kHz stereo, the format every output renders.
    pub const STEREO_48K: AudioFormat = AudioFormat {
        rate_hz: 48_000,
        channels: 2,
    };

    /// Duration of `frames` frames, in nanoseconds (exact to the nanosecond).
    pub fn frames_to_ns(&self, frames: i64) -> i64 {
        (frames as i128 * 1_000_000_000 / self.rate_hz as i128) as i64
    }

    /// Frames (fractional) in `ns` nanoseconds.
    pub fn ns_to_frames_f64(&self, ns: i64) -> f64 {
        ns as f64 * self.rate_hz as f64 / 1e9
    }
}

impl std::fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} Hz, {} ch", self.rate_hz, self.channels)
    }
}
