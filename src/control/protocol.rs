//! The control protocol, version [`VERSION`]: one JSON object per line each way.
//!
//! Requests carry the version and a command, plus the command's arguments:
//!
//! | `cmd` | arguments | reply `result` |
//! |---|---|---|
//! | `status` | — | [`StatusReport`] |
//! | `speakers` | — | [`SpeakersReport`] |
//! | `set-offset` | `name`, `ms` (−5000…5000, positive plays later) | [`Speaker`] after the change |
//! | `set-volume` | `name`, `pct` (0…100) | [`Speaker`] after the change |
//! | `enable`, `disable` | `name` | [`Speaker`] after the change |
//! | `reload` | — | [`ReloadReport`] (the same as SIGHUP) |
//!
//! Replies are `{"v":1,"ok":true,"result":…}` (with `"warnings":[…]` when something went half right, e.g. a change
//! applied but not persisted) or `{"v":1,"ok":false,"error":{"code":…,"message":…}}` with an [`ErrorCode`].
//! Unknown keys are errors, so a typo never passes silently. A server speaking a later version answers a request
//! with an older `v` as that version did, or says it does not support it.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The protocol version this build speaks.
pub const VERSION: u64 = 1;
/// Longest request line accepted, bytes (without the newline).
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Every command, in the order `--help` and errors list them.
pub const COMMANDS: &[&str] = &[
    "status",
    "speakers",
    "set-offset",
    "set-volume",
    "enable",
    "disable",
    "reload",
];
/// Offsets accepted, ms.
pub const OFFSET_RANGE_MS: std::ops::RangeInclusive<f64> = crate::state::OFFSET_RANGE_MS;

/// A request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Everything about the running service.
    Status,
    /// The configured speakers and their user settings.
    Speakers,
    /// Sets a manual offset.
    SetOffset {
        /// Output name.
        name: String,
        /// Offset, ms.
        ms: f64,
    },
    /// Sets a local volume.
    SetVolume {
        /// Output name.
        name: String,
        /// Percent.
        pct: u8,
    },
    /// Plays an output again.
    Enable {
        /// Output name.
        name: String,
    },
    /// Mutes an output (it stays in sync, so enabling it again is instant).
    Disable {
        /// Output name.
        name: String,
    },
    /// Re-reads the config file.
    Reload,
}

/// What went wrong with a request, machine-readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// Not a JSON object, or a required key is missing or of the wrong type.
    BadRequest,
    /// `v` is not a version this server speaks.
    UnsupportedVersion,
    /// `cmd` is not a known command.
    UnknownCommand,
    /// An argument is out of range or unknown.
    InvalidArgument,
    /// No output has that name.
    UnknownOutput,
    /// The line was longer than [`MAX_LINE_BYTES`]; the connection is closed.
    LineTooLong,
    /// Too many connections; try again.
    Busy,
    /// No complete request in time; the connection is closed.
    Timeout,
    /// The service could not do it (a reload failed, the engine stopped…).
    Failed,
}

/// An error reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ProtocolError {
    /// What kind of error.
    pub code: ErrorCode,
    /// Said plainly, naming the offending input.
    pub message: String,
}

impl ProtocolError {
    /// An error of `code` saying `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

fn bad(message: impl Into<String>) -> ProtocolError {
    ProtocolError::new(ErrorCode::BadRequest, message)
}

fn invalid(message: impl Into<String>) -> ProtocolError {
    ProtocolError::new(ErrorCode::InvalidArgument, message)
}

impl Request {
    /// The command's wire name.
    pub fn cmd(&self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Speakers => "speakers",
            Self::SetOffset { .. } => "set-offset",
            Self::SetVolume { .. } => "set-volume",
            Self::Enable { .. } => "enable",
            Self::Disable { .. } => "disable",
            Self::Reload => "reload",
        }
    }

