//! The calibration's microphone: a capture device through cpal, its samples placed on the local clock by the
//! capture timestamps (the same callback and ring as the `capture` source: [`super::stream`], [`super::ring`]).
//!
//! Each callback's stamp gives the local capture time of its first frame and its card-frame number. Over one
//! recording the card's clock is taken as nominal (a few ppm over 4 s is far below a sample) and the offset
//! `capture time − card frame / rate` as the lower envelope (5th percentile) over the window's stamps: a stamp is
//! late by its callback's scheduling, never early, so this takes out the jitter: frame `k` was captured at
//! `offset + k / rate`. An overrun (cpal's error callback) loses frames the card count does not know of, so each
//! stretch between overruns gets its own offset ([`assemble`]); frames nobody captured are silence.

use super::ring::{self, CaptureCounters, CaptureReader, Stamp};
use super::stream;
use crate::calibrate::session::{MicRecording, Microphone};
use crate::calibrate::signal::RATE_HZ;
use crate::calibrate::CalibrateError;
use crate::output::local::device::{self, DeviceName};
use crate::timeline::{Clock, SystemClock};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Device period asked for, frames (100 ms). cpal double-buffers (cpal 0.18.2 src/host/alsa/mod.rs,
/// `DEFAULT_PERIODS = 2`), so a callback later than one period overruns: with 20 ms periods a loaded rig guest
/// overran 31 times in one 3.7 s window (1.5 s lost). Latency does not matter here, only that nothing is lost;
/// a window still holds ~37 stamps for the envelope, and the ring's [`ring::STAMP_CAPACITY`] stamps hold 25 s.
const PERIOD_FRAMES: u32 = 4_800;
/// The ring holds this much when nobody reads it, frames (4 s).
const RING_FRAMES: usize = 4 * 48_000;
/// Frames read and dropped after opening (1 s).
const WARM_UP_FRAMES: usize = 48_000;
/// No callback for this long is a dead microphone.
const SILENT_DEVICE: Duration = Duration::from_secs(2);

/// An open capture device.
pub struct CpalMic {
    _stream: cpal::Stream,
    reader: CaptureReader,
    counters: Arc<CaptureCounters>,
    rate_hz: u32,
    name: String,
    buf: Vec<f32>,
}

fn mic_err(name: &str, what: impl std::fmt::Display) -> CalibrateError {
    CalibrateError::Microphone(format!("{name}: {what}"))
}

impl CpalMic {
    /// Opens `device` (None: the default capture device) at 48 kHz; a missing or busy device, or one that cannot
    /// capture at 48 kHz, is an error naming it.
    pub fn open(device: Option<&str>) -> Result<Self, CalibrateError> {
        let name = match device {
            None => DeviceName::Default,
            Some(d) => DeviceName::parse(d).map_err(|e| CalibrateError::Microphone(e.to_string()))?,
        };
        let label = name.to_string();
        let dev = device::find(&name, false).map_err(|e| CalibrateError::Microphone(e.to_string()))?;
        let mut format = stream::negotiate_input(&name, &dev, PERIOD_FRAMES)
            .map_err(|e| CalibrateError::Microphone(e.to_string()))?;
        if format.rate_hz != RATE_HZ {
            return Err(mic_err(
                &label,
                format!(
                    "captures at {} Hz only; the calibration needs {RATE_HZ} Hz (choose another device with --mic)",
                    format.rate_hz
                ),
            ));
        }
        format.period_frames = PERIOD_FRAMES;
        let (writer, reader) = ring::ring(RING_FRAMES, format.channels as usize);
        let counters = writer.counters();
        let c = counters.clone();
        // cpal reports an overrun through the error callback (cpal 0.18.2 src/host/alsa/mod.rs, the worker's
        // `ErrorKind::Xrun` arm): counted, the next stamp says so and starts a new stretch in `assemble`.
        let on_error = move |e: cpal::Error| {
            if e.kind() == cpal::ErrorKind::Xrun {
                c.xruns.fetch_add(1, Ordering::Relaxed);
            } else {
                c.failed.store(true, Ordering::Relaxed);
            }
        };
        // SCHED_FIFO where allowed, at the engine's priority: the engine's own real-time thread would otherwise
        // delay the callback past its period on a busy machine.
        let rt = Some(crate::timeline::clock::REALTIME_PRIORITY);
        let s = stream::open_input(&name, &dev, format, writer, on_error, rt)
            .map_err(|e| CalibrateError::Microphone(e.to_string()))?;
        tracing::info!(
            "calibration microphone {label}: {} Hz, {} channels",
            format.rate_hz,
            format.channels
        );
        let mut mic = Self {
            _stream: s,
            reader,
            counters,
            rate_hz: format.rate_hz,
            name: label,
            buf: vec![],
        };
        mic.warm_up()?;
        Ok(mic)
    }

    /// Reads and drops [`WARM_UP_FRAMES`] before the first burst is scheduled: a device's first moments are not
    /// to be trusted (a USB microphone's start-up, and in the rig snd-aloop moves its playback side by a whole
    /// buffer when the capture side starts), and a device that delivers nothing fails here, before anything plays.
    fn warm_up(&mut self) -> Result<(), CalibrateError> {
        let start = std::time::Instant::now();
        let mut frames = 0usize;
        while frames < WARM_UP_FRAMES {
            while let Some(st) = self.reader.pop(&mut self.buf) {
                frames += st.frames as usize;
            }
            if self.counters.failed.load(Ordering::Relaxed) {
                return Err(mic_err(&self.name, "the capture stream failed"));
            }
            if start.elapsed() > SILENT_DEVICE + Duration::from_secs(1) {
                return Err(mic_err(
                    &self.name,
                    format!("no audio from the device for {} s", SILENT_DEVICE.as_secs() + 1),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Microphone for CpalMic {
    fn record(&mut self, from_ns: i64, until_ns: i64) -> Result<MicRecording, CalibrateError> {
        let clock = SystemClock;
        let ns_per_frame = 1e9 / self.rate_hz as f64;
        let ch = self.reader.channels();
        // Every callback that may fall in the window: its stamp and its mono samples.
        let mut chunks: Vec<(Stamp, Vec<f32>)> = Vec::new();
        let mut last_data = std::time::Instant::now();
        loop {
            let mut done = false;
            while let Some(st) = self.reader.pop(&mut self.buf) {
                last_data = std::time::Instant::now();
                let end_ns = st.capture_local_ns as f64 + st.frames as f64 * ns_per_frame;
                // Generous: a stamp's time can be late by the callback's scheduling (hundreds of ms in the rig).
                if end_ns < from_ns as f64 - 1e9 {
                    continue; // stale: before the window
                }
                let mono = self
                    .buf
                    .chunks_exact(ch)
                    .map(|f| f.iter().sum::<f32>() / ch as f32)
                    .collect();
                chunks.push((st, mono));
                if st.capture_local_ns as f64 > until_ns as f64 {
                    done = true;
                }
            }
            if done {
                break;
            }
            if self.counters.failed.load(Ordering::Relaxed) {
                return Err(mic_err(&self.name, "the capture stream failed"));
            }
            if last_data.elapsed() > SILENT_DEVICE {
                return Err(mic_err(
                    &self.name,
                    format!("no audio from the device for {} s", SILENT_DEVICE.as_secs()),
                ));
            }
            let wait = (until_ns - clock.now().as_ns()).clamp(2_000_000, 20_000_000);
            std::thread::sleep(Duration::from_nanos(wait as u64));
        }
        let a = assemble(&chunks, from_ns, until_ns, self.rate_hz).map_err(|e| mic_err(&self.name, e))?;
        tracing::info!(
            "microphone {}: {} stamps in the window, {} overruns, {:.1} ms not captured; offset above the \
             envelope: p50 {:.2} ms, max {:.2} ms",
            self.name,
            chunks.len(),
            a.segments - 1,
            a.missing_frames as f64 * ns_per_frame / 1e6,
            a.scatter_p50_ms,
            a.scatter_max_ms
        );
        Ok(a.recording)
    }
}

/// A window put together from its callbacks.
#[derive(Debug)]
pub struct Assembled {
    pub recording: MicRecording,
    /// Stretches between overruns.
    pub segments: usize,
    /// Frames of the window no callback held (an overrun, a dropped callback): silence.
    pub missing_frames: usize,
    /// How far the main stretch's stamps lie above its envelope: median and largest, ms.
    pub scatter_p50_ms: f64,
    pub scatter_max_ms: f64,
}

/// Places each callback's samples on the local clock (pure). The card-frame count runs on across an overrun
/// (frames the device lost are not counted), so each stretch between overruns gets its own offset `capture time −
/// card frame / rate`: the lower envelope (5th percentile) of its stamps, since a stamp is late by its callback's
/// scheduling and never early. The window is laid on the grid of its longest stretch (its frames land exactly,
/// the others to the nearest sample); frames nobody captured are silence, and a window less than half captured is
/// refused.
pub fn assemble(chunks: &[(Stamp, Vec<f32>)], from_ns: i64, until_ns: i64, rate_hz: u32) -> Result<Assembled, String> {
    let ns_per_frame = 1e9 / rate_hz as f64;
    let mut seg_of = Vec::with_capacity(chunks.len());
    let mut offsets: Vec<Vec<f64>> = vec![];
    for (st, _) in chunks {
        if offsets.is_empty() || st.after_xrun {
            offsets.push(vec![]);
        }
        offsets
            .last_mut()
            .expect("pushed")
            .push(st.capture_local_ns as f64 - st.card_frame as f64 * ns_per_frame);
        seg_of.push(offsets.len() - 1);
    }
    if offsets.is_empty() {
        return Err("the recording holds no frame of the window asked for".into());
    }
    let mut frames_in = vec![0usize; offsets.len()];
    for ((_, mono), &sg) in chunks.iter().zip(&seg_of) {
        frames_in[sg] += mono.len();
    }
    let main = (0..offsets.len()).max_by_key(|&i| frames_in[i]).expect("one segment");
    let envelope: Vec<f64> = offsets
        .iter_mut()
        .map(|o| {
            o.sort_by(f64::total_cmp);
            o[o.len() / 20]
        })
        .collect();
    let o = &offsets[main];
    let scatter_p50_ms = (o[o.len() / 2] - envelope[main]) / 1e6;
    let scatter_max_ms = (o[o.len() - 1] - envelope[main]) / 1e6;
    // The grid: the main stretch's frames from the first at or after from_ns.
    let first = ((from_ns as f64 - envelope[main]) / ns_per_frame).ceil();
    let start_ns = envelope[main] + first * ns_per_frame;
    let len = ((until_ns as f64 - start_ns) / ns_per_frame).floor() as i64 + 1;
    if len <= 0 {
        return Err("the window asked for is empty".into());
    }
    let len = len as usize;
    let mut samples = vec![0.0f32; len];
    let mut filled = vec![false; len];
    for ((st, mono), &sg) in chunks.iter().zip(&seg_of) {
        for (j, &v) in mono.iter().enumerate() {
            let t = envelope[sg] + (st.card_frame + j as u64) as f64 * ns_per_frame;
            let i = ((t - start_ns) / ns_per_frame).round();
            if i >= 0.0 && (i as usize) < len {
                samples[i as usize] = v;
                filled[i as usize] = true;
            }
        }
    }
    let missing_frames = filled.iter().filter(|f| !**f).count();
    if missing_frames * 2 > len {
        return Err(format!(
            "{missing_frames} of the window's {len} frames were not captured (overruns or a reader that fell behind)"
        ));
    }
    Ok(Assembled {
        recording: MicRecording {
            samples,
            first_sample_ns: start_ns.round() as i64,
        },
        segments: offsets.len(),
        missing_frames,
        scatter_p50_ms,
        scatter_max_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Callbacks of 960 frames, each sample its frame's capture time in s, stamped `late_ns` late; with an
    /// overrun, the `lost` frames before frame `xrun_at` never come and the card count does not know of them.
    fn chunks(
        frames: std::ops::Range<u64>,
        lost: u64,
        t0_ns: f64,
        late_ns: &[i64],
        xrun_at: Option<u64>,
    ) -> Vec<(Stamp, Vec<f32>)> {
        let nspf = 1e9 / 48_000.0;
        let card_shift = lost;
        frames
            .step_by(960)
            .filter(|f| !xrun_at.is_some_and(|x| (x - lost..x).contains(f)))
            .enumerate()
            .map(|(k, f)| {
                let card = if xrun_at.is_some_and(|x| f >= x) {
                    f - card_shift
                } else {
                    f
                };
                let st = Stamp {
                    card_frame: card,
                    frames: 960,
                    capture_local_ns: (t0_ns + f as f64 * nspf) as i64 + late_ns[k % late_ns.len()],
                    after_xrun: xrun_at == Some(f),
                };
                (
                    st,
                    (0..960)
                        .map(|j| ((t0_ns + (f + j) as f64 * nspf) / 1e9) as f32)
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn late_stamps_and_an_overrun_leave_every_sample_at_its_capture_time() {
        let t0 = 5e9;
        // 4 s of callbacks, stamps 0..30 ms late; an overrun before frame 96 000 lost 2 880 frames (60 ms, three
        // callbacks) that the card count does not know of.
        let c = chunks(
            0..192_000,
            2_880,
            t0,
            &[0, 30_000_000, 4_000_000, 12_000_000, 1_000_000],
            Some(96_000),
        );
        let from = (t0 + 0.5e9) as i64;
        let a = assemble(&c, from, (t0 + 3.5e9) as i64, 48_000).unwrap();
        assert_eq!(a.segments, 2);
        let nspf = 1e9 / 48_000.0;
        for (i, &v) in a.recording.samples.iter().enumerate() {
            let t = (a.recording.first_sample_ns as f64 + i as f64 * nspf) / 1e9;
            if v != 0.0 {
                assert!((v as f64 - t).abs() < 12e-6, "sample {i}: {v} at {t}");
            }
        }
        // The overrun's 60 ms are silence, nothing else is missing.
        assert!((2_880..2_882).contains(&a.missing_frames), "{}", a.missing_frames);
    }

    #[test]
    fn a_window_mostly_not_captured_is_refused() {
        let c = chunks(0..48_000, 0, 0.0, &[0], None);
        assert!(assemble(&c, 0, 3_000_000_000, 48_000).is_err());
        assert!(assemble(&[], 0, 1_000_000_000, 48_000).is_err());
    }
}
