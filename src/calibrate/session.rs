//! One calibration run over several outputs, against two small traits so that the service drives real
//! outputs and a real microphone and the tests drive a simulated room ([`super::sim_room`]):
//!
//! - [`Stage`]: the running outputs — mute all but one (or all), schedule the burst to be heard through one at a local
//!   time, say how far ahead that must be;
//! - [`Microphone`]: records the local-clock window asked for, with the capture timestamp of its first sample.
//!
//! For each output in turn (the others muted): `repeats` bursts, each scheduled [`Stage::lead_ns`] ahead, the
//! microphone recording from [`PRE_ROLL_MS`] before until [`POST_ROLL_MS`] after it, each checked and measured
//! ([`measure_repeat`]), then combined ([`combine`]). One output's refusal does not stop the others. The outputs
//! are un-muted at the end whatever happened.
//!
//! Then [`plan`] turns the figures into each output's correction against the [`Reference`] and its new
//! `calibration_ms`.

use super::measure::{combine, corrections_ms, measure_repeat, new_calibration_ms, Capture, SpeakerResult};
use super::signal::RATE_HZ;
use super::sim_room::{POST_ROLL_MS, PRE_ROLL_MS};
use super::CalibrateError;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A recording of the microphone.
#[derive(Debug, Clone, PartialEq)]
pub struct MicRecording {
    /// Mono samples at 48 kHz.
    pub samples: Vec<f32>,
    /// Local time of the first sample by the capture timestamps, ns.
    pub first_sample_ns: i64,
}

/// A microphone on the local clock.
pub trait Microphone {
    /// Records from local time `from_ns` until `until_ns`, returning once that has been captured (so it blocks
    /// until a little after `until_ns`). Fails with [`CalibrateError::Microphone`].
    fn record(&mut self, from_ns: i64, until_ns: i64) -> Result<MicRecording, CalibrateError>;
}

/// The outputs being calibrated.
pub trait Stage {
    /// The local clock, ns.
    fn now_ns(&self) -> i64;
    /// Mutes every output except `except` (None: all of them; a scheduled burst plays through a muted output
    /// all the same, the music does not).
    fn mute(&mut self, except: Option<&str>) -> Result<(), CalibrateError>;
    /// Puts every output back as it was before the first [`Stage::mute`].
    fn restore(&mut self) -> Result<(), CalibrateError>;
    /// Waits until local time `at_ns`.
    fn wait_until(&mut self, at_ns: i64);
    /// Schedules `burst` (mono, 48 kHz) to be heard through `output` at local time `at_ns`.
    fn play(&mut self, output: &str, at_ns: i64, burst: Arc<Vec<f32>>) -> Result<(), CalibrateError>;
    /// How far ahead of now a burst must be scheduled on `output` so its player has not yet passed that time,
    /// ns (the output's total delay plus a margin).
    fn lead_ns(&self, output: &str) -> i64;
}

/// What the corrections are taken against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Reference {
    /// The microphone's latency is unknown: the outputs are moved to each other (corrections relative to the
    /// measured outputs' mean); the group as a whole is not moved.
    Mean,
    /// The microphone's capture latency is known, ms: the errors are absolute, against the group's timeline.
    MicLatency {
        /// From sound at the capsule to the capture timestamp, ms.
        ms: f64,
    },
    /// This output is taken as on time (a `local` output sharing a clock with the microphone): its measured error
    /// is the microphone's latency, and the others are absolute against it.
    Output {
        /// The reference output.
        name: String,
    },
}

impl Reference {
    /// Said plainly for status and the report.
    pub fn describe(&self) -> String {
        match self {
            Self::Mean => "relative: microphone latency unknown, the speakers are aligned to each other".into(),
            Self::MicLatency { ms } => format!("absolute: microphone latency {ms:.2} ms given"),
            Self::Output { name } => format!("absolute against output {name:?}, taken as on time"),
        }
    }
}

/// One calibration run's options.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Repeats per output.
    pub repeats: usize,
    /// The burst (mono, 48 kHz).
    pub burst: Arc<Vec<f32>>,
}