    /// The request as one line of JSON, newline included.
    pub fn encode(&self) -> String {
        let mut v = json!({ "v": VERSION, "cmd": self.cmd() });
        let m = v.as_object_mut().expect("object");
        match self {
            Self::Status | Self::Speakers | Self::Reload => {}
            Self::SetOffset { name, ms } => {
                m.insert("name".into(), json!(name));
                m.insert("ms".into(), json!(ms));
            }
            Self::SetVolume { name, pct } => {
                m.insert("name".into(), json!(name));
                m.insert("pct".into(), json!(pct));
            }
            Self::Enable { name } | Self::Disable { name } => {
                m.insert("name".into(), json!(name));
            }
        }
        format!("{v}\n")
    }

    /// Parses one request line (without its newline).
    pub fn parse(line: &[u8]) -> Result<Self, ProtocolError> {
        let example = r#"{"v":1,"cmd":"status"}"#;
        let v: Value = serde_json::from_slice(line).map_err(|e| {
            bad(format!(
                "not JSON ({e}); a request is one JSON object per line, like {example}"
            ))
        })?;
        let Value::Object(m) = v else {
            return Err(bad(format!("a request is a JSON object, like {example}")));
        };
        match m.get("v") {
            None => {
                return Err(bad(format!(
                    "missing \"v\" (the protocol version; this server speaks {VERSION}), like {example}"
                )))
            }
            Some(Value::Number(n)) if n.as_u64() == Some(VERSION) => {}
            Some(other) => {
                return Err(ProtocolError::new(
                    ErrorCode::UnsupportedVersion,
                    format!("protocol version {other} is not supported; this server speaks version {VERSION}"),
                ))
            }
        }
        let cmd = match m.get("cmd") {
            Some(Value::String(c)) => c.as_str(),
            Some(_) => return Err(bad("\"cmd\" must be a string")),
            None => return Err(bad(format!("missing \"cmd\"; commands: {}", COMMANDS.join(", ")))),
        };
        let allowed: &[&str] = match cmd {
            "status" | "speakers" | "reload" => &[],
            "set-offset" => &["name", "ms"],
            "set-volume" => &["name", "pct"],
            "enable" | "disable" => &["name"],
            other => {
                return Err(ProtocolError::new(
                    ErrorCode::UnknownCommand,
                    format!("unknown command {other:?}; commands: {}", COMMANDS.join(", ")),
                ))
            }
        };
        if let Some(k) = m
            .keys()
            .find(|k| *k != "v" && *k != "cmd" && !allowed.contains(&k.as_str()))
        {
            let expected = if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            };
            return Err(invalid(format!(
                "unknown key {k:?} for {cmd}; its arguments: {expected}"
            )));
        }
        let name = || name_arg(&m, cmd);
        Ok(match cmd {
            "status" => Self::Status,
            "speakers" => Self::Speakers,
            "reload" => Self::Reload,
            "set-offset" => {
                let name = name()?;
                let ms = match m.get("ms") {
                    Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
                    Some(_) => return Err(bad("set-offset: \"ms\" must be a number")),
                    None => return Err(bad("set-offset needs \"ms\", the offset in milliseconds")),
                };
                if !OFFSET_RANGE_MS.contains(&ms) {
                    return Err(invalid(format!(
                        "set-offset: ms must be between {} and {} (positive plays later), not {ms}",
                        OFFSET_RANGE_MS.start(),
                        OFFSET_RANGE_MS.end()
                    )));
                }
                Self::SetOffset { name, ms }
            }
            "set-volume" => {
                let name = name()?;
                let pct = match m.get("pct") {
                    Some(Value::Number(n)) => match n.as_u64() {
                        Some(p) if p <= 100 => p as u8,
                        _ => return Err(invalid(format!("set-volume: pct must be an integer 0-100, not {n}"))),
                    },
                    Some(_) => return Err(bad("set-volume: \"pct\" must be a number")),
                    None => return Err(bad("set-volume needs \"pct\", the volume in percent")),
                };
                Self::SetVolume { name, pct }
            }
            "enable" => Self::Enable { name: name()? },
            "disable" => Self::Disable { name: name()? },
            _ => unreachable!("checked above"),
        })
    }
}

