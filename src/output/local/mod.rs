//! The `local` output: the box's own sound card (headphone jack, HDMI, a USB DAC, an I2S HAT) through cpal.
//!
//! ```text
//! player (48 kHz stereo, drift-corrected) → DeviceConverter (device rate + channels) → ring ─┐   engine thread
//!                                                                                              │
//!   cpal callback: ring → device sample format, silence on underrun, a Stamp per period ←─────┘   card thread
//! ```
//!
//! When is a frame heard? Every callback stamps the card frame it starts with and its playback time (cpal's
//! playback timestamp against the callback time, read on the local clock); [`EnvelopeClock`] fits a line
//! through the earliest of those stamps (the device's delay is read after a hardware-position step, so a stamp
//! can be late, never early), so the output knows when any card frame plays and how fast the card runs against
//! the local clock. The next frame written is `queued` frames behind the last stamped one, so it is heard at the
//! line's value there; that is the output's delay, reported as two named parts: `transport` (our ring) and the
//! device's own delay as `sink_reported`. The player's drift controller then keeps the output on the group's
//! timeline by resampling (a card a few hundred ppm off shows up in its error and is corrected like any speaker),
//! and the card's measured rate ([`Output::clock_ppm`]) seeds it so it starts at the right rate.
//!
//! The device is opened at start (a missing or busy one is a clear error listing the devices there are). If it
//! vanishes later (a USB DAC unplugged), the output goes `waiting`, keeps consuming audio at the local clock so it
//! stays on the timeline, and a supervisor thread reopens the device when it returns.

pub mod convert;
pub mod device;
pub mod ring;

use super::local_clocked::LocalClocked;
use super::settings::{Keys, SettingError};
use super::{Output, OutputError, OutputStatus, OUTPUT_FORMAT};
use crate::timeline::envelope_clock::EnvelopeClock;
use crate::timeline::LocalTime;
use convert::DeviceConverter;
use device::{DeviceFormat, DeviceName};
use ring::{RingCounters, RingWriter, Stamp};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

/// Default period of the device, ms (the device buffer holds two).
pub const DEFAULT_PERIOD_MS: f64 = 10.0;
/// Default audio kept in the ring ahead of the device buffer, ms: the engine wakes every 5 ms, so this absorbs
/// three late wake-ups.
pub const DEFAULT_BUFFER_MS: f64 = 20.0;
/// The ring holds this much more than the target, so a burst from the player never overflows it.
const RING_HEADROOM_MS: f64 = 200.0;

/// A `local` output's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalSpec {
    /// The device as the config names it (`None`: the default device).
    pub device: Option<String>,
    /// Device period, ms.
    pub period_ms: f64,
    /// Audio kept in the ring ahead of the device buffer, ms.
    pub buffer_ms: f64,
}

impl Default for LocalSpec {
    fn default() -> Self {
        Self {
            device: None,
            period_ms: DEFAULT_PERIOD_MS,
            buffer_ms: DEFAULT_BUFFER_MS,
        }
    }
}

impl LocalSpec {
    /// The device name, parsed.
    pub fn device_name(&self) -> Result<DeviceName, device::DeviceNameError> {
        match &self.device {
            None => Ok(DeviceName::Default),
            Some(d) => DeviceName::parse(d),
        }
    }

    fn period_frames(&self, rate_hz: u32) -> u32 {
        ((self.period_ms * rate_hz as f64 / 1e3).round() as u32).max(16)
    }
}

/// The keys of kind `local` (besides the common ones).
pub const KEYS: &[&str] = &["device", "period_ms", "buffer_ms"];

