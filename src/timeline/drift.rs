//! Drift control: keeps one output locked to its own consumption clock.
//!
//! Every block, the player measures `error = actual − wanted`: the source time of the frame it is about to hand
//! over minus the source time that should be handed over now (so that it is heard at its play time). A positive
//! error means the output is ahead in the source (it would play early), so the resampler must produce *more*
//! output frames per source frame: the correction is a relative rate `ratio = 1 + ppm·10⁻⁶` (out/in).
//!
//! The loop is a PI controller: `ppm = KP·e + KI·∫e dt`. With the error's dynamics `de/dt = drift − correction`
//! this is a second-order loop with natural frequency `ω = √KI` and damping `KP / (2√KI)`; the integral term
//! converges to the output's clock error, so a speaker at +200 ppm ends with zero steady-state error. The
//! correction is a smooth resampling ratio (inaudible; see the THD+N test in `output::player`), never a dropped
//! or repeated sample. Only when the error exceeds [`HARD_RESYNC_THRESHOLD_NS`] (a speaker reported a new delay,
//! the source jumped, an underrun) does the player jump: skip source audio or insert silence, once.

/// Largest rate correction applied, in ppm (1000 ppm = 1.7 cents of pitch, inaudible).
pub const MAX_CORRECTION_PPM: f64 = 1000.0;
/// Past this error (in either direction) the player re-synchronises with a jump instead of a rate change.
pub const HARD_RESYNC_THRESHOLD_NS: i64 = 5_000_000;
/// Loop natural frequency, rad/s: the loop settles in about `5/ω` seconds.
pub const LOOP_OMEGA_RAD_S: f64 = 1.0;
/// Proportional gain, ppm per microsecond of error per… (critically damped: `2ω`), in 1/s.
pub const KP_PER_S: f64 = 2.0 * LOOP_OMEGA_RAD_S;
/// Integral gain, in 1/s² (`ω²`).
pub const KI_PER_S2: f64 = LOOP_OMEGA_RAD_S * LOOP_OMEGA_RAD_S;

/// What the player must do next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Correction {
    /// Play at this relative rate (out/in = 1 + ppm·10⁻⁶).
    Rate {
        /// Parts per million; positive stretches (more output per source frame).
        ppm: f64,
    },
    /// Jump to the wanted position (skip or insert silence), then continue at the current rate estimate.
    Resync {
        /// The error that triggered it.
        error_ns: i64,
    },
}

/// The PI drift controller for one output. Pure: fed errors, returns corrections.
#[derive(Debug, Clone)]
pub struct DriftController {
    enabled: bool,
    /// ∫KI·e dt in ppm: converges to the output's clock error.
    integral_ppm: f64,
    last_ppm: f64,
}

impl Default for DriftController {
    fn default() -> Self {
        Self::new()
    }
}

impl DriftController {
    /// A controller with no drift estimate yet.
    pub fn new() -> Self {
        Self {
            enabled: true,
            integral_ppm: 0.0,
            last_ppm: 0.0,
        }
    }

