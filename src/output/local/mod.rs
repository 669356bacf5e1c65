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
mod tests {
    use super::*;
    use crate::output::player::{Feed, PlaySettings, Player, PlayerConfig, PlayerStatus};
    use crate::report::ClickDetector;
    use crate::source::tone::CLICK_OFFSET_FRAMES;
    use crate::timeline::server_clock::ServerClock;
    use std::sync::Mutex;

    const BUFFER_NS: i64 = 300_000_000;
    /// Jitter of the simulated card's stamps (either way) around the true playback time.
    const JITTER_NS: i64 = 1_000_000;

    struct Run {
        /// Acoustic time − play time of every click after the first `settle_s`, ns.
        deviations_ns: Vec<f64>,
        status: PlayerStatus,
        /// The status when the settling time was over.
        settled: PlayerStatus,
        counters: Vec<(String, u64)>,
    }

    /// Plays the test signal through a `local` output into a simulated card at `rate_hz` whose clock runs
    /// `card_ppm` off the local one: it calls back for a period when two periods remain queued, stamps each
    /// callback's playback time up to [`JITTER_NS`] late (never early: the device's position is read after a
    /// hardware step, so the delay it gives is too long, never too short), and plays what the ring gives it. Clicks are timed
    /// on the card's true clock.
    fn run(card_ppm: f64, rate_hz: u32, drift_control: bool, secs: u64, settle_s: u64) -> Run {
        let timeline =
            crate::source::tone::standard_timeline((secs + 1) * 48_000 / 960, (secs as i64 + 2) * 1_000_000_000);
        let feed = Feed {
            timeline,
            server_clock: Arc::new(Mutex::new(ServerClock::local())),
            settings: Arc::new(Mutex::new(PlaySettings {
                buffer_ns: BUFFER_NS,
                ..PlaySettings::default()
            })),
        };
        let spec = LocalSpec::default();
        let period = spec.period_frames(rate_hz) as u64;
        let format = DeviceFormat::stereo(rate_hz, cpal::SampleFormat::F32, period as u32);
        let (writer, mut reader) = ring::ring(rate_hz as usize, 2);
        let out = LocalOutput::on_link("card", &spec, writer, format);
        let mut cfg = PlayerConfig::named("card");
        cfg.drift_control = drift_control;
        let mut player = Player::new(cfg, feed, Box::new(out));

        let card_rate = rate_hz as f64 * (1.0 + card_ppm * 1e-6);
        let t0 = 50_000_000.0; // card frame 0 plays at 50 ms
        let play_ns = |frame: f64| t0 + frame * 1e9 / card_rate;
        let mut rng = fastrand::Rng::with_seed(7);
        let mut detector = ClickDetector::new();
        let mut found = vec![];
        let mut buf = vec![0.0f32; period as usize * 2];
        let mut k = 0u64; // next callback
        let mut settled = player.status();
        for tick in 0..(secs * 200) as i64 {
            let now = tick * 5_000_000;
            // Callback k runs when the card starts playing frame (k − 2)·period.
            while play_ns(k.saturating_sub(2) as f64 * period as f64) <= now as f64 {
                let first = k * period;
                let playback = play_ns(first as f64) as i64;
                let stamp = playback + rng.i64(0..=JITTER_NS);
                reader.fill(&mut buf, 0.0, |s| s, stamp, stamp - now);
                detector.push(first, buf.chunks_exact(2).map(|f| f[0]), &mut found);
                k += 1;
            }
            player.tick(LocalTime::from_ns(now));
            if now == settle_s as i64 * 1_000_000_000 {
                settled = player.status();
            }
        }
        let deviations_ns = found
            .iter()
            .map(|&pos| play_ns(pos))
            .filter(|&t| t > settle_s as f64 * 1e9)
            .map(|t| {
                // The click nearest this time: click n is source frame n·48000 + 4800, played at its time + buffer.
                let src_ns = t - BUFFER_NS as f64;
                let n = ((src_ns - CLICK_OFFSET_FRAMES as f64 * 1e9 / 48_000.0) / 1e9).round();
                t - (n * 1e9 + CLICK_OFFSET_FRAMES as f64 * 1e9 / 48_000.0 + BUFFER_NS as f64)
            })
            .collect();
        Run {
            settled,
            deviations_ns,
            status: player.status(),
            counters: player.status().counters,
        }
    }

