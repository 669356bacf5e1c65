//! The measurement burst laid over one output's audio, in *source time*, so that it goes through that output's
//! whole player path (resampler, drift control, volume, the output) exactly as the music does.
//!
//! The player reads its input from the timeline at source time; right after that read it hands the input to
//! [`Overlay::apply`], which replaces every frame inside the overlay's window by the burst (or by silence outside
//! the burst but inside the window, so the music does not cover the measurement). A burst due to be *heard* at
//! local time `T` sits at source time `to_server(T + latency − buffer)`: the player's own formula for what is
//! heard when, run backwards (see [`crate::output::player`]).

use super::signal::RATE_HZ;
use std::sync::Arc;

/// Silence kept before and after the burst inside the window, ns (the music stops a little before the burst
/// and resumes a little after its reverberation).
pub const GUARD_NS: i64 = 200_000_000;

/// A burst at a source time.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// Source (server) time of the burst's first sample, ns.
    pub burst_at_ns: i64,
    /// The burst, mono at [`RATE_HZ`].
    pub burst: Arc<Vec<f32>>,
}

impl Overlay {
    /// The burst's length, ns.
    pub fn burst_len_ns(&self) -> i64 {
        self.burst.len() as i64 * 1_000_000_000 / RATE_HZ as i64
    }

    /// Source time after which the overlay has nothing left to do, ns.
    pub fn end_ns(&self) -> i64 {
        self.burst_at_ns + self.burst_len_ns() + GUARD_NS
    }

    /// Replaces the frames of `input` (interleaved, `channels` per frame, the first at source time `first_ns`,
    /// one every `frame_ns`) that fall inside the window by the burst (silence in the guards). Returns whether
    /// any frame was inside the window. With `mute_outside` (the output is muted or disabled, yet measured) the
    /// frames outside the window become silence too. At the source rate of 48 kHz the burst's samples land one to one; at
    /// another rate each frame takes the nearest sample (an unbiased, slightly noisier copy).
    pub fn apply(&self, first_ns: i64, frame_ns: f64, channels: usize, input: &mut [f32], mute_outside: bool) -> bool {
        let start = self.burst_at_ns - GUARD_NS;
        let end = self.end_ns();
        let ch = channels.max(1);
        let mut touched = false;
        for (i, frame) in input.chunks_exact_mut(ch).enumerate() {
            let t = first_ns as f64 + i as f64 * frame_ns;
            if t < start as f64 || t >= end as f64 {
                if mute_outside {
                    frame.fill(0.0);
                }
                continue;
            }
            touched = true;
            let k = ((t - self.burst_at_ns as f64) * RATE_HZ as f64 / 1e9).round();
            let v = if k >= 0.0 && (k as usize) < self.burst.len() {
                self.burst[k as usize]
            } else {
                0.0
            };
            frame.fill(v);
        }
        touched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_burst_replaces_the_music_inside_its_window_only() {
        let burst: Vec<f32> = (0..480).map(|i| (i + 1) as f32).collect();
        let o = Overlay {
            burst_at_ns: 1_000_000_000,
            burst: Arc::new(burst),
        };
        let frame_ns = 1e9 / 48_000.0;
        // Stereo input, all 9.0 ("music"), starting 250 ms before the burst: 50 ms of music, 200 ms of guard.
        let first_ns = 750_000_000;
        let frames = 48 * 300;
        let mut x = vec![9.0f32; frames * 2];
        assert!(o.apply(first_ns, frame_ns, 2, &mut x, false));
        let at = |f: usize| (x[2 * f], x[2 * f + 1]);
        assert_eq!(at(0), (9.0, 9.0), "before the window: music");
        assert_eq!(at(48 * 60), (0.0, 0.0), "in the guard: silence");
        assert_eq!(at(48 * 250), (1.0, 1.0), "the burst's first sample at its source time");
        assert_eq!(at(48 * 250 + 479), (480.0, 480.0));
        assert_eq!(at(48 * 250 + 480), (0.0, 0.0), "after the burst: silence");
        // Past the end: untouched.
        let mut y = vec![9.0f32; 96];
        assert!(!o.apply(o.end_ns(), frame_ns, 2, &mut y, false));
        assert!(y.iter().all(|v| *v == 9.0));
        assert!(!o.apply(o.end_ns(), frame_ns, 2, &mut y, true));
        assert!(y.iter().all(|v| *v == 0.0), "a muted output measured: silence outside");
    }
}