    /// A controller that never corrects the rate (it still re-synchronises past the threshold). For tests and
    /// for comparing against.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::new()
        }
    }

    /// The current drift estimate (the integral term), in ppm.
    pub fn drift_estimate_ppm(&self) -> f64 {
        self.integral_ppm
    }

    /// Starts the drift estimate at a measured clock error (an output that measures its consumer's rate, such as
    /// a sound card from its timestamps), so the loop starts locked instead of integrating up to it. No effect on
    /// a disabled controller; clamped like the estimate.
    pub fn seed_ppm(&mut self, ppm: f64) {
        if self.enabled && ppm.is_finite() {
            self.integral_ppm = ppm.clamp(-MAX_CORRECTION_PPM, MAX_CORRECTION_PPM);
        }
    }

    /// The last rate correction returned, in ppm.
    pub fn last_ppm(&self) -> f64 {
        self.last_ppm
    }

    /// Feeds one measured error, `dt_ns` after the previous one, and returns what to do.
    pub fn update(&mut self, error_ns: i64, dt_ns: i64) -> Correction {
        if error_ns.abs() > HARD_RESYNC_THRESHOLD_NS {
            return Correction::Resync { error_ns };
        }
        if !self.enabled {
            self.last_ppm = 0.0;
            return Correction::Rate { ppm: 0.0 };
        }
        let e_s = error_ns as f64 * 1e-9;
        let dt_s = (dt_ns.max(0) as f64 * 1e-9).min(1.0);
        self.integral_ppm =
            (self.integral_ppm + KI_PER_S2 * e_s * dt_s * 1e6).clamp(-MAX_CORRECTION_PPM, MAX_CORRECTION_PPM);
        let ppm = (self.integral_ppm + KP_PER_S * e_s * 1e6).clamp(-MAX_CORRECTION_PPM, MAX_CORRECTION_PPM);
        self.last_ppm = ppm;
        Correction::Rate { ppm }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates an output whose clock runs `drift_ppm` fast, measured every `step_ns`, for `secs` seconds;
    /// returns the error trace in ns. `de/dt = drift − correction`.
    fn simulate(mut c: DriftController, drift_ppm: f64, secs: f64) -> Vec<f64> {
        let step_ns = 5_000_000i64;
        let mut e_ns = 0.0f64;
        let mut trace = vec![];
        let mut ppm = 0.0;
        for _ in 0..(secs * 1e9 / step_ns as f64) as usize {
            e_ns += (drift_ppm - ppm) * 1e-6 * step_ns as f64;
            match c.update(e_ns.round() as i64, step_ns) {
                Correction::Rate { ppm: p } => ppm = p,
                Correction::Resync { .. } => e_ns = 0.0,
            }
            trace.push(e_ns);
        }
        trace
    }

    #[test]
    fn locks_to_plus_and_minus_500_ppm_with_zero_steady_state_error() {
        for drift in [500.0, -500.0, 200.0, -150.0, 0.0] {
            let trace = simulate(DriftController::new(), drift, 30.0);
            let tail = &trace[trace.len() - 400..];
            let worst = tail.iter().fold(0.0f64, |m, e| m.max(e.abs()));
            assert!(worst < 1_000.0, "drift {drift} ppm: tail error {worst} ns");
            let peak = trace.iter().fold(0.0f64, |m, e| m.max(e.abs()));
            assert!(peak < 300_000.0, "drift {drift} ppm: peak error {peak} ns");
        }
    }

    #[test]
    fn converges_within_ten_seconds() {
        let trace = simulate(DriftController::new(), 500.0, 20.0);
        let step_s = 0.005;
        let last_bad = trace
            .iter()
            .rposition(|e| e.abs() > 50_000.0)
            .map(|i| i as f64 * step_s)
            .unwrap_or(0.0);
        assert!(last_bad < 10.0, "error above 50 µs until {last_bad} s");
    }

    #[test]
    fn drift_estimate_converges_to_the_clock_error() {
        let mut c = DriftController::new();
        let mut e_ns = 0.0f64;
        let mut ppm = 0.0;
        for _ in 0..6000 {
            e_ns += (-300.0 - ppm) * 1e-6 * 5e6;
            if let Correction::Rate { ppm: p } = c.update(e_ns as i64, 5_000_000) {
                ppm = p;
            }
        }
        assert!(
            (c.drift_estimate_ppm() + 300.0).abs() < 1.0,
            "{}",
            c.drift_estimate_ppm()
        );
    }

    #[test]
    fn disabled_controller_lets_error_grow_until_resync() {
        // The counterpart of the tests above: without rate control, a 500 ppm output drifts 5 ms in 10 s and
        // has to jump; this is what the drift controller exists to avoid.
        let trace = simulate(DriftController::disabled(), 500.0, 30.0);
        let peak = trace.iter().fold(0.0f64, |m, e| m.max(e.abs()));
        assert!(peak > 4_000_000.0, "peak {peak}");
    }

    #[test]
    fn a_seeded_controller_starts_locked_and_a_disabled_one_ignores_the_seed() {
        let peak = |c: DriftController| simulate(c, 300.0, 10.0).iter().fold(0.0f64, |m, e| m.max(e.abs()));
        let mut seeded = DriftController::new();
        seeded.seed_ppm(298.0);
        let (cold, warm) = (peak(DriftController::new()), peak(seeded));
        assert!(warm < cold / 20.0, "seeded peak {warm} ns, unseeded {cold} ns");
        let mut off = DriftController::disabled();
        off.seed_ppm(300.0);
        assert_eq!(off.drift_estimate_ppm(), 0.0);
    }

    #[test]
    fn large_error_asks_for_a_resync_and_keeps_the_drift_estimate() {
        let mut c = DriftController::new();
        for _ in 0..100 {
            c.update(10_000, 5_000_000);
        }
        let before = c.drift_estimate_ppm();
        assert_eq!(
            c.update(-30_000_000, 5_000_000),
            Correction::Resync { error_ns: -30_000_000 }
        );
        assert_eq!(c.drift_estimate_ppm(), before);
        match c.update(0, 5_000_000) {
            Correction::Rate { ppm } => assert!(ppm.abs() <= MAX_CORRECTION_PPM),
            other => panic!("{other:?}"),
        }
    }
}
