//! The `calibrate` command inside the running service: the engine as the calibration's [`Stage`], the cpal
//! microphone, and applying the result (engine, persisted state with when, how confident and against what).
//!
//! The measurement runs on a blocking thread (it plays and records for seconds); the controller waits for it,
//! so other control calls wait meanwhile (each within its own timeout).

use super::controller::Controller;
use crate::calibrate::session::{
    measure_all, plan, plan_from_recording, play_sequence, CalibrationRecord, Outcome, Reference, RunOptions, Stage,
    SEQUENCE_SPACING_NS,
};
use crate::calibrate::signal::burst;
use crate::calibrate::CalibrateError;
use crate::control::protocol::calibrate::SequenceReport;
use crate::control::protocol::{CalibrateArgs, CalibrateMode, CalibrateReport, ErrorCode, Response};
use crate::engine::{EngineCommand, EngineHandle, EngineReply};
use crate::source::capture::mic::CpalMic;
use crate::state::CALIBRATION_RANGE_MS;
use crate::timeline::{Clock, LocalTime, SystemClock};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Scheduled this far beyond an output's total delay, ns: the player works that far ahead at most.
const LEAD_MARGIN_NS: i64 = 600_000_000;
/// Seed of the measurement burst.
const BURST_SEED: u64 = 1;

/// The running outputs, through the engine.
struct EngineStage {
    engine: EngineHandle,
    /// Every output and whether the user has it enabled (what [`Stage::restore`] puts back).
    enabled: BTreeMap<String, bool>,
}

impl EngineStage {
    fn enable(&self, name: &str, on: bool) -> Result<(), CalibrateError> {
        match self
            .engine
            .call_blocking(EngineCommand::Enable { name: name.into(), on })
        {
            Ok(EngineReply::Done) | Ok(EngineReply::UnknownOutput { .. }) => Ok(()),
            Ok(other) => Err(playback(name, format!("unexpected engine reply {other:?}"))),
            Err(e) => Err(playback(name, e)),
        }
    }
}

fn playback(speaker: &str, message: impl std::fmt::Display) -> CalibrateError {
    CalibrateError::Playback {
        speaker: speaker.into(),
        message: message.to_string(),
    }
}

impl Stage for EngineStage {
    fn now_ns(&self) -> i64 {
        SystemClock.now().as_ns()
    }
    fn mute(&mut self, except: Option<&str>) -> Result<(), CalibrateError> {
        for name in self.enabled.keys() {
            self.enable(name, Some(name.as_str()) == except && self.enabled[name])?;
        }
        Ok(())
    }
    fn restore(&mut self) -> Result<(), CalibrateError> {
        for (name, on) in &self.enabled {
            self.enable(name, *on)?;
        }
        Ok(())
    }
    fn wait_until(&mut self, at_ns: i64) {
        let left = at_ns - self.now_ns();
        if left > 0 {
            std::thread::sleep(std::time::Duration::from_nanos(left as u64));
        }
    }
    fn play(&mut self, output: &str, at_ns: i64, burst: Arc<Vec<f32>>) -> Result<(), CalibrateError> {
        let cmd = EngineCommand::Burst {
            name: output.into(),
            burst: Some((LocalTime::from_ns(at_ns), burst)),
        };
        match self.engine.call_blocking(cmd) {
            Ok(EngineReply::Done) => Ok(()),
            Ok(EngineReply::Refused(why)) => Err(playback(output, why)),
            Ok(EngineReply::UnknownOutput { .. }) => Err(playback(
                output,
                "the output is configured but not playing (it failed to open; see status)",
            )),
            Ok(other) => Err(playback(output, format!("unexpected engine reply {other:?}"))),
            Err(e) => Err(playback(output, e)),
        }
    }
    fn lead_ns(&self, output: &str) -> i64 {
        let total = self
            .engine
            .status()
            .players
            .iter()
            .find(|p| p.name == output)
            .map(|p| p.delay.total_ns())
            .unwrap_or(0);
        total.max(0) + LEAD_MARGIN_NS
    }
}

fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn skew(outcomes: &[Outcome]) -> Option<f64> {
    let e: Vec<f64> = outcomes.iter().filter_map(|o| o.error_ms).collect();
    (e.len() >= 2).then(|| e.iter().cloned().fold(f64::MIN, f64::max) - e.iter().cloned().fold(f64::MAX, f64::min))
}