impl LocalSpec {
    /// Parses the kind's keys (its row of [`super::kinds::KINDS`]).
    pub fn parse(keys: &mut Keys) -> Result<Self, SettingError> {
        let mut spec = LocalSpec::default();
        if let Some(d) = keys.take::<String>("device")? {
            DeviceName::parse(d.get_ref()).map_err(|e| SettingError::at(d.span(), format!("output.device: {e}")))?;
            spec.device = Some(d.get_ref().trim().to_string());
        }
        let mut range = |key: &str, lo: f64, hi: f64, default: f64| -> Result<f64, SettingError> {
            Ok(keys.ms_ns(key, lo, hi)?.map_or(default, |ns| ns as f64 / 1e6))
        };
        spec.period_ms = range("period_ms", 1.0, 100.0, DEFAULT_PERIOD_MS)?;
        spec.buffer_ms = range("buffer_ms", 5.0, 1_000.0, DEFAULT_BUFFER_MS)?;
        Ok(spec)
    }

    /// `check-config`'s words: the device, then period and buffer.
    pub fn describe(&self) -> (Option<String>, Vec<String>) {
        (
            Some(self.device.clone().unwrap_or_else(|| "default".into())),
            vec![format!("period {} ms, buffer {} ms", self.period_ms, self.buffer_ms)],
        )
    }
}

/// The engine's side of an open device.
struct Link {
    writer: RingWriter,
    format: DeviceFormat,
    conv: DeviceConverter,
    clock: EnvelopeClock,
    last: Option<Stamp>,
    /// Device frames dropped because the ring was full.
    overflow_frames: u64,
}

impl Link {
    fn new(writer: RingWriter, format: DeviceFormat) -> Self {
        Self {
            writer,
            conv: DeviceConverter::new(format.rate_hz, format.channels as usize),
            clock: EnvelopeClock::new(format.rate_hz),
            format,
            last: None,
            overflow_frames: 0,
        }
    }

    fn ns_per_device_frame(&self) -> f64 {
        1e9 / self.format.rate_hz as f64
    }

    /// Ring frame (fractional) that the next 48 kHz frame written becomes.
    fn next_ring_frame(&self) -> f64 {
        self.writer.written_frames() as f64 + (self.conv.next_device_frame() - self.conv.produced_frames() as f64)
    }

    /// Device frames waiting: in the ring, and (as fractional device frames) in the converter.
    fn queued_device_frames(&self) -> f64 {
        self.writer.queued_frames() as f64 + (self.next_ring_frame() - self.writer.written_frames() as f64)
    }

    /// The delay of the next frame written, as (ours, the device's), ns.
    fn delay_ns(&mut self, now: LocalTime) -> (i64, i64) {
        let clock = &mut self.clock;
        let last = &mut self.last;
        self.writer.take_stamps(|s| {
            if s.after_xrun {
                // The card played silence of its own or restarted: its frames no longer line up with the fit.
                clock.restart();
            }
            clock.push(s.card_frame, s.playback_local_ns);
            *last = Some(s);
        });
        let nominal_device_ns = 2 * self.format.period_frames as i64 * 1_000_000_000 / self.format.rate_hz as i64;
        let Some(s) = self.last else {
            // No callback yet: what is queued at the nominal rate, then the device buffer.
            return (
                (self.queued_device_frames() * self.ns_per_device_frame()).round() as i64,
                nominal_device_ns,
            );
        };
        let card = s.card_frame as f64 + (self.next_ring_frame() - s.ring_frame as f64);
        let heard_ns = self.clock.time_of(card).expect("a stamp was pushed") - now.as_ns();
        (heard_ns - s.device_delay_ns, s.device_delay_ns)
    }
}

/// A sound card output.
pub struct LocalOutput {
    name: String,
    spec: LocalSpec,
    link: Option<Link>,
    links: mpsc::Receiver<Link>,
    stop: Arc<AtomicBool>,
    supervisor: Option<std::thread::JoinHandle<()>>,
    /// While there is no device: consumes audio at the local clock so the output stays on the timeline.
    waiting: LocalClocked,
    /// Counters of links that are gone (underruns, callbacks…), added to the current one's.
    past: [u64; 5],
    reopens: u64,
}

