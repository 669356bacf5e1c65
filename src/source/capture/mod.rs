//! The `capture` source: a capture device (a USB interface's line-in, a microphone) as the group stream.
//!
//! ```text
//!   cpal callback: device samples → f32, a Stamp (card frame, capture time) ──→ ring        card thread
//!                                                                                 │
//!   engine: ring → CaptureIngest (stereo, 48 kHz, server time) → timeline ←──────┘          engine thread
//!           CaptureIngest::estimate → the feed's ServerClock (offset + rate)
//! ```
//!
//! A frame captured at local time `L` plays at `L + buffer_ms` on every output. The capture card's clock is
//! estimated from its capture timestamps like a server's ([`ingest`]), so a card that runs a few hundred ppm off
//! is followed by the outputs' drift control instead of walking off the timeline.
//!
//! The device is opened at start (a missing or busy one is a clear error listing the capture devices there are).
//! If it vanishes later (a USB interface unplugged), the outputs play silence, and a supervisor thread reopens it
//! when it returns ([`device::supervise`]).

pub mod ingest;
pub mod mic;
pub mod ring;
pub mod stream;

use crate::output::local::device::{self, DeviceError, DeviceName};
use crate::source::Source;
use crate::timeline::buffer::SharedTimeline;
use crate::timeline::server_clock::SharedServerClock;
use crate::timeline::LocalTime;
use ingest::CaptureIngest;
use ring::{CaptureCounters, CaptureReader};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

/// Default device period, ms.
pub const DEFAULT_PERIOD_MS: f64 = 10.0;
/// The ring holds this much audio for an engine that falls behind, ms.
const RING_MS: f64 = 500.0;

/// What the `capture` source opens.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureSpec {
    /// The device as the config names it (`None`: the default capture device).
    pub device: Option<String>,
    /// Device period, ms.
    pub period_ms: f64,
}

impl Default for CaptureSpec {
    fn default() -> Self {
        Self {
            device: None,
            period_ms: DEFAULT_PERIOD_MS,
        }
    }
}

impl CaptureSpec {
    /// The device name, parsed.
    pub fn device_name(&self) -> Result<DeviceName, device::DeviceNameError> {
        match &self.device {
            None => Ok(DeviceName::Default),
            Some(d) => DeviceName::parse(d),
        }
    }
}

/// The engine's side of an open capture stream.
struct Link {
    reader: CaptureReader,
    ingest: CaptureIngest,
    buf: Vec<f32>,
}

/// Opens the device and makes its link: the stream, the engine's side, and the check the supervisor watches.
fn open_link(name: &DeviceName, spec: &CaptureSpec) -> Result<(cpal::Stream, Link, device::FailedCheck), DeviceError> {
    let dev = device::find(name, false)?;
    let period = |rate: u32| ((spec.period_ms * rate as f64 / 1e3).round() as u32).max(16);
    let mut format = stream::negotiate_input(name, &dev, period(48_000))?;
    format.period_frames = period(format.rate_hz);
    let capacity = (RING_MS * format.rate_hz as f64 / 1e3) as usize + 4 * format.period_frames as usize;
    let channels = format.channels as usize;
    let (writer, reader) = ring::ring(capacity, channels);
    let counters = writer.counters();
    let on_error = move |e: cpal::Error| {
        if e.kind() == cpal::ErrorKind::Xrun {
            counters.xruns.fetch_add(1, Ordering::Relaxed);
        } else {
            counters.failed.store(true, Ordering::Relaxed);
        }
    };
    let stream = stream::open_input(name, &dev, format, writer, on_error, None)?;
    tracing::info!(
        "capture source: {name} open, {} Hz {}-channel {}, {}-frame periods",
        format.rate_hz,
        format.channels,
        format.sample_format,
        format.period_frames
    );
    let check = failed_check(reader.counters().clone());
    let link = Link {
        reader,
        ingest: CaptureIngest::new(format.rate_hz, channels),
        buf: Vec::with_capacity(4 * format.period_frames as usize * channels),
    };
    Ok((stream, link, check))
}

