//! The `calibrate` command: its arguments on the wire (strictly bounded), its report, and its human form.
//!
//! `{"v":1,"cmd":"calibrate"}` measures every output; the optional keys:
//!
//! | key | value | default |
//! |---|---|---|
//! | `names` | outputs to measure, 1…[`MAX_NAMES`] names of 1…64 characters (absent: all) | all |
//! | `mic` | the capture device (an ALSA name or cpal's description, ≤ 256 printable characters) | the default device |
//! | `repeats` | 1…[`MAX_REPEATS`] | 3 |
//! | `mode` | `apply`, `dry-run` (measure and plan, change nothing) or `check` (report each output's current error) | `apply` |
//! | `reference` | an output taken as on time (its error is the microphone's latency) | the outputs' mean |
//! | `mic_latency_ms` | the microphone's known capture latency, 0…500 ms (absolute errors) | unknown |
//! | `play_sequence` | `true`: play the bursts for a recording made elsewhere instead of measuring | false |
//! | `from_recording` | `{name: offset_ms}` from a recording's analysis, each −2000…2000: applied as relative offsets | — |

use super::{bad, invalid, ProtocolError};
use crate::calibrate::session::Outcome;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

/// The most outputs one request names.
pub const MAX_NAMES: usize = 32;
/// The most repeats per output.
pub const MAX_REPEATS: u8 = 10;
/// The microphone latency accepted, ms.
pub const MIC_LATENCY_RANGE_MS: std::ops::RangeInclusive<f64> = 0.0..=500.0;
/// What one repeat takes at most on the wire's clock (lead, burst, rolls, analysis), s.
const REPEAT_BUDGET_S: u64 = 6;

/// What a calibration does with its figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CalibrateMode {
    /// Measure, then set each output's `calibration_ms` and persist it.
    #[default]
    Apply,
    /// Measure and plan; change nothing.
    DryRun,
    /// Measure each output's current error; change nothing.
    Check,
}

/// The `calibrate` request's arguments.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CalibrateArgs {
    /// The outputs (empty: all, in config order).
    pub names: Vec<String>,
    /// The capture device (None: the default).
    pub mic: Option<String>,
    /// Repeats per output.
    pub repeats: u8,
    /// Apply, dry-run or check.
    pub mode: CalibrateMode,
    /// An output taken as on time.
    pub reference: Option<String>,
    /// The microphone's known latency, ms.
    pub mic_latency_ms: Option<f64>,
    /// Play the sequence for a recording instead of measuring.
    pub play_sequence: bool,
    /// Relative offsets from a recording to apply (instead of measuring).
    pub from_recording: Option<BTreeMap<String, f64>>,
}