/// Opens `name` and makes its link: negotiates the format, makes the ring, starts the stream.
fn open_link(name: &DeviceName, spec: &LocalSpec) -> Result<(cpal::Stream, Link), device::DeviceError> {
    let dev = device::find(name, true)?;
    // The period depends on the rate: negotiate at 48 kHz periods, then size the period for the rate chosen.
    let mut format = device::negotiate_output(name, &dev, spec.period_frames(OUTPUT_FORMAT.rate_hz))?;
    format.period_frames = spec.period_frames(format.rate_hz);
    let channels = format.channels as usize;
    let capacity = ((spec.buffer_ms + RING_HEADROOM_MS + 4.0 * spec.period_ms) * format.rate_hz as f64 / 1e3) as usize;
    let (writer, reader) = ring::ring(capacity, channels);
    let counters = reader.counters();
    let on_error = move |e: cpal::Error| {
        if e.kind() == cpal::ErrorKind::Xrun {
            counters.xruns.fetch_add(1, Ordering::Relaxed);
        } else {
            counters.failed.store(true, Ordering::Relaxed);
        }
    };
    let stream = device::open_output(name, &dev, format, reader, on_error)?;
    Ok((stream, Link::new(writer, format)))
}

impl LocalOutput {
    /// Opens the device of `spec` for the output `name`; a missing or busy device is an error naming it and the
    /// devices there are.
    pub fn open(name: &str, spec: &LocalSpec) -> Result<Self, OutputError> {
        let device = spec.device_name().map_err(|e| OutputError::Other(e.to_string()))?;
        let (stream, link) = open_link(&device, spec).map_err(|e| OutputError::Other(e.to_string()))?;
        tracing::info!(output = name, "sound device {device} open: {:?}", link.format);
        let (tx, rx) = mpsc::sync_channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let counters = link.writer.counters().clone();
        let supervisor = {
            let (output, spec, stop) = (name.to_string(), spec.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("bb-card-{name}"))
                .spawn(move || {
                    let failed = |c: Arc<RingCounters>| -> device::FailedCheck {
                        Box::new(move || c.failed.load(Ordering::Relaxed))
                    };
                    let open = || {
                        open_link(&device, &spec).map(|(stream, link)| {
                            let check = failed(link.writer.counters().clone());
                            (stream, link, check)
                        })
                    };
                    device::supervise(
                        &format!("output {output}"),
                        &device,
                        Some((stream, failed(counters))),
                        open,
                        tx,
                        &stop,
                    )
                })
                .map_err(|e| OutputError::Io {
                    what: "starting the sound device thread".into(),
                    error: e,
                })?
        };
        Ok(Self {
            name: name.to_string(),
            waiting: LocalClocked::new(Self::lead_ns(spec), 0),
            spec: spec.clone(),
            link: Some(link),
            links: rx,
            stop,
            supervisor: Some(supervisor),
            past: [0; 5],
            reopens: 0,
        })
    }

    fn lead_ns(spec: &LocalSpec) -> i64 {
        ((spec.buffer_ms + 2.0 * spec.period_ms) * 1e6) as i64
    }

    fn counters_of(c: &RingCounters) -> [u64; 5] {
        [
            c.underruns.load(Ordering::Relaxed),
            c.underrun_frames.load(Ordering::Relaxed),
            c.callbacks.load(Ordering::Relaxed),
            c.xruns.load(Ordering::Relaxed),
            c.stamps_dropped.load(Ordering::Relaxed),
        ]
    }

    fn drop_link(&mut self) {
        if let Some(l) = self.link.take() {
            let c = l.writer.counters();
            c.failed.store(true, Ordering::Relaxed);
            for (p, v) in self.past.iter_mut().zip(Self::counters_of(c)) {
                *p += v;
            }
            self.waiting = LocalClocked::new(Self::lead_ns(&self.spec), 0);
        }
    }
}

