//! Where captured frames get their time: card frames become 48 kHz stereo chunks on the capture card's own
//! timeline, and the card's clock is estimated against the local one like a server clock.
//!
//! The capture card is treated as the group's server. Its *server time* is its frame count at its nominal rate:
//! card frame `c` is at server time `base + c / rate` (`base`: the local time of the first frame, so the two
//! clocks start close). Frames are converted to stereo and, when the card runs at another rate, resampled to
//! 48 kHz at the fixed nominal ratio, so a chunk's start is exactly the server time of the card frame it begins
//! with. Dropped callbacks (a full ring) show as a jump in the card frame: the converter restarts there and
//! nothing after the gap is misplaced.
//!
//! How server time maps to local time comes from the capture timestamps: [`EnvelopeClock`] fits a line through
//! the earliest (card frame, capture time) stamps (a capture timestamp can be late by a hardware-position step,
//! never early), and [`CaptureIngest::estimate`] turns it into `server − local` at a local
//! time plus the rate between the clocks, which the source hands to the feed's [`ServerClock`]. A frame captured
//! at local time `L` therefore has server time `S` with `to_local(S) = L`, and plays at `L + buffer`; a card
//! whose crystal is a few hundred ppm off shows as a rate the players follow by resampling, so it never walks off.
//! Pure: fed stamps and samples, it hands out chunks; tested in virtual time.
//!
//! [`ServerClock`]: crate::timeline::server_clock::ServerClock

use super::ring::Stamp;
use crate::output::local::convert::to_stereo;
use crate::output::resample::RateConverter;
use crate::timeline::buffer::Chunk;
use crate::timeline::envelope_clock::EnvelopeClock;
use crate::timeline::{LocalTime, ServerTime};

/// Frames per chunk handed to the timeline (10 ms at 48 kHz).
pub const CHUNK_FRAMES: usize = 480;
/// The rate of the timeline.
const TIMELINE_RATE_HZ: u32 = 48_000;

/// The engine-side state of one open capture stream.
pub struct CaptureIngest {
    rate_hz: u32,
    channels: usize,
    clock: EnvelopeClock,
    /// Server time of card frame 0, ns.
    base_ns: Option<i64>,
    conv: RateConverter,
    /// The card frame the converter's input position 0 is.
    conv_origin: u64,
    /// The card frame the next stamp should start with (None: nothing yet).
    next_card: Option<u64>,
    /// Stereo input not yet converted.
    pending: Vec<f32>,
    block: Vec<f32>,
    gaps: u64,
}

impl CaptureIngest {
    /// For a card running nominally at `rate_hz` with `channels` channels.
    pub fn new(rate_hz: u32, channels: usize) -> Self {
        Self {
            rate_hz,
            channels: channels.max(1),
            clock: EnvelopeClock::new(rate_hz),
            base_ns: None,
            conv: RateConverter::new(rate_hz, TIMELINE_RATE_HZ, 2, CHUNK_FRAMES),
            conv_origin: 0,
            next_card: None,
            pending: Vec::with_capacity(8 * CHUNK_FRAMES * 2),
            block: vec![0.0; CHUNK_FRAMES * 2],
            gaps: 0,
        }
    }

    /// Server time of card frame `c` (fractional), ns.
    fn server_ns(&self, c: f64) -> i64 {
        self.base_ns.unwrap_or(0) + (c * 1e9 / self.rate_hz as f64).round() as i64
    }

    /// Takes one callback's stamp and its samples (interleaved, the card's channels); hands every complete
    /// 48 kHz stereo chunk to `out`, stamped with its server time.
    pub fn push(&mut self, stamp: Stamp, samples: &[f32], mut out: impl FnMut(Chunk)) {
        self.base_ns.get_or_insert(stamp.capture_local_ns);
        if stamp.after_xrun {
            self.clock.restart();
        }
        self.clock.push(stamp.card_frame, stamp.capture_local_ns);
        if self.next_card != Some(stamp.card_frame) {
            if self.next_card.is_some() {
                self.gaps += 1;
            }
            if !self.conv.reset_exact() {
                self.conv.reset();
            }
            self.conv_origin = stamp.card_frame;
            self.pending.clear();
        }
        self.next_card = Some(stamp.card_frame + stamp.frames as u64);
        for frame in samples.chunks_exact(self.channels) {
            let (l, r) = to_stereo(frame);
            self.pending.push(l);
            self.pending.push(r);
        }
        loop {
            let need = self.conv.input_needed();
            if self.pending.len() < need * 2 {
                break;
            }
            let start = self.server_ns(self.conv_origin as f64 + self.conv.next_position());
            self.conv.process(&self.pending[..need * 2], &mut self.block);
            self.pending.drain(..need * 2);
            out(Chunk {
                start: ServerTime::from_ns(start),
                samples: self.block.clone(),
            });
        }
    }

