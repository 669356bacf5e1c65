//! The built-in test signal: a quiet tone with a loud, band-limited click every second as a sync marker.
//!
//! The click is a Gaussian pulse (σ = [`CLICK_SIGMA_FRAMES`]) centred exactly on a frame, so its time is known to
//! the nanosecond and survives resampling with its shape intact; [`crate::report::ClickDetector`] finds its peak
//! to a fraction of a frame at every output.

use super::Source;
use crate::timeline::buffer::{Chunk, SharedTimeline};
use crate::timeline::{AudioFormat, LocalTime, ServerTime};

/// Tone frequency.
pub const TONE_HZ: f64 = 440.0;
/// Tone amplitude (−20 dBFS).
pub const TONE_AMPLITUDE: f64 = 0.1;
/// Click peak amplitude.
pub const CLICK_AMPLITUDE: f64 = 0.8;
/// Width of the click's Gaussian, in frames.
pub const CLICK_SIGMA_FRAMES: f64 = 1.5;
/// Frames from the start of each period to the click's centre.
pub const CLICK_OFFSET_FRAMES: u64 = 4_800;
/// Chunk length pushed to the timeline, in frames (20 ms at 48 kHz, as Snapcast sends).
pub const CHUNK_FRAMES: u64 = 960;

/// The test signal, as a pure function of the frame index.
#[derive(Debug, Clone, Copy)]
pub struct TestSignal {
    /// Output format (interleaved; every channel carries the same signal).
    pub format: AudioFormat,
    /// Frames between clicks.
    pub click_period_frames: u64,
}

impl TestSignal {
    /// 48 kHz stereo, one click per second.
    pub fn standard() -> Self {
        Self {
            format: AudioFormat::STEREO_48K,
            click_period_frames: 48_000,
        }
    }

    /// The sample value of frame `n` (same on every channel).
    pub fn sample(&self, n: u64) -> f32 {
        let rate = self.format.rate_hz as f64;
        let tone = TONE_AMPLITUDE * (2.0 * std::f64::consts::PI * TONE_HZ * (n as f64 / rate)).sin();
        let pos = n % self.click_period_frames;
        let d = pos as f64 - CLICK_OFFSET_FRAMES as f64;
        let click = if d.abs() < 12.0 {
            CLICK_AMPLITUDE * (-(d * d) / (2.0 * CLICK_SIGMA_FRAMES * CLICK_SIGMA_FRAMES)).exp()
        } else {
            0.0
        };
        (tone + click) as f32
    }

    /// Frames after which the signal repeats exactly, if it does: the click period when it holds a whole number of
    /// tone cycles (the standard signal: one second, 440 cycles).
    pub fn repeat_frames(&self) -> Option<u64> {
        let cycles = TONE_HZ * self.click_period_frames as f64 / self.format.rate_hz as f64;
        (self.click_period_frames > 0 && cycles.fract() == 0.0).then_some(self.click_period_frames)
    }

    /// Fills `out` (interleaved) with frames starting at `first`.
    pub fn fill(&self, first: u64, out: &mut [f32]) {
        let ch = self.format.channels as usize;
        for (i, frame) in out.chunks_exact_mut(ch).enumerate() {
            frame.fill(self.sample(first + i as u64));
        }
    }
}

/// The test signal as a live source: frames are "captured" at local time `start + n / rate` and pushed as soon
/// as they are due, stamped with that time (the built-in sources' server clock is the local clock).
///
/// One period of the signal is computed once and then copied: a `sin` per frame is cheap on a real CPU but costs
/// a large share of a vCPU under the rig's emulator (every floating-point instruction is emulated there), which
/// made the test source, not the pipeline under test, the heaviest work on the real-time thread.
pub struct ToneSource {
    signal: TestSignal,
    timeline: SharedTimeline,
    start: LocalTime,
    next_frame: u64,
    /// One repeat period of the signal, a value per frame (empty when the signal does not repeat).
    period: Vec<f32>,
}

impl ToneSource {
    /// A source whose frame 0 is captured at `start`.
    pub fn new(signal: TestSignal, timeline: SharedTimeline, start: LocalTime) -> Self {
        Self {
            signal,
            timeline,
            start,
            next_frame: 0,
            period: signal
                .repeat_frames()
                .map(|p| (0..p).map(|n| signal.sample(n)).collect())
                .unwrap_or_default(),
        }
    }