fn name_arg(m: &Map<String, Value>, cmd: &str) -> Result<String, ProtocolError> {
    match m.get("name") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 64 => Ok(s.clone()),
        Some(Value::String(_)) => Err(invalid(format!("{cmd}: \"name\" must be 1-64 characters"))),
        Some(_) => Err(bad(format!("{cmd}: \"name\" must be a string"))),
        None => Err(bad(format!("{cmd} needs \"name\", the output's name"))),
    }
}

/// A reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// Done; `result` depends on the command.
    Ok {
        /// The command's result.
        result: Value,
        /// Things that went half right (applied but not persisted…).
        warnings: Vec<String>,
    },
    /// Not done.
    Err(ProtocolError),
}

impl Response {
    /// A success carrying `result` (serialised).
    pub fn ok(result: impl Serialize) -> Self {
        Self::Ok {
            result: serde_json::to_value(result).expect("result serialises"),
            warnings: vec![],
        }
    }

    /// An error reply.
    pub fn err(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Err(ProtocolError::new(code, message))
    }

    /// The reply as one line of JSON, newline included.
    pub fn encode(&self) -> String {
        let v = match self {
            Self::Ok { result, warnings } if warnings.is_empty() => json!({"v": VERSION, "ok": true, "result": result}),
            Self::Ok { result, warnings } => {
                json!({"v": VERSION, "ok": true, "result": result, "warnings": warnings})
            }
            Self::Err(e) => json!({"v": VERSION, "ok": false, "error": e}),
        };
        format!("{v}\n")
    }

    /// Parses one reply line.
    pub fn parse(line: &[u8]) -> Result<Self, String> {
        let v: Value = serde_json::from_slice(line).map_err(|e| format!("reply is not JSON: {e}"))?;
        if v["v"].as_u64() != Some(VERSION) {
            return Err(format!("reply has protocol version {}, expected {VERSION}", v["v"]));
        }
        match v["ok"].as_bool() {
            Some(true) => Ok(Self::Ok {
                result: v["result"].clone(),
                warnings: serde_json::from_value(v.get("warnings").cloned().unwrap_or(json!([])))
                    .map_err(|e| format!("reply warnings: {e}"))?,
            }),
            Some(false) => Ok(Self::Err(
                serde_json::from_value(v["error"].clone()).map_err(|e| format!("reply error: {e}"))?,
            )),
            None => Err("reply has no \"ok\"".into()),
        }
    }
}

/// `status`: everything about the running service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// bluebridge's version.
    pub version: String,
    /// Seconds since the service started.
    pub uptime_s: f64,
    /// The config file.
    pub config: String,
    /// Where the audio comes from.
    pub source: SourceReport,
    /// Every output, in config order.
    pub outputs: Vec<OutputReport>,
    /// Spread of the sync error across enabled, synced outputs, µs (None with fewer than two).
    pub skew_us: Option<f64>,
    /// The real-time loop.
    pub engine: EngineReport,
    /// The persisted state.
    pub state: StateReport,
    /// The last reload, if any.
    pub reload: Option<ReloadReport>,
}

/// The source in a status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceReport {
    /// tone | file | snapcast.
    pub kind: String,
    /// Its URL or path ("" for the tone).
    pub detail: String,
}