impl CalibrateArgs {
    /// The wire keys.
    pub const KEYS: &'static [&'static str] = &[
        "names",
        "mic",
        "repeats",
        "mode",
        "reference",
        "mic_latency_ms",
        "play_sequence",
        "from_recording",
    ];

    /// Defaults: every output, 3 repeats, apply.
    pub fn all() -> Self {
        Self {
            repeats: 3,
            ..Self::default()
        }
    }

    /// How long the service may take over it, for `outputs` outputs in the config.
    pub fn timeout(&self, outputs: usize) -> Duration {
        let n = if self.names.is_empty() {
            outputs
        } else {
            self.names.len()
        } as u64;
        if self.from_recording.is_some() {
            return Duration::from_secs(10);
        }
        let per = if self.play_sequence {
            1
        } else {
            self.repeats.max(1) as u64
        };
        Duration::from_secs(15 + (n + 2) * per * REPEAT_BUDGET_S)
    }

    /// Adds the keys to a request object.
    pub fn encode(&self, m: &mut Map<String, Value>) {
        if !self.names.is_empty() {
            m.insert("names".into(), json!(self.names));
        }
        if let Some(d) = &self.mic {
            m.insert("mic".into(), json!(d));
        }
        m.insert("repeats".into(), json!(self.repeats));
        m.insert("mode".into(), serde_json::to_value(self.mode).expect("mode"));
        if let Some(r) = &self.reference {
            m.insert("reference".into(), json!(r));
        }
        if let Some(l) = self.mic_latency_ms {
            m.insert("mic_latency_ms".into(), json!(l));
        }
        if self.play_sequence {
            m.insert("play_sequence".into(), json!(true));
        }
        if let Some(o) = &self.from_recording {
            m.insert("from_recording".into(), json!(o));
        }
    }

    /// Parses the keys of a request object (unknown keys are refused by the caller).
    pub fn parse(m: &Map<String, Value>) -> Result<Self, ProtocolError> {
        let name = |v: &Value, what: &str| -> Result<String, ProtocolError> {
            match v {
                Value::String(s) if !s.is_empty() && s.len() <= 64 => Ok(s.clone()),
                Value::String(_) => Err(invalid(format!("calibrate: {what} must be 1-64 characters"))),
                _ => Err(bad(format!("calibrate: {what} must be a string"))),
            }
        };
        let mut a = Self::all();
        if let Some(v) = m.get("names") {
            let Value::Array(list) = v else {
                return Err(bad("calibrate: \"names\" must be an array of output names"));
            };
            if list.is_empty() || list.len() > MAX_NAMES {
                return Err(invalid(format!(
                    "calibrate: \"names\" holds 1-{MAX_NAMES} names (leave it out for all), not {}",
                    list.len()
                )));
            }
            for n in list {
                let n = name(n, "each name")?;
                if a.names.contains(&n) {
                    return Err(invalid(format!("calibrate: {n:?} is named twice")));
                }
                a.names.push(n);
            }
        }
        match m.get("mic") {
            None => {}
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control) => {
                a.mic = Some(s.clone())
            }
            Some(Value::String(_)) => {
                return Err(invalid("calibrate: \"mic\" must be 1-256 printable characters"));
            }
            Some(_) => return Err(bad("calibrate: \"mic\" must be a string (a capture device)")),
        }
        match m.get("repeats") {
            None => {}
            Some(Value::Number(n)) => match n.as_u64() {
                Some(r) if (1..=MAX_REPEATS as u64).contains(&r) => a.repeats = r as u8,
                _ => {
                    return Err(invalid(format!(
                        "calibrate: repeats must be an integer 1-{MAX_REPEATS}, not {n}"
                    )))
                }
            },
            Some(_) => return Err(bad("calibrate: \"repeats\" must be a number")),
        }
        if let Some(v) = m.get("mode") {
            a.mode = serde_json::from_value(v.clone()).map_err(|_| {
                invalid(format!(
                    "calibrate: mode must be \"apply\", \"dry-run\" or \"check\", not {v}"
                ))
            })?;
        }
        if let Some(v) = m.get("reference") {
            a.reference = Some(name(v, "\"reference\"")?);
        }
        match m.get("mic_latency_ms") {
            None => {}
            Some(Value::Number(n)) => {
                let v = n.as_f64().unwrap_or(f64::NAN);
                if !MIC_LATENCY_RANGE_MS.contains(&v) {
                    return Err(invalid(format!(
                        "calibrate: mic_latency_ms must be between 0 and 500, not {n}"
                    )));
                }
                a.mic_latency_ms = Some(v);
            }
            Some(_) => return Err(bad("calibrate: \"mic_latency_ms\" must be a number")),
        }
        if a.reference.is_some() && a.mic_latency_ms.is_some() {
            return Err(invalid(
                "calibrate: give either a reference output or the microphone's latency, not both",
            ));
        }
        match m.get("play_sequence") {
            None => {}
            Some(Value::Bool(b)) => a.play_sequence = *b,
            Some(_) => return Err(bad("calibrate: \"play_sequence\" must be true or false")),
        }
        match m.get("from_recording") {
            None => {}
            Some(Value::Object(o)) => {
                if o.len() < 2 || o.len() > MAX_NAMES {
                    return Err(invalid(format!(
                        "calibrate: from_recording holds 2-{MAX_NAMES} outputs' offsets, not {}",
                        o.len()
                    )));
                }
                let mut offs = BTreeMap::new();
                for (k, v) in o {
                    let k = name(&json!(k), "each from_recording name")?;
                    let ms = v
                        .as_f64()
                        .ok_or_else(|| bad("calibrate: each from_recording offset must be a number"))?;
                    if !(-2_000.0..=2_000.0).contains(&ms) {
                        return Err(invalid(format!(
                            "calibrate: from_recording offset of {k:?} must be between -2000 and 2000 ms, not {ms}"
                        )));
                    }
                    offs.insert(k, ms);
                }
                a.from_recording = Some(offs);
            }
            Some(_) => return Err(bad("calibrate: \"from_recording\" must be an object {name: offset_ms}")),
        }
        if a.play_sequence && a.from_recording.is_some() {
            return Err(invalid(
                "calibrate: play_sequence and from_recording exclude each other",
            ));
        }
        Ok(a)
    }
}

