//! A sound card's clock from timestamps that can only be late: the lower envelope of (card frame, local time)
//! stamps, and a line through it. Used by the `local` output (when a frame is played) and the `capture` source
//! (when a frame was captured).
//!
//! A capture callback's timestamp says when the first frame of its data was captured: the time of the last
//! hardware-position update minus the frames waiting; a playback callback's, when its first frame is played: now
//! plus the frames still queued before it, counted from the same position. Where the position moves in steps (`snd-aloop` moves it on
//! timer ticks of 4 ms, a USB interface per 1 ms frame, a DMA engine per period), the position read is the one of
//! the last step, so the stamp is the true time plus up to one step: never early, often late. A
//! least-squares line through all stamps would be late by half a step on average and jitter by a whole one.
//! Instead, the stamps are cut into [`BUCKET_NS`] buckets; in each, the stamp with the smallest residual against
//! the nominal rate (the one read right after a step) is kept, and a least-squares line is fitted through those
//! minima over the last [`WINDOW_BUCKETS`]. Its slope is the card's rate against the local clock, its value at a
//! frame when that frame was captured. A stamp further than [`RESTART_THRESHOLD_NS`] before the line, a bucket
//! whose earliest stamp is that far after it (frames lost in an overrun), or a card frame going backwards, starts
//! again. Pure: fed stamps, asked for times.

use std::collections::VecDeque;

/// Stamps are grouped into buckets of this long; each keeps its earliest stamp.
pub const BUCKET_NS: i64 = 500_000_000;
/// The line goes through the minima of this many buckets (30 s).
pub const WINDOW_BUCKETS: usize = 60;
/// The minima must span this long before the slope is fitted (before: the nominal rate).
pub const MIN_RATE_SPAN_NS: i64 = 2_000_000_000;
/// A stamp this far before the fitted line (it cannot be early) means the card's timeline jumped: start again.
pub const RESTART_THRESHOLD_NS: i64 = 20_000_000;

/// One bucket's earliest stamp.
#[derive(Debug, Clone, Copy)]
struct Min {
    frame: u64,
    local_ns: i64,
    residual_ns: f64,
}

/// The envelope estimator.
#[derive(Debug, Clone)]
pub struct EnvelopeClock {
    nominal_ns_per_frame: f64,
    origin: Option<(u64, i64)>,
    closed: VecDeque<Min>,
    open: Option<(i64, Min)>,
    /// The line: local time = `a + b · (frame − origin frame)` (ns), once there is a stamp.
    line: Option<(f64, f64)>,
    last_frame: Option<u64>,
    restarts: u64,
    /// The rate fitted before the last restart: a restart (an xrun) loses the card's timeline, not its rate.
    last_ppm: Option<f64>,
}

impl EnvelopeClock {
    /// An estimator for a card running nominally at `rate_hz`.
    pub fn new(rate_hz: u32) -> Self {
        Self {
            nominal_ns_per_frame: 1e9 / rate_hz as f64,
            origin: None,
            closed: VecDeque::with_capacity(WINDOW_BUCKETS + 1),
            open: None,
            line: None,
            last_frame: None,
            restarts: 0,
            last_ppm: None,
        }
    }

    /// Times it started again (a stamp far before the line, or frames going backwards).
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Starts again from the next stamp, counted as a restart (the stream reported an overrun).
    pub fn restart(&mut self) {
        self.restarts += 1;
        self.reset();
    }

    fn reset(&mut self) {
        self.last_ppm = self.ppm();
        self.origin = None;
        self.closed.clear();
        self.open = None;
        self.line = None;
        self.last_frame = None;
    }