impl Controller {
    /// `calibrate`: see [`crate::control::protocol::calibrate`].
    pub(super) async fn calibrate(&mut self, a: CalibrateArgs) -> Response {
        let names: Vec<String> = if a.names.is_empty() {
            self.specs.iter().map(|s| s.name.clone()).collect()
        } else {
            a.names.clone()
        };
        for n in names.iter().chain(a.reference.iter()) {
            if let Err(r) = self.spec(n) {
                return r;
            }
        }
        if let Some(r) = a.reference.as_ref().filter(|r| !names.contains(r)) {
            return Response::err(
                ErrorCode::InvalidArgument,
                format!("calibrate: the reference output {r:?} must be among the outputs measured"),
            );
        }
        if names.is_empty() {
            return Response::err(ErrorCode::InvalidArgument, "calibrate: no outputs to measure");
        }
        let current: Vec<f64> = names
            .iter()
            .map(|n| {
                let spec = self.spec(n).expect("checked").clone();
                self.state.overlay(&spec).0.calibration_ns as f64 / 1e6
            })
            .collect();
        let reference = match (&a.reference, a.mic_latency_ms) {
            (Some(name), _) => Reference::Output { name: name.clone() },
            (None, Some(ms)) => Reference::MicLatency { ms },
            (None, None) => Reference::Mean,
        };
        if let Some(offs) = &a.from_recording {
            let mut offsets = vec![];
            for n in &names {
                match offs.get(n) {
                    Some(v) => offsets.push(*v),
                    None => {
                        return Response::err(
                            ErrorCode::InvalidArgument,
                            format!("calibrate: from_recording has no offset for {n:?}"),
                        )
                    }
                }
            }
            if let Some(extra) = offs.keys().find(|k| !names.contains(k)) {
                return Response::err(
                    ErrorCode::InvalidArgument,
                    format!("calibrate: from_recording names {extra:?}, which is not among the outputs"),
                );
            }
            let outcomes = plan_from_recording(&names, &current, &offsets);
            return self.finish(a.mode, "recording", Reference::Mean, outcomes, None);
        }
        let mut stage = EngineStage {
            engine: self.engine.clone(),
            enabled: self
                .specs
                .iter()
                .map(|s| (s.name.clone(), self.state.overlay(s).1))
                .collect(),
        };
        let b = Arc::new(burst(BURST_SEED));
        if a.play_sequence {
            let reference_name = a.reference.clone().unwrap_or_else(|| names[0].clone());
            let order = names.clone();
            let r = tokio::task::spawn_blocking(move || play_sequence(&mut stage, &reference_name, &order, b)).await;
            return match r {
                Ok(Ok(t0)) => Response::ok(CalibrateReport {
                    mode: a.mode,
                    reference: "a played sequence: analyse its recording with --from-recording".into(),
                    outputs: vec![],
                    skew_before_ms: None,
                    sequence: Some(SequenceReport {
                        reference: a.reference.clone().unwrap_or_else(|| names[0].clone()),
                        order: names,
                        spacing_ms: SEQUENCE_SPACING_NS as f64 / 1e6,
                        first_at_ns: t0,
                    }),
                }),
                Ok(Err(e)) => Response::err(ErrorCode::Failed, e.to_string()),
                Err(e) => Response::err(ErrorCode::Failed, format!("the calibration thread failed: {e}")),
            };
        }
        let mic = a.mic.clone();
        let opts = RunOptions {
            repeats: a.repeats.max(1) as usize,
            burst: b,
        };
        let run_names = names.clone();
        let r = tokio::task::spawn_blocking(move || {
            let mut mic = CpalMic::open(mic.as_deref())?;
            Ok::<_, CalibrateError>(measure_all(&mut stage, &mut mic, &run_names, &opts))
        })
        .await;
        let results = match r {
            Ok(Ok(results)) => results,
            Ok(Err(e)) => return Response::err(ErrorCode::Failed, e.to_string()),
            Err(e) => return Response::err(ErrorCode::Failed, format!("the calibration thread failed: {e}")),
        };
        let outcomes = plan(&names, &current, &results, &reference);
        self.finish(a.mode, "microphone", reference, outcomes, None)
    }

    /// Applies (unless dry-run or check) and reports.
    fn finish(
        &mut self,
        mode: CalibrateMode,
        source: &str,
        reference: Reference,
        mut outcomes: Vec<Outcome>,
        sequence: Option<SequenceReport>,
    ) -> Response {
        let skew_before_ms = skew(&outcomes);
        let mut warnings = vec![];
        if matches!(reference, Reference::Mean) && outcomes.iter().filter(|o| o.error_ms.is_some()).count() == 1 {
            warnings.push(
                "one output measured against the mean of one: nothing to align it to without the microphone's \
                 latency (give --reference or --mic-latency-ms, or measure several)"
                    .to_string(),
            );
        }
        if mode == CalibrateMode::Apply {
            let at = unix_seconds();
            let mut changed = false;
            for o in outcomes.iter_mut() {
                let Some(error_ms) = o.error_ms else {
                    o.new_calibration_ms = o.calibration_ms;
                    continue;
                };
                if !CALIBRATION_RANGE_MS.contains(&o.new_calibration_ms) {
                    o.refused = Some(format!(
                        "the new calibration {:.1} ms is outside {CALIBRATION_RANGE_MS:?}; not applied",
                        o.new_calibration_ms
                    ));
                    o.new_calibration_ms = o.calibration_ms;
                    continue;
                }
                let _ = self.engine.send(EngineCommand::SetCalibration {
                    name: o.name.clone(),
                    ns: (o.new_calibration_ms * 1e6).round() as i64,
                });
                let st = self.state.output_mut(&o.name);
                st.calibration_ms = Some(o.new_calibration_ms);
                st.calibrated = Some(CalibrationRecord {
                    at_unix_s: at,
                    error_ms,
                    spread_ms: o.spread_ms,
                    confidence: o.confidence,
                    reference: reference.describe(),
                    source: source.to_string(),
                });
                changed = true;
            }
            if changed {
                warnings.extend(self.save());
            }
        } else if mode == CalibrateMode::Check {
            for o in outcomes.iter_mut() {
                o.new_calibration_ms = o.calibration_ms;
            }
        }
        let report = CalibrateReport {
            mode,
            reference: reference.describe(),
            outputs: outcomes,
            skew_before_ms,
            sequence,
        };
        match Response::ok(report) {
            Response::Ok { result, .. } => Response::Ok { result, warnings },
            e => e,
        }
    }
}
