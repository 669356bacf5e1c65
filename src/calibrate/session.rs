//! One calibration run over several outputs, against two small traits so that the service drives real
//! outputs and a real microphone and the tests drive a simulated room ([`super::sim_room`]):
//!
//! - [`Stage`]: the running outputs — mute all but one, schedule the burst to be heard through one at a local
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
use super::sim_room::{POST_ROLL_MS, PRE_ROLL_MS};
use super::signal::RATE_HZ;
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
    /// Mutes every output being calibrated except `solo`; `None` puts each back as it was.
    fn solo(&mut self, solo: Option<&str>) -> Result<(), CalibrateError>;
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
        let r = stage.solo(Some(name)).and_then(|()| measure_one(stage, mic, name, opts));
        out.push(r);
    }
    if let Err(e) = stage.solo(None) {
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
    /// `calibration_ms` after (the same as before when refused, checked or dry-run).
    pub new_calibration_ms: f64,
    /// Why it was refused.
    pub refused: Option<String>,
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