    /// Feeds one stamp: card frame `frame` was captured at local time `local_ns` or earlier.
    pub fn push(&mut self, frame: u64, local_ns: i64) {
        if let (Some(last), Some(t)) = (self.last_frame, self.time_of_f64(frame as f64)) {
            if frame < last || (local_ns as f64) < t - RESTART_THRESHOLD_NS as f64 {
                self.restarts += 1;
                self.reset();
            }
        }
        self.last_frame = Some(frame);
        let (f0, t0) = *self.origin.get_or_insert((frame, local_ns));
        let residual_ns = (local_ns - t0) as f64 - (frame - f0) as f64 * self.nominal_ns_per_frame;
        let m = Min {
            frame,
            local_ns,
            residual_ns,
        };
        let bucket = (local_ns - t0).div_euclid(BUCKET_NS);
        match &mut self.open {
            Some((b, min)) if *b == bucket => {
                if m.residual_ns < min.residual_ns {
                    *min = m;
                }
            }
            _ => {
                if let Some((_, min)) = self.open.take() {
                    // A whole bucket late: frames were lost (an overrun the count did not see). Start again here.
                    if self
                        .time_of_f64(min.frame as f64)
                        .is_some_and(|t| min.local_ns as f64 > t + RESTART_THRESHOLD_NS as f64)
                    {
                        self.restarts += 1;
                        self.reset();
                        self.push(frame, local_ns);
                        return;
                    }
                    self.closed.push_back(min);
                    while self.closed.len() > WINDOW_BUCKETS {
                        self.closed.pop_front();
                    }
                }
                self.open = Some((bucket, m));
            }
        }
        self.refit();
    }

    fn refit(&mut self) {
        let Some((f0, t0)) = self.origin else { return };
        // The bucket minima, relative to the origin (iterated twice, not collected: this runs on the engine
        // thread for every stamp, which must not allocate).
        let points = || {
            self.closed
                .iter()
                .chain(self.open.as_ref().map(|(_, m)| m))
                .map(move |m| ((m.frame - f0) as f64, (m.local_ns - t0) as f64))
        };
        let count = points().count();
        if count == 0 {
            return;
        }
        let n = count as f64;
        let (mx, my) = points().fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
        let first_y = points().next().map_or(0.0, |p| p.1);
        let last_y = points().next_back().map_or(0.0, |p| p.1);
        let mut slope = self.nominal_ns_per_frame;
        if last_y - first_y >= MIN_RATE_SPAN_NS as f64 && count >= 3 {
            let (sxx, sxy) = points().fold((0.0, 0.0), |(a, b), (x, y)| {
                (a + (x - mx) * (x - mx), b + (x - mx) * (y - my))
            });
            if sxx > 0.0 {
                slope = sxy / sxx;
            }
            self.line = Some((my - slope * mx, slope));
        } else {
            // Nominal rate through the earliest stamp so far (no line to average over yet).
            let best = points().map(|(x, y)| y - x * slope).fold(f64::INFINITY, f64::min);
            self.line = Some((best, slope));
        }
    }

    fn time_of_f64(&self, frame: f64) -> Option<f64> {
        let ((f0, t0), (a, b)) = (self.origin?, self.line?);
        Some(t0 as f64 + a + (frame - f0 as f64) * b)
    }

    /// When card frame `frame` (fractional) was captured, on the local clock; None before any stamp.
    pub fn time_of(&self, frame: f64) -> Option<i64> {
        self.time_of_f64(frame).map(|t| t.round() as i64)
    }

    /// The card frame (fractional) captured at local time `local_ns`; None before any stamp.
    pub fn frame_at(&self, local_ns: i64) -> Option<f64> {
        let ((f0, t0), (a, b)) = (self.origin?, self.line?);
        Some(f0 as f64 + ((local_ns - t0) as f64 - a) / b)
    }

    /// The card's rate against the local clock, ppm (positive: it runs fast); None until the minima span
    /// [`MIN_RATE_SPAN_NS`]. After a restart, the rate fitted before it until the new minima span that long.
    pub fn ppm(&self) -> Option<f64> {
        self.fitted_ppm().or(self.last_ppm)
    }