    /// `server − local` at local time `at` and the card's rate against the local clock (ppm, positive: it runs
    /// fast), from the fit; None before the first stamp.
    pub fn estimate(&self, at: LocalTime) -> Option<(i64, f64)> {
        let frame = self.clock.frame_at(at.as_ns())?;
        let offset = self.server_ns(frame) - at.as_ns();
        Some((offset, self.clock.ppm().unwrap_or(0.0)))
    }

    /// Jumps in the card frames (dropped callbacks) seen so far.
    pub fn gaps(&self) -> u64 {
        self.gaps
    }

    /// Times the clock fit started again (the card's timestamps jumped: an overrun, a restarted stream).
    pub fn clock_restarts(&self) -> u64 {
        self.clock.restarts()
    }

    /// The card's measured rate against the local clock, ppm, once measured.
    pub fn ppm(&self) -> Option<f64> {
        self.clock.ppm()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::buffer::TimelineBuffer;
    use crate::timeline::server_clock::ServerClock;
    use crate::timeline::AudioFormat;

    /// A virtual capture card: `rate_hz` nominal, `ppm` fast against the local clock, callbacks of `period`
    /// frames whose capture timestamps are late by up to `jitter_ns` (never early: a position read after a
    /// hardware step; deterministic pseudo-random), with a click
    /// (a single full-scale sample) at every local second's first frame.
    struct Card {
        rate_hz: u32,
        ppm: f64,
        period: u32,
        jitter_ns: i64,
        channels: usize,
        next: u64,
        seed: u64,
        start_ns: i64,
    }

    impl Card {
        /// Local time at which card frame `c` is captured (the truth).
        fn truth_ns(&self, c: f64) -> f64 {
            self.start_ns as f64 + c * 1e9 / (self.rate_hz as f64 * (1.0 + self.ppm * 1e-6))
        }

        fn jitter(&mut self) -> i64 {
            self.seed = self
                .seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if self.jitter_ns == 0 {
                return 0;
            }
            (self.seed >> 33) as i64 % (self.jitter_ns + 1)
        }

        /// The next callback: its stamp and samples (a click where a local second begins).
        fn callback(&mut self) -> (Stamp, Vec<f32>) {
            let c0 = self.next;
            let mut samples = vec![0.0f32; self.period as usize * self.channels];
            for i in 0..self.period as u64 {
                let t0 = self.truth_ns((c0 + i) as f64);
                let t1 = self.truth_ns((c0 + i + 1) as f64);
                // The frame during which a local second begins carries the click.
                if (t0 / 1e9).ceil() * 1e9 < t1 && (t0 / 1e9).ceil() * 1e9 >= t0 {
                    for ch in 0..self.channels {
                        samples[i as usize * self.channels + ch] = 1.0;
                    }
                }
            }
            self.next += self.period as u64;
            let stamp = Stamp {
                card_frame: c0,
                frames: self.period,
                capture_local_ns: self.truth_ns(c0 as f64).round() as i64 + self.jitter(),
                after_xrun: false,
            };
            (stamp, samples)
        }
    }

    fn card(rate_hz: u32, ppm: f64, channels: usize, jitter_ns: i64) -> Card {
        Card {
            rate_hz,
            ppm,
            period: rate_hz / 100,
            jitter_ns,
            channels,
            next: 0,
            seed: 7,
            start_ns: 1_000_000_000,
        }
    }

    /// Runs `secs` of the card through an ingest into a timeline, the clock estimate into a server clock as the
    /// source does every 10 ms; returns the timeline and the clock.
    fn run(card: &mut Card, secs: u32) -> (TimelineBuffer, ServerClock, CaptureIngest) {
        let mut ingest = CaptureIngest::new(card.rate_hz, card.channels);
        let mut tl = TimelineBuffer::new(AudioFormat::STEREO_48K, 120_000_000_000);
        let mut clock = ServerClock::new();
        for _ in 0..secs * 100 {
            let (stamp, samples) = card.callback();
            ingest.push(stamp, &samples, |c| tl.push(c).expect("whole frames"));
            let now = LocalTime::from_ns(card.truth_ns(card.next as f64) as i64);
            let (offset, ppm) = ingest.estimate(now).expect("stamped");
            clock.set_estimate(offset, ppm, now);
        }
        (tl, clock, ingest)
    }

    /// Server times of the clicks in the timeline (the first frame above half scale of each run).
    fn clicks(tl: &TimelineBuffer) -> Vec<ServerTime> {
        let start = tl.start().unwrap();
        let end = tl.end().unwrap();
        let n = (end.ns_since(start) as f64 * 48e-6) as usize;
        let mut buf = vec![0.0f32; n * 2];
        tl.read(start, &mut buf);
        let mut out = Vec::new();
        let mut i = 0;
        while i < n {
            if buf[2 * i].abs() > 0.5 {
                out.push(start.add_ns((i as f64 * 1e9 / 48_000.0).round() as i64));
                i += 4_800;
            } else {
                i += 1;
            }
        }
        out
    }

    /// Every click, mapped back to local time through the estimated clock, lands within `tol_ns` of the local
    /// second it was captured at; returns the largest error.
    fn assert_clicks_land(tl: &TimelineBuffer, clock: &ServerClock, tol_ns: i64, skip: usize) -> i64 {
        let cs = clicks(tl);
        assert!(cs.len() > skip + 10, "only {} clicks", cs.len());
        let mut worst = 0;
        for s in &cs[skip..] {
            let local = clock.to_local(*s).unwrap().as_ns();
            let second = ((local as f64) / 1e9).round() as i64 * 1_000_000_000;
            let err = local - second;
            worst = worst.max(err.abs());
            assert!(
                err.abs() <= tol_ns,
                "click at server {s:?} maps to local {local}, {err} ns off"
            );
        }
        worst
    }

    #[test]
    fn a_48k_stereo_card_on_time_places_every_click_at_its_capture_time() {
        let mut c = card(48_000, 0.0, 2, 0);
        let (tl, clock, ingest) = run(&mut c, 30);
        // One frame is 20.8 µs: the click is placed within it.
        assert_clicks_land(&tl, &clock, 21_000, 0);
        assert_eq!(ingest.gaps(), 0);
        assert!(ingest.ppm().unwrap().abs() < 0.5);
    }

    #[test]
    fn a_drifting_card_with_jittery_timestamps_is_followed_within_a_frame_or_two() {
        for ppm in [300.0, -300.0] {
            // Stamps up to 2 ms late (snd-aloop's 4 ms position steps read at random times would be up to 4).
            let mut c = card(48_000, ppm, 2, 2_000_000);
            let (tl, clock, ingest) = run(&mut c, 60);
            let est = ingest.ppm().unwrap();
            assert!((est - ppm).abs() < 5.0, "estimated {est} ppm for {ppm}");
            // After the fit has settled (10 s), every click within 150 µs of its capture time (the raw stamps
            // are a millisecond late on average); without the rate (offset alone, held from the start) it would
            // be off by 300 ppm × 60 s = 18 ms at the end.
            let worst = assert_clicks_land(&tl, &clock, 150_000, 10);
            assert!(worst > 0);
        }
    }

    #[test]
    fn mono_44k1_is_converted_to_48k_stereo_and_still_on_time() {
        let mut c = card(44_100, 100.0, 1, 200_000);
        let (tl, clock, _) = run(&mut c, 30);
        assert_eq!(tl.format(), AudioFormat::STEREO_48K);
        // Resampling smears the click over a few frames and its first frame above half scale is within ~3
        // frames of the truth.
        assert_clicks_land(&tl, &clock, 80_000, 5);
        // Both channels carry the mono signal.
        let start = tl.start().unwrap();
        let mut buf = vec![0.0f32; 96_000 * 2];
        tl.read(start, &mut buf);
        assert!(buf.chunks_exact(2).all(|f| f[0] == f[1]));
    }

    #[test]
    fn six_channels_keep_the_first_two() {
        let mut ingest = CaptureIngest::new(48_000, 6);
        let frame = [0.1f32, 0.2, 0.3, 0.4, 0.5, 0.6];
        let samples: Vec<f32> = frame.iter().copied().cycle().take(6 * CHUNK_FRAMES).collect();
        let mut chunks = Vec::new();
        ingest.push(
            Stamp {
                card_frame: 0,
                frames: CHUNK_FRAMES as u32,
                capture_local_ns: 5,
                after_xrun: false,
            },
            &samples,
            |c| chunks.push(c),
        );
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].start, ServerTime::from_ns(5));
        assert!(chunks[0].samples.chunks_exact(2).all(|f| f == [0.1, 0.2]));
    }

    #[test]
    fn a_dropped_callback_leaves_a_gap_and_what_follows_keeps_its_time() {
        let mut c = card(48_000, 0.0, 2, 0);
        let mut ingest = CaptureIngest::new(48_000, 2);
        let mut chunks = Vec::new();
        for i in 0..10 {
            let (stamp, samples) = c.callback();
            if i != 4 {
                ingest.push(stamp, &samples, |ch| chunks.push(ch));
            }
        }
        assert_eq!(ingest.gaps(), 1);
        assert_eq!(chunks.len(), 9);
        // Chunk k starts at card frame 480·k: the one after the gap at frame 2400 (server time base + 50 ms).
        let base = chunks[0].start.as_ns();
        assert_eq!(chunks[4].start.as_ns() - base, 50_000_000);
        assert_eq!(chunks[8].start.as_ns() - base, 90_000_000);
    }
}
