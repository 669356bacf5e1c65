//! The `sim` output: a simulated speaker with the faults real ones have, and perfect knowledge of when it plays.
//!
//! Model: packets written by the player arrive after a random delay (`jitter`), and may be lost (their frames are
//! replaced by silence, keeping timing). A DAC runs on the speaker's own clock, `ppm` off from the local one,
//! starting `buffer` after the speaker was first asked for status, and renders one frame per tick from its
//! queue; a frame not yet arrived is an underrun (silence, the queue waits). A rendered frame is *heard*
//! `render_delay` later — the truth — while the speaker *reports* `reported_delay`, which may be wrong. Like a
//! sound card, it reports how many frames it holds, converted at its nominal rate (it does not know its own
//! clock error). Marker clicks are detected in the rendered audio and timed on the true acoustic clock.

use super::{Output, OutputError, OutputStatus, OUTPUT_FORMAT};
use crate::report::ClickDetector;
use crate::timeline::LocalTime;
use std::collections::VecDeque;

/// A simulated speaker's parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimParams {
    /// True delay from rendering to being heard, ms.
    pub render_delay_ms: f64,
    /// Delay the speaker reports, ms (None: it reports the truth).
    pub reported_delay_ms: Option<f64>,
    /// Clock error of the speaker's DAC, ppm (positive: it plays fast).
    pub ppm: f64,
    /// Largest random extra delay of a packet on the link, ms.
    pub jitter_ms: f64,
    /// Probability that a packet is lost (0..1).
    pub loss: f64,
    /// Audio the speaker buffers before its DAC, ms: what the player keeps queued.
    pub buffer_ms: f64,
    /// Seed of the jitter and loss generator (runs are reproducible).
    pub seed: u64,
}

impl Default for SimParams {
    fn default() -> Self {
        Self {
            render_delay_ms: 0.0,
            reported_delay_ms: None,
            ppm: 0.0,
            jitter_ms: 0.0,
            loss: 0.0,
            buffer_ms: 20.0,
            seed: 1,
        }
    }
}

impl SimParams {
    /// The keys of kind `sim` (besides the common ones).
    pub const KEYS: &'static [&'static str] = &["sim"];

    /// Parses the kind's keys: `sim = { … }`, every parameter defaulted.
    pub fn parse(keys: &mut super::settings::Keys) -> Result<Self, super::settings::SettingError> {
        let Some(s) = keys.take::<SimParams>("sim")? else {
            return Ok(SimParams::default());
        };
        s.get_ref()
            .validate()
            .map_err(|m| super::settings::SettingError::at(s.span(), format!("output.sim: {m}")))?;
        Ok(s.into_inner())
    }

    /// Checks ranges; the message names the bad field.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=5_000.0).contains(&self.render_delay_ms) {
            return Err(format!(
                "render_delay_ms must be between 0 and 5000, not {}",
                self.render_delay_ms
            ));
        }
        if let Some(r) = self.reported_delay_ms {
            if !(0.0..=5_000.0).contains(&r) {
                return Err(format!("reported_delay_ms must be between 0 and 5000, not {r}"));
            }
        }
        if !(-5_000.0..=5_000.0).contains(&self.ppm) {
            return Err(format!("ppm must be between -5000 and 5000, not {}", self.ppm));
        }
        if !(0.0..=1.0).contains(&self.loss) {
            return Err(format!("loss must be a probability between 0 and 1, not {}", self.loss));
        }
        if !(0.0..=1_000.0).contains(&self.jitter_ms) {
            return Err(format!("jitter_ms must be between 0 and 1000, not {}", self.jitter_ms));
        }
        if !(5.0..=2_000.0).contains(&self.buffer_ms) {
            return Err(format!("buffer_ms must be between 5 and 2000, not {}", self.buffer_ms));
        }
        Ok(())
    }
}

struct Packet {
    arrival: LocalTime,
    frames: Vec<i16>,
    consumed: usize, // frames already rendered
}

/// A simulated speaker.
pub struct SimOutput {
    p: SimParams,
    rng: fastrand::Rng,
    dac_t0: Option<LocalTime>,
    /// Frames the DAC has ticked (rendered audio or underrun silence).
    ticked: u64,
    queue: VecDeque<Packet>,
    queued_frames: u64,
    detector: ClickDetector,
    found: Vec<f64>,
    markers: Vec<LocalTime>,
    underruns: u64,
    lost_packets: u64,
    rendered_frames: u64,
}

