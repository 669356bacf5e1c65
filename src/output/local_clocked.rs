//! Bookkeeping for outputs consumed at the local clock's rate (a pipe's reader, a file): where frame `n` is
//! rendered, how much is queued, and (when asked, see [`LocalClocked::with_markers`]) which marker clicks were
//! rendered when.
//!
//! An output whose consumer has a clock of its own that can be observed (a broadcast's Bluetooth controller, see
//! [`super::iso_pacing`]) can make the schedule follow it: [`LocalClocked::set_rate_ppm`] changes the rate at
//! which later frames render, and [`LocalClocked::set_send_ahead_ns`] sends packets that long before their render
//! time (into a consumer's queue, without moving their render time).

use super::{OutputStatus, OUTPUT_FORMAT};
use crate::report::ClickDetector;
use crate::timeline::LocalTime;

/// How early a packet may leave. Outputs that send when a packet's first frame is due ask the loop to wake them
/// then ([`super::Output::wake_at`]); a loop run for another reason this close before the due time sends it at once
/// rather than sleeping for less than a wake-up's own jitter.
pub const SEND_EARLY_NS: i64 = 500_000;

/// How long a paced output lets the loop sleep when it has no packet queued (it still consumes audio at the local
/// clock and tops up its lead on every run of the loop).
pub const IDLE_WAKE_NS: i64 = 10_000_000;

/// A consumer that renders frame `n` at `t0 + n / rate`, `lead_ns` after it was first asked for (at the nominal
/// rate unless told otherwise with [`set_rate_ppm`](Self::set_rate_ppm)).
#[derive(Debug)]
pub struct LocalClocked {
    /// Frame `.0` renders at `.1`; the frames after it follow at the nominal rate × (1 + ppm·10⁻⁶).
    anchor: Option<(u64, LocalTime)>,
    /// The rate of the schedule against the local clock, ppm.
    ppm: f64,
    /// Packets are due this long before their render time.
    send_ahead_ns: i64,
    written_frames: u64,
    lead_ns: i64,
    late_tolerance_ns: i64,
    delay_ns: i64,
    /// Finds marker clicks in what is written; off unless asked for (it costs a filter per sample).
    detector: Option<ClickDetector>,
    markers: Vec<LocalTime>,
    found: Vec<f64>,
    /// Times the writer fell behind and the consumer had nothing.
    pub underruns: u64,
}

impl LocalClocked {
    /// A consumer that keeps `lead_ns` queued and whose sink adds `delay_ns` after rendering.
    pub fn new(lead_ns: i64, delay_ns: i64) -> Self {
        Self::with_late_tolerance(lead_ns, delay_ns, 0)
    }

    /// Like [`new`](Self::new), for a consumer with its own buffer (an A2DP speaker): frames handed over up to
    /// `late_tolerance_ns` after their render time are still rendered on time, so lateness within it does not
    /// restart the clock.
    pub fn with_late_tolerance(lead_ns: i64, delay_ns: i64, late_tolerance_ns: i64) -> Self {
        Self {
            late_tolerance_ns,
            anchor: None,
            ppm: 0.0,
            send_ahead_ns: 0,
            written_frames: 0,
            lead_ns,
            delay_ns,
            detector: None,
            markers: vec![],
            found: vec![],
            underruns: 0,
        }
    }

    /// Also finds the marker clicks in what is written (for reports that compare outputs).
    pub fn with_markers(mut self) -> Self {
        self.detector = Some(ClickDetector::new());
        self
    }

    /// Nanoseconds from the anchor to (fractional) frame `pos`, at the schedule's rate; exact integer arithmetic
    /// at the nominal rate.
    fn offset_ns(&self, anchor_frame: u64, pos: f64) -> f64 {
        if self.ppm == 0.0 && pos.fract() == 0.0 {
            return OUTPUT_FORMAT.frames_to_ns(pos as i64 - anchor_frame as i64) as f64;
        }
        (pos - anchor_frame as f64) * 1e9 / (OUTPUT_FORMAT.rate_hz as f64 * (1.0 + self.ppm * 1e-6))
    }

    /// When frame `n` is rendered (before the sink's delay).
    pub fn render_time(&self, n: u64) -> Option<LocalTime> {
        self.anchor
            .map(|(f, t)| t.add_ns(self.offset_ns(f, n as f64).round() as i64))
    }

