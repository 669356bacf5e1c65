//! A simulated room for the calibration tests and `bluebridge demo --calibrate`: speakers whose true render
//! delay differs from what they report, each heard after its distance (speed of sound) with a few decaying
//! reflections (some louder than the direct sound), noise, and a microphone with a capture latency of its own;
//! and, for the recording path, a recorder whose clock is off by some ppm and whose file is at 44.1 kHz.
//!
//! Time here is the local monotonic clock in ns. A burst scheduled to be *heard* at `play_ns` is handed to the
//! speaker at `play_ns − (reported + calibration)` (the delay model) and so really sounds at
//! `play_ns + true − reported − calibration`, then reaches the microphone `distance / c` later.

use super::measure::{combine, measure_repeat, Capture, SpeakerResult};
use super::recording::resample;
use super::signal::RATE_HZ;
use super::CalibrateError;
use realfft::{num_complex::Complex, RealFftPlanner};

/// Speed of sound at 20 °C, m/s.
pub const SPEED_OF_SOUND_M_S: f64 = 343.0;
/// A capture starts this long before the burst is due, ms.
pub const PRE_ROLL_MS: f64 = 300.0;
/// …and runs this long after its end, ms (room for late speakers and the reverberant tail).
pub const POST_ROLL_MS: f64 = 700.0;

/// One reflection of a speaker's sound, relative to its direct sound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reflection {
    /// Arrives this much after the direct sound, ms.
    pub after_ms: f64,
    /// Gain relative to the direct sound (may be > 1 or negative).
    pub gain: f32,
}

/// One simulated speaker in the room.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSpeaker {
    /// Output name.
    pub name: String,
    /// The delay it reports (its Delay report or the assumed default), ms.
    pub reported_delay_ms: f64,
    /// The delay it really has, ms.
    pub true_delay_ms: f64,
    /// Its distance from the microphone, m.
    pub distance_m: f64,
    /// Gain of its direct sound at the microphone.
    pub gain: f32,
    /// Its true delay varies by up to ± this between plays (an unsteady link), ms.
    pub jitter_ms: f64,
    /// False: it does not play at all (off, disconnected).
    pub plays: bool,
    /// The room's reflections of it.
    pub reflections: Vec<Reflection>,
}

impl SimSpeaker {
    /// A speaker that plays, no jitter, with a reverberant tail drawn from `seed`.
    pub fn new(name: &str, reported_delay_ms: f64, true_delay_ms: f64, distance_m: f64, seed: u64) -> Self {
        SimSpeaker {
            name: name.into(),
            reported_delay_ms,
            true_delay_ms,
            distance_m,
            gain: 0.5,
            jitter_ms: 0.0,
            plays: true,
            reflections: reverb(seed),
        }
    }

    /// What its report hides: true − reported delay, ms (positive: it is slower than it says).
    pub fn hidden_error_ms(&self) -> f64 {
        self.true_delay_ms - self.reported_delay_ms
    }

    /// Travel time to the microphone, ms.
    pub fn flight_ms(&self) -> f64 {
        self.distance_m / SPEED_OF_SOUND_M_S * 1e3
    }

    /// How late (ms) its sound reaches the listening position relative to the play time, with the given
    /// calibration and no jitter: the figure a perfect calibration drives to the same value for every speaker.
    pub fn late_at_listener_ms(&self, calibration_ms: f64) -> f64 {
        self.hidden_error_ms() - calibration_ms + self.flight_ms()
    }
}

/// A few decaying reflections, 1.5…30 ms after the direct sound, deterministic from `seed`; the first is
/// louder than the direct sound (a speaker facing a wall, turned away from the listener).
pub fn reverb(seed: u64) -> Vec<Reflection> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut after_ms = 1.5 + 2.0 * rng.f64();
    let mut out = vec![Reflection {
        after_ms,
        gain: 1.4 + 0.4 * rng.f32(),
    }];
    let mut gain = 0.8f32;
    for _ in 0..5 {
        after_ms += 2.0 + 5.0 * rng.f64();
        let sign = if rng.bool() { 1.0 } else { -1.0 };
        out.push(Reflection {
            after_ms,
            gain: sign * gain * (0.7 + 0.3 * rng.f32()),
        });
        gain *= 0.6;
    }
    out
}

/// The room: speakers, the microphone's noise, gain and capture latency.
#[derive(Debug, Clone)]
pub struct SimRoom {
    /// The speakers.
    pub speakers: Vec<SimSpeaker>,
    /// RMS of the microphone's noise (room and self-noise), full scale.
    pub noise_rms: f32,
    /// The microphone's gain; the capture clips at ±1.
    pub mic_gain: f32,
    /// From sound at the microphone to its capture timestamp, ms: unknown to the calibration.
    pub capture_latency_ms: f64,
    rng: fastrand::Rng,
}

