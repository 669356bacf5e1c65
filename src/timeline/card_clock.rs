//! A sound card's clock, estimated from its callback timestamps: when card frame `n` is played (or, for a
//! capture device, was captured) on the local clock, and how fast the card runs against it.
//!
//! Each callback says that card frame `c` plays (is captured) at local time `t`: cpal's playback (capture)
//! timestamp against the callback time, see `output::local::ring::Stamp` and `source::capture::ring::Stamp`. Those times jitter: the hardware pointer moves in steps, the callback thread
//! wakes late. A least-squares line through the stamps of the last [`WINDOW_NS`] averages the jitter out; its
//! slope is the card's rate (a crystal a few hundred ppm off shows as such), its value at a frame is when that
//! frame is heard. Until the stamps span [`MIN_RATE_SPAN_NS`] the rate is taken as nominal and only the offset
//! is fitted. A stamp further than [`RESTART_THRESHOLD_NS`] from the line (an xrun restarted the stream, the
//! device was reopened) starts the fit again. Pure: fed stamps, asked for times.

use std::collections::VecDeque;

/// How far back stamps count towards the fit: long enough to average a millisecond of jitter to about a ppm
/// (the slope's error falls as the window's length to the power 1.5), short enough to follow a crystal warming up.
pub const WINDOW_NS: i64 = 60_000_000_000;
/// Stamps must span this long before the slope is fitted (before: nominal rate).
pub const MIN_RATE_SPAN_NS: i64 = 2_000_000_000;
/// A stamp this far off the fitted line means the card's timeline jumped: start again.
pub const RESTART_THRESHOLD_NS: i64 = 20_000_000;
/// At most this many stamps are kept (the oldest go first): 80 s of 10 ms periods.
pub const MAX_STAMPS: usize = 8_192;
/// The line is refitted every this many stamps once it has [`REFIT_ALWAYS_BELOW`] (between fits it is
/// extrapolated, which is exact for a line): a full fit is a pass over every stamp.
const REFIT_EVERY: u32 = 10;
const REFIT_ALWAYS_BELOW: usize = 64;

/// The fitted line: card frame `ref_frame` plays at `ref_ns`, one frame lasts `ns_per_frame`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Fit {
    ref_frame: u64,
    ref_ns: f64,
    ns_per_frame: f64,
}

/// The card-clock estimator.
#[derive(Debug, Clone)]
pub struct CardClock {
    nominal_ns_per_frame: f64,
    stamps: VecDeque<(u64, i64)>,
    fit: Option<Fit>,
    restarts: u64,
    since_fit: u32,
}

impl CardClock {
    /// An estimator for a card running nominally at `rate_hz`.
    pub fn new(rate_hz: u32) -> Self {
        Self {
            nominal_ns_per_frame: 1e9 / rate_hz as f64,
            stamps: VecDeque::with_capacity(MAX_STAMPS),
            fit: None,
            restarts: 0,
            since_fit: 0,
        }
    }

    /// Forgets every stamp (a new stream).
    pub fn reset(&mut self) {
        self.stamps.clear();
        self.fit = None;
    }

    /// Starts the fit again from the next stamp, counted as a restart (the card's timeline jumped: an xrun).
    pub fn restart(&mut self) {
        self.restarts += 1;
        self.reset();
    }

    /// Times the fit started again because a stamp was far off the line (or [`restart`](Self::restart)).
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Feeds one stamp: card frame `card_frame` plays at `local_ns`. Refits.
    pub fn push(&mut self, card_frame: u64, local_ns: i64) {
        if let (Some(t), Some(&(last_frame, _))) = (self.time_of_f64(card_frame), self.stamps.back()) {
            if (t - local_ns as f64).abs() > RESTART_THRESHOLD_NS as f64 || card_frame < last_frame {
                self.restarts += 1;
                self.reset();
            }
        }
        self.stamps.push_back((card_frame, local_ns));
        while self.stamps.len() > MAX_STAMPS || self.stamps.front().is_some_and(|&(_, t)| local_ns - t > WINDOW_NS) {
            self.stamps.pop_front();
        }
        self.since_fit += 1;
        if self.stamps.len() < REFIT_ALWAYS_BELOW || self.since_fit >= REFIT_EVERY {
            self.refit();
        }
    }

    fn refit(&mut self) {
        self.since_fit = 0;
        let Some(&(f0, t0)) = self.stamps.front() else {
            self.fit = None;
            return;
        };
        let &(_, t_last) = self.stamps.back().expect("not empty");
        let n = self.stamps.len() as f64;
        // Coordinates relative to the first stamp keep the sums exact enough in f64.
        let xy = || self.stamps.iter().map(|&(f, t)| ((f - f0) as f64, (t - t0) as f64));
        let (sx, sy) = xy().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
        let (mx, my) = (sx / n, sy / n);
        let mut slope = self.nominal_ns_per_frame;
        if t_last - t0 >= MIN_RATE_SPAN_NS {
            let (sxx, sxy) = xy().fold((0.0, 0.0), |(a, b), (x, y)| {
                (a + (x - mx) * (x - mx), b + (x - mx) * (y - my))
            });
            if sxx > 0.0 {
                slope = sxy / sxx;
            }
        }
        // The line through the centroid with that slope.
        self.fit = Some(Fit {
            ref_frame: f0,
            ref_ns: t0 as f64 + my - slope * mx,
            ns_per_frame: slope,
        });
    }