    /// Sets the rate at which frames not yet written render, in ppm against the local clock (positive: faster,
    /// for a consumer whose clock runs fast). Frames already written keep their render times (to within the rate
    /// change times the little that is queued).
    pub fn set_rate_ppm(&mut self, ppm: f64) {
        if ppm == self.ppm {
            return;
        }
        if let Some(t) = self.render_time(self.written_frames) {
            self.anchor = Some((self.written_frames, t));
        }
        self.ppm = ppm;
    }

    /// The schedule's rate against the local clock, ppm.
    pub fn rate_ppm(&self) -> f64 {
        self.ppm
    }

    /// Makes packets due `ns` before their render time (and keeps that much more queued).
    pub fn set_send_ahead_ns(&mut self, ns: i64) {
        self.send_ahead_ns = ns.max(0);
    }

    /// Whether a packet whose first frame is `n` is due at `now` (within [`SEND_EARLY_NS`], and the send-ahead);
    /// before the clock starts everything is due.
    pub fn is_due(&self, n: u64, now: LocalTime) -> bool {
        self.render_time(n)
            .is_none_or(|t| t.ns_since(now) - self.send_ahead_ns <= SEND_EARLY_NS)
    }

    /// When the loop should next run for a consumer whose next packet starts at frame `first` (None: nothing
    /// queued): at that packet's render time, or [`IDLE_WAKE_NS`] from now.
    pub fn wake_at(&self, first: Option<u64>, now: LocalTime) -> LocalTime {
        first
            .and_then(|n| self.render_time(n))
            .map(|t| t.add_ns(-self.send_ahead_ns))
            .unwrap_or(now.add_ns(IDLE_WAKE_NS))
    }

    /// Frames written so far.
    pub fn written_frames(&self) -> u64 {
        self.written_frames
    }

    /// The status at `now`; starts the clock on the first call.
    pub fn status(&mut self, now: LocalTime) -> OutputStatus {
        self.anchor.get_or_insert((0, now.add_ns(self.lead_ns)));
        let mut transport_ns = self
            .render_time(self.written_frames)
            .expect("anchored above")
            .ns_since(now);
        if transport_ns < -self.late_tolerance_ns {
            // The writer fell behind (the process stalled): restart the consumer's clock from now.
            self.underruns += 1;
            if self.underruns.is_power_of_two() {
                tracing::warn!(
                    "output starved for {:.1} ms (the process stalled); {} times so far",
                    -transport_ns as f64 / 1e6,
                    self.underruns
                );
            }
            self.anchor = Some((self.written_frames, now.add_ns(self.lead_ns)));
            transport_ns = self.lead_ns;
        }
        let want_ns = (self.lead_ns + self.send_ahead_ns - transport_ns).max(0);
        OutputStatus {
            transport_ns,
            want_frames: OUTPUT_FORMAT.ns_to_frames_f64(want_ns).ceil() as usize,
            sink_reported_ns: Some(self.delay_ns),
            encoder_ns: 0,
        }
    }

    /// Accounts for `frames` written; finds marker clicks in them if asked to.
    pub fn wrote(&mut self, frames: &[i16]) {
        let first = self.written_frames;
        if let Some(detector) = &mut self.detector {
            detector.push(
                first,
                frames.chunks_exact(2).map(|f| f[0] as f32 / 32768.0),
                &mut self.found,
            );
        }
        for pos in std::mem::take(&mut self.found) {
            if let Some((f, t)) = self.anchor {
                self.markers
                    .push(t.add_ns(self.offset_ns(f, pos).round() as i64 + self.delay_ns));
            }
        }
        self.written_frames += (frames.len() / 2) as u64;
    }

    /// The clock's counters, first in an output's [`super::Output::counters`]: frames written and underruns.
    pub fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![("frames", self.written_frames), ("underruns", self.underruns)]
    }

    /// Marker acoustic times found since the last call.
    pub fn take_markers(&mut self) -> Vec<LocalTime> {
        std::mem::take(&mut self.markers)
    }
}