/// One output in a status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputReport {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// `playing`, `waiting` (no audio or clock yet), `idle` (sink let go after a silence), `disabled`, `failing`
    /// (write errors), or `starting`.
    pub state: String,
    /// Enabled by the user.
    pub enabled: bool,
    /// Local volume, percent.
    pub volume_pct: u8,
    /// The group's volume (Snapcast `Client.SetVolume`), percent.
    #[serde(default = "hundred")]
    pub group_volume_pct: u8,
    /// Muted by the group.
    #[serde(default)]
    pub group_muted: bool,
    /// The volume in force: group × local, percent (0 when muted).
    #[serde(default = "hundred_f64")]
    pub effective_volume_pct: f64,
    /// Where the volume is applied: `software` (the samples are scaled) or `speaker` (AVRCP absolute volume).
    #[serde(default = "software")]
    pub volume_control: String,
    /// The speaker's own volume level when it applies the volume (AVRCP: 0…127).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_volume: Option<u16>,
    /// Manual offset, ms.
    pub offset_ms: f64,
    /// Locked to the timeline.
    pub synced: bool,
    /// Last measured sync error (actual − wanted source time), µs.
    pub error_us: f64,
    /// Rate correction now, ppm.
    pub correction_ppm: f64,
    /// Resampled (false: copied exactly, as a source on the local clock allows; older servers omit it).
    #[serde(default = "yes")]
    pub resampling: bool,
    /// Estimated clock error of the output, ppm.
    pub drift_estimate_ppm: f64,
    /// Hard resyncs since the output was opened.
    pub resyncs: u64,
    /// Failed writes since the output was opened.
    pub write_errors: u64,
    /// Every part of the output delay.
    pub delay: DelayReport,
    /// The sink reported no delay and a default was assumed.
    pub sink_delay_assumed: bool,
    /// The output's own counters (underruns, frames…).
    pub counters: BTreeMap<String, u64>,
    /// What is wrong, if anything.
    pub error: Option<String>,
}

/// The parts of an output's delay, ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DelayReport {
    /// Encoder.
    pub encoder_ms: f64,
    /// Our queue.
    pub queue_ms: f64,
    /// Transport (socket, controller, link).
    pub transport_ms: f64,
    /// What the sink reports.
    pub sink_reported_ms: f64,
    /// Manual offset.
    pub offset_ms: f64,
    /// Calibration.
    pub calibration_ms: f64,
    /// The sum.
    pub total_ms: f64,
    /// The latency the Snapcast server set for this client (`Client.SetLatency`): the audio plays this much
    /// earlier, on top of the delay above, to absorb a slow sink. Not part of the sum.
    #[serde(default)]
    pub snapcast_latency_ms: f64,
}

impl From<&crate::timeline::delay::OutputDelay> for DelayReport {
    fn from(d: &crate::timeline::delay::OutputDelay) -> Self {
        let ms = |ns: i64| ns as f64 / 1e6;
        Self {
            encoder_ms: ms(d.encoder_ns),
            queue_ms: ms(d.queue_ns),
            transport_ms: ms(d.transport_ns),
            sink_reported_ms: ms(d.sink_reported_ns),
            offset_ms: ms(d.offset_ns),
            calibration_ms: ms(d.calibration_ns),
            total_ms: ms(d.total_ns()),
            snapcast_latency_ms: 0.0,
        }
    }
}

/// The real-time loop in a status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineReport {
    /// Ticks so far.
    pub ticks: u64,
    /// Since the last tick, ms (None: it has not ticked).
    pub last_tick_age_ms: Option<f64>,
    /// It ticked recently (what the systemd watchdog is fed from).
    pub healthy: bool,
    /// The loop thread's CPU over the last 10 s, percent of one core (absent before the first 10 s and from
    /// servers older than this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_pct: Option<f64>,
    /// The loop's wake-ups per second over the same window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wakeups_per_s: Option<f64>,
}

/// The persisted state in a status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateReport {
    /// The state file.
    pub path: String,
    /// Problems found at load (a corrupt file kept aside…).
    pub problems: Vec<String>,
    /// The last save's error, if it failed (cleared by a good save).
    pub last_save_error: Option<String>,
}

/// The result of a reload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// It was applied.
    pub ok: bool,
    /// What changed, or why the new config was refused.
    pub message: String,
    /// When, in seconds since the service started.
    pub at_s: f64,
}

/// `speakers`: the configured outputs and their user settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeakersReport {
    /// In config order.
    pub speakers: Vec<Speaker>,
}

