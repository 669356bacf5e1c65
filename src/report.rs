//! Measuring sync: finding marker clicks in audio, and the sync report (deviation and skew).
//!
//! For a marker click, its *acoustic time* at an output is when that output renders it; its *play time* is when
//! the group says it must be heard. **deviation** = acoustic time − intended play time (play time plus the
//! output's manual offset), per output; **skew** = the spread (max − min) of one click's deviations across
//! outputs (so an output meant to play 5 ms late by its manual offset is not counted as skew). Simulated speakers know their acoustic times exactly, so the figures are ground truth.

use crate::timeline::LocalTime;
use serde::Serialize;
use std::collections::VecDeque;

/// Absolute level above which a sample may belong to a click.
pub const CLICK_THRESHOLD: f32 = 0.5;
/// Frames looked at before the threshold crossing.
const PRE_FRAMES: usize = 4;
/// Frames looked at after the threshold crossing.
const POST_FRAMES: usize = 12;
/// Minimum frames between two clicks.
const REFRACTORY_FRAMES: u64 = 4_800;

/// Finds click peaks in a stream of samples, to a fraction of a frame.
///
/// Push samples in order (one channel) with the index of the first one; each found click is its peak position
/// in frames (fractional), from a parabola fitted to the log of the three samples around the maximum: exact for
/// a Gaussian pulse.
#[derive(Debug, Default)]
pub struct ClickDetector {
    hist: VecDeque<f32>,
    pending: Option<(u64, Vec<f32>)>,
    last_click: Option<u64>,
}

impl ClickDetector {
    /// A detector that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds samples `first_index, first_index + 1, …`; appends the position of each click found to `found`.
    pub fn push(&mut self, first_index: u64, samples: impl IntoIterator<Item = f32>, found: &mut Vec<f64>) {
        for (i, x) in samples.into_iter().enumerate() {
            let idx = first_index + i as u64;
            if let Some((start, buf)) = &mut self.pending {
                buf.push(x);
                if buf.len() >= PRE_FRAMES + 1 + POST_FRAMES {
                    let start = *start;
                    let buf = std::mem::take(buf);
                    self.pending = None;
                    if let Some(pos) = peak_position(&buf) {
                        found.push(start as f64 + pos);
                        self.last_click = Some(start + PRE_FRAMES as u64);
                    }
                }
            } else if x.abs() > CLICK_THRESHOLD
                && self
                    .last_click
                    .is_none_or(|l| idx.saturating_sub(l) > REFRACTORY_FRAMES)
            {
                let mut buf: Vec<f32> = self.hist.iter().copied().collect();
                while buf.len() < PRE_FRAMES {
                    buf.insert(0, 0.0);
                }
                buf.push(x);
                self.pending = Some((idx - PRE_FRAMES as u64, buf));
            }
            if self.hist.len() == PRE_FRAMES {
                self.hist.pop_front();
            }
            self.hist.push_back(x);
        }
    }
}

/// The fractional index of the peak of |buf|, or None if it sits on the edge.
fn peak_position(buf: &[f32]) -> Option<f64> {
    let sign = if buf.iter().fold(0.0f32, |m, &v| if v.abs() > m.abs() { v } else { m }) < 0.0 {
        -1.0
    } else {
        1.0
    };
    let (m, _) = buf.iter().enumerate().fold(
        (0usize, f32::MIN),
        |(bi, bv), (i, &v)| if v * sign > bv { (i, v * sign) } else { (bi, bv) },
    );
    if m == 0 || m + 1 >= buf.len() {
        return None;
    }
    let (a, b, c) = (
        (buf[m - 1] * sign) as f64,
        (buf[m] * sign) as f64,
        (buf[m + 1] * sign) as f64,
    );
    let delta = if a > 0.0 && c > 0.0 {
        let (la, lb, lc) = (a.ln(), b.ln(), c.ln());
        let den = la - 2.0 * lb + lc;
        if den.abs() < 1e-12 {
            0.0
        } else {
            0.5 * (la - lc) / den
        }
    } else {
        let den = a - 2.0 * b + c;
        if den.abs() < 1e-12 {
            0.0
        } else {
            0.5 * (a - c) / den
        }
    };
    Some(m as f64 + delta.clamp(-0.5, 0.5))
}