/// The played sequence, for `--play-sequence` (what `--from-recording` must be told).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceReport {
    /// The speaker playing the two reference bursts.
    pub reference: String,
    /// The speakers in the order they played.
    pub order: Vec<String>,
    /// Between bursts, ms.
    pub spacing_ms: f64,
    /// When the first (reference) burst was due, CLOCK_MONOTONIC ns.
    pub first_at_ns: i64,
}

/// `calibrate`'s reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrateReport {
    /// What was done.
    pub mode: CalibrateMode,
    /// What the errors are taken against, said plainly.
    pub reference: String,
    /// Per output, in the order measured (empty for a played sequence).
    pub outputs: Vec<Outcome>,
    /// Spread of the outputs' errors before the change, ms (None with fewer than two measured).
    pub skew_before_ms: Option<f64>,
    /// The played sequence, when one was played.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<SequenceReport>,
}

impl CalibrateReport {
    /// The human form `bluebridge calibrate` prints.
    pub fn human(&self) -> String {
        let mut s = String::new();
        if let Some(q) = &self.sequence {
            let _ = writeln!(
                s,
                "played the sequence: reference {} at 0, then {} every {:.0} ms, then {} again; record it and run \
                 `bluebridge calibrate --from-recording FILE {}`",
                q.reference,
                q.order.join(", "),
                q.spacing_ms,
                q.reference,
                q.order.join(" ")
            );
            return s;
        }
        let verb = match self.mode {
            CalibrateMode::Apply => "calibrated",
            CalibrateMode::DryRun => "measured (dry run, nothing changed)",
            CalibrateMode::Check => "checked (nothing changed)",
        };
        let _ = writeln!(s, "{verb}; {}", self.reference);
        for o in &self.outputs {
            match (&o.refused, o.error_ms) {
                (Some(why), _) => {
                    let _ = writeln!(s, "  {}: REFUSED: {why}", o.name);
                }
                (None, Some(e)) => {
                    let _ = writeln!(
                        s,
                        "  {}: {} {:+.2} ms (spread {:.2} ms over {} repeats, confidence {:.0} %), calibration {:+.2} → {:+.2} ms",
                        o.name,
                        if e >= 0.0 { "late" } else { "early" },
                        e,
                        o.spread_ms.unwrap_or(0.0),
                        o.repeats_ms.len(),
                        o.confidence.unwrap_or(0.0) * 100.0,
                        o.calibration_ms,
                        o.new_calibration_ms
                    );
                }
                (None, None) => {
                    let _ = writeln!(s, "  {}: no figure", o.name);
                }
            }
        }
        if let Some(k) = self.skew_before_ms {
            let _ = writeln!(s, "skew between the speakers: {k:.2} ms");
        }
        s
    }
}