fn failed_check(c: Arc<CaptureCounters>) -> device::FailedCheck {
    Box::new(move || c.failed.load(Ordering::Relaxed))
}

/// A capture device feeding the timeline.
pub struct CaptureSource {
    timeline: SharedTimeline,
    server_clock: SharedServerClock,
    link: Option<Link>,
    links: mpsc::Receiver<Link>,
    stop: Arc<AtomicBool>,
    supervisor: Option<std::thread::JoinHandle<()>>,
    reopens: u64,
    logged_gaps: u64,
}

impl CaptureSource {
    /// Opens the device of `spec`, feeding `timeline` (48 kHz stereo) and estimating its clock into
    /// `server_clock`. A missing or busy device is an error naming it and the capture devices there are.
    pub fn open(
        spec: &CaptureSpec,
        timeline: SharedTimeline,
        server_clock: SharedServerClock,
    ) -> Result<Self, DeviceError> {
        let name = spec.device_name().map_err(|e| DeviceError::Host(e.to_string()))?;
        let (stream, link, check) = open_link(&name, spec)?;
        let (tx, rx) = mpsc::sync_channel(1);
        let stop = Arc::new(AtomicBool::new(false));
        let supervisor = {
            let (spec, stop) = (spec.clone(), stop.clone());
            std::thread::Builder::new()
                .name("bb-capture".into())
                .spawn(move || {
                    let open = || open_link(&name, &spec);
                    device::supervise("capture source", &name, Some((stream, check)), open, tx, &stop)
                })
                .map_err(|e| DeviceError::Host(format!("cannot start the capture thread: {e}")))?
        };
        let mut source = Self::with_link(timeline, server_clock, Some(link), rx);
        source.stop = stop;
        source.supervisor = Some(supervisor);
        Ok(source)
    }

    /// The source on `link` and the later ones from `links`, with no supervisor thread (tests feed the links).
    fn with_link(
        timeline: SharedTimeline,
        server_clock: SharedServerClock,
        link: Option<Link>,
        links: mpsc::Receiver<Link>,
    ) -> Self {
        Self {
            timeline,
            server_clock,
            link,
            links,
            stop: Arc::default(),
            supervisor: None,
            reopens: 0,
            logged_gaps: 0,
        }
    }
}

impl Source for CaptureSource {
    fn counters(&self) -> Vec<(&'static str, u64)> {
        self.link_counters()
    }
    fn pump(&mut self, now: LocalTime) {
        if let Ok(link) = self.links.try_recv() {
            self.reopens += 1;
            self.logged_gaps = 0;
            self.link = Some(link);
        }
        let Some(link) = &mut self.link else { return };
        if link.reader.counters().failed.load(Ordering::Relaxed) {
            // The supervisor reopens it; until then the outputs play silence.
            self.link = None;
            return;
        }
        let mut any = false;
        {
            let tl = &self.timeline;
            while let Some(stamp) = link.reader.pop(&mut link.buf) {
                any = true;
                link.ingest.push(stamp, &link.buf, |chunk| {
                    // Chunks are whole stereo frames: push cannot fail.
                    let _ = tl.push(chunk);
                });
            }
        }
        if !any {
            return;
        }
        if let Some((offset_ns, ppm)) = link.ingest.estimate(now) {
            self.server_clock
                .lock()
                .expect("clock lock")
                .set_estimate(offset_ns, ppm, now);
        }
        let gaps = link.ingest.gaps();
        if gaps > self.logged_gaps && (gaps.is_power_of_two() || self.logged_gaps == 0) {
            let c = link.reader.counters();
            tracing::warn!(
                dropped_callbacks = c.overflows.load(Ordering::Relaxed),
                dropped_frames = c.overflow_frames.load(Ordering::Relaxed),
                xruns = c.xruns.load(Ordering::Relaxed),
                reopens = self.reopens,
                "capture source: the engine fell behind the device; {gaps} gaps in the captured audio so far"
            );
            self.logged_gaps = gaps;
        }
    }
}