/// p50, p99 and max of a set of absolute values, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    /// Percentiles of |v| for every value; all zero for an empty set.
    pub fn of_abs(values: &[f64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let mut v: Vec<f64> = values.iter().map(|x| x.abs()).collect();
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Self {
            p50: rank(0.50),
            p99: rank(0.99),
            max: *v.last().expect("non-empty"),
        }
    }
}

/// What one output observed: the acoustic times of the clicks it rendered.
#[derive(Debug, Clone)]
pub struct OutputObservation {
    /// Output name.
    pub name: String,
    /// Output kind.
    pub kind: String,
    /// Its manual offset: it is *meant* to play this much later than the group.
    pub offset_ns: i64,
    /// Acoustic time of every click it rendered.
    pub acoustic: Vec<LocalTime>,
}

/// One output's line in the report.
#[derive(Debug, Clone, Serialize)]
pub struct OutputReport {
    /// Output name.
    pub name: String,
    /// Output kind.
    pub kind: String,
    /// |acoustic − intended play time| over the clicks counted, in µs.
    pub deviation_us: Percentiles,
    /// Mean signed deviation over the clicks counted, in µs (positive: late).
    pub mean_deviation_us: f64,
    /// Clicks matched to a play time and counted.
    pub clicks: usize,
}

/// The sync report: per-output deviation and the group's skew.
#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    /// One entry per output.
    pub outputs: Vec<OutputReport>,
    /// Spread of each click's acoustic times across the outputs that rendered it, in µs.
    pub skew_us: Percentiles,
    /// Time (s from the first click) after which every output stayed within [`CONVERGED_US`]; only clicks after
    /// it are counted. `None` in JSON when not computed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub converged_after_s: Option<f64>,
}

/// The bound that defines convergence, in µs.
pub const CONVERGED_US: f64 = 50.0;

/// Builds the report. `play_times` are the intended local play times of the source clicks (without offsets).
/// Clicks with a play time before `count_from` are left out of the figures; with `find_convergence`, the start of
/// counting is moved to the first click after which every deviation and skew stays within [`CONVERGED_US`].
pub fn build(
    play_times: &[LocalTime],
    outputs: &[OutputObservation],
    count_from: LocalTime,
    find_convergence: bool,
) -> SyncReport {
    // deviation[o][k]: output o at click k, µs.
    let tol_ns = 200_000_000; // a click further than 200 ms from any play time is not a match
    let dev: Vec<Vec<Option<f64>>> = outputs
        .iter()
        .map(|o| {
            play_times
                .iter()
                .map(|p| {
                    let intended = p.add_ns(o.offset_ns);
                    o.acoustic
                        .iter()
                        .map(|a| a.ns_since(intended))
                        .filter(|d| d.abs() < tol_ns)
                        .min_by_key(|d| d.abs())
                        .map(|d| d as f64 / 1000.0)
                })
                .collect()
        })
        .collect();
    let skew = |k: usize| {
        let a: Vec<f64> = dev.iter().filter_map(|d| d[k]).collect();
        if a.len() < 2 {
            return None;
        }
        let (lo, hi) = a.iter().fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
        Some(hi - lo)
    };
    let mut first_k = play_times
        .iter()
        .position(|p| *p >= count_from)
        .unwrap_or(play_times.len());
    let mut converged_after_s = None;
    if find_convergence && !play_times.is_empty() {
        let bad = |k: usize| {
            dev.iter().any(|d| d[k].is_none_or(|v| v.abs() > CONVERGED_US)) || skew(k).is_some_and(|s| s > CONVERGED_US)
        };
        let last_bad = (first_k..play_times.len()).rev().find(|&k| bad(k));
        let k0 = last_bad.map(|k| k + 1).unwrap_or(first_k);
        converged_after_s = Some(if k0 < play_times.len() {
            play_times[k0].ns_since(play_times[0]) as f64 / 1e9
        } else {
            f64::INFINITY
        });
        first_k = k0;
    }
    let out_reports = outputs
        .iter()
        .enumerate()
        .map(|(o, out)| {
            let v: Vec<f64> = (first_k..play_times.len()).filter_map(|k| dev[o][k]).collect();
            OutputReport {
                name: out.name.clone(),
                kind: out.kind.clone(),
                deviation_us: Percentiles::of_abs(&v),
                mean_deviation_us: if v.is_empty() {
                    0.0
                } else {
                    v.iter().sum::<f64>() / v.len() as f64
                },
                clicks: v.len(),
            }
        })
        .collect();
    let skews: Vec<f64> = (first_k..play_times.len()).filter_map(skew).collect();
    SyncReport {
        outputs: out_reports,
        skew_us: Percentiles::of_abs(&skews),
        converged_after_s,
    }
}