/// The [`super::Output`] methods of an output that a [`LocalClocked`] in its field `clock` paces on its own (the
/// `file` and `pipe` outputs): the clock's status and markers, and that it consumes at the local clock's rate.
/// Expands inside `impl Output for …`.
macro_rules! paced_by_its_local_clock {
    () => {
        fn status(&mut self, now: $crate::timeline::LocalTime) -> $crate::output::OutputStatus {
            self.clock.status(now)
        }
        fn paced_by_local_clock(&self) -> bool {
            true
        }
        fn take_markers(&mut self) -> Vec<$crate::timeline::LocalTime> {
            self.clock.take_markers()
        }
    };
}
pub(crate) use paced_by_its_local_clock;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_lead_and_restarts_after_a_stall() {
        let mut c = LocalClocked::new(20_000_000, 0);
        let s = c.status(LocalTime::from_ns(0));
        assert_eq!(s.transport_ns, 20_000_000);
        assert_eq!(s.want_frames, 0);
        let s = c.status(LocalTime::from_ns(10_000_000));
        assert_eq!(s.want_frames, 480);
        c.wrote(&[0; 960]);
        assert_eq!(c.status(LocalTime::from_ns(10_000_000)).transport_ns, 20_000_000);
        let s = c.status(LocalTime::from_ns(1_000_000_000));
        assert_eq!((s.transport_ns, c.underruns), (20_000_000, 1));
    }

    #[test]
    fn a_buffered_consumer_tolerates_short_lateness() {
        let mut c = LocalClocked::with_late_tolerance(20_000_000, 0, 50_000_000);
        c.status(LocalTime::from_ns(0));
        c.wrote(&[0; 960]); // 10 ms
        let s = c.status(LocalTime::from_ns(60_000_000)); // 30 ms late
        assert_eq!((s.transport_ns, c.underruns), (-30_000_000, 0));
        assert_eq!(s.want_frames, 2_400); // catch up: 50 ms worth
        c.status(LocalTime::from_ns(200_000_000));
        assert_eq!(c.underruns, 1);
    }

    #[test]
    fn a_packet_is_due_from_half_a_tick_before_its_render_time() {
        let mut c = LocalClocked::new(20_000_000, 0);
        assert!(c.is_due(480, LocalTime::from_ns(0)), "before the clock starts");
        c.status(LocalTime::from_ns(0)); // frame 0 renders at 20 ms, frame 480 at 30 ms
        assert!(!c.is_due(480, LocalTime::from_ns(30_000_000 - SEND_EARLY_NS - 1)));
        assert!(c.is_due(480, LocalTime::from_ns(30_000_000 - SEND_EARLY_NS)));
        assert!(c.is_due(480, LocalTime::from_ns(31_000_000)));
    }

    #[test]
    fn a_rate_change_moves_later_frames_only_and_send_ahead_moves_sends_only() {
        let mut c = LocalClocked::new(20_000_000, 0);
        c.status(LocalTime::from_ns(0));
        c.wrote(&vec![0; 48_000 * 2]); // 1 s: frame 48000 renders at 1.02 s
        assert_eq!(c.render_time(48_000), Some(LocalTime::from_ns(1_020_000_000)));
        c.set_rate_ppm(100.0);
        assert_eq!(c.render_time(48_000), Some(LocalTime::from_ns(1_020_000_000)));
        // The next second of frames renders 100 ppm faster: 100 µs earlier.
        assert_eq!(c.render_time(96_000), Some(LocalTime::from_ns(2_020_000_000 - 99_990)));
        assert_eq!(c.rate_ppm(), 100.0);
        // Sending ahead: due 30 ms earlier, and the writer is asked for 30 ms more.
        let want = c.status(LocalTime::from_ns(1_000_000_000)).want_frames;
        c.set_send_ahead_ns(30_000_000);
        assert!(!c.is_due(48_000, LocalTime::from_ns(990_000_000 - SEND_EARLY_NS - 1)));
        assert!(c.is_due(48_000, LocalTime::from_ns(990_000_000 - SEND_EARLY_NS)));
        assert_eq!(
            c.wake_at(Some(48_000), LocalTime::from_ns(0)),
            LocalTime::from_ns(990_000_000)
        );
        let st = c.status(LocalTime::from_ns(1_000_000_000));
        assert_eq!(st.want_frames, want + 1_440);
        assert_eq!(st.transport_ns, 20_000_000, "the render schedule did not move");
    }

    #[test]
    fn marker_clicks_are_found_only_when_asked_for() {
        let signal = crate::source::tone::TestSignal::standard();
        let pcm: Vec<i16> = (0..48_000u64)
            .flat_map(|n| {
                let v = (signal.sample(n) * 32767.0) as i16;
                [v, v]
            })
            .collect();
        for (mut c, want) in [
            (LocalClocked::new(0, 0), 0),
            (LocalClocked::new(0, 0).with_markers(), 1),
        ] {
            c.status(LocalTime::from_ns(0));
            c.wrote(&pcm);
            assert_eq!(c.take_markers().len(), want);
        }
    }
}