    fn time_of_f64(&self, card_frame: u64) -> Option<f64> {
        self.fit
            .map(|f| f.ref_ns + (card_frame as f64 - f.ref_frame as f64) * f.ns_per_frame)
    }

    /// When card frame `card_frame` (fractional allowed) is played, on the local clock; None before any stamp.
    pub fn time_of(&self, card_frame: f64) -> Option<i64> {
        self.fit
            .map(|f| (f.ref_ns + (card_frame - f.ref_frame as f64) * f.ns_per_frame).round() as i64)
    }

    /// The card frame (fractional) that plays, or was captured, at local time `local_ns`; None before any stamp.
    pub fn frame_at(&self, local_ns: i64) -> Option<f64> {
        self.fit
            .map(|f| f.ref_frame as f64 + (local_ns as f64 - f.ref_ns) / f.ns_per_frame)
    }

    /// The card's rate against the local clock, ppm (positive: it plays fast); None until the stamps span
    /// [`MIN_RATE_SPAN_NS`].
    pub fn ppm(&self) -> Option<f64> {
        let span = self.stamps.back()?.1 - self.stamps.front()?.1;
        if span < MIN_RATE_SPAN_NS {
            return None;
        }
        self.fit
            .map(|f| (self.nominal_ns_per_frame / f.ns_per_frame - 1.0) * 1e6)
    }

    /// Stamps in the fit.
    pub fn stamps(&self) -> usize {
        self.stamps.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stamps of a card at `rate_hz × (1 + ppm)`, one per `period` frames for `secs`, each played at its true time
    /// plus a random jitter of up to `jitter_ns` (either way) and, every 50th, a late wake-up of 3 ms.
    fn feed(c: &mut CardClock, ppm: f64, period: u64, secs: f64, jitter_ns: i64, seed: u64) -> (u64, f64) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let rate = 48_000.0 * (1.0 + ppm * 1e-6);
        let t0 = 5_000_000_000.0;
        let n = (secs * 48_000.0 / period as f64) as u64;
        for k in 0..n {
            let frame = k * period;
            let truth = t0 + frame as f64 * 1e9 / rate;
            let mut j = rng.i64(-jitter_ns..=jitter_ns);
            if k % 50 == 49 {
                j += 3_000_000;
            }
            c.push(frame, truth as i64 + j);
        }
        // The next frame and its true time.
        (n * period, t0 + (n * period) as f64 * 1e9 / rate)
    }

    #[test]
    fn the_rate_comes_out_within_two_ppm_despite_a_millisecond_of_jitter() {
        for (ppm, seed) in [(300.0, 1), (-300.0, 2), (0.0, 3), (87.0, 4)] {
            let mut c = CardClock::new(48_000);
            let (next_frame, next) = feed(&mut c, ppm, 480, 60.0, 1_000_000, seed);
            let got = c.ppm().expect("60 s of stamps");
            assert!((got - ppm).abs() < 2.0, "{ppm} ppm: estimated {got}");
            // And the time of the next frame to within a tenth of a millisecond.
            let t_next = c.time_of(next_frame as f64).unwrap() as f64;
            assert!(
                (t_next - next).abs() < 200_000.0,
                "{ppm} ppm: next frame off by {} ns",
                t_next - next
            );
        }
    }

    #[test]
    fn no_rate_before_two_seconds_but_times_at_the_nominal_rate() {
        let mut c = CardClock::new(48_000);
        assert_eq!(c.time_of(0.0), None);
        feed(&mut c, 0.0, 480, 1.0, 0, 1);
        assert_eq!(c.ppm(), None);
        // 100 stamps, every 50th 3 ms late: the offset is their mean (at most 60 µs late), the rate nominal.
        let t = c.time_of(48_000.0).unwrap() - 6_000_000_000;
        assert!((0..=61_000).contains(&t), "{t}");
    }

    #[test]
    fn a_jump_in_the_card_timeline_restarts_the_fit() {
        let mut c = CardClock::new(48_000);
        feed(&mut c, 200.0, 480, 10.0, 0, 1);
        assert!(c.ppm().is_some());
        // The stream restarted: the same frame numbers now play 500 ms later.
        c.push(480_000, 20_500_000_000);
        assert_eq!((c.restarts(), c.stamps(), c.ppm()), (1, 1, None));
        assert_eq!(c.time_of(480_000.0), Some(20_500_000_000));
    }

    #[test]
    fn the_window_forgets_an_old_rate() {
        let mut c = CardClock::new(48_000);
        feed(&mut c, -300.0, 480, 20.0, 0, 1);
        // Then 65 s at +100 ppm (continuing the card's frames where it was, at its real time).
        let rate = 48_000.0 * (1.0 + 100e-6);
        let f0 = 20 * 48_000;
        let t0 = 5e9 + f0 as f64 * 1e9 / (48_000.0 * (1.0 - 300e-6));
        for k in 0..6_500u64 {
            c.push(f0 + k * 480, (t0 + (k * 480) as f64 * 1e9 / rate) as i64);
        }
        let got = c.ppm().unwrap();
        assert!((got - 100.0).abs() < 1.0, "{got}");
    }
}
