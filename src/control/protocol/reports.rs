//! The report types replies carry (`status`, `speakers`, a changed speaker, `reload`), with their serde defaults.

use crate::timeline::lateness::LatenessSummary;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `status`: everything about the running service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// bluebridge's version.
    pub version: String,
    /// Seconds since the service started.
    pub uptime_s: f64,
    /// The config file.
    pub config: String,
    /// Where the audio comes from.
    pub source: SourceReport,
    /// Every output, in config order.
    pub outputs: Vec<OutputReport>,
    /// Spread of the sync error across enabled, synced outputs, µs (None with fewer than two).
    pub skew_us: Option<f64>,
    /// The real-time loop.
    pub engine: EngineReport,
    /// The persisted state.
    pub state: StateReport,
    /// The last reload, if any.
    pub reload: Option<ReloadReport>,
}

/// The source in a status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceReport {
    /// tone | file | snapcast.
    pub kind: String,
    /// Its URL or path ("" for the tone).
    pub detail: String,
    /// The server-clock estimate `server − local`, µs (a Snapcast source once it has measured; absent otherwise).
    /// On one host the truth is 0, so this is the estimate's error there (`bench snapcast` reads it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_offset_us: Option<f64>,
    /// The source's own counters (a capture card: callbacks, dropped callbacks and frames, xruns, gaps, clock
    /// restarts since it was opened, and reopens); empty for sources that keep none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, u64>,
}

/// One output in a status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputReport {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// `playing`, `waiting` (no audio or clock yet), `idle` (sink let go after a silence), `disabled`, `failing`
    /// (write errors), or `starting`.
    pub state: String,
    /// Enabled by the user.
    pub enabled: bool,
    /// Local volume, percent.
    pub volume_pct: u8,
    /// The group's volume (Snapcast `Client.SetVolume`), percent.
    #[serde(default = "hundred")]
    pub group_volume_pct: u8,
    /// Muted by the group.
    #[serde(default)]
    pub group_muted: bool,
    /// The volume in force: group × local, percent (0 when muted).
    #[serde(default = "hundred_f64")]
    pub effective_volume_pct: f64,
    /// Where the volume is applied: `software` (the samples are scaled) or `speaker` (AVRCP absolute volume).
    #[serde(default = "software")]
    pub volume_control: String,
    /// The speaker's own volume level when it applies the volume (AVRCP: 0…127).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_volume: Option<u16>,
    /// Manual offset, ms.
    pub offset_ms: f64,
    /// Locked to the timeline.
    pub synced: bool,
    /// Last measured sync error (actual − wanted source time), µs.
    pub error_us: f64,
    /// Rate correction now, ppm.
    pub correction_ppm: f64,
    /// Resampled (false: copied exactly, as a source on the local clock allows; older servers omit it).
    #[serde(default = "yes")]
    pub resampling: bool,
    /// Estimated clock error of the output, ppm.
    pub drift_estimate_ppm: f64,
    /// The output's own measurement of its device's clock against the local one, ppm (a `local` sound card;
    /// absent for outputs that do not measure it, and from older servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_ppm: Option<f64>,
    /// Hard resyncs since the output was opened.
    pub resyncs: u64,
    /// Failed writes since the output was opened.
    pub write_errors: u64,
    /// Every part of the output delay.
    pub delay: DelayReport,
    /// The sink reported no delay and a default was assumed.
    pub sink_delay_assumed: bool,
    /// The output's own counters (underruns, frames…).
    pub counters: BTreeMap<String, u64>,
    /// What is wrong, if anything.
    pub error: Option<String>,
    /// What the output cannot do on this machine, though it plays (a broadcast's identity on an old BlueZ).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// A broadcast's receivers (`receivers = […]`) and each one's state as its BASS reports it (`bis-synced 0x1`,
    /// `pa-synced`, `bad-code`, `failed (PA sync)`, `disconnected`, …); absent for other outputs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receivers: Vec<ReceiverReport>,
    /// How late the output's writer handed its blocks over against their due time, over its last window (outputs
    /// with a writer of their own: `pipe`; absent for the others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff_late_us: Option<LatenessSummary>,
    /// How its calibration was last measured (when, how confident, against what); absent if never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibrated: Option<crate::calibrate::session::CalibrationRecord>,
}

