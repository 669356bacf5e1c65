//! The per-output player: decides what plays when, and keeps the output locked to the group's timeline.
//!
//! Each tick the player asks its output how much it wants and how much it holds, then produces blocks of
//! [`BLOCK_FRAMES`]. For each block it computes, with every part of the output delay named:
//!
//! ```text
//! heard   = now + delay.total()                      (the block's first frame, handed over now, is heard then)
//! wanted  = to_server(heard) − buffer + latency      (the source time whose play time is `heard`)
//! actual  = source time the resampler takes its next frame from (exact bookkeeping)
//! error   = actual − wanted                          → drift controller → rate correction or hard resync
//! ```
//!
//! Play time of a source frame at server time T is `T + buffer − latency` (Snapcast semantics), in local time
//! through the server-clock estimate. The output's manual offset and calibration are parts of the delay, so a
//! positive offset makes the output play later.

use super::resample::RateConverter;
use super::volume::VolumeCurve;
use super::{Output, OutputStatus, OUTPUT_FORMAT};
use crate::calibrate::overlay::Overlay;
use crate::timeline::buffer::SharedTimeline;
use crate::timeline::delay::OutputDelay;
use crate::timeline::drift::{Correction, DriftController};
use crate::timeline::lateness::LatenessSummary;
use crate::timeline::server_clock::SharedServerClock;
use crate::timeline::{AudioFormat, LocalTime, ServerTime};
use serde::Serialize;
use std::sync::{Arc, Mutex};

/// Frames per block handed to an output (5 ms at 48 kHz).
pub const BLOCK_FRAMES: usize = 240;

/// Marker times kept for [`Player::take_markers`] (an hour of one click a second) when nobody takes them.
const MAX_MARKERS: usize = 3_600;

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
    /// The output reaches its sink (see [`Output::linked`]); false: its audio is dropped for now.
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
    /// The output writer's hand-off lateness (see [`Output::handoff_lateness`]).
    pub handoff_late: Option<LatenessSummary>,
    /// The device applies the volume (AVRCP absolute volume): its level and maximum; None: software volume.
    pub device_volume: Option<(u16, u16)>,
    /// The output let its sink go after a silence (see [`Output::idle`]).
    pub idle: bool,
    /// The group's settings in force (Snapcast ServerSettings: volume, mute, latency).
    pub settings: PlaySettings,
}

struct SyncState {
    /// Source time of input frame 0 fed to the converter.
    feed_start: ServerTime,
    last_update: LocalTime,
}

/// Plays one output.
pub struct Player {
    cfg: PlayerConfig,
    feed: Feed,
    output: Box<dyn Output>,
    format: AudioFormat,
    generation: u64,
    conv: RateConverter,
    controller: DriftController,
    sync: Option<SyncState>,
    input: Vec<f32>,
    block: Vec<f32>,
    pcm: Vec<i16>,
    markers: Vec<LocalTime>,
    status: PlayerStatus,
    enabled: bool,
    /// The drift controller was started at the output's measured clock rate ([`Output::clock_ppm`]).
    seeded: bool,
    /// The source's settings and clock mapping as last read: a block whose read finds them held by the source (a
    /// tokio task updating them) uses these instead of waiting.
    seen: Seen,
    /// A calibration burst to lay over the input (see [`crate::calibrate::overlay`]).
    overlay: Option<Overlay>,
}

fn feed_settings(feed: &Feed) -> std::sync::MutexGuard<'_, PlaySettings> {
    feed.settings.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the player last read of its feed's settings and server clock.
#[derive(Debug, Clone, Copy)]
struct Seen {
    settings: PlaySettings,
    mapping: Option<crate::timeline::server_clock::ClockMapping>,
    clock_is_local: bool,
}