    /// Fills `out` (interleaved) with frames starting at `first`, from the period table when there is one.
    fn fill(&self, first: u64, out: &mut [f32]) {
        if self.period.is_empty() {
            return self.signal.fill(first, out);
        }
        let ch = self.signal.format.channels as usize;
        let len = self.period.len() as u64;
        for (i, frame) in out.chunks_exact_mut(ch).enumerate() {
            frame.fill(self.period[((first + i as u64) % len) as usize]);
        }
    }
}

impl Source for ToneSource {
    fn pump(&mut self, now: LocalTime) {
        let f = self.signal.format;
        let due = f.ns_to_frames_f64(now.ns_since(self.start)).floor();
        if due < 0.0 {
            return;
        }
        let due = due as u64;
        while self.next_frame + CHUNK_FRAMES <= due + 1 {
            let mut samples = vec![0.0f32; CHUNK_FRAMES as usize * f.channels as usize];
            self.fill(self.next_frame, &mut samples);
            let start = ServerTime::from_ns(self.start.as_ns() + f.frames_to_ns(self.next_frame as i64));
            // The chunk length is a whole number of frames, so push cannot fail.
            let _ = self.timeline.push(Chunk { start, samples });
            self.next_frame += CHUNK_FRAMES;
        }
    }
}

/// Test fixture: a timeline holding the first `chunks` 20 ms chunks of [`TestSignal::standard`], stamped from server
/// time 0, with room for `capacity_ns`.
#[cfg(test)]
pub(crate) fn standard_timeline(chunks: u64, capacity_ns: i64) -> SharedTimeline {
    let signal = TestSignal::standard();
    let timeline = SharedTimeline::with_capacity_ns(signal.format, capacity_ns);
    for c in 0..chunks {
        let mut samples = vec![0.0f32; 960 * 2];
        signal.fill(c * 960, &mut samples);
        let start = ServerTime::from_ns(signal.format.frames_to_ns(c as i64 * 960));
        timeline.push(Chunk { start, samples }).unwrap();
    }
    timeline
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::buffer::TimelineBuffer;

    #[test]
    fn click_peaks_exactly_on_its_frame() {
        let s = TestSignal::standard();
        let c = CLICK_OFFSET_FRAMES + 48_000;
        assert!(s.sample(c) > s.sample(c - 1) && s.sample(c) > s.sample(c + 1));
        assert!(s.sample(c) > 0.7);
        assert!(s.sample(c + 100).abs() <= TONE_AMPLITUDE as f32 + 1e-6);
    }

    #[test]
    fn the_period_table_gives_the_signal_itself() {
        let signal = TestSignal::standard();
        assert_eq!(signal.repeat_frames(), Some(48_000));
        let src = ToneSource::new(
            signal,
            TimelineBuffer::shared(AudioFormat::STEREO_48K),
            LocalTime::from_ns(0),
        );
        // Frames around the clicks of the first and of a much later period (where f64 phase rounding differs).
        for first in [0, CLICK_OFFSET_FRAMES - 50, 3_600 * 48_000 + CLICK_OFFSET_FRAMES - 50] {
            let mut table = vec![0.0f32; 200];
            let mut direct = vec![0.0f32; 200];
            src.fill(first, &mut table);
            signal.fill(first, &mut direct);
            for (a, b) in table.iter().zip(&direct) {
                assert!((a - b).abs() < 1e-6, "frame {first}: {a} vs {b}");
            }
        }
        let odd = TestSignal {
            click_period_frames: 47_999,
            ..signal
        };
        assert_eq!(
            odd.repeat_frames(),
            None,
            "no whole number of cycles: computed per frame"
        );
    }

    #[test]
    fn pushes_chunks_as_they_become_due() {
        let tl = TimelineBuffer::shared(AudioFormat::STEREO_48K);
        let mut src = ToneSource::new(TestSignal::standard(), tl.clone(), LocalTime::from_ns(1_000_000_000));
        src.pump(LocalTime::from_ns(1_000_000_000 + 19_000_000));
        assert_eq!(tl.lock().end(), None);
        src.pump(LocalTime::from_ns(1_000_000_000 + 100_000_000));
        let end = tl.lock().end().unwrap();
        assert_eq!(end, ServerTime::from_ns(1_100_000_000));
    }
}
