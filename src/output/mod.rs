//! Where audio leaves: the [`Output`] trait, the registry of output kinds, and the per-output [`player::Player`].
//!
//! An output is a transport plus a sink: a simulated speaker, a WAV file, a pipe, later an A2DP speaker or an LE
//! Audio broadcast. The player pulls from the timeline and *pushes* blocks of 48 kHz stereo S16 frames into the
//! output whenever the output wants more; the output reports how much it holds (its transport delay) so the
//! player knows when each frame will be heard.

pub mod a2dp;
pub mod broadcast;
pub mod file;
#[cfg(test)]
mod iso_drift_sim;
pub mod iso_pacing;
pub mod iso_sink;
pub mod local;
pub mod local_clocked;
pub mod pipe;
pub mod player;
pub mod resample;
pub mod sim;

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
}

/// Why an output failed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// An I/O error on the output's file, pipe or socket.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the path.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// Anything else, said plainly.
    #[error("{0}")]
    Other(String),
}

/// One output. Object-safe; driven by its player on the real-time path, so no method may block.
pub trait Output: Send {
    /// The kind's registry name (`sim`, `file`, `pipe`, …).
    fn kind(&self) -> &'static str;
    /// Its state at `now`. Called once per player tick before any write.
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
    /// every [`crate::engine::TICK_NS`]: under emulation each wake-up is costly, and a packet sent at its own time
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
    /// Offers the output the volume to apply on the device itself, `pct` 0…100 (the group's volume times the
    /// output's local one, see [`player::device_volume_pct`]). True when the device applies it (an A2DP speaker with
    /// AVRCP absolute volume): the player then leaves the samples at full scale. False (the default): the player
    /// scales the samples (software volume). Called every block; must not block.
    fn set_device_volume(&mut self, _pct: u8) -> bool {
        false
    }
    /// The volume the device is at now, as `(level, max)` (AVRCP: 0…127), when the device applies the volume.
    fn device_volume(&self) -> Option<(u16, u16)> {
        None
    }
    /// True while the output has let its sink go because the audio was silent (an A2DP speaker released after
    /// `idle_release_s`); it takes it back when sound returns.
    fn idle(&self) -> bool {
        false
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

/// What opening an output may need from the service: the async runtime (D-Bus, network) for outputs whose
/// control side is asynchronous, and the shared A2DP hub (one set of endpoints for all speakers).
#[derive(Clone)]
pub struct OutputContext {
    /// The service's tokio runtime.
    pub runtime: tokio::runtime::Handle,
    /// Created on first use by an `a2dp` output; shared by all of them (one endpoint per adapter).
    pub a2dp: Arc<tokio::sync::Mutex<Option<crate::bluez::a2dp_speaker::A2dpHub>>>,
    /// `bluetooth.max_a2dp_per_adapter`: automatic placement's limit (a reload may change it).
    pub max_a2dp_per_adapter: Arc<std::sync::atomic::AtomicUsize>,
}

impl OutputContext {
    /// A context on `runtime`.
    pub fn new(runtime: tokio::runtime::Handle) -> Self {
        Self {
            runtime,
            a2dp: Arc::default(),
            max_a2dp_per_adapter: Arc::new(crate::config::DEFAULT_MAX_A2DP_PER_ADAPTER.into()),
        }
    }
}

/// Starts the control side of an A2DP speaker in the background: it keeps retrying until BlueZ is there (and,
/// when placed automatically, until an adapter has room), so a missing bluetoothd or adapter is logged and recovered
/// from, never fatal. Gives up when the output is gone.
fn start_a2dp(spec: &crate::config::OutputSpec, ctx: &OutputContext, shared: &a2dp::SharedLink) {
    use crate::bluez::a2dp_speaker::{A2dpHub, SpeakerSpec};
    let hub = ctx.a2dp.clone();
    let max = ctx.max_a2dp_per_adapter.clone();
    let spec = spec.clone();
    let weak = Arc::downgrade(shared);
    ctx.runtime.spawn(async move {
        let mut delay = std::time::Duration::from_secs(1);
        loop {
            let Some(shared) = weak.upgrade() else { return };
            let r: Result<(), String> = async {
                let mut guard = hub.lock().await;
                if guard.is_none() {
                    *guard = Some(A2dpHub::new(spec.sbc_quality).await.map_err(|e| e.to_string())?);
                }
                let h = guard.as_mut().expect("just set");
                let adapter = match &spec.adapter {
                    Some(a) => a.clone(),
                    None => h
                        .place(max.load(std::sync::atomic::Ordering::Relaxed))
                        .await
                        .map_err(|e| e.to_string())?,
                };
                let address: bluer::Address = spec.address.parse().map_err(|e| format!("{e}"))?;
                h.add_speaker(
                    SpeakerSpec {
                        name: spec.name.clone(),
                        adapter,
                        address,
                        avrcp_volume: spec.avrcp_volume,
                    },
                    shared.clone(),
                )
                .await
                .map_err(|e| e.to_string())
            }
            .await;
            drop(shared);
            match r {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(output = spec.name, "A2DP not ready: {e}; retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(std::time::Duration::from_secs(30));
                }
            }
        }
    });
}

/// Opens an output of the kind named in `spec` (the registry of output kinds; see [`crate::config::OUTPUT_KINDS`]).
pub fn open(spec: &crate::config::OutputSpec, ctx: &OutputContext) -> Result<Box<dyn Output>, OutputError> {
    match spec.kind.as_str() {
        "sim" => Ok(Box::new(sim::SimOutput::new(spec.sim.clone()))),
        "file" => Ok(Box::new(file::FileOutput::create(&spec.path)?)),
        "pipe" => Ok(Box::new(pipe::PipeOutput::open(&spec.path, spec.delay_ns)?)),
        "local" => {
            let local = spec
                .local
                .clone()
                .ok_or_else(|| OutputError::Other("local output without its settings".into()))?;
            Ok(Box::new(local::LocalOutput::open(&spec.name, &local)?))
        }
        "a2dp" => {
            let shared: a2dp::SharedLink = Arc::default();
            start_a2dp(spec, ctx, &shared);
            let options = a2dp::A2dpOptions {
                fallback_delay_ns: spec.delay_ns,
                idle_release_ns: spec.idle_release_ns,
                keep_alive: spec.keep_alive,
            };
            Ok(Box::new(a2dp::A2dpOutput::new(&spec.name, shared, options)))
        }
        "broadcast" => {
            let config = spec
                .broadcast
                .clone()
                .ok_or_else(|| OutputError::Other("broadcast output without a broadcast configuration".into()))?;
            let shared: broadcast::SharedBig = Arc::default();
            let adapter = spec.adapter.clone().unwrap_or_else(|| "hci0".to_string());
            ctx.runtime.spawn(crate::bluez::broadcast_source::run(
                spec.name.clone(),
                adapter,
                config.clone(),
                Arc::downgrade(&shared),
            ));
            Ok(Box::new(broadcast::BroadcastOutput::new(&spec.name, config, shared)))
        }
        other => Err(OutputError::Other(format!(
            "output kind {other:?} is not in this build"
        ))),
    }
}