impl Seen {
    /// Reads what is free now, keeps the rest.
    fn refresh(&mut self, feed: &Feed) {
        use std::sync::TryLockError;
        match feed.settings.try_lock() {
            Ok(s) => self.settings = *s,
            Err(TryLockError::Poisoned(p)) => self.settings = *p.into_inner(),
            Err(TryLockError::WouldBlock) => {}
        }
        let clock = match feed.server_clock.try_lock() {
            Ok(c) => Some(c),
            Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        };
        if let Some(c) = clock {
            self.mapping = c.mapping();
            self.clock_is_local = c.is_local();
        }
    }
}

/// The volume a device applies for the group's volume and the output's local one, percent: their product (a
/// speaker maps its absolute volume onto its own loudness curve, so the percentages are not put through
/// [`volume_gain`]'s curve first).
pub fn device_volume_pct(group_pct: u8, local_pct: u8) -> u8 {
    ((group_pct.min(100) as u32 * local_pct.min(100) as u32 + 50) / 100) as u8
}

/// The gain of the output's own (local) volume: Snapcast's "exp" curve, whatever the source.
fn volume_gain(pct: u8) -> f32 {
    VolumeCurve::Snapcast.gain(pct)
}

impl Player {
    /// A player for `output`, fed by `feed`.
    pub fn new(cfg: PlayerConfig, feed: Feed, output: Box<dyn Output>) -> Self {
        let (format, generation) = {
            let tl = feed.timeline.lock();
            (tl.format(), tl.generation())
        };
        let mut seen = Seen {
            settings: *feed_settings(&feed),
            mapping: None,
            clock_is_local: false,
        };
        seen.refresh(&feed);
        let controller = if cfg.drift_control {
            DriftController::new()
        } else {
            DriftController::disabled()
        };
        let status = PlayerStatus {
            name: cfg.name.clone(),
            kind: output.kind().to_string(),
            ..Default::default()
        };
        Self {
            conv: RateConverter::new(
                format.rate_hz,
                OUTPUT_FORMAT.rate_hz,
                format.channels as usize,
                BLOCK_FRAMES,
            ),
            cfg,
            feed,
            output,
            format,
            generation,
            controller,
            sync: None,
            input: vec![],
            block: vec![],
            pcm: vec![0; BLOCK_FRAMES * 2],
            markers: vec![],
            status,
            enabled: true,
            seeded: false,
            seen,
            overlay: None,
        }
    }

    /// The output's name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Changes the manual offset (takes effect at the next block; large changes resync).
    pub fn set_offset_ns(&mut self, ns: i64) {
        self.cfg.offset_ns = ns;
    }

    /// Changes the acoustic calibration (takes effect at the next block; large changes resync).
    pub fn set_calibration_ns(&mut self, ns: i64) {
        self.cfg.calibration_ns = ns;
    }