impl Output for LocalOutput {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn status(&mut self, now: LocalTime) -> OutputStatus {
        if let Ok(link) = self.links.try_recv() {
            self.drop_link();
            self.reopens += 1;
            self.link = Some(link);
        }
        if self
            .link
            .as_ref()
            .is_some_and(|l| l.writer.counters().failed.load(Ordering::Relaxed) || l.writer.is_abandoned())
        {
            tracing::warn!(output = self.name, "sound device gone; playing on when it returns");
            self.drop_link();
        }
        let Some(link) = &mut self.link else {
            return self.waiting.status(now);
        };
        let (ours_ns, device_ns) = link.delay_ns(now);
        // Keep `buffer_ms` queued in the ring and converter, counted in 48 kHz frames.
        let queued_48k = link.queued_device_frames() / link.conv.device_frames(1.0);
        let target_48k = OUTPUT_FORMAT.ns_to_frames_f64((self.spec.buffer_ms * 1e6) as i64);
        let free_48k = link.writer.free_frames() as f64 / link.conv.device_frames(1.0);
        OutputStatus {
            transport_ns: ours_ns,
            want_frames: (target_48k - queued_48k).clamp(0.0, free_48k).ceil() as usize,
            sink_reported_ns: Some(device_ns),
            encoder_ns: 0,
        }
    }

    fn write(&mut self, _now: LocalTime, frames: &[i16]) -> Result<(), OutputError> {
        let Some(link) = &mut self.link else {
            self.waiting.wrote(frames);
            return Ok(());
        };
        let (writer, overflow, ch) = (
            &mut link.writer,
            &mut link.overflow_frames,
            link.format.channels as usize,
        );
        link.conv.push(frames, |block| {
            let pushed = writer.push(block);
            *overflow += (block.len() / ch - pushed) as u64;
        });
        Ok(())
    }

    fn linked(&self) -> bool {
        self.link.as_ref().is_some_and(|l| l.last.is_some())
    }

    fn clock_ppm(&self) -> Option<f64> {
        self.link.as_ref().and_then(|l| l.clock.ppm())
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let now = self
            .link
            .as_ref()
            .map(|l| Self::counters_of(l.writer.counters()))
            .unwrap_or_default();
        let total: Vec<u64> = self.past.iter().zip(now).map(|(a, b)| a + b).collect();
        let mut v = vec![
            ("underruns", total[0]),
            ("underrun_frames", total[1]),
            ("callbacks", total[2]),
            ("xruns", total[3]),
            ("stamps_dropped", total[4]),
            ("reopens", self.reopens),
        ];
        if let Some(l) = &self.link {
            v.push(("device_rate_hz", l.format.rate_hz as u64));
            v.push(("device_channels", l.format.channels as u64));
            v.push(("ring_overflow_frames", l.overflow_frames));
            v.push(("clock_restarts", l.clock.restarts()));
            if let Some(s) = l.last {
                v.push(("device_delay_us", (s.device_delay_ns / 1_000).max(0) as u64));
            }
        }
        v
    }

    fn close(&mut self) -> Result<(), OutputError> {
        self.stop.store(true, Ordering::Relaxed);
        self.drop_link();
        if let Some(h) = self.supervisor.take() {
            let _ = h.join();
        }
        Ok(())
    }
}

impl Drop for LocalOutput {
    fn drop(&mut self) {
        // Not joined here (drop may run on the real-time path); the supervisor sees the flag within a poll.
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl LocalOutput {
    /// An output on a ring the caller reads as a card would (a simulated card: the tests and `bench local`),
    /// without a device or supervisor.
    pub fn on_link(name: &str, spec: &LocalSpec, writer: RingWriter, format: DeviceFormat) -> Self {
        Self::on_link_with_supervisor(name, spec, writer, format).0
    }

    /// [`on_link`](Self::on_link), with the sender a supervisor would hand a reopened device's link to.
    fn on_link_with_supervisor(
        name: &str,
        spec: &LocalSpec,
        writer: RingWriter,
        format: DeviceFormat,
    ) -> (Self, mpsc::SyncSender<Link>) {
        let (tx, rx) = mpsc::sync_channel(1);
        let out = Self {
            name: name.to_string(),
            waiting: LocalClocked::new(Self::lead_ns(spec), 0),
            spec: spec.clone(),
            link: Some(Link::new(writer, format)),
            links: rx,
            stop: Arc::new(AtomicBool::new(false)),
            supervisor: None,
            past: [0; 5],
            reopens: 0,
        };
        (out, tx)
    }
}

#[cfg(test)]
mod tests;