impl CaptureSource {
    /// The counters of the open device (since it was last opened) and the reopens so far.
    fn link_counters(&self) -> Vec<(&'static str, u64)> {
        let mut v = vec![("reopens", self.reopens)];
        if let Some(link) = &self.link {
            let c = link.reader.counters();
            v.extend([
                ("callbacks", c.callbacks.load(Ordering::Relaxed)),
                ("dropped_callbacks", c.overflows.load(Ordering::Relaxed)),
                ("dropped_frames", c.overflow_frames.load(Ordering::Relaxed)),
                ("xruns", c.xruns.load(Ordering::Relaxed)),
                ("gaps", link.ingest.gaps()),
                ("clock_restarts", link.ingest.clock_restarts()),
            ]);
        }
        v
    }
}

impl Drop for CaptureSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(s) = self.supervisor.take() {
            let _ = s.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::buffer::TimelineBuffer;
    use crate::timeline::server_clock::ServerClock;
    use crate::timeline::AudioFormat;
    use std::sync::Mutex;

    /// The source without a device: a ring written by the test, as the callback would.
    #[test]
    fn pumping_moves_captured_audio_to_the_timeline_and_sets_the_clock() {
        let (mut writer, reader) = ring::ring(4_800, 2);
        let timeline = TimelineBuffer::shared(AudioFormat::STEREO_48K);
        let clock = Arc::new(Mutex::new(ServerClock::new()));
        let (_tx, rx) = mpsc::sync_channel(1);
        let link = Link {
            reader,
            ingest: CaptureIngest::new(48_000, 2),
            buf: Vec::new(),
        };
        let mut src = CaptureSource::with_link(timeline.clone(), clock.clone(), Some(link), rx);
        src.pump(LocalTime::from_ns(0));
        assert_eq!(clock.lock().unwrap().offset_ns(), None, "nothing captured: no clock");
        let data = vec![0.25f32; 960 * 2];
        writer.write(&data, |s| s, 1_000_000_000);
        writer.write(&data, |s| s, 1_020_000_000);
        src.pump(LocalTime::from_ns(1_045_000_000));
        let tl = timeline.lock();
        assert_eq!(tl.start(), Some(crate::timeline::ServerTime::from_ns(1_000_000_000)));
        assert_eq!(tl.end(), Some(crate::timeline::ServerTime::from_ns(1_040_000_000)));
        let c = clock.lock().unwrap();
        assert!(!c.is_local());
        // Server time was started at the first capture time: the offset is (about) zero.
        assert!(c.offset_ns().unwrap().abs() < 1_000, "{:?}", c.offset_ns());
    }

    #[test]
    fn a_failed_device_is_let_go_and_a_new_link_taken_up() {
        let (w1, r1) = ring::ring(100, 1);
        let timeline = TimelineBuffer::shared(AudioFormat::STEREO_48K);
        let clock = Arc::new(Mutex::new(ServerClock::new()));
        let (tx, rx) = mpsc::sync_channel(1);
        let link = |reader| Link {
            reader,
            ingest: CaptureIngest::new(48_000, 1),
            buf: Vec::new(),
        };
        let mut src = CaptureSource::with_link(timeline.clone(), clock, Some(link(r1)), rx);
        w1.counters().failed.store(true, Ordering::Relaxed);
        src.pump(LocalTime::from_ns(0));
        assert!(src.link.is_none());
        let (mut w2, r2) = ring::ring(1_000, 1);
        tx.send(link(r2)).unwrap();
        w2.write(&[0.5f32; 480], |s| s, 7);
        src.pump(LocalTime::from_ns(20_000_000));
        assert_eq!((src.reopens, src.link.is_some()), (1, true));
        assert_eq!(timeline.lock().start(), Some(crate::timeline::ServerTime::from_ns(7)));
        // Its counters say so: one reopen, the new device's one callback, nothing dropped.
        let c: std::collections::BTreeMap<_, _> = src.counters().into_iter().collect();
        assert_eq!(c["reopens"], 1);
        assert_eq!(c["callbacks"], 1, "{c:?}");
        assert_eq!(
            (c["dropped_callbacks"], c["gaps"], c["clock_restarts"]),
            (0, 0, 0),
            "{c:?}"
        );
    }
}
