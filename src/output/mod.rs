//! Where audio leaves: the [`Output`] trait, the registry of output kinds, and the per-output [`player::Player`].
//!
//! An output is a transport plus a sink: a simulated speaker, a WAV file, a pipe, an A2DP speaker or an LE Audio
//! broadcast. The player pulls from the timeline and *pushes* blocks of 48 kHz stereo S16 frames into the
//! output whenever the output wants more; the output reports how much it holds (its transport delay) so the
//! player knows when each frame will be heard.

pub mod a2dp;
pub mod a2dp_settings;
pub mod broadcast;
pub mod broadcast_settings;
pub mod file;
#[cfg(test)]
mod iso_drift_sim;
pub mod iso_pacing;
pub mod iso_sink;
pub mod kinds;
pub mod local;
pub mod local_clocked;
pub mod paced_sender;
pub mod pipe;
pub mod pipe_settings;
pub mod player;
pub mod resample;
pub mod settings;
pub mod sim;
pub mod volume;
pub mod writer_thread;

pub use kinds::{OutputSettings, OutputSpec, KINDS};

use crate::timeline::lateness::LatenessSummary;
use crate::timeline::{AudioFormat, LocalTime};
use std::sync::Arc;

/// TEST-ONLY breakage hook for the rig's `RIG_BREAK=send`: with `BLUEBRIDGE_TEST_DROP_PACKETS=1` in the
/// environment, the A2DP and broadcast outputs drop every packet just before writing it to the transport (as if
/// written), so the rig can show that its gated checks fail when no audio leaves. Read once; never set in production.
pub fn test_drop_packets() -> bool {
    static DROP: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DROP.get_or_init(|| std::env::var_os("BLUEBRIDGE_TEST_DROP_PACKETS").is_some_and(|v| v == "1"))
}

/// The format every output renders: 48 kHz, stereo, interleaved S16.
pub const OUTPUT_FORMAT: AudioFormat = AudioFormat::STEREO_48K;

/// What an output says about itself at a moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OutputStatus {
    /// From now until the next frame written would start to be rendered by the sink (frames queued in the
    /// transport), in ns.
    pub transport_ns: i64,
    /// How many frames the output wants written now.
    pub want_frames: usize,
    /// The delay the sink reports between rendering and being heard, in ns (None: it reports nothing).
    pub sink_reported_ns: Option<i64>,
    /// The encoder's algorithmic delay, ns (SBC, LC3; 0 for outputs that do not encode).
    pub encoder_ns: i64,
}

/// An output's device-side controls: the volume the device applies itself, and its release while silent.
pub trait DeviceControl {
    /// Offers the device the volume to apply itself, `pct` 0…100 (the group's volume times the output's local one,
    /// see [`player::device_volume_pct`]). True when the device applies it (an A2DP speaker with AVRCP absolute
    /// volume): the player then leaves the samples at full scale. False: the player scales the samples (software
    /// volume). Called every block; must not block.
    fn set_volume(&mut self, pct: u8) -> bool;
    /// The volume the device is at now, as `(level, max)` (AVRCP: 0…127), when the device applies the volume.
    fn volume(&self) -> Option<(u16, u16)>;
    /// True while the output has let its device go because the audio was silent (an A2DP speaker released after
    /// `idle_release_s`); it takes it back when sound returns.
    fn idle(&self) -> bool;
}

/// Why an output failed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// An I/O error on the output's file, pipe or socket.
    #[error("{what}: {error}")]
    Io {
        /// What was being done, naming the path.
        what: String,
        /// The error (in the text, not also a `source`: `{e:#}` would print it twice).
        error: std::io::Error,
    },
    /// Anything else, said plainly.
    #[error("{0}")]
    Other(String),
}