impl SyncReport {
    /// A plain-text table for people.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<16} {:<6} {:>7} {:>10} {:>10} {:>10} {:>10}\n",
            "output", "kind", "clicks", "mean µs", "p50 µs", "p99 µs", "max µs"
        );
        for o in &self.outputs {
            s += &format!(
                "{:<16} {:<6} {:>7} {:>10.1} {:>10.1} {:>10.1} {:>10.1}\n",
                o.name,
                o.kind,
                o.clicks,
                o.mean_deviation_us,
                o.deviation_us.p50,
                o.deviation_us.p99,
                o.deviation_us.max
            );
        }
        s += &format!(
            "skew across outputs: p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs\n",
            self.skew_us.p50, self.skew_us.p99, self.skew_us.max
        );
        if let Some(c) = self.converged_after_s {
            s += &format!("converged after {c:.1} s of audio\n");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::tone::{TestSignal, CLICK_OFFSET_FRAMES};

    #[test]
    fn finds_clicks_of_the_test_signal_exactly_and_in_pieces() {
        let s = TestSignal::standard();
        let mut d = ClickDetector::new();
        let mut found = vec![];
        let mut n = 0u64;
        while n < 48_000 * 3 {
            let len = 97; // odd piece size: clicks straddle pieces
            d.push(n, (n..n + len).map(|i| s.sample(i)), &mut found);
            n += len;
        }
        assert_eq!(found.len(), 3, "{found:?}");
        for (k, f) in found.iter().enumerate() {
            let expect = (k as u64 * 48_000 + CLICK_OFFSET_FRAMES) as f64;
            // The tone under the click biases the fit by a few hundredths of a frame (< 1 µs), identically everywhere.
            assert!((f - expect).abs() < 0.05, "click {k} at {f}, expected {expect}");
        }
    }

    #[test]
    fn sub_frame_shift_is_measured() {
        // A Gaussian pulse centred 0.3 frames after frame 100 is found there.
        let sig: Vec<f32> = (0..300)
            .map(|i| {
                let d = i as f64 - 100.3;
                (0.8 * (-(d * d) / 4.5).exp()) as f32
            })
            .collect();
        let mut found = vec![];
        ClickDetector::new().push(0, sig, &mut found);
        assert!((found[0] - 100.3).abs() < 0.01, "{found:?}");
    }

    #[test]
    fn report_counts_deviation_skew_and_convergence() {
        let ms = 1_000_000;
        let play: Vec<LocalTime> = (0..10).map(|k| LocalTime::from_ns(k * 1000 * ms)).collect();
        let a = OutputObservation {
            name: "a".into(),
            kind: "sim".into(),
            offset_ns: 0,
            acoustic: play.iter().map(|p| p.add_ns(10_000)).collect(),
        };
        // b is 1 ms late for the first 3 clicks, then 20 µs early; it also has a 5 ms offset it is meant to keep.
        let b = OutputObservation {
            name: "b".into(),
            kind: "sim".into(),
            offset_ns: 5 * ms,
            acoustic: play
                .iter()
                .enumerate()
                .map(|(k, p)| p.add_ns(5 * ms + if k < 3 { ms } else { -20_000 }))
                .collect(),
        };
        let r = build(&play, &[a, b], LocalTime::from_ns(0), true);
        assert_eq!(r.converged_after_s, Some(3.0));
        assert_eq!(r.outputs[0].clicks, 7);
        assert!((r.outputs[0].deviation_us.p99 - 10.0).abs() < 1e-9);
        assert!((r.outputs[1].mean_deviation_us + 20.0).abs() < 1e-9);
        assert!((r.skew_us.max - 30.0).abs() < 1e-9, "{:?}", r.skew_us);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(|x| -(x as f64)).collect();
        assert_eq!(
            Percentiles::of_abs(&v),
            Percentiles {
                p50: 50.0,
                p99: 99.0,
                max: 100.0
            }
        );
    }
}