/// One configured output and what the user set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speaker {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Where it goes (a path; later an address), "" if nowhere in particular.
    pub target: String,
    /// stereo | left | right | mono.
    pub channel: String,
    /// Enabled.
    pub enabled: bool,
    /// Local volume, percent.
    pub volume_pct: u8,
    /// Manual offset, ms.
    pub offset_ms: f64,
    /// Calibration, ms.
    pub calibration_ms: f64,
    /// Playing state, as in [`OutputReport::state`].
    pub state: String,
}

impl StatusReport {
    /// The human form `bluebridge status` prints.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let detail = if self.source.detail.is_empty() {
            String::new()
        } else {
            format!(" {}", self.source.detail)
        };
        let _ = writeln!(
            s,
            "bluebridge {}, up {}, config {}",
            self.version,
            duration(self.uptime_s),
            self.config
        );
        let _ = writeln!(s, "source: {}{detail}", self.source.kind);
        let mut tick = match self.engine.last_tick_age_ms {
            Some(a) => format!("last tick {a:.0} ms ago"),
            None => "not ticking yet".into(),
        };
        if let (Some(cpu), Some(w)) = (self.engine.cpu_pct, self.engine.wakeups_per_s) {
            let _ = write!(tick, ", {cpu:.1} % of a core, {w:.0} wake-ups/s");
        }
        let _ = writeln!(
            s,
            "engine: {} ({tick}){}",
            if self.engine.healthy { "healthy" } else { "STALLED" },
            match self.skew_us {
                Some(k) => format!(", skew {k:.1} µs"),
                None => String::new(),
            }
        );
        for o in &self.outputs {
            let _ = writeln!(
                s,
                "\n{} ({}): {}, volume {} % = group {} %{} × local {} % ({}), offset {:+.1} ms",
                o.name,
                o.kind,
                o.state,
                o.effective_volume_pct,
                o.group_volume_pct,
                if o.group_muted { " muted" } else { "" },
                o.volume_pct,
                match o.device_volume {
                    Some(level) => format!("on the speaker: AVRCP {level}/127"),
                    None => o.volume_control.clone(),
                },
                o.offset_ms
            );
            let d = &o.delay;
            let _ = writeln!(
                s,
                "  delay {:.2} ms = encoder {:.2} + queue {:.2} + transport {:.2} + sink {:.2}{} + offset {:+.2} + calibration {:+.2}",
                d.total_ms,
                d.encoder_ms,
                d.queue_ms,
                d.transport_ms,
                d.sink_reported_ms,
                if o.sink_delay_assumed { " (assumed)" } else { "" },
                d.offset_ms,
                d.calibration_ms
            );
            if d.snapcast_latency_ms != 0.0 {
                let _ = writeln!(
                    s,
                    "  snapcast latency {:+.2} ms (set by the server: plays that much earlier)",
                    d.snapcast_latency_ms
                );
            }
            let _ = writeln!(
                s,
                "  sync error {:+.1} µs, {}, resyncs {}, write errors {}",
                o.error_us,
                if o.resampling {
                    format!(
                        "correction {:+.1} ppm, drift {:+.1} ppm",
                        o.correction_ppm, o.drift_estimate_ppm
                    )
                } else {
                    "exact copy (source on the local clock: nothing to correct)".to_string()
                },
                o.resyncs,
                o.write_errors
            );
            if !o.counters.is_empty() {
                let c: Vec<String> = o.counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
                let _ = writeln!(s, "  {}", c.join(", "));
            }
            if let Some(e) = &o.error {
                let _ = writeln!(s, "  error: {e}");
            }
        }
        let _ = writeln!(s, "\nstate: {}", self.state.path);
        for p in &self.state.problems {
            let _ = writeln!(s, "  problem: {p}");
        }
        if let Some(e) = &self.state.last_save_error {
            let _ = writeln!(s, "  last save FAILED: {e}");
        }
        if let Some(r) = &self.reload {
            let _ = writeln!(
                s,
                "last reload ({} after start): {}: {}",
                duration(r.at_s),
                if r.ok { "applied" } else { "REFUSED" },
                r.message
            );
        }
        s
    }
}

