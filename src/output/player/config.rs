//! What a player is told and what it tells: the group's play settings, the feed, the output's own settings,
//! and the status snapshot.

use crate::output::volume::VolumeCurve;
use crate::timeline::buffer::SharedTimeline;
use crate::timeline::delay::OutputDelay;
use crate::timeline::lateness::LatenessSummary;
use crate::timeline::server_clock::SharedServerClock;
use serde::Serialize;
use std::sync::{Arc, Mutex};

/// What the group says about playing: buffer, latency, volume. Set by the source (Snapcast ServerSettings) or by
/// the config for built-in sources.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PlaySettings {
    /// The group's buffer: a frame captured at T plays at T + buffer − latency.
    pub buffer_ns: i64,
    /// This client's latency (positive plays earlier, to absorb a slow sink).
    pub latency_ns: i64,
    /// Volume from the group, percent.
    pub volume_pct: u8,
    /// Muted by the group.
    pub muted: bool,
    /// What the group's volume percentage means (each protocol defines its own curve).
    pub volume_curve: VolumeCurve,
}

impl Default for PlaySettings {
    fn default() -> Self {
        Self {
            buffer_ns: 1_000_000_000,
            latency_ns: 0,
            volume_pct: 100,
            muted: false,
            volume_curve: VolumeCurve::Snapcast,
        }
    }
}

/// Play settings shared between a source and a player.
pub type SharedPlaySettings = Arc<Mutex<PlaySettings>>;

/// Where a player's audio and time come from.
#[derive(Clone)]
pub struct Feed {
    /// The PCM, stamped with source time.
    pub timeline: SharedTimeline,
    /// The estimate of `server − local` for that source.
    pub server_clock: SharedServerClock,
    /// Buffer, latency, volume.
    pub settings: SharedPlaySettings,
}

/// Which source channels an output plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelMap {
    /// Left to left, right to right.
    #[default]
    Stereo,
    /// The left channel on both.
    Left,
    /// The right channel on both.
    Right,
    /// The mix of both on both.
    Mono,
}

/// A player's own settings (from the config).
#[derive(Debug, Clone)]
pub struct PlayerConfig {
    /// Output name.
    pub name: String,
    /// Manual offset, ns (positive plays later).
    pub offset_ns: i64,
    /// Acoustic calibration, ns (positive: the sink is really slower than it reports).
    pub calibration_ns: i64,
    /// Delay assumed when the sink reports none, ns.
    pub default_sink_delay_ns: i64,
    /// Channel selection.
    pub channels: ChannelMap,
    /// Local software volume, percent (multiplied with the group's).
    pub volume_pct: u8,
    /// Rate control on (off only for comparisons and tests).
    pub drift_control: bool,
}

impl PlayerConfig {
    /// Defaults for an output called `name`.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_string(),
            offset_ns: 0,
            calibration_ns: 0,
            default_sink_delay_ns: 0,
            channels: ChannelMap::Stereo,
            volume_pct: 100,
            drift_control: true,
        }
    }
}

/// A snapshot of a player for status and metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlayerStatus {
    /// Output name.
    pub name: String,
    /// Output kind.
    pub kind: String,
    /// Locked to the timeline (false while waiting for audio or a clock).
    pub synced: bool,
    /// The output reaches its sink (see [`Output::linked`](crate::output::Output::linked)); false: its audio is
    /// dropped for now.
    pub linked: bool,
    /// Last measured error (actual − wanted source time), µs.
    pub error_us: f64,
    /// Current rate correction, ppm.
    pub correction_ppm: f64,
    /// Estimated clock error of the output, ppm.
    pub drift_estimate_ppm: f64,
    /// The output's own measurement of its consumer's clock against the local one, ppm (a sound card, from its
    /// timestamps); None for outputs that do not measure it.
    pub clock_ppm: Option<f64>,
    /// Hard resyncs so far.
    pub resyncs: u64,
    /// Going through the resampler (false: copied exactly, as a source on the local clock allows).
    pub resampling: bool,
    /// Every part of the output delay at the last block.
    pub delay: OutputDelay,
    /// The sink reported no delay and the default was used.
    pub sink_delay_assumed: bool,
    /// Write errors from the output.
    pub write_errors: u64,
    /// Output counters.
    pub counters: Vec<(String, u64)>,
    /// The output writer's hand-off lateness (see
    /// [`Output::handoff_lateness`](crate::output::Output::handoff_lateness)).
    pub handoff_late: Option<LatenessSummary>,
    /// The device applies the volume (AVRCP absolute volume): its level and maximum; None: software volume.
    pub device_volume: Option<(u16, u16)>,
    /// The output let its sink go after a silence (see [`Output::idle`](crate::output::Output::idle)).
    pub idle: bool,
    /// The group's settings in force (Snapcast ServerSettings: volume, mute, latency).
    pub settings: PlaySettings,
}
