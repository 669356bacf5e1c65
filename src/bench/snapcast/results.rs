//! What the Snapcast bench reports: each client's [`Deviation`], bluebridge's own [`Parts`], and the table.

use crate::control::protocol::StatusReport;
use crate::report::Percentiles;
use crate::timeline::lateness::LatenessSummary;
use crate::timeline::LocalTime;
use serde::Serialize;
use std::time::Duration;

/// One client's deviation from the truth over the clicks matched, µs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Deviation {
    /// Clicks matched with a truth click.
    pub clicks: usize,
    /// Mean signed deviation (positive: late).
    pub mean_us: f64,
    /// |deviation| percentiles.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Largest.
    pub max_us: f64,
}

impl Deviation {
    /// `measured` clicks against `truth` clicks: each measured click is matched with the nearest truth click
    /// within 0.5 s.
    pub fn of(measured: &[LocalTime], truth: &[LocalTime]) -> Self {
        let devs: Vec<f64> = measured
            .iter()
            .filter_map(|m| truth.iter().map(|t| m.ns_since(*t)).min_by_key(|d| d.abs()))
            .filter(|d| d.abs() < 500_000_000)
            .map(|d| d as f64 / 1000.0)
            .collect();
        let p = Percentiles::of_abs(&devs);
        Self {
            clicks: devs.len(),
            mean_us: devs.iter().sum::<f64>() / devs.len().max(1) as f64,
            p50_us: p.p50,
            p99_us: p.p99,
            max_us: p.max,
        }
    }
}

/// What `bench snapcast` prints.
#[derive(Debug, Clone, Serialize)]
pub struct SnapcastBench {
    /// Seconds measured (after [`SETTLE_S`]).
    pub seconds: f64,
    /// Whether the clients and readers ran at real-time priority.
    pub realtime: bool,
    /// Truth clicks seen by the protocol-only client.
    pub truth_clicks: usize,
    /// The protocol client's server-clock offset estimate at the end, µs (should be about 0 on one host).
    pub server_offset_us: Option<f64>,
    /// bluebridge against the truth.
    pub bluebridge: Deviation,
    /// snapclient against the truth.
    pub snapclient: Deviation,
    /// bluebridge's p50 / snapclient's p50 (below 1: bluebridge is closer).
    pub ratio_p50: f64,
    /// bluebridge's p99 / snapclient's p99.
    pub ratio_p99: f64,
    /// bluebridge's deviation taken apart, from its own status during the run.
    pub parts: Parts,
}

/// Where bluebridge's deviation comes from, part by part, read from its `status` every [`STATUS_PERIOD`] after
/// [`SETTLE_S`]. Each part's sign is its effect on the deviation (positive: makes the sound late).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Parts {
    /// Status reads that succeeded.
    pub samples: usize,
    /// The server-clock estimate's error, µs: `−(server − local)` as estimated (the truth is 0 on one host; an
    /// estimate of +e maps every server time e early). Percentiles of |value|.
    pub server_clock: Signed,
    /// The sync loop's own measured error, µs, as it affects the sound: `−error_us` (where it believes the output
    /// is against where it should be: the resampler's position bookkeeping and the control loop's residual).
    pub sync_loop: Signed,
    /// The real-time loop's wake-up lateness over its 10 s windows (median of their medians, largest p99 and max).
    pub engine_wake: Option<LatenessSummary>,
    /// The engine ran at real-time priority.
    pub engine_realtime: Option<bool>,
    /// The pipe writer's hand-off lateness (written into the pipe against the block's due time), same summary.
    pub writer_handoff: Option<LatenessSummary>,
    /// The FIFO readers' own delay after a write (see [`reader_floor`]): the instrument's part, the same for both
    /// clients; its minimum is in every measured click.
    pub reader_floor: Option<LatenessSummary>,
    /// The mean deviation these parts predict, µs: server clock + sync loop means + the writer's hand-off at its
    /// 1st percentile (the FIFO reader places each second's clicks by the earliest of the ~400 blocks around them,
    /// see [`timed_clicks`]) + the reader's floor.
    pub predicted_mean_us: f64,
}

/// Mean and |value| percentiles of one signed series, µs.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Signed {
    /// Values in the series.
    pub count: usize,
    /// Mean (signed).
    pub mean_us: f64,
    /// Median of |value|.
    pub p50_us: f64,
    /// 99th percentile of |value|.
    pub p99_us: f64,
}

impl Signed {
    fn of(v: &[f64]) -> Self {
        let p = Percentiles::of_abs(v);
        Self {
            count: v.len(),
            mean_us: v.iter().sum::<f64>() / v.len().max(1) as f64,
            p50_us: p.p50,
            p99_us: p.p99,
        }
    }
}

/// How often the bench reads bluebridge's status.
pub const STATUS_PERIOD: Duration = Duration::from_millis(500);