/// Measures each of `outputs` in turn (see the module doc). The result per output, in order.
pub fn measure_all(
    stage: &mut dyn Stage,
    mic: &mut dyn Microphone,
    outputs: &[String],
    opts: &RunOptions,
) -> Vec<Result<SpeakerResult, CalibrateError>> {
    let mut out = Vec::with_capacity(outputs.len());
    for name in outputs {
        let r = stage
            .mute(Some(name))
            .and_then(|()| measure_one(stage, mic, name, opts));
        out.push(r);
    }
    if let Err(e) = stage.restore() {
        // The outputs could not all be put back: every result carries that.
        for r in out.iter_mut() {
            if r.is_ok() {
                *r = Err(e.clone());
            }
        }
    }
    out
}

fn measure_one(
    stage: &mut dyn Stage,
    mic: &mut dyn Microphone,
    name: &str,
    opts: &RunOptions,
) -> Result<SpeakerResult, CalibrateError> {
    let burst_ns = opts.burst.len() as i64 * 1_000_000_000 / RATE_HZ as i64;
    let mut repeats = Vec::with_capacity(opts.repeats);
    for _ in 0..opts.repeats.max(1) {
        let at_ns = stage.now_ns() + stage.lead_ns(name);
        stage.play(name, at_ns, opts.burst.clone())?;
        let rec = mic.record(
            at_ns - (PRE_ROLL_MS * 1e6) as i64,
            at_ns + burst_ns + (POST_ROLL_MS * 1e6) as i64,
        )?;
        repeats.push(measure_repeat(
            name,
            Capture {
                samples: &rec.samples,
                first_sample_ns: rec.first_sample_ns,
                scheduled_ns: at_ns,
            },
            &opts.burst,
        )?);
    }
    combine(name, &repeats, None)
}

/// From one burst of a played sequence to the next, ns: more than the burst's 2.73 s plus twice the largest
/// offset a recording is searched for (see [`super::recording`]).
pub const SEQUENCE_SPACING_NS: i64 = 4_000_000_000;

/// Plays the sequence a recording made elsewhere is analysed against ([`super::recording::SequenceLayout`]):
/// every output muted, `reference`'s burst heard at `t0`, `order[k]`'s at `t0 + (k + 1) · spacing`, `reference`'s
/// again at `t0 + (n + 1) · spacing`; each scheduled once the previous one on the same output has played.
/// Returns `t0`, ns. The outputs are put back at the end.
pub fn play_sequence(
    stage: &mut dyn Stage,
    reference: &str,
    order: &[String],
    burst: Arc<Vec<f32>>,
) -> Result<i64, CalibrateError> {
    let burst_ns = burst.len() as i64 * 1_000_000_000 / RATE_HZ as i64;
    let r = (|| {
        stage.mute(None)?;
        let lead = order
            .iter()
            .map(|o| stage.lead_ns(o))
            .chain([stage.lead_ns(reference)])
            .max()
            .unwrap_or(0);
        let t0 = stage.now_ns() + lead;
        let mut plays: Vec<(&str, i64)> = vec![(reference, t0)];
        for (k, o) in order.iter().enumerate() {
            plays.push((o, t0 + (k as i64 + 1) * SEQUENCE_SPACING_NS));
        }
        plays.push((reference, t0 + (order.len() as i64 + 1) * SEQUENCE_SPACING_NS));
        for (name, at) in plays {
            // Schedule one lead ahead (so the output's earlier burst, one spacing before, has played).
            stage.wait_until(at - stage.lead_ns(name));
            stage.play(name, at, burst.clone())?;
        }
        let end = t0 + (order.len() as i64 + 1) * SEQUENCE_SPACING_NS + burst_ns + (POST_ROLL_MS * 1e6) as i64;
        stage.wait_until(end);
        Ok(t0)
    })();
    let back = stage.restore();
    let t0 = r?;
    back?;
    Ok(t0)
}

/// Each output's correction from a recording's relative offsets (`offsets_ms[i]`: how much later than the
/// reference output `i` is heard): relative to their mean, the same rule as [`Reference::Mean`].
pub fn plan_from_recording(outputs: &[String], current_ms: &[f64], offsets_ms: &[f64]) -> Vec<Outcome> {
    let mean = offsets_ms.iter().sum::<f64>() / offsets_ms.len().max(1) as f64;
    outputs
        .iter()
        .zip(current_ms)
        .zip(offsets_ms)
        .map(|((name, &cur), &off)| Outcome {
            name: name.clone(),
            measured_ms: Some(off),
            repeats_ms: vec![off],
            spread_ms: None,
            pnr_db: None,
            confidence: None,
            error_ms: Some(off - mean),
            calibration_ms: cur,
            new_calibration_ms: new_calibration_ms(cur, off - mean),
            refused: None,
        })
        .collect()
}