    fn fitted_ppm(&self) -> Option<f64> {
        let first = self.closed.front()?;
        let last = self.open.as_ref().map(|(_, m)| m)?;
        if last.local_ns - first.local_ns < MIN_RATE_SPAN_NS {
            return None;
        }
        self.line.map(|(_, b)| (self.nominal_ns_per_frame / b - 1.0) * 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stamps of a card at `ppm` whose position moves in `step_ns` steps (each stamp late by the time since the
    /// last step, plus a wake-up of up to `wake_ns`), one per 10 ms callback for `secs`.
    fn feed(c: &mut EnvelopeClock, ppm: f64, step_ns: i64, wake_ns: i64, secs: i64, seed: u64) -> f64 {
        let rate = 48_000.0 * (1.0 + ppm * 1e-6);
        let mut rng = seed;
        let mut worst_raw = 0.0f64;
        for k in 0..secs * 100 {
            let frame = (k * 480) as u64;
            let truth = 1e9 + frame as f64 * 1e9 / rate;
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let wake = ((rng >> 33) % (wake_ns as u64 + 1)) as f64;
            // Read at truth + wake; the position seen is that of the last step at or before then, so the stamp
            // (read time minus the frames seen waiting) is late by the time since that step.
            let read_at = truth + wake;
            let step_at = (read_at / step_ns as f64).floor() * step_ns as f64;
            let late = read_at - step_at;
            worst_raw = worst_raw.max(late);
            c.push(frame, (truth + late).round() as i64);
        }
        worst_raw
    }

    /// An xrun restarts the timeline but not the card's rate: until the new stamps span long enough for a slope,
    /// the rate fitted before is reported (status and the drift controller's seed keep it), not nothing.
    #[test]
    fn a_restart_keeps_the_rate_fitted_before_until_a_new_one_is_fitted() {
        let mut c = EnvelopeClock::new(48_000);
        feed(&mut c, 300.0, 4_000_000, 1_000_000, 10, 5);
        let before = c.ppm().expect("a rate after 10 s");
        c.restart();
        assert_eq!(c.ppm(), Some(before), "right after the restart");
        c.push(0, 20_000_000_000);
        c.push(480, 20_010_000_000);
        assert_eq!(
            c.ppm(),
            Some(before),
            "a few stamps later, before a slope can be fitted"
        );
    }

    #[test]
    fn stepped_late_stamps_give_the_true_capture_time_and_rate() {
        for ppm in [0.0, 300.0, -300.0] {
            let mut c = EnvelopeClock::new(48_000);
            let worst = feed(&mut c, ppm, 4_000_000, 3_000_000, 40, 3);
            assert!(worst > 2_000_000.0, "the raw stamps are up to a step late ({worst} ns)");
            let est = c.ppm().unwrap();
            assert!((est - ppm).abs() < 10.0, "rate {est} for {ppm}");
            let rate = 48_000.0 * (1.0 + ppm * 1e-6);
            for frame in [48_000u64 * 20, 48_000 * 39] {
                let truth = 1e9 + frame as f64 * 1e9 / rate;
                let err = c.time_of(frame as f64).unwrap() as f64 - truth;
                // Within half a millisecond, where a least-squares line through the raw stamps is ~2 ms late.
                assert!(err.abs() < 500_000.0, "{ppm} ppm, frame {frame}: {err} ns off");
                let back = c.frame_at(truth.round() as i64).unwrap();
                assert!((back - frame as f64).abs() < 25.0, "{back} for {frame}");
            }
        }
    }

    #[test]
    fn no_rate_before_two_seconds_and_a_jump_starts_again() {
        let mut c = EnvelopeClock::new(48_000);
        assert_eq!(c.time_of(0.0), None);
        feed(&mut c, 0.0, 1_000_000, 0, 1, 1);
        assert_eq!(c.ppm(), None);
        assert!(c.time_of(0.0).is_some());
        // The card's frames start over (a reopened stream): frames go backwards.
        c.push(0, 5_000_000_000);
        assert_eq!(c.restarts(), 1);
        assert_eq!(c.time_of(0.0), Some(5_000_000_000));
        // 100 ms of frames lost without the count knowing: a whole bucket 100 ms late starts again.
        let mut c = EnvelopeClock::new(48_000);
        feed(&mut c, 0.0, 1_000_000, 0, 3, 1);
        for k in 300..400i64 {
            c.push((k * 480) as u64, 1_000_000_000 + k * 10_000_000 + 100_000_000);
        }
        assert_eq!(c.restarts(), 1);
        let t = c.time_of(399.0 * 480.0).unwrap();
        assert!(
            (t - (1_000_000_000 + 399 * 10_000_000 + 100_000_000)).abs() < 1_000_000,
            "{t}"
        );
    }
}