/// The windows of a lateness series, each seen once, as one summary: the median of the windows' minimums, 1st
/// percentiles, medians and means, the largest p99 and max (None without a window).
fn combine(windows: &[LatenessSummary]) -> Option<LatenessSummary> {
    if windows.is_empty() {
        return None;
    }
    let median = |f: fn(&LatenessSummary) -> f64| {
        let mut v: Vec<f64> = windows.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    Some(LatenessSummary {
        count: windows.iter().map(|w| w.count).sum(),
        min_us: median(|w| w.min_us),
        p01_us: median(|w| w.p01_us),
        mean_us: median(|w| w.mean_us),
        p50_us: median(|w| w.p50_us),
        p99_us: windows.iter().map(|w| w.p99_us).fold(f64::MIN, f64::max),
        max_us: windows.iter().map(|w| w.max_us).fold(f64::MIN, f64::max),
    })
}

impl Parts {
    /// The parts from the status reports read after the settling time.
    pub fn of(reports: &[StatusReport], reader_floor: Option<LatenessSummary>) -> Self {
        let server: Vec<f64> = reports
            .iter()
            .filter_map(|r| r.source.server_offset_us)
            .map(|o| -o)
            .collect();
        let out = |r: &StatusReport| r.outputs.first().cloned();
        let sync: Vec<f64> = reports
            .iter()
            .filter_map(out)
            .filter(|o| o.synced)
            .map(|o| -o.error_us)
            .collect();
        let mut wake: Vec<LatenessSummary> = Vec::new();
        let mut handoff: Vec<LatenessSummary> = Vec::new();
        for r in reports {
            // A window is reported until the next one ends: keep each once.
            if let Some(w) = r.engine.wake_late_us {
                if wake.last() != Some(&w) {
                    wake.push(w);
                }
            }
            if let Some(w) = out(r).and_then(|o| o.handoff_late_us) {
                if handoff.last() != Some(&w) {
                    handoff.push(w);
                }
            }
        }
        let (server_clock, sync_loop) = (Signed::of(&server), Signed::of(&sync));
        let writer_handoff = combine(&handoff);
        Self {
            samples: reports.len(),
            predicted_mean_us: server_clock.mean_us
                + sync_loop.mean_us
                + writer_handoff.map_or(0.0, |w| w.p01_us)
                + reader_floor.map_or(0.0, |r| r.min_us),
            reader_floor,
            server_clock,
            sync_loop,
            engine_wake: combine(&wake),
            engine_realtime: reports.iter().rev().find_map(|r| r.engine.realtime),
            writer_handoff,
        }
    }
}

impl SnapcastBench {
    /// The human-readable report `bench snapcast` prints.
    pub fn table(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<11} {:>6} {:>9} {:>9} {:>9} {:>9}",
            "client", "clicks", "p50 µs", "p99 µs", "max µs", "mean µs"
        );
        for (name, d) in [("bluebridge", &self.bluebridge), ("snapclient", &self.snapclient)] {
            let _ = writeln!(
                s,
                "{name:<11} {:>6} {:>9.0} {:>9.0} {:>9.0} {:>+9.0}",
                d.clicks, d.p50_us, d.p99_us, d.max_us, d.mean_us
            );
        }
        let _ = writeln!(
            s,
            "ratio bluebridge/snapclient: p50 {:.2}, p99 {:.2} (below 1: bluebridge is closer to the truth)",
            self.ratio_p50, self.ratio_p99
        );
        let p = &self.parts;
        let _ = writeln!(
            s,
            "bluebridge's parts ({} status reads; mean is signed, + makes it late; p50/p99 of |value|):",
            p.samples
        );
        let _ = writeln!(s, "  {:<34} {:>9} {:>9} {:>9}", "part", "mean µs", "p50 µs", "p99 µs");
        // (A lateness row's p50/p99 are of the lateness itself, and it shows its minimum and maximum.)
        for (name, v) in [
            ("server-clock estimate error", &p.server_clock),
            ("sync loop's own error", &p.sync_loop),
        ] {
            let _ = writeln!(
                s,
                "  {name:<34} {:>+9.1} {:>9.1} {:>9.1}",
                v.mean_us, v.p50_us, v.p99_us
            );
        }
        for (name, v) in [
            ("pipe writer hand-off lateness", &p.writer_handoff),
            ("engine wake-up lateness (*)", &p.engine_wake),
            ("FIFO reader's delay (instrument)", &p.reader_floor),
        ] {
            match v {
                Some(w) => {
                    let _ = writeln!(
                        s,
                        "  {name:<34} {:>+9.1} {:>9.0} {:>9.0}  (min {:.0}, p1 {:.0}, max {:.0})",
                        w.mean_us, w.p50_us, w.p99_us, w.min_us, w.p01_us, w.max_us
                    );
                }
                None => {
                    let _ = writeln!(s, "  {name:<34} {:>9}", "none");
                }
            }
        }
        let _ = writeln!(
            s,
            "  predicted mean (server clock + sync loop + the writer's p1 hand-off + the reader's min) {:+.1} µs, measured {:+.1} \
             µs.\n  (*) the engine's lateness moves no sound: a block's time is decided by its frame count, and the \
             writer waits for it",
            p.predicted_mean_us, self.bluebridge.mean_us
        );
        let _ = writeln!(
            s,
            "{} truth clicks; the truth client's own server-clock estimate {}; real-time priority: {}{}",
            self.truth_clicks,
            self.server_offset_us.map_or("none".into(), |o| format!("{o:+.0} µs")),
            if self.realtime {
                "yes"
            } else {
                "no (run as root for SCHED_FIFO)"
            },
            match p.engine_realtime {
                Some(false) => " (bluebridge's engine: refused)",
                _ => "",
            }
        );
        s
    }
}
