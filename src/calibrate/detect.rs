//! First-arrival detection: cross-correlation of a recording with the measurement burst (by FFT), and the
//! *direct* sound found in it — the earliest correlation peak that stands out, not the loudest one.
//!
//! In a room the loudest arrival is often a reflection (a wall behind the speaker, a speaker facing away from the
//! listener), but the direct sound always comes first. So: the correlation's noise is estimated robustly (the
//! median of its magnitude), the threshold is the larger of a fraction of the maximum and a multiple of that
//! noise, the first sample above the threshold is followed up to its local peak, and a parabola through the peak
//! and its neighbours gives the sub-sample position.

use realfft::RealFftPlanner;
use std::ops::Range;

/// Fraction of the largest correlation peak the direct sound must reach. A reflection may be louder than the
/// direct sound; 0.25 accepts a direct sound 12 dB below the loudest reflection.
pub const DIRECT_FRACTION: f32 = 0.25;
/// Multiple of the correlation's noise (its robust standard deviation) the direct sound must exceed, so noise
/// before the arrival never counts as the arrival.
pub const NOISE_FACTOR: f32 = 8.0;
/// Median of |x| for a zero-mean Gaussian x is 0.6745 σ.
const MEDIAN_ABS_PER_SIGMA: f32 = 0.674_5;

/// Normalised cross-correlation `r[k] = Σ_n x[n + k]·t[n] / Σ_n t[n]²` for `k` in `0..recording.len()`: a copy
/// of the template at `k` with gain `g` gives `r[k] ≈ g`.
pub fn cross_correlate(recording: &[f32], template: &[f32]) -> Vec<f32> {
    if recording.is_empty() || template.is_empty() {
        return vec![0.0; recording.len()];
    }
    let n = (recording.len() + template.len()).next_power_of_two();
    let mut planner = RealFftPlanner::<f32>::new();
    let fwd = planner.plan_fft_forward(n);
    let inv = planner.plan_fft_inverse(n);
    let mut a = vec![0.0f32; n];
    a[..recording.len()].copy_from_slice(recording);
    let mut b = vec![0.0f32; n];
    b[..template.len()].copy_from_slice(template);
    let mut fa = fwd.make_output_vec();
    let mut fb = fwd.make_output_vec();
    fwd.process(&mut a, &mut fa).expect("buffer sizes from the plan");
    fwd.process(&mut b, &mut fb).expect("buffer sizes from the plan");
    for (x, y) in fa.iter_mut().zip(&fb) {
        *x *= y.conj();
    }
    // A real signal's spectrum has real DC and Nyquist bins; rounding may leave a tiny imaginary part there.
    fa[0].im = 0.0;
    if let Some(last) = fa.last_mut() {
        last.im = 0.0;
    }
    let mut out = inv.make_output_vec();
    inv.process(&mut fa, &mut out).expect("buffer sizes from the plan");
    let energy: f32 = template.iter().map(|x| x * x).sum();
    let scale = 1.0 / (n as f32 * energy.max(f32::MIN_POSITIVE));
    out.truncate(recording.len());
    out.iter_mut().for_each(|x| *x *= scale);
    out
}

/// An arrival found in a correlation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrival {
    /// Position of the direct sound in the correlation, samples (sub-sample interpolated).
    pub position_samples: f64,
    /// Correlation at the direct sound (its gain at the microphone).
    pub direct_gain: f32,
    /// The largest correlation magnitude in the window (the loudest arrival, maybe a reflection).
    pub max_gain: f32,
    /// Robust standard deviation of the correlation in the window (its noise).
    pub noise_sigma: f32,
    /// Peak-to-noise ratio: the largest peak over the noise, dB.
    pub pnr_db: f64,
}

/// The direct sound in `corr[window]` (see the module doc). `None` if the window is empty or all zero.
pub fn first_arrival(corr: &[f32], window: Range<usize>) -> Option<Arrival> {
    let end = window.end.min(corr.len());
    let start = window.start.min(end);
    let w = &corr[start..end];
    if w.len() < 3 {
        return None;
    }
    let mut mags: Vec<f32> = w.iter().map(|x| x.abs()).collect();
    let max_gain = mags.iter().cloned().fold(0.0f32, f32::max);
    if max_gain <= 0.0 {
        return None;
    }
    let mid = mags.len() / 2;
    let median = *mags.select_nth_unstable_by(mid, |a, b| a.total_cmp(b)).1;
    let noise_sigma = median / MEDIAN_ABS_PER_SIGMA;
    let threshold = (DIRECT_FRACTION * max_gain).max(NOISE_FACTOR * noise_sigma);
    let mag = |i: usize| w[i].abs();
    // Nothing above the noise: report the largest peak (its low ratio says it is noise).
    let threshold = threshold.min(max_gain);
    let mut i = (0..w.len()).find(|&i| mag(i) >= threshold)?;
    while i + 1 < w.len() && mag(i + 1) >= mag(i) {
        i += 1;
    }
    let frac = refine(w, i);
    let pnr_db = if noise_sigma > 0.0 {
        20.0 * (max_gain as f64 / noise_sigma as f64).log10()
    } else {
        f64::INFINITY
    };
    Some(Arrival {
        position_samples: (start + i) as f64 + frac,
        direct_gain: w[i],
        max_gain,
        noise_sigma,
        pnr_db,
    })
}