    /// Lays the calibration `burst` (mono, 48 kHz) over this output's audio so that it is *heard* at local time
    /// `heard_at`: at the source time whose play time that is (`to_server(heard_at + latency − buffer)`, the
    /// player's own formula run backwards), so it goes through the resampler, the drift control and the output
    /// like the music. It plays whatever the output's mute and enabled state, at the output's volume, and
    /// removes itself once played. Returns the source time it sits at, ns; refused while the player has no
    /// clock for its source yet.
    pub fn schedule_burst(&mut self, heard_at: LocalTime, burst: Arc<Vec<f32>>) -> Result<i64, &'static str> {
        self.seen.refresh(&self.feed);
        let Some(mapping) = self.seen.mapping else {
            return Err("the output has no clock for its source yet (is the source playing?)");
        };
        let s = self.seen.settings;
        let at = mapping.to_server(heard_at.add_ns(s.latency_ns - s.buffer_ns)).as_ns();
        self.overlay = Some(Overlay { burst_at_ns: at, burst });
        Ok(at)
    }

    /// Removes a calibration burst not yet played.
    pub fn clear_burst(&mut self) {
        self.overlay = None;
    }

    /// Changes the local volume.
    pub fn set_volume_pct(&mut self, pct: u8) {
        self.cfg.volume_pct = pct.min(100);
    }

    /// Enables or disables the output (disabled: it is fed silence and stays in sync).
    pub fn set_enabled(&mut self, on: bool) {
        self.enabled = on;
    }

    /// A status snapshot.
    pub fn status(&self) -> PlayerStatus {
        let mut s = self.status.clone();
        s.linked = self.output.linked();
        s.device_volume = self.output.device().and_then(|d| d.volume());
        s.idle = self.output.device().is_some_and(|d| d.idle());
        s.settings = self.seen.settings;
        s.counters = self
            .output
            .counters()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        s.handoff_late = self.output.handoff_lateness();
        s
    }

    /// Acoustic times of marker clicks rendered so far (drains).
    pub fn take_markers(&mut self) -> Vec<LocalTime> {
        std::mem::take(&mut self.markers)
    }

    /// The player's manual offset, ns.
    pub fn offset_ns(&self) -> i64 {
        self.cfg.offset_ns
    }

    /// The output's kind.
    pub fn kind(&self) -> &'static str {
        self.output.kind()
    }

    /// Closes the output.
    pub fn close(&mut self) {
        if let Err(e) = self.output.close() {
            tracing::warn!("output {}: {e}", self.cfg.name);
        }
    }

    /// When the loop must next run for this player's output (see [`Output::wake_at`]).
    pub fn wake_at(&self, now: LocalTime) -> Option<LocalTime> {
        self.output.wake_at(now)
    }

    /// Does this tick's work: hands the output every block it wants.
    pub fn tick(&mut self, now: LocalTime) {
        self.output.poll(now);
        let st: OutputStatus = self.output.status(now);
        let mut written = 0usize;
        while st.want_frames > written {
            let transport_ns = st.transport_ns + OUTPUT_FORMAT.frames_to_ns(written as i64);
            self.produce_block(now, transport_ns, st.sink_reported_ns, st.encoder_ns);
            if let Err(e) = self.output.write(now, &self.pcm) {
                self.status.write_errors += 1;
                if self.status.write_errors == 1 || self.status.write_errors.is_power_of_two() {
                    tracing::warn!(
                        "output {}: write failed ({e}); {} errors so far",
                        self.cfg.name,
                        self.status.write_errors
                    );
                }
                break;
            }
            written += BLOCK_FRAMES;
        }
        self.markers.extend(self.output.take_markers());
        if self.markers.len() > MAX_MARKERS {
            // Nobody is collecting them (the service never does): keep only the newest.
            let excess = self.markers.len() - MAX_MARKERS;
            self.markers.drain(..excess);
        }
    }

    fn produce_block(&mut self, now: LocalTime, transport_ns: i64, sink_reported_ns: Option<i64>, encoder_ns: i64) {
        self.seen.refresh(&self.feed);
        let Seen {
            settings,
            mapping,
            clock_is_local,
        } = self.seen;
        let tl = self.feed.timeline.lock();
        if tl.generation() != self.generation || tl.format() != self.format {
            self.format = tl.format();
            self.generation = tl.generation();
            self.conv = RateConverter::new(
                self.format.rate_hz,
                OUTPUT_FORMAT.rate_hz,
                self.format.channels as usize,
                BLOCK_FRAMES,
            );
            self.sync = None;
        }
        let delay = OutputDelay {
            encoder_ns,
            queue_ns: 0,
            transport_ns,
            sink_reported_ns: sink_reported_ns.unwrap_or(self.cfg.default_sink_delay_ns),
            offset_ns: self.cfg.offset_ns,
            calibration_ns: self.cfg.calibration_ns,
        };
        self.status.delay = delay;
        self.status.sink_delay_assumed = sink_reported_ns.is_none();
        let Some(mapping) = mapping else {
            // No clock yet: silence, and start exactly once it is there.
            drop(tl);
            self.sync = None;
            self.status.synced = false;
            self.pcm.fill(0);
            return;
        };
        let heard = now.add_ns(delay.total_ns());
        // The frame heard now was captured (server time) `buffer − latency` earlier.
        let wanted = mapping.to_server(heard.add_ns(settings.latency_ns - settings.buffer_ns));
        let ns_per_frame = 1e9 / self.format.rate_hz as f64;
        if !self.seeded {
            // An output that measures its own clock (a sound card) puts the drift controller at that rate once
            // the measurement is there (instead of letting the loop integrate up to it).
            if let Some(ppm) = self.output.clock_ppm() {
                self.controller.seed_ppm(ppm);
                self.seeded = true;
            }
        }
        if let Some(sync) = &mut self.sync {
            let actual = sync.feed_start.as_ns() as f64 + self.conv.next_position() * ns_per_frame;
            let error_ns = (actual - wanted.as_ns() as f64).round() as i64;
            let dt = now.ns_since(sync.last_update);
            sync.last_update = now;
            self.status.error_us = error_ns as f64 / 1000.0;
            let correction = if self.conv.is_exact() {
                // Nothing drifts: the error only moves when a delay changes (a new Delay report, an offset), and
                // then it jumps. Follow it exactly as soon as it is off by more than a frame.
                if (error_ns as f64).abs() > ns_per_frame {
                    Correction::Resync { error_ns }
                } else {
                    Correction::Rate { ppm: 0.0 }
                }
            } else {
                self.controller.update(error_ns, dt)
            };
            match correction {
                Correction::Rate { ppm } => self.conv.set_ppm(ppm),
                Correction::Resync { error_ns } => {
                    tracing::info!(
                        "output {}: off by {:.1} ms, re-synchronising",
                        self.cfg.name,
                        error_ns as f64 / 1e6
                    );
                    self.status.resyncs += 1;
                    self.sync = None;
                    // Restart at the measured rate, if the output measures one (the error that made the jump
                    // has pushed the integral off it).
                    self.seeded = false;
                }
            }
        }
        if self.sync.is_none() {
            // Copy exactly when nothing can drift: a source on the local clock, an output paced by it, equal rates.
            let exact = self.output.paced_by_local_clock() && clock_is_local && self.conv.reset_exact();
            if !exact {
                self.conv.set_ppm(self.controller.drift_estimate_ppm());
                self.conv.reset();
            }
            let first = wanted.add_ns(-(self.conv.first_position() * ns_per_frame).round() as i64);
            let feed_start = tl.align(first);
            self.sync = Some(SyncState {
                feed_start,
                last_update: now,
            });
            let actual = feed_start.as_ns() as f64 + self.conv.next_position() * ns_per_frame;
            self.status.error_us = (actual - wanted.as_ns() as f64) / 1000.0;
        }
        let sync = self.sync.as_ref().expect("set above");
        self.status.synced = true;
        self.status.correction_ppm = self.conv.ppm();
        self.status.resampling = !self.conv.is_exact();
        self.status.drift_estimate_ppm = self.controller.drift_estimate_ppm();
        self.status.clock_ppm = self.output.clock_ppm();
        let ch = self.format.channels as usize;
        let need = self.conv.input_needed();
        self.input.resize(need * ch, 0.0);
        let read_from = sync
            .feed_start
            .add_ns(self.format.frames_to_ns(self.conv.fed_frames() as i64));
        tl.read(read_from, &mut self.input);
        drop(tl);
        let silenced = settings.muted || !self.enabled;
        let mut overlaid = false;
        if let Some(o) = &self.overlay {
            overlaid = o.apply(read_from.as_ns(), ns_per_frame, ch, &mut self.input, silenced);
            if read_from.as_ns() >= o.end_ns() {
                self.overlay = None;
            }
        }
        self.block.resize(BLOCK_FRAMES * ch, 0.0);
        self.conv.process(&self.input, &mut self.block);
        let device_pct = device_volume_pct(settings.volume_pct, self.cfg.volume_pct);
        let on_device = self.output.device_mut().is_some_and(|d| d.set_volume(device_pct));
        let gain = if silenced && !overlaid {
            0.0
        } else if on_device {
            1.0
        } else {
            settings.volume_curve.gain(settings.volume_pct) * volume_gain(self.cfg.volume_pct)
        };
        let to_i16 = |v: f32| (v * gain * 32767.0).round().clamp(-32768.0, 32767.0) as i16;
        for (i, out) in self.pcm.chunks_exact_mut(2).enumerate() {
            let frame = &self.block[i * ch..(i + 1) * ch];
            let (l, r) = if ch == 1 {
                (frame[0], frame[0])
            } else {
                (frame[0], frame[1])
            };
            let (l, r) = match self.cfg.channels {
                ChannelMap::Stereo => (l, r),
                ChannelMap::Left => (l, l),
                ChannelMap::Right => (r, r),
                ChannelMap::Mono => ((l + r) * 0.5, (l + r) * 0.5),
            };
            out[0] = to_i16(l);
            out[1] = to_i16(r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::local_clocked::LocalClocked;
    use crate::output::OutputError;
    use crate::source::tone::TestSignal;
    use crate::timeline::server_clock::ServerClock;
    use std::sync::atomic::{AtomicI64, Ordering};

    /// An output consumed at the local clock that records what it is given; its sink delay can be changed.
    struct Recorder {
        clock: LocalClocked,
        frames: Arc<Mutex<Vec<i16>>>,
        delay_ns: Arc<AtomicI64>,
        /// Some: a device that applies the volume, with the last percentage it was asked for.
        device_pct: Option<Arc<Mutex<Option<u8>>>>,
    }

    impl Output for Recorder {
        fn kind(&self) -> &'static str {
            "recorder"
        }
        fn status(&mut self, now: LocalTime) -> OutputStatus {
            let mut st = self.clock.status(now);
            st.sink_reported_ns = Some(self.delay_ns.load(Ordering::Relaxed));
            st
        }
        fn write(&mut self, _now: LocalTime, frames: &[i16]) -> Result<(), OutputError> {
            self.clock.wrote(frames);
            self.frames.lock().unwrap().extend_from_slice(frames);
            Ok(())
        }
        fn paced_by_local_clock(&self) -> bool {
            true
        }
        fn device_mut(&mut self) -> Option<&mut dyn crate::output::DeviceControl> {
            Some(self)
        }
    }

    impl crate::output::DeviceControl for Recorder {
        fn set_volume(&mut self, pct: u8) -> bool {
            match &self.device_pct {
                Some(d) => {
                    *d.lock().unwrap() = Some(pct);
                    true
                }
                None => false,
            }
        }
        fn volume(&self) -> Option<(u16, u16)> {
            None
        }
        fn idle(&self) -> bool {
            false
        }
    }

    /// Plays 4 s of the test signal from a source on `clock` to a [`Recorder`]; the sink's delay grows by 30 ms at
    /// 2 s. Returns the left channel written and the player's status.
    fn play(clock: ServerClock) -> (Vec<i16>, PlayerStatus) {
        play_at(clock, 100, None)
    }

    /// [`play`] with a local volume, to an output that applies the volume itself when `device_pct` is given.
    fn play_at(
        clock: ServerClock,
        volume_pct: u8,
        device_pct: Option<Arc<Mutex<Option<u8>>>>,
    ) -> (Vec<i16>, PlayerStatus) {
        let timeline = crate::source::tone::standard_timeline(5 * 48_000 / 960, 10_000_000_000);
        let feed = Feed {
            timeline,
            server_clock: Arc::new(Mutex::new(clock)),
            settings: Arc::new(Mutex::new(PlaySettings {
                buffer_ns: 300_000_000,
                ..PlaySettings::default()
            })),
        };
        let frames = Arc::new(Mutex::new(Vec::new()));
        let delay_ns = Arc::new(AtomicI64::new(100_000_000));
        let out = Recorder {
            clock: LocalClocked::new(20_000_000, 0),
            frames: frames.clone(),
            delay_ns: delay_ns.clone(),
            device_pct,
        };
        let mut cfg = PlayerConfig::named("r");
        cfg.volume_pct = volume_pct;
        let mut player = Player::new(cfg, feed, Box::new(out));
        for tick in 0..800 {
            if tick == 400 {
                delay_ns.store(130_000_000, Ordering::Relaxed);
            }
            player.tick(LocalTime::from_ns(tick * 5_000_000));
        }
        let left = frames.lock().unwrap().chunks_exact(2).map(|f| f[0]).collect();
        (left, player.status())
    }

    /// The source frame output frame `j` copies in `out[from..to]`, if one shift fits all of them exactly.
    fn exact_shift(out: &[i16], from: usize, to: usize) -> Option<i64> {
        let signal = TestSignal::standard();
        let src = |n: i64| (signal.sample(n as u64) * 32767.0).round() as i16;
        (-48_000i64..48_000).find(|k| (from..to).all(|j| j as i64 + k >= 0 && out[j] == src(j as i64 + k)))
    }

    #[test]
    fn a_source_on_the_local_clock_is_copied_bit_exact_and_follows_a_delay_jump() {
        let (out, st) = play(ServerClock::local());
        // Before the jump (t = 0.5–1.9 s) and after it (2.2–3.9 s): exact copies, shifted by the 30 ms (1440 frames).
        let before = exact_shift(&out, 24_000, 91_000).expect("an exact copy before the delay change");
        let after = exact_shift(&out, 106_000, 187_000).expect("an exact copy after the delay change");
        assert_eq!(after - before, 1_440);
        assert_eq!(st.resyncs, 1, "one resync for the jump: {st:?}");
        assert_eq!(st.correction_ppm, 0.0);
        assert!(!st.resampling);
    }

    /// Issue 18: a calibration burst scheduled to be heard at T sits where the music of T's source time would
    /// have been, sample for sample (the same path: the player's mapping, its delay, the output), and a disabled
    /// output plays the burst but none of the music.
    #[test]
    fn a_calibration_burst_takes_the_place_of_the_music_heard_at_its_time() {
        let (music, _) = play(ServerClock::local());
        let k = exact_shift(&music, 24_000, 91_000).expect("exact copy");
        let timeline = crate::source::tone::standard_timeline(5 * 48_000 / 960, 10_000_000_000);
        let feed = Feed {
            timeline,
            server_clock: Arc::new(Mutex::new(ServerClock::local())),
            settings: Arc::new(Mutex::new(PlaySettings {
                buffer_ns: 300_000_000,
                ..PlaySettings::default()
            })),
        };
        let frames = Arc::new(Mutex::new(Vec::new()));
        let out = Recorder {
            clock: LocalClocked::new(20_000_000, 0),
            frames: frames.clone(),
            delay_ns: Arc::new(AtomicI64::new(100_000_000)),
            device_pct: None,
        };
        let mut player = Player::new(PlayerConfig::named("r"), feed, Box::new(out));
        player.set_enabled(false);
        let burst: Vec<f32> = (0..4_800).map(|i| if i % 7 < 3 { 0.25 } else { -0.25 }).collect();
        // Heard at 1.5 s: source time 1.5 − 0.3 (buffer) = 1.2 s, source frame 57 600.
        let at = player
            .schedule_burst(LocalTime::from_ns(1_500_000_000), Arc::new(burst.clone()))
            .unwrap();
        assert_eq!(at, 1_200_000_000);
        for tick in 0..400 {
            player.tick(LocalTime::from_ns(tick * 5_000_000));
        }
        let left: Vec<i16> = frames.lock().unwrap().chunks_exact(2).map(|f| f[0]).collect();
        let j0 = (57_600 - k) as usize;
        for (i, v) in burst.iter().enumerate() {
            assert_eq!(
                left[j0 + i],
                (v * 32767.0).round() as i16,
                "burst sample {i} at output frame {}",
                j0 + i
            );
        }
        assert!(left[..j0].iter().all(|v| *v == 0), "disabled: no music before");
        assert!(left[j0 + burst.len()..].iter().all(|v| *v == 0), "nor after");
        assert!(player.overlay.is_none(), "the burst removed itself once played");
    }

    #[test]
    fn a_device_that_applies_the_volume_gets_full_scale_samples_and_the_percentage() {
        let peak = |out: &[i16]| out[24_000..91_000].iter().map(|v| v.unsigned_abs()).max().unwrap() as f32;
        let (full, _) = play_at(ServerClock::local(), 100, None);
        // Software volume: 50 % scales the samples by Snapcast's curve.
        let (soft, _) = play_at(ServerClock::local(), 50, None);
        let ratio = peak(&soft) / peak(&full);
        assert!((ratio - volume_gain(50)).abs() < 0.01, "software 50 %: ratio {ratio}");
        // A device that applies it: the samples stay exact copies at full scale, and it is told 50 % (group 100 %).
        let asked = Arc::new(Mutex::new(None));
        let (dev, _) = play_at(ServerClock::local(), 50, Some(asked.clone()));
        assert!(exact_shift(&dev, 24_000, 91_000).is_some(), "full-scale exact copy");
        assert_eq!(*asked.lock().unwrap(), Some(50));
    }

    /// Issue 17: the player never waits for what a source holds. With the settings, the server clock and the
    /// source's end of the timeline all held by "the source", ticks go on (on a thread, with a deadline) with the
    /// values read before, and audio keeps coming.
    #[test]
    fn a_tick_does_not_wait_for_the_source() {
        let timeline = crate::source::tone::standard_timeline(5 * 48_000 / 960, 10_000_000_000);
        let feed = Feed {
            timeline: timeline.clone(),
            server_clock: Arc::new(Mutex::new(ServerClock::local())),
            settings: Arc::new(Mutex::new(PlaySettings {
                buffer_ns: 300_000_000,
                ..PlaySettings::default()
            })),
        };
        let frames = Arc::new(Mutex::new(Vec::new()));
        let out = Recorder {
            clock: LocalClocked::new(20_000_000, 0),
            frames: frames.clone(),
            delay_ns: Arc::new(AtomicI64::new(100_000_000)),
            device_pct: None,
        };
        let mut player = Player::new(PlayerConfig::named("r"), feed.clone(), Box::new(out));
        for tick in 0..100 {
            player.tick(LocalTime::from_ns(tick * 5_000_000));
        }
        let settings = feed.settings.lock().unwrap();
        let clock = feed.server_clock.lock().unwrap();
        let sending = timeline.hold_source_end_for_test();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for tick in 100..400 {
                player.tick(LocalTime::from_ns(tick * 5_000_000));
            }
            tx.send(()).unwrap();
        });
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the player's ticks waited for a lock the source held");
        drop((settings, clock, sending));
        let out = frames.lock().unwrap();
        let audible = out[out.len() - 48_000..].iter().filter(|v| **v != 0).count();
        assert!(
            audible > 40_000,
            "the last second played the signal ({audible} non-zero samples)"
        );
    }

    #[test]
    fn device_volume_is_the_product_of_group_and_local_volume() {
        for (group, local, want) in [
            (100, 100, 100),
            (100, 50, 50),
            (50, 50, 25),
            (0, 100, 0),
            (33, 33, 11),
            (200, 100, 100),
        ] {
            assert_eq!(device_volume_pct(group, local), want, "group {group} local {local}");
        }
    }

    #[test]
    fn a_measured_clock_goes_through_the_resampler() {
        // The same audio from a clock that is measured (a network source's) is resampled (bit-exact too here, as
        // the estimate never moves and the polynomial passes through the samples at a ratio of exactly 1).
        let (out, st) = play(ServerClock::fixed(0));
        assert!(st.synced && st.resampling, "{st:?}");
        assert!(exact_shift(&out, 106_000, 107_000).is_some());
    }
}