/// One output. Object-safe; driven by its player on the real-time path, so no method may block.
pub trait Output: Send {
    /// The kind's registry name (`sim`, `file`, `pipe`, …).
    fn kind(&self) -> &'static str;
    /// Does what is due at `now`: follows its link, sends the packets whose time has come. Called once per player
    /// tick, before [`Output::status`]. The default does nothing (an output that works only when written to).
    fn poll(&mut self, _now: LocalTime) {}
    /// Its state at `now`, after [`Output::poll`]: no audio leaves here.
    fn status(&mut self, now: LocalTime) -> OutputStatus;
    /// Takes `frames` (interleaved stereo S16 at [`OUTPUT_FORMAT`]) at `now`.
    fn write(&mut self, now: LocalTime, frames: &[i16]) -> Result<(), OutputError>;
    /// Acoustic times of the marker clicks rendered since the last call (outputs that can know them).
    fn take_markers(&mut self) -> Vec<LocalTime> {
        Vec::new()
    }
    /// True when the output consumes audio at exactly the local clock's rate because our own deadline scheduler
    /// paces it (a2dp, broadcast, pipe, file); false when it has a clock of its own (a sound card, a simulated
    /// speaker). A source on the local clock then needs no rate correction for it.
    fn paced_by_local_clock(&self) -> bool {
        false
    }
    /// The rate of the output's own clock against the local clock, in ppm (positive: it consumes fast), when the
    /// output measures it (a sound card from its callback timestamps). The player starts its drift controller
    /// there instead of at 0. None (the default): not measured.
    fn clock_ppm(&self) -> Option<f64> {
        None
    }
    /// When the loop must next run for this output, asked after each tick at `now`. A paced output (a2dp,
    /// broadcast) names the send time of its next queued packet, so the loop sleeps until then instead of waking
    /// every engine tick: under emulation each wake-up is costly, and a packet sent at its own time
    /// is sent more exactly than one sent on a fixed grid. None (the default): every tick.
    fn wake_at(&self, _now: LocalTime) -> Option<LocalTime> {
        None
    }
    /// Whether what is written reaches the sink now. False for an A2DP speaker not connected and streaming, or a
    /// broadcast whose BIG is not up: the output still consumes audio at the local clock (so it stays on the
    /// timeline and rejoins in sync) but drops it, and status must not call it playing.
    fn linked(&self) -> bool {
        true
    }
    /// The device-side controls (volume on the device, release when idle), for outputs that have a device to
    /// control (an A2DP speaker); None (the default) for the others.
    fn device(&self) -> Option<&dyn DeviceControl> {
        None
    }
    /// The same, to change it.
    fn device_mut(&mut self) -> Option<&mut dyn DeviceControl> {
        None
    }
    /// How late the output's own writer handed its last window of blocks over against their due time, for outputs
    /// with such a writer (`pipe`); None (the default) for the others.
    fn handoff_lateness(&self) -> Option<LatenessSummary> {
        None
    }
    /// Counters worth showing (underruns, dropped blocks…), as `(name, value)`.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
    /// Flushes and closes (end of run).
    fn close(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
}

/// What opening an output may need from the service: the Bluetooth edge, for outputs whose control side runs in
/// BlueZ (`crate::bluez::edge` implements it; this layer never imports BlueZ code).
#[derive(Clone)]
pub struct OutputContext {
    /// Starts the control side of Bluetooth outputs.
    pub bluetooth: Arc<dyn BluetoothEdge>,
}

impl OutputContext {
    /// A context whose Bluetooth outputs are started by `bluetooth`.
    pub fn new(bluetooth: Arc<dyn BluetoothEdge>) -> Self {
        Self { bluetooth }
    }

    /// A context without Bluetooth: opening an `a2dp` or `broadcast` output fails.
    pub fn without_bluetooth() -> Self {
        Self::new(Arc::new(NoBluetooth))
    }
}

/// The edge that links Bluetooth outputs to their devices. Each call starts, in the background, the task that
/// connects the device and hands its link over through `link` (it gives up when the output drops it); it never
/// blocks, and a device or daemon not there yet is retried, not an error.
pub trait BluetoothEdge: Send + Sync {
    /// Starts linking an A2DP speaker to output `name`.
    fn start_a2dp(
        &self,
        name: &str,
        settings: &a2dp_settings::A2dpSettings,
        link: &a2dp::SharedLink,
    ) -> Result<(), OutputError>;
    /// Starts the BIG of broadcast output `name`.
    fn start_broadcast(
        &self,
        name: &str,
        settings: &broadcast_settings::BroadcastSettings,
        big: &broadcast::SharedBig,
    ) -> Result<(), OutputError>;
}

/// No Bluetooth here (tools and tests that open only local outputs).
struct NoBluetooth;

impl BluetoothEdge for NoBluetooth {
    fn start_a2dp(&self, name: &str, _: &a2dp_settings::A2dpSettings, _: &a2dp::SharedLink) -> Result<(), OutputError> {
        Err(OutputError::Other(format!(
            "output {name:?}: no Bluetooth in this context"
        )))
    }
    fn start_broadcast(
        &self,
        name: &str,
        _: &broadcast_settings::BroadcastSettings,
        _: &broadcast::SharedBig,
    ) -> Result<(), OutputError> {
        Err(OutputError::Other(format!(
            "output {name:?}: no Bluetooth in this context"
        )))
    }
}

/// Opens the output `spec` describes (see [`OutputSettings::open`]).
pub fn open(spec: &OutputSpec, ctx: &OutputContext) -> Result<Box<dyn Output>, OutputError> {
    spec.settings.open(&spec.name, ctx)
}