/// One output's outcome, as the report and the state hold it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The output.
    pub name: String,
    /// Heard − due at the microphone, ms (median of the repeats; includes the microphone's latency, the same for
    /// every output). None when refused.
    pub measured_ms: Option<f64>,
    /// The repeats' errors, ms.
    pub repeats_ms: Vec<f64>,
    /// max − min over the repeats, ms.
    pub spread_ms: Option<f64>,
    /// Worst repeat's peak-to-noise ratio, dB.
    pub pnr_db: Option<f64>,
    /// 0…1.
    pub confidence: Option<f64>,
    /// How late the output is against the reference, ms (what is corrected).
    pub error_ms: Option<f64>,
    /// `calibration_ms` before.
    pub calibration_ms: f64,
    /// `calibration_ms` after (a dry run: what it would be; the same as before when refused or checked).
    pub new_calibration_ms: f64,
    /// Why it was refused.
    pub refused: Option<String>,
}

/// What the state keeps of an output's last applied calibration, and status shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationRecord {
    /// When it was measured, Unix seconds.
    pub at_unix_s: u64,
    /// The error that was corrected, ms (positive: the output was heard late).
    pub error_ms: f64,
    /// Spread of the repeats, ms (None from a recording: one play each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread_ms: Option<f64>,
    /// Confidence 0…1 (None from a recording).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// What the error was taken against ([`Reference::describe`]).
    pub reference: String,
    /// `microphone` or `recording`.
    pub source: String,
}

/// Turns the measurements into each output's error against `reference` and its new `calibration_ms`
/// (`current_ms[i]` is output `i`'s calibration during the measurement). A reference output that was refused
/// leaves nothing to correct against: every output then carries that refusal.
pub fn plan(
    outputs: &[String],
    current_ms: &[f64],
    results: &[Result<SpeakerResult, CalibrateError>],
    reference: &Reference,
) -> Vec<Outcome> {
    let ok: Vec<SpeakerResult> = results.iter().filter_map(|r| r.as_ref().ok().cloned()).collect();
    let ref_error: Result<Option<f64>, String> = match reference {
        Reference::Mean => Ok(None),
        Reference::MicLatency { ms } => Ok(Some(*ms)),
        Reference::Output { name } => match outputs.iter().position(|o| o == name).map(|i| &results[i]) {
            Some(Ok(r)) => Ok(Some(r.error_ms)),
            Some(Err(e)) => Err(format!("the reference output could not be measured: {e}")),
            None => Err(format!("the reference output {name:?} was not measured")),
        },
    };
    let corrections: Vec<f64> = match ref_error {
        Ok(None) => corrections_ms(&ok, false),
        Ok(Some(lat)) => ok.iter().map(|r| r.error_ms - lat).collect(),
        Err(_) => vec![],
    };
    let mut next = corrections.into_iter();
    outputs
        .iter()
        .zip(current_ms)
        .zip(results)
        .map(|((name, &cur), r)| {
            let mut o = Outcome {
                name: name.clone(),
                measured_ms: None,
                repeats_ms: vec![],
                spread_ms: None,
                pnr_db: None,
                confidence: None,
                error_ms: None,
                calibration_ms: cur,
                new_calibration_ms: cur,
                refused: None,
            };
            match (r, &ref_error) {
                (Err(e), _) => o.refused = Some(e.to_string()),
                (Ok(res), re) => {
                    o.measured_ms = Some(res.error_ms);
                    o.repeats_ms = res.repeats_ms.clone();
                    o.spread_ms = Some(res.spread_ms);
                    o.pnr_db = Some(res.pnr_db);
                    o.confidence = Some(res.confidence);
                    match re {
                        Err(why) => o.refused = Some(why.clone()),
                        Ok(_) => {
                            let c = next.next().expect("one correction per measured output");
                            o.error_ms = Some(c);
                            o.new_calibration_ms = new_calibration_ms(cur, c);
                        }
                    }
                }
            }
            o
        })
        .collect()
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