impl SimOutput {
    /// A speaker with these parameters (validated by the caller).
    pub fn new(p: SimParams) -> Self {
        let rng = fastrand::Rng::with_seed(p.seed);
        Self {
            p,
            rng,
            dac_t0: None,
            ticked: 0,
            queue: VecDeque::new(),
            queued_frames: 0,
            detector: ClickDetector::new(),
            found: vec![],
            markers: vec![],
            underruns: 0,
            lost_packets: 0,
            rendered_frames: 0,
        }
    }

    fn dac_rate(&self) -> f64 {
        OUTPUT_FORMAT.rate_hz as f64 * (1.0 + self.p.ppm * 1e-6)
    }

    /// Local time of DAC tick `j` (fractional allowed).
    fn tick_time_ns(&self, t0: LocalTime, j: f64) -> f64 {
        t0.as_ns() as f64 + j * 1e9 / self.dac_rate()
    }

    /// Renders every DAC tick up to `now`.
    fn advance(&mut self, now: LocalTime) {
        let Some(t0) = self.dac_t0 else { return };
        let due = ((now.ns_since(t0)) as f64 * self.dac_rate() / 1e9).floor();
        if due < 0.0 {
            return;
        }
        let due = due as u64 + 1; // ticks 0..=floor are due
        let render_delay_ns = self.p.render_delay_ms * 1e6;
        while self.ticked < due {
            let tick_ns = self.tick_time_ns(t0, self.ticked as f64);
            let Some(head) = self.queue.front_mut() else {
                // Nothing queued at all: underrun for the rest of the due ticks.
                self.underruns += due - self.ticked;
                self.ticked = due;
                break;
            };
            if (head.arrival.as_ns() as f64) > tick_ns {
                self.underruns += 1;
                self.ticked += 1;
                continue;
            }
            // Render as many frames of this packet as are due.
            let avail = head.frames.len() / 2 - head.consumed;
            let n = avail.min((due - self.ticked) as usize);
            let start = head.consumed;
            let first_tick = self.ticked;
            let samples: Vec<f32> = head.frames[start * 2..(start + n) * 2]
                .chunks_exact(2)
                .map(|f| f[0] as f32 / 32768.0)
                .collect();
            head.consumed += n;
            if head.consumed * 2 == head.frames.len() {
                self.queue.pop_front();
            }
            self.queued_frames -= n as u64;
            self.rendered_frames += n as u64;
            self.ticked += n as u64;
            // Click detection in DAC-tick coordinates: only contiguous rendered runs are fed, indexed by tick.
            self.detector.push(first_tick, samples, &mut self.found);
            let rate = self.dac_rate();
            for pos in self.found.drain(..) {
                let t = t0.as_ns() as f64 + pos * 1e9 / rate + render_delay_ns;
                self.markers.push(LocalTime::from_ns(t.round() as i64));
            }
        }
    }
}