/// One receiver a broadcast assists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiverReport {
    /// Its address.
    pub address: String,
    /// Its state (see [`OutputReport::receivers`]).
    pub state: String,
}

/// The parts of an output's delay, ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DelayReport {
    /// Encoder.
    pub encoder_ms: f64,
    /// Our queue.
    pub queue_ms: f64,
    /// Transport (socket, controller, link).
    pub transport_ms: f64,
    /// What the sink reports.
    pub sink_reported_ms: f64,
    /// Manual offset.
    pub offset_ms: f64,
    /// Calibration.
    pub calibration_ms: f64,
    /// The sum.
    pub total_ms: f64,
    /// The latency the Snapcast server set for this client (`Client.SetLatency`): the audio plays this much
    /// earlier, on top of the delay above, to absorb a slow sink. Not part of the sum.
    #[serde(default)]
    pub snapcast_latency_ms: f64,
}

impl From<&crate::timeline::delay::OutputDelay> for DelayReport {
    fn from(d: &crate::timeline::delay::OutputDelay) -> Self {
        let ms = |ns: i64| ns as f64 / 1e6;
        Self {
            encoder_ms: ms(d.encoder_ns),
            queue_ms: ms(d.queue_ns),
            transport_ms: ms(d.transport_ns),
            sink_reported_ms: ms(d.sink_reported_ns),
            offset_ms: ms(d.offset_ns),
            calibration_ms: ms(d.calibration_ns),
            total_ms: ms(d.total_ns()),
            snapcast_latency_ms: 0.0,
        }
    }
}

/// The real-time loop in a status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineReport {
    /// Ticks so far.
    pub ticks: u64,
    /// Since the last tick, ms (None: it has not ticked).
    pub last_tick_age_ms: Option<f64>,
    /// It ticked recently (what the systemd watchdog is fed from).
    pub healthy: bool,
    /// The loop thread's CPU over the last 10 s, percent of one core (absent before the first 10 s and from
    /// servers older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_pct: Option<f64>,
    /// The loop's wake-ups per second over the same window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wakeups_per_s: Option<f64>,
    /// How late the loop woke against the time it slept until, over the same window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wake_late_us: Option<LatenessSummary>,
    /// The loop runs at real-time priority (SCHED_FIFO); absent before the first window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realtime: Option<bool>,
}

/// The persisted state in a status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateReport {
    /// The state file.
    pub path: String,
    /// Problems found at load (a corrupt file kept aside…).
    pub problems: Vec<String>,
    /// The last save's error, if it failed (cleared by a good save).
    pub last_save_error: Option<String>,
}

/// The result of a reload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// It was applied.
    pub ok: bool,
    /// What changed, or why the new config was refused.
    pub message: String,
    /// When, in seconds since the service started.
    pub at_s: f64,
}

/// `speakers`: the configured outputs and their user settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeakersReport {
    /// In config order.
    pub speakers: Vec<Speaker>,
}

/// One configured output and what the user set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speaker {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Where it goes (a path; later an address), "" if nowhere in particular.
    pub target: String,
    /// stereo | left | right | mono.
    pub channel: String,
    /// Enabled.
    pub enabled: bool,
    /// Local volume, percent.
    pub volume_pct: u8,
    /// Manual offset, ms.
    pub offset_ms: f64,
    /// Calibration, ms.
    pub calibration_ms: f64,
    /// Playing state, as in [`OutputReport::state`].
    pub state: String,
}

/// Serde default for fields newer servers add (absent from older replies).
pub(super) fn software() -> String {
    "software".into()
}

pub(super) fn yes() -> bool {
    true
}

pub(super) fn hundred() -> u8 {
    100
}

pub(super) fn hundred_f64() -> f64 {
    100.0
}

/// The volume in force, percent: the group's × the local one (each 0…100 %), 0 when the group is muted.
pub fn effective_volume_pct(group_pct: u8, muted: bool, local_pct: u8) -> f64 {
    if muted {
        0.0
    } else {
        group_pct as f64 * local_pct as f64 / 100.0
    }
}