/// Half-width of the band-limited interpolation kernel, samples.
const INTERP_HALF_SAMPLES: usize = 32;

/// The correlation between samples, band-limited (Hann-windowed sinc over ±32 samples).
fn interpolate(w: &[f32], t: f64) -> f64 {
    let c = t.round() as i64;
    let r = INTERP_HALF_SAMPLES as i64;
    (c - r..=c + r)
        .filter(|&k| k >= 0 && (k as usize) < w.len())
        .map(|k| {
            let x = t - k as f64;
            let sinc = if x.abs() < 1e-12 {
                1.0
            } else {
                (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
            };
            let hann = 0.5 + 0.5 * (std::f64::consts::PI * x / (r as f64 + 1.0)).cos();
            w[k as usize] as f64 * sinc * hann
        })
        .sum()
}

/// Sub-sample offset (−0.5…0.5) of the peak at sample `i`: the maximum of the band-limited correlation near
/// it (a parabola through three samples of a sinc-shaped peak is biased by up to a fifth of a sample).
fn refine(w: &[f32], i: usize) -> f64 {
    let sign = if w[i] < 0.0 { -1.0 } else { 1.0 };
    let f = |t: f64| sign * interpolate(w, i as f64 + t);
    let (mut lo, mut hi) = (-0.6f64, 0.6f64);
    for _ in 0..3 {
        let step = (hi - lo) / 40.0;
        let best = (0..=40)
            .map(|k| lo + k as f64 * step)
            .max_by(|a, b| f(*a).total_cmp(&f(*b)))
            .unwrap_or(0.0);
        lo = best - step;
        hi = best + step;
    }
    (0.5 * (lo + hi)).clamp(-0.5, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::signal::burst;

    /// The burst delayed by a whole number of samples, scaled, added into `out`.
    fn add_at(out: &mut [f32], sig: &[f32], at: usize, gain: f32) {
        for (i, s) in sig.iter().enumerate() {
            if let Some(o) = out.get_mut(at + i) {
                *o += gain * s;
            }
        }
    }

    #[test]
    fn clean_burst_is_found_at_its_sample() {
        let b = burst(5);
        let mut rec = vec![0.0f32; b.len() + 20_000];
        add_at(&mut rec, &b, 12_345, 0.5);
        let c = cross_correlate(&rec, &b);
        let a = first_arrival(&c, 0..c.len()).unwrap();
        assert!((a.position_samples - 12_345.0).abs() < 0.01, "{a:?}");
        assert!((a.direct_gain - 0.5).abs() < 0.01, "{a:?}");
        assert!(a.pnr_db > 40.0, "{a:?}");
    }

    #[test]
    fn the_direct_sound_wins_over_a_louder_reflection() {
        let b = burst(5);
        let mut rec = vec![0.0f32; b.len() + 20_000];
        let direct = 5_000;
        add_at(&mut rec, &b, direct, 0.3);
        add_at(&mut rec, &b, direct + 190, 0.6); // 4 ms later, twice as loud
        add_at(&mut rec, &b, direct + 700, -0.4);
        add_at(&mut rec, &b, direct + 1500, 0.2);
        let mut rng = fastrand::Rng::with_seed(9);
        rec.iter_mut().for_each(|x| *x += 0.05 * (rng.f32() - 0.5));
        let c = cross_correlate(&rec, &b);
        let a = first_arrival(&c, 0..c.len()).unwrap();
        assert!((a.position_samples - direct as f64).abs() < 0.1, "{a:?}");
        // The loudest peak is the reflection: a max-picker would be 190 samples (4 ms) late.
        let loudest = c
            .iter()
            .enumerate()
            .max_by(|x, y| x.1.abs().total_cmp(&y.1.abs()))
            .unwrap()
            .0;
        assert_eq!(loudest, direct + 190);
    }

    #[test]
    fn noise_alone_has_a_low_peak_to_noise_ratio() {
        let b = burst(5);
        let mut rng = fastrand::Rng::with_seed(2);
        let rec: Vec<f32> = (0..b.len() + 40_000).map(|_| rng.f32() - 0.5).collect();
        let c = cross_correlate(&rec, &b);
        let a = first_arrival(&c, 0..c.len()).unwrap();
        assert!(a.pnr_db < crate::calibrate::measure::HEARD_PNR_DB, "{a:?}");
    }
}