impl Output for SimOutput {
    fn kind(&self) -> &'static str {
        "sim"
    }

    fn status(&mut self, now: LocalTime) -> OutputStatus {
        let buffer_ns = (self.p.buffer_ms * 1e6) as i64;
        let t0 = *self.dac_t0.get_or_insert(now.add_ns(buffer_ns));
        self.advance(now);
        // Ticks elapsed (fractional), as the speaker sees them.
        let elapsed_ticks = (now.ns_since(t0)) as f64 * self.dac_rate() / 1e9;
        let next_written_tick = self.ticked as f64 + self.queued_frames as f64;
        let ahead_frames = next_written_tick - elapsed_ticks;
        // Converted at the *nominal* rate: the speaker does not know its own clock error.
        let transport_ns = (ahead_frames * 1e9 / OUTPUT_FORMAT.rate_hz as f64).round() as i64;
        let want_ns = (buffer_ns - transport_ns).max(0);
        let reported = self.p.reported_delay_ms.unwrap_or(self.p.render_delay_ms);
        OutputStatus {
            transport_ns,
            want_frames: OUTPUT_FORMAT.ns_to_frames_f64(want_ns).ceil() as usize,
            sink_reported_ns: Some((reported * 1e6).round() as i64),
            encoder_ns: 0,
        }
    }

    fn write(&mut self, now: LocalTime, frames: &[i16]) -> Result<(), OutputError> {
        let jitter_ns = if self.p.jitter_ms > 0.0 {
            (self.rng.f64() * self.p.jitter_ms * 1e6) as i64
        } else {
            0
        };
        let lost = self.p.loss > 0.0 && self.rng.f64() < self.p.loss;
        let frames = if lost {
            self.lost_packets += 1;
            vec![0; frames.len()]
        } else {
            frames.to_vec()
        };
        // Packets arrive in order: a packet never overtakes the one before it.
        let arrival = now.add_ns(jitter_ns).max(
            self.queue
                .back()
                .map(|p| p.arrival)
                .unwrap_or(LocalTime::from_ns(i64::MIN)),
        );
        self.queued_frames += (frames.len() / 2) as u64;
        self.queue.push_back(Packet {
            arrival,
            frames,
            consumed: 0,
        });
        Ok(())
    }

    fn take_markers(&mut self) -> Vec<LocalTime> {
        std::mem::take(&mut self.markers)
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("rendered_frames", self.rendered_frames),
            ("underrun_frames", self.underruns),
            ("lost_packets", self.lost_packets),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_at_its_own_clock_and_reports_its_queue() {
        let mut s = SimOutput::new(SimParams {
            ppm: 1000.0,
            buffer_ms: 10.0,
            ..SimParams::default()
        });
        let st = s.status(LocalTime::from_ns(0));
        // 10 ms until the DAC starts, counted in the speaker's fast ticks but converted at the nominal rate.
        assert_eq!(st.transport_ns, 10_010_000);
        assert_eq!(st.want_frames, 0);
        s.write(LocalTime::from_ns(0), &vec![0; 48_000 * 2]).unwrap();
        // After 0.5 s of DAC time at +1000 ppm, 24024 frames were rendered (ticks 0..=24024).
        let st = s.status(LocalTime::from_ns(510_000_000));
        assert!((24_024..=24_025).contains(&s.rendered_frames), "{}", s.rendered_frames);
        // 23975 frames remain, reported at the nominal rate.
        let expect = (48_000.0 - 0.5 * 48_048.0) / 48_000.0 * 1e9;
        assert!(
            (st.transport_ns as f64 - expect).abs() < 25_000.0,
            "{} vs {expect}",
            st.transport_ns
        );
    }

    #[test]
    fn marker_times_include_the_true_render_delay_and_late_packets_underrun() {
        let sig = crate::source::tone::TestSignal::standard();
        let mut s = SimOutput::new(SimParams {
            render_delay_ms: 100.0,
            reported_delay_ms: Some(80.0),
            buffer_ms: 10.0,
            ..SimParams::default()
        });
        assert_eq!(s.status(LocalTime::from_ns(0)).sink_reported_ns, Some(80_000_000));
        let mut block = vec![0i16; 9_600 * 2];
        for (i, f) in block.chunks_exact_mut(2).enumerate() {
            let v = (sig.sample(i as u64) * 32767.0) as i16;
            f.fill(v);
        }
        s.write(LocalTime::from_ns(0), &block).unwrap();
        s.status(LocalTime::from_ns(300_000_000));
        let m = s.take_markers();
        // Click at frame 4800 → DAC tick 4800 → 10 ms + 100 ms + 100 ms.
        assert_eq!(m.len(), 1);
        assert!((m[0].as_ns() - 210_000_000).abs() < 1_000, "{m:?}");
        // A packet that arrives after its tick causes an underrun.
        let mut late = SimOutput::new(SimParams {
            jitter_ms: 50.0,
            buffer_ms: 5.0,
            seed: 7,
            ..SimParams::default()
        });
        late.status(LocalTime::from_ns(0));
        late.write(LocalTime::from_ns(0), &[0; 480]).unwrap();
        late.status(LocalTime::from_ns(100_000_000));
        assert!(late.underruns > 0);
    }

    #[test]
    fn validation_names_the_field() {
        let e = SimParams {
            loss: 2.0,
            ..SimParams::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.contains("loss"), "{e}");
    }
}