impl SpeakersReport {
    /// The table `bluebridge speakers` prints.
    pub fn human(&self) -> String {
        let mut s = format!(
            "{:<20} {:<6} {:<9} {:>6} {:>10} {:>10}  {:<8} {}\n",
            "NAME", "KIND", "STATE", "VOLUME", "OFFSET", "CALIB", "CHANNEL", "TARGET"
        );
        for k in &self.speakers {
            let _ = writeln!(
                s,
                "{:<20} {:<6} {:<9} {:>5}% {:>+7.1} ms {:>+7.1} ms  {:<8} {}",
                k.name, k.kind, k.state, k.volume_pct, k.offset_ms, k.calibration_ms, k.channel, k.target
            );
        }
        s
    }
}

impl Speaker {
    /// One line for the CLI after a change.
    pub fn human(&self) -> String {
        format!(
            "{}: {}, volume {} %, offset {:+.1} ms",
            self.name,
            if self.enabled { "enabled" } else { "disabled" },
            self.volume_pct,
            self.offset_ms
        )
    }
}

fn duration(s: f64) -> String {
    let s = s.max(0.0) as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, s / 60 % 60),
    }
}

/// Serde default for fields newer servers add (absent from older replies).
fn software() -> String {
    "software".into()
}

fn yes() -> bool {
    true
}

fn hundred() -> u8 {
    100
}

fn hundred_f64() -> f64 {
    100.0
}

