//! The calibration's microphone: a capture device through cpal, its samples placed on the local clock by the
//! capture timestamps (the same callback and ring as the `capture` source: [`super::stream`], [`super::ring`]).
//!
//! Each callback's stamp gives the local capture time of its first frame and its card-frame number. Over one
//! recording the card's clock is taken as nominal (a few ppm over 4 s is far below a sample) and the offset
//! `capture time − card frame / rate` as the lower envelope (5th percentile) over the window's stamps: a stamp is
//! late by its callback's scheduling, never early, so this takes out the jitter: frame `k` was captured at
//! `offset + k / rate`.

use super::ring::{self, CaptureReader};
use super::stream;
use crate::calibrate::session::{MicRecording, Microphone};
use crate::calibrate::signal::RATE_HZ;
use crate::calibrate::CalibrateError;
use crate::output::local::device::{self, DeviceName};
use crate::timeline::{Clock, SystemClock};
use std::time::Duration;

/// Device period asked for, frames (20 ms: one ring stamp per callback, and the ring holds
/// [`ring::STAMP_CAPACITY`] stamps, so 5 ms periods gave 1.3 s, which a loaded guest in the rig overran).
const PERIOD_FRAMES: u32 = 960;
/// The ring holds this much when nobody reads it, frames (4 s).
const RING_FRAMES: usize = 4 * 48_000;
/// No callback for this long is a dead microphone.
const SILENT_DEVICE: Duration = Duration::from_secs(2);

/// An open capture device.
pub struct CpalMic {
    _stream: cpal::Stream,
    reader: CaptureReader,
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
        let s = stream::open_input(&name, &dev, format, writer, |_| {})
            .map_err(|e| CalibrateError::Microphone(e.to_string()))?;
        tracing::info!(
            "calibration microphone {label}: {} Hz, {} channels",
            format.rate_hz,
            format.channels
        );
        Ok(Self {
            _stream: s,
            reader,
            rate_hz: format.rate_hz,
            name: label,
            buf: vec![],
        })
    }
}

impl Microphone for CpalMic {
    fn record(&mut self, from_ns: i64, until_ns: i64) -> Result<MicRecording, CalibrateError> {
        let clock = SystemClock;
        let ns_per_frame = 1e9 / self.rate_hz as f64;
        let ch = self.reader.channels();
        // (card frame, mono sample) of every frame that may fall in the window, and each stamp's offset.
        let mut frames: Vec<(u64, f32)> = Vec::new();
        let mut offsets: Vec<f64> = Vec::new();
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
                if st.after_xrun && !frames.is_empty() {
                    return Err(mic_err(
                        &self.name,
                        "the capture overran during the recording (frames lost)",
                    ));
                }
                offsets.push(st.capture_local_ns as f64 - st.card_frame as f64 * ns_per_frame);
                for (j, f) in self.buf.chunks_exact(ch).enumerate() {
                    frames.push((st.card_frame + j as u64, f.iter().sum::<f32>() / ch as f32));
                }
                if st.capture_local_ns as f64 > until_ns as f64 {
                    done = true;
                }
            }
            if done {
                break;
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
        // Each stamp is the callback's run time less the frames buffered, so a late callback gives a late stamp:
        // the offset is the lower envelope (5th percentile, one wild stamp aside), not the median, which under
        // load moved by tens of ms from one repeat to the next (the rig's `calibrate`, 7 Dec).
        offsets.sort_by(f64::total_cmp);
        let offset = offsets[offsets.len() / 20];
        // How far the stamps scatter above their envelope: the callbacks' lateness (for a refused repeat's why).
        tracing::info!(
            "microphone {}: {} stamps in the window, offset above the envelope: p50 {:.2} ms, max {:.2} ms",
            self.name,
            offsets.len(),
            (offsets[offsets.len() / 2] - offset) / 1e6,
            (offsets[offsets.len() - 1] - offset) / 1e6
        );
        // The first card frame at or after from_ns, then the frames up to until_ns without a gap.
        let first = ((from_ns as f64 - offset) / ns_per_frame).ceil().max(0.0) as u64;
        let last = ((until_ns as f64 - offset) / ns_per_frame).floor().max(0.0) as u64;
        let mut samples = Vec::with_capacity((last.saturating_sub(first) + 1) as usize);
        let mut want = first;
        for (k, v) in frames {
            if k < want || k > last {
                continue;
            }
            if k > want {
                let c = self.reader.counters();
                return Err(mic_err(
                    &self.name,
                    format!(
                        "{} frames were lost during the recording (the reader fell behind: {} callbacks dropped \
                         on a full ring since the device opened)",
                        k - want,
                        c.overflows.load(std::sync::atomic::Ordering::Relaxed)
                    ),
                ));
            }
            samples.push(v);
            want += 1;
        }
        if samples.is_empty() {
            return Err(mic_err(
                &self.name,
                "the recording holds no frame of the window asked for",
            ));
        }
        Ok(MicRecording {
            samples,
            first_sample_ns: (offset + first as f64 * ns_per_frame).round() as i64,
        })
    }
}
