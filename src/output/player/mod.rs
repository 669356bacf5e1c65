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

mod config;
#[cfg(test)]
mod tests;

pub use config::{ChannelMap, Feed, PlaySettings, PlayerConfig, PlayerStatus, SharedPlaySettings};

use super::resample::RateConverter;
use super::volume::VolumeCurve;
use super::{Output, OutputStatus, OUTPUT_FORMAT};
use crate::calibrate::overlay::Overlay;
use crate::timeline::delay::OutputDelay;
use crate::timeline::drift::{Correction, DriftController};
use crate::timeline::{AudioFormat, LocalTime, ServerTime};
use std::sync::Arc;

/// Frames per block handed to an output (5 ms at 48 kHz).
pub const BLOCK_FRAMES: usize = 240;

/// Marker times kept for [`Player::take_markers`] (an hour of one click a second) when nobody takes them.
const MAX_MARKERS: usize = 3_600;

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