/// The volume in force, percent: the group's × the local one (each 0…100 %), 0 when the group is muted.
pub fn effective_volume_pct(group_pct: u8, muted: bool, local_pct: u8) -> f64 {
    if muted {
        0.0
    } else {
        group_pct as f64 * local_pct as f64 / 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(line: &str) -> ProtocolError {
        Request::parse(line.as_bytes()).unwrap_err()
    }

    #[test]
    fn every_request_round_trips_through_its_line() {
        let all = [
            Request::Status,
            Request::Speakers,
            Request::Reload,
            Request::SetOffset {
                name: "kitchen".into(),
                ms: -12.5,
            },
            Request::SetVolume {
                name: "hall".into(),
                pct: 40,
            },
            Request::Enable { name: "a".into() },
            Request::Disable { name: "b".into() },
        ];
        assert_eq!(all.len(), COMMANDS.len());
        for r in all {
            let line = r.encode();
            assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
            assert_eq!(Request::parse(line.trim_end().as_bytes()).unwrap(), r, "{line}");
            assert!(COMMANDS.contains(&r.cmd()));
        }
        assert_eq!(Request::parse(br#"{"v":1,"cmd":"status"}"#).unwrap(), Request::Status);
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let cases: &[(&str, ErrorCode, &str)] = &[
            ("hello", ErrorCode::BadRequest, "not JSON"),
            ("[1,2]", ErrorCode::BadRequest, "JSON object"),
            (r#"{"cmd":"status"}"#, ErrorCode::BadRequest, "missing \"v\""),
            (
                r#"{"v":2,"cmd":"status"}"#,
                ErrorCode::UnsupportedVersion,
                "version 2 is not supported",
            ),
            (
                r#"{"v":"1","cmd":"status"}"#,
                ErrorCode::UnsupportedVersion,
                "speaks version 1",
            ),
            (
                r#"{"v":1}"#,
                ErrorCode::BadRequest,
                "missing \"cmd\"; commands: status, speakers",
            ),
            (
                r#"{"v":1,"cmd":"explode"}"#,
                ErrorCode::UnknownCommand,
                "unknown command \"explode\"",
            ),
            (
                r#"{"v":1,"cmd":"status","x":1}"#,
                ErrorCode::InvalidArgument,
                "unknown key \"x\"",
            ),
            (
                r#"{"v":1,"cmd":"set-offset","name":"a"}"#,
                ErrorCode::BadRequest,
                "needs \"ms\"",
            ),
            (
                r#"{"v":1,"cmd":"set-offset","ms":3}"#,
                ErrorCode::BadRequest,
                "needs \"name\"",
            ),
            (
                r#"{"v":1,"cmd":"set-offset","name":"a","ms":"3"}"#,
                ErrorCode::BadRequest,
                "must be a number",
            ),
            (
                r#"{"v":1,"cmd":"set-offset","name":"a","ms":9000}"#,
                ErrorCode::InvalidArgument,
                "between -5000 and 5000",
            ),
            (
                r#"{"v":1,"cmd":"set-volume","name":"a","pct":101}"#,
                ErrorCode::InvalidArgument,
                "0-100",
            ),
            (
                r#"{"v":1,"cmd":"set-volume","name":"a","pct":-1}"#,
                ErrorCode::InvalidArgument,
                "0-100",
            ),
            (
                r#"{"v":1,"cmd":"set-volume","name":"a","pct":4.5}"#,
                ErrorCode::InvalidArgument,
                "0-100",
            ),
            (
                r#"{"v":1,"cmd":"enable","name":""}"#,
                ErrorCode::InvalidArgument,
                "1-64",
            ),
            (
                r#"{"v":1,"cmd":"enable","name":7}"#,
                ErrorCode::BadRequest,
                "must be a string",
            ),
            (
                r#"{"v":1,"cmd":"disable","name":"a","pct":3}"#,
                ErrorCode::InvalidArgument,
                "its arguments: name",
            ),
        ];
        for (line, code, text) in cases {
            let e = err(line);
            assert_eq!(e.code, *code, "{line}: {e:?}");
            assert!(e.message.contains(text), "{line}: {}", e.message);
        }
    }

    #[test]
    fn replies_round_trip_and_errors_carry_their_code() {
        let ok = Response::ok(json!({"a": 1}));
        assert_eq!(ok.encode(), "{\"ok\":true,\"result\":{\"a\":1},\"v\":1}\n");
        assert_eq!(Response::parse(ok.encode().as_bytes()).unwrap(), ok);
        let warned = Response::Ok {
            result: json!(null),
            warnings: vec!["not persisted".into()],
        };
        assert_eq!(Response::parse(warned.encode().as_bytes()).unwrap(), warned);
        let e = Response::err(ErrorCode::UnknownOutput, "no output \"x\"");
        let line = e.encode();
        assert!(line.contains("\"code\":\"unknown-output\""), "{line}");
        assert_eq!(Response::parse(line.as_bytes()).unwrap(), e);
        assert!(Response::parse(b"{\"v\":9,\"ok\":true}")
            .unwrap_err()
            .contains("version 9"));
    }

    fn report() -> StatusReport {
        StatusReport {
            version: "0.1.0".into(),
            uptime_s: 7325.0,
            config: "/etc/bluebridge/bluebridge.toml".into(),
            source: SourceReport {
                kind: "snapcast".into(),
                detail: "tcp://host:1704".into(),
            },
            outputs: vec![OutputReport {
                name: "kitchen".into(),
                kind: "sim".into(),
                state: "playing".into(),
                enabled: true,
                volume_pct: 40,
                group_volume_pct: 37,
                group_muted: false,
                effective_volume_pct: 14.8,
                volume_control: "software".into(),
                device_volume: None,
                offset_ms: -2.5,
                synced: true,
                error_us: 1.25,
                correction_ppm: 199.0,
                resampling: true,
                drift_estimate_ppm: 200.0,
                resyncs: 1,
                write_errors: 0,
                delay: DelayReport {
                    transport_ms: 40.0,
                    sink_reported_ms: 150.0,
                    offset_ms: -2.5,
                    total_ms: 187.5,
                    snapcast_latency_ms: 25.0,
                    ..DelayReport::default()
                },
                sink_delay_assumed: false,
                counters: [("underrun_frames".to_string(), 3)].into_iter().collect(),
                error: None,
            }],
            skew_us: Some(0.5),
            engine: EngineReport {
                ticks: 1000,
                last_tick_age_ms: Some(2.0),
                healthy: true,
                cpu_pct: Some(2.5),
                wakeups_per_s: Some(107.0),
            },
            state: StateReport {
                path: "/var/lib/bluebridge/state.json".into(),
                problems: vec!["was corrupt; kept as X".into()],
                last_save_error: Some("disk full".into()),
            },
            reload: Some(ReloadReport {
                ok: false,
                message: "t.toml:3:1: bad".into(),
                at_s: 60.0,
            }),
        }
    }

    #[test]
    fn status_reads_well_for_humans_and_round_trips_as_json() {
        let r = report();
        let back: StatusReport = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let h = r.human();
        for want in [
            "up 2 h 2 min",
            "source: snapcast tcp://host:1704",
            "engine: healthy",
            "skew 0.5 µs",
            "kitchen (sim): playing, volume 14.8 % = group 37 % × local 40 % (software), offset -2.5 ms",
            "snapcast latency +25.00 ms (set by the server: plays that much earlier)",
            "delay 187.50 ms = encoder 0.00 + queue 0.00 + transport 40.00 + sink 150.00 + offset -2.50",
            "sync error +1.2 µs, correction +199.0 ppm, drift +200.0 ppm, resyncs 1",
            "underrun_frames 3",
            "problem: was corrupt; kept as X",
            "last save FAILED: disk full",
            "REFUSED: t.toml:3:1: bad",
        ] {
            assert!(h.contains(want), "missing {want:?} in\n{h}");
        }
    }

    #[test]
    fn status_shows_the_group_volume_mute_and_latency_in_force() {
        assert_eq!(effective_volume_pct(37, false, 100), 37.0);
        assert_eq!(effective_volume_pct(50, false, 50), 25.0);
        assert_eq!(effective_volume_pct(37, true, 100), 0.0);
        let mut r = report();
        let v = serde_json::to_value(&r).unwrap();
        let o = &v["outputs"][0];
        assert_eq!(o["group_volume_pct"], 37);
        assert_eq!(o["group_muted"], false);
        assert_eq!(o["volume_pct"], 40);
        assert_eq!(o["effective_volume_pct"], 14.8);
        assert_eq!(o["delay"]["snapcast_latency_ms"], 25.0);
        r.outputs[0].group_muted = true;
        r.outputs[0].effective_volume_pct = 0.0;
        assert!(
            r.human().contains("volume 0 % = group 37 % muted × local 40 %"),
            "{}",
            r.human()
        );
        // A status from an older service (no such fields) still reads: full group volume, no latency.
        let mut old = serde_json::to_value(report()).unwrap();
        let out = old["outputs"][0].as_object_mut().unwrap();
        for k in ["group_volume_pct", "group_muted", "effective_volume_pct"] {
            out.remove(k);
        }
        out["delay"].as_object_mut().unwrap().remove("snapcast_latency_ms");
        let back: StatusReport = serde_json::from_value(old).unwrap();
        let o = &back.outputs[0];
        assert_eq!(
            (o.group_volume_pct, o.group_muted, o.effective_volume_pct),
            (100, false, 100.0)
        );
        assert_eq!(o.delay.snapcast_latency_ms, 0.0);
        assert!(!back.human().contains("snapcast latency"));
    }

    #[test]
    fn speakers_table_has_a_row_per_speaker() {
        let r = SpeakersReport {
            speakers: vec![Speaker {
                name: "kitchen".into(),
                kind: "file".into(),
                target: "k.wav".into(),
                channel: "left".into(),
                enabled: false,
                volume_pct: 7,
                offset_ms: 12.0,
                calibration_ms: 0.0,
                state: "disabled".into(),
            }],
        };
        let h = r.human();
        assert_eq!(h.lines().count(), 2);
        let row = h.lines().nth(1).unwrap();
        for want in ["kitchen", "file", "disabled", "7%", "+12.0 ms", "left", "k.wav"] {
            assert!(row.contains(want), "{row}");
        }
        assert_eq!(r.speakers[0].human(), "kitchen: disabled, volume 7 %, offset +12.0 ms");
    }
}