impl SimRoom {
    /// A room with moderate noise (−50 dBFS), unity microphone gain and a 7.3 ms capture latency.
    pub fn new(speakers: Vec<SimSpeaker>, seed: u64) -> Self {
        SimRoom {
            speakers,
            noise_rms: 0.003,
            mic_gain: 1.0,
            capture_latency_ms: 7.3,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// When speaker `i`'s burst due at `play_ns` reaches the microphone (true time, ns), this play's jitter
    /// drawn; `None` if it does not play.
    fn arrival_ns(&mut self, i: usize, calibration_ms: f64, play_ns: i64) -> Option<f64> {
        let s = &self.speakers[i];
        if !s.plays {
            return None;
        }
        let jitter = if s.jitter_ms > 0.0 {
            s.jitter_ms * (2.0 * self.rng.f64() - 1.0)
        } else {
            0.0
        };
        Some(play_ns as f64 + (s.late_at_listener_ms(calibration_ms) + jitter) * 1e6)
    }

    /// The paths (position in samples from `origin_ns`, gain) of speaker `i`'s burst arriving at `at_ns`.
    fn paths(&self, i: usize, at_ns: f64, origin_ns: f64, out: &mut Vec<(f64, f32)>) {
        let s = &self.speakers[i];
        let pos = (at_ns - origin_ns) * RATE_HZ as f64 / 1e9;
        out.push((pos, s.gain));
        for r in &s.reflections {
            out.push((pos + r.after_ms * RATE_HZ as f64 / 1e3, s.gain * r.gain));
        }
    }

    fn finish(&mut self, mut x: Vec<f32>) -> Vec<f32> {
        for v in x.iter_mut() {
            *v = ((*v + self.noise_rms * gaussian(&mut self.rng)) * self.mic_gain).clamp(-1.0, 1.0);
        }
        x
    }

    /// One measurement of speaker `i` (with `calibration_ms` in place): the burst scheduled to be heard at
    /// `scheduled_ns`, captured from [`PRE_ROLL_MS`] before until [`POST_ROLL_MS`] after it. Returns the
    /// samples and the capture timestamp of the first one (the microphone's latency makes it late).
    pub fn capture(&mut self, i: usize, calibration_ms: f64, burst: &[f32], scheduled_ns: i64) -> (Vec<f32>, i64) {
        let first_sample_ns = scheduled_ns - (PRE_ROLL_MS * 1e6) as i64;
        let len = ((PRE_ROLL_MS + POST_ROLL_MS) * RATE_HZ as f64 / 1e3) as usize + burst.len();
        // Sample n of the capture is stamped first + n/fs but holds the sound of first + n/fs − latency.
        let origin_ns = first_sample_ns as f64 - self.capture_latency_ms * 1e6;
        let mut paths = vec![];
        if let Some(at) = self.arrival_ns(i, calibration_ms, scheduled_ns) {
            self.paths(i, at, origin_ns, &mut paths);
        }
        let x = render(burst, &paths, len);
        (self.finish(x), first_sample_ns)
    }

    /// A phone's recording of the played sequence: `reference` plays the burst at 0, `order[k]` at
    /// `(k + 1) · spacing`, `reference` again at `(order.len() + 1) · spacing` (calibrations `calibration_ms[i]`
    /// in place). The recorder starts `lead_ms` before the first burst, its clock runs `recorder_ppm` fast and
    /// it writes at `out_rate_hz`. Returns the samples as the file holds them.
    #[allow(clippy::too_many_arguments)]
    pub fn record_sequence(
        &mut self,
        reference: usize,
        order: &[usize],
        calibration_ms: &[f64],
        burst: &[f32],
        spacing_ns: i64,
        lead_ms: f64,
        recorder_ppm: f64,
        out_rate_hz: u32,
    ) -> Vec<f32> {
        let t0 = 1_000_000_000i64;
        let origin_ns = t0 as f64 - lead_ms * 1e6;
        let total_ns = (order.len() as i64 + 1) * spacing_ns;
        let len = ((lead_ms * 1e6 + total_ns as f64) * RATE_HZ as f64 / 1e9) as usize + burst.len() + RATE_HZ as usize;
        let mut plays = vec![(reference, t0)];
        plays.extend(
            order
                .iter()
                .enumerate()
                .map(|(k, &i)| (i, t0 + (k as i64 + 1) * spacing_ns)),
        );
        plays.push((reference, t0 + total_ns));
        let mut paths = vec![];
        for (i, play_ns) in plays {
            if let Some(at) = self.arrival_ns(i, calibration_ms[i], play_ns) {
                self.paths(i, at, origin_ns, &mut paths);
            }
        }
        let x = render(burst, &paths, len);
        let x = self.finish(x);
        // The recorder takes out_rate · (1 + ppm) samples per true second and calls them out_rate.
        resample(&x, out_rate_hz as f64 / RATE_HZ as f64 * (1.0 + recorder_ppm * 1e-6))
    }
}

impl SimRoom {
    /// Measures speaker `i` the way the service would: `repeats` bursts, each scheduled to be heard at a known
    /// play time (4 s apart, from `first_play_ns`), captured and checked, then combined. The capture latency is
    /// not known to the measurement (`None`): the result carries it, the same for every speaker.
    pub fn measure(
        &mut self,
        i: usize,
        calibration_ms: f64,
        repeats: usize,
        burst: &[f32],
        first_play_ns: i64,
    ) -> Result<SpeakerResult, CalibrateError> {
        let name = self.speakers[i].name.clone();
        let mut rs = Vec::with_capacity(repeats);
        for k in 0..repeats {
            let scheduled_ns = first_play_ns + k as i64 * 4_000_000_000;
            let (x, first_sample_ns) = self.capture(i, calibration_ms, burst, scheduled_ns);
            rs.push(measure_repeat(
                &name,
                Capture {
                    samples: &x,
                    first_sample_ns,
                    scheduled_ns,
                },
                burst,
            )?);
        }
        combine(&name, &rs, None)
    }
}

/// `len` samples holding `signal` at each (fractional position in samples, gain) of `paths`: band-limited
/// fractional delays applied as phase ramps on the signal's spectrum.
pub fn render(signal: &[f32], paths: &[(f64, f32)], len: usize) -> Vec<f32> {
    let n = (len + signal.len()).next_power_of_two();
    let mut planner = RealFftPlanner::<f32>::new();
    let fwd = planner.plan_fft_forward(n);
    let inv = planner.plan_fft_inverse(n);
    let mut a = vec![0.0f32; n];
    a[..signal.len()].copy_from_slice(signal);
    let mut spec = fwd.make_output_vec();
    fwd.process(&mut a, &mut spec).expect("buffer sizes from the plan");
    let mut h = vec![Complex::<f64>::new(0.0, 0.0); spec.len()];
    for &(pos, gain) in paths {
        // A path entirely before the buffer, or after it, adds nothing (and would wrap around).
        if pos + (signal.len() as f64) < 0.0 || pos >= len as f64 {
            continue;
        }
        let w = -2.0 * std::f64::consts::PI * pos / n as f64;
        let step = Complex::new(w.cos(), w.sin());
        let mut ph = Complex::new(gain as f64, 0.0);
        for v in h.iter_mut() {
            *v += ph;
            ph *= step;
        }
    }
    for (s, g) in spec.iter_mut().zip(&h) {
        *s *= Complex::new(g.re as f32, g.im as f32);
    }
    spec[0].im = 0.0;
    if let Some(last) = spec.last_mut() {
        last.im = 0.0;
    }
    let mut out = inv.make_output_vec();
    inv.process(&mut spec, &mut out).expect("buffer sizes from the plan");
    out.truncate(len);
    let scale = 1.0 / n as f32;
    out.iter_mut().for_each(|v| *v *= scale);
    out
}

/// A standard normal sample (Box–Muller).
fn gaussian(rng: &mut fastrand::Rng) -> f32 {
    let u1 = rng.f64().max(1e-300);
    let u2 = rng.f64();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::detect::{cross_correlate, first_arrival};
    use crate::calibrate::signal::burst;

    #[test]
    fn render_places_a_fractional_delay() {
        let b = burst(1);
        let x = render(&b, &[(1000.37, 0.5)], b.len() + 4000);
        let c = cross_correlate(&x, &b);
        let a = first_arrival(&c, 0..c.len()).unwrap();
        assert!((a.position_samples - 1000.37).abs() < 0.02, "{a:?}");
    }

    #[test]
    fn reverb_has_a_reflection_louder_than_the_direct_sound() {
        let r = reverb(4);
        assert!(r[0].gain > 1.0 && r[0].after_ms >= 1.5);
        assert!(r.windows(2).all(|w| w[1].after_ms > w[0].after_ms));
    }

    #[test]
    fn a_capture_hears_the_speaker_after_its_error_distance_and_the_mic_latency() {
        let b = burst(2);
        let mut room = SimRoom::new(vec![SimSpeaker::new("a", 150.0, 170.0, 3.43, 5)], 1);
        let sched = 50_000_000_000i64;
        let (x, first) = room.capture(0, 0.0, &b, sched);
        let c = cross_correlate(&x, &b);
        let a = first_arrival(&c, 0..c.len()).unwrap();
        let heard_ns = first as f64 + a.position_samples * 1e9 / RATE_HZ as f64;
        let late_ms = (heard_ns - sched as f64) / 1e6;
        // 20 ms hidden + 10 ms of flight + 7.3 ms capture latency.
        assert!((late_ms - 37.3).abs() < 0.05, "{late_ms}");
    }
}
