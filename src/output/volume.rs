//! Volume curves: how a source's volume percentage becomes a gain on the samples. Each protocol says what its
//! 0–100 means, so the curve travels with the play settings the source sets.
//!
//! - Snapcast: the snapclient's default "exp" mixer curve, `(10^v − 1) / 9` with `v = pct / 100`.
//! - Sendspin: the player spec (`roles/player/v1.md`, "Player messages") says volume is perceived loudness and
//!   clients SHOULD apply `amplitude = (volume / 100)^1.5`.

use serde::Serialize;

/// How a volume percentage maps to a linear gain (1.0 full scale, 0 silent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeCurve {
    /// Snapcast's default "exp" curve, `(10^v − 1) / 9`.
    #[default]
    Snapcast,
    /// Sendspin's perceived-loudness curve, `(v / 100)^1.5`.
    Sendspin,
}

impl VolumeCurve {
    /// The gain for `pct` (clamped to 0…100).
    pub fn gain(self, pct: u8) -> f32 {
        let v = pct.min(100) as f32 / 100.0;
        match self {
            Self::Snapcast => (10f32.powf(v) - 1.0) / 9.0,
            Self::Sendspin => v.powf(1.5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendspin_volume_is_the_specs_power_curve() {
        let g = |p| VolumeCurve::Sendspin.gain(p);
        assert_eq!(g(0), 0.0);
        assert_eq!(g(100), 1.0);
        assert_eq!(g(200), 1.0, "clamped");
        // (0.5)^1.5 = 0.35355…, (0.25)^1.5 = 0.125, (0.81)^1.5 = 0.729.
        assert!((g(50) - 0.353_553_4).abs() < 1e-6, "{}", g(50));
        assert!((g(25) - 0.125).abs() < 1e-6, "{}", g(25));
        assert!((g(81) - 0.729).abs() < 1e-6, "{}", g(81));
        // Monotonic over the range.
        assert!((1..=100).all(|p| g(p) > g(p - 1)));
    }

    #[test]
    fn snapcast_volume_keeps_its_exp_curve() {
        let g = |p| VolumeCurve::Snapcast.gain(p);
        assert_eq!(g(0), 0.0);
        assert!((g(100) - 1.0).abs() < 1e-6);
        assert!((g(50) - (10f32.sqrt() - 1.0) / 9.0).abs() < 1e-6);
    }
}