    fn parse(output: &str) -> Result<Option<LocalSpec>, String> {
        let text = format!("[source]\nkind = \"tone\"\n[[output]]\nname = \"x\"\n{output}\n");
        crate::config::Config::parse("t.toml", &text)
            .map(|(_, o)| match &o[0].settings {
                crate::output::OutputSettings::Local(l) => Some(l.clone()),
                _ => None,
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_config_takes_device_period_and_buffer_for_local_outputs_only() {
        assert_eq!(parse("kind = \"local\""), Ok(Some(LocalSpec::default())));
        let spec = parse("kind = \"local\"\ndevice = \"hw:CARD=Headphones\"\nperiod_ms = 5\nbuffer_ms = 40")
            .unwrap()
            .unwrap();
        assert_eq!(
            spec.device_name(),
            Ok(DeviceName::Pcm("hw:CARD=Headphones,DEV=0".into()))
        );
        assert_eq!((spec.period_ms, spec.buffer_ms), (5.0, 40.0));
        let e = parse("kind = \"local\"\nperiod_ms = 500").unwrap_err();
        assert!(
            e.contains("t.toml:6") && e.contains("period_ms must be between 1 and 100"),
            "{e}"
        );
        let e = parse("kind = \"local\"\ndevice = \"\"").unwrap_err();
        assert!(e.contains("output.device: the device name is empty"), "{e}");
        let e = parse("kind = \"sim\"\ndevice = \"hw:0\"").unwrap_err();
        assert!(e.contains("output.device does not apply to kind \"sim\""), "{e}");
        assert_eq!(parse("kind = \"sim\""), Ok(None));
    }

    #[test]
    fn a_vanished_device_makes_the_output_wait_and_a_reopened_one_plays_on() {
        let spec = LocalSpec::default();
        let format = DeviceFormat::stereo(48_000, cpal::SampleFormat::I16, 480);
        let (writer, mut reader) = ring::ring(48_000, 2);
        let (mut out, supervisor) = LocalOutput::on_link_with_supervisor("card", &spec, writer, format);
        let mut buf = [0i16; 960];
        let block = [1000i16; 480]; // 240 frames: 5 ms
                                    // Playing: a callback stamped, the output linked and asking for audio.
        reader.fill(&mut buf, 0, convert::to_device::<i16>, 20_000_000, 20_000_000);
        let st = out.status(LocalTime::from_ns(0));
        assert!(out.linked() && st.want_frames > 0, "{st:?}");
        out.write(LocalTime::from_ns(0), &block).unwrap();
        // The device vanishes (the stream's error callback): waiting, still consuming at the local clock.
        reader.fail();
        let st = out.status(LocalTime::from_ns(5_000_000));
        assert!(!out.linked(), "waiting");
        assert_eq!(st.sink_reported_ns, Some(0));
        let lead = LocalOutput::lead_ns(&spec);
        assert_eq!(st.transport_ns, lead, "the local clock's schedule starts");
        out.write(LocalTime::from_ns(5_000_000), &block).unwrap();
        assert_eq!(out.status(LocalTime::from_ns(5_000_000)).transport_ns, lead + 5_000_000);
        // It comes back: the supervisor hands over a new link; once it calls back the output plays again.
        let (w2, mut r2) = ring::ring(48_000, 2);
        supervisor.send(Link::new(w2, format)).unwrap();
        out.status(LocalTime::from_ns(10_000_000));
        assert!(!out.linked(), "not before its first callback");
        r2.fill(&mut buf, 0, convert::to_device::<i16>, 40_000_000, 20_000_000);
        let st = out.status(LocalTime::from_ns(15_000_000));
        assert!(out.linked(), "{st:?}");
        let reopens = out.counters().into_iter().find(|(k, _)| *k == "reopens").unwrap().1;
        assert_eq!(reopens, 1);
        // The old link's callbacks still count.
        let callbacks = out.counters().into_iter().find(|(k, _)| *k == "callbacks").unwrap().1;
        assert_eq!(callbacks, 2);
    }

    fn p95_abs(v: &[f64]) -> f64 {
        let mut a: Vec<f64> = v.iter().map(|d| d.abs()).collect();
        a.sort_by(f64::total_cmp);
        a[(a.len() * 95 / 100).min(a.len() - 1)]
    }

    fn counter(r: &Run, name: &str) -> u64 {
        r.counters.iter().find(|(k, _)| k == name).map_or(0, |(_, v)| *v)
    }

    #[test]
    fn a_card_300_ppm_off_either_way_stays_on_the_timeline_and_its_rate_is_measured() {
        for ppm in [300.0, -300.0, 0.0] {
            let r = run(ppm, 48_000, true, 40, 10);
            assert!(
                r.deviations_ns.len() >= 28,
                "{ppm} ppm: {} clicks",
                r.deviations_ns.len()
            );
            let p95 = p95_abs(&r.deviations_ns);
            assert!(
                p95 < 200_000.0,
                "{ppm} ppm: p95 deviation {p95} ns: {:?}",
                r.deviations_ns
            );
            assert!(
                (r.status.drift_estimate_ppm - ppm).abs() < 20.0,
                "{ppm} ppm: drift estimate {}",
                r.status.drift_estimate_ppm
            );
            // Once settled (the start resynchronises when the first stamps replace the nominal delay): no jump,
            // no underrun.
            assert_eq!(r.status.resyncs, r.settled.resyncs, "{ppm} ppm: {:?}", r.status);
            let underruns = |s: &PlayerStatus| s.counters.iter().find(|(k, _)| k == "underruns").map(|c| c.1);
            assert_eq!(underruns(&r.status), underruns(&r.settled), "{ppm} ppm: {:?}", r.status);
            assert!(r.status.synced && r.status.resampling);
        }
    }

    #[test]
    fn a_44_1_khz_card_is_resampled_and_stays_on_the_timeline() {
        let r = run(150.0, 44_100, true, 30, 10);
        let p95 = p95_abs(&r.deviations_ns);
        assert!(
            r.deviations_ns.len() >= 18 && p95 < 200_000.0,
            "p95 {p95} ns: {:?}",
            r.deviations_ns
        );
        assert!(
            (r.status.drift_estimate_ppm - 150.0).abs() < 20.0,
            "{}",
            r.status.drift_estimate_ppm
        );
        assert_eq!(counter(&r, "device_rate_hz"), 44_100);
    }

    #[test]
    fn without_drift_control_a_300_ppm_card_walks_off() {
        // The negative control of the test above: the same card with rate control off drifts by 0.3 ms a second
        // until the player jumps back (past 5 ms).
        let r = run(300.0, 48_000, false, 40, 10);
        let worst = r.deviations_ns.iter().fold(0.0f64, |m, d| m.max(d.abs()));
        assert!(
            p95_abs(&r.deviations_ns) > 2_000_000.0 || worst > 4_000_000.0,
            "{:?}",
            r.deviations_ns
        );
        assert!(r.status.resyncs >= 1, "{:?}", r.status);
    }
}
