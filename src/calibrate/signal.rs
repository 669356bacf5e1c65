//! The measurement signal: a maximum-length-sequence (MLS) burst, deterministic from a seed.
//!
//! An MLS of order 17 is a ±1 sequence of 2^17 − 1 = 131 071 chips whose autocorrelation is one sharp peak: at
//! 48 kHz one chip per sample, so the burst lasts 2.73 s and its correlation peak is one sample wide while the
//! noise around it is suppressed by the burst's length (about 51 dB of processing gain). It is played at a
//! moderate level (−12 dBFS) with short raised-cosine fades so a real speaker does not click.

/// Sample rate the measurement runs at, Hz.
pub const RATE_HZ: u32 = 48_000;
/// Order of the sequence (register length of the LFSR).
pub const MLS_ORDER: u32 = 17;
/// Chips in the sequence: 2^17 − 1 (a prime, so every non-zero register state lies on the one full cycle).
pub const MLS_LEN_SAMPLES: usize = (1 << MLS_ORDER) - 1;
/// Peak level of the burst, linear full scale (−12 dBFS).
pub const LEVEL: f32 = 0.25;
/// Length of each raised-cosine fade, samples (10 ms).
pub const FADE_SAMPLES: usize = 480;

/// The burst's length in nanoseconds at [`RATE_HZ`].
pub fn burst_ns() -> i64 {
    MLS_LEN_SAMPLES as i64 * 1_000_000_000 / RATE_HZ as i64
}

/// The ±1 chips of the order-17 MLS, starting from a register state chosen by `seed` (a rotation of the one
/// sequence: every seed gives the same sharp autocorrelation).
///
/// Fibonacci LFSR with the primitive feedback polynomial x^17 + x^14 + 1.
pub fn mls_chips(seed: u64) -> Vec<i8> {
    let mask = (1u32 << MLS_ORDER) - 1;
    let mut state = ((seed % mask as u64) as u32 + 1) & mask;
    (0..MLS_LEN_SAMPLES)
        .map(|_| {
            let out = state & 1;
            let fb = (state ^ (state >> 3)) & 1; // taps 17 and 14, counted from the output end
            state = (state >> 1) | (fb << (MLS_ORDER - 1));
            if out == 1 {
                1
            } else {
                -1
            }
        })
        .collect()
}

/// The burst as played: the chips at [`LEVEL`], faded in and out over [`FADE_SAMPLES`].
pub fn burst(seed: u64) -> Vec<f32> {
    let chips = mls_chips(seed);
    let n = chips.len();
    chips
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let edge = i.min(n - 1 - i);
            let w = if edge < FADE_SAMPLES {
                0.5 - 0.5 * (std::f32::consts::PI * edge as f32 / FADE_SAMPLES as f32).cos()
            } else {
                1.0
            };
            c as f32 * LEVEL * w
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_register_runs_the_full_cycle_and_the_sequence_is_balanced() {
        let c = mls_chips(7);
        assert_eq!(c.len(), MLS_LEN_SAMPLES);
        // An MLS has one more +1 than −1 (2^16 ones, 2^16 − 1 zeros of the register output).
        let ones = c.iter().filter(|&&x| x == 1).count();
        assert_eq!(ones, 1 << 16);
        // Period 2^17 − 1 is prime, so the sequence repeats only if the register cycles fully: a second period
        // continues the first exactly.
        let twice: Vec<i8> = {
            let mask = (1u32 << MLS_ORDER) - 1;
            let mut state = ((7 % mask as u64) as u32 + 1) & mask;
            (0..2 * MLS_LEN_SAMPLES)
                .map(|_| {
                    let out = state & 1;
                    let fb = (state ^ (state >> 3)) & 1;
                    state = (state >> 1) | (fb << (MLS_ORDER - 1));
                    if out == 1 {
                        1
                    } else {
                        -1
                    }
                })
                .collect()
        };
        assert_eq!(&twice[..MLS_LEN_SAMPLES], &twice[MLS_LEN_SAMPLES..]);
    }

    #[test]
    fn periodic_autocorrelation_is_a_single_peak() {
        let c = mls_chips(1);
        let n = c.len();
        for lag in [1usize, 2, 3, 17, 1000, 65_535, n - 1] {
            let r: i64 = (0..n).map(|i| c[i] as i64 * c[(i + lag) % n] as i64).sum();
            assert_eq!(r, -1, "lag {lag}");
        }
        let r0: i64 = c.iter().map(|&x| x as i64 * x as i64).sum();
        assert_eq!(r0, n as i64);
    }

    #[test]
    fn burst_is_deterministic_moderate_and_faded() {
        let a = burst(3);
        assert_eq!(a, burst(3));
        assert_ne!(a, burst(4));
        assert_eq!(a[0], 0.0);
        assert!(a.iter().all(|x| x.abs() <= LEVEL));
        assert!((burst_ns() - 2_730_645_833).abs() < 2);
    }
}
