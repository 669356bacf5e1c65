//! Requests on the wire: the command enum, its encoding and the strict parser.

use super::calibrate::CalibrateArgs;
use super::{bad, invalid, ErrorCode, ProtocolError, COMMANDS, OFFSET_RANGE_MS, VERSION};
use serde_json::{json, Map, Value};

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
    /// Measures outputs acoustically and sets their calibration (see [`super::calibrate`]).
    Calibrate(CalibrateArgs),
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
            Self::Calibrate(_) => "calibrate",
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
            Self::Calibrate(a) => a.encode(m),
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
            "calibrate" => CalibrateArgs::KEYS,
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
            "calibrate" => Self::Calibrate(CalibrateArgs::parse(&m)?),
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
            Request::Calibrate(CalibrateArgs {
                names: vec!["a".into(), "b".into()],
                mic: Some("hw:Loopback,1".into()),
                repeats: 5,
                mode: super::super::calibrate::CalibrateMode::Check,
                reference: Some("a".into()),
                ..CalibrateArgs::all()
            }),
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
            (
                r#"{"v":1,"cmd":"calibrate","repeats":0}"#,
                ErrorCode::InvalidArgument,
                "1-10",
            ),
            (
                r#"{"v":1,"cmd":"calibrate","repeats":11}"#,
                ErrorCode::InvalidArgument,
                "1-10",
            ),
            (
                r#"{"v":1,"cmd":"calibrate","names":[]}"#,
                ErrorCode::InvalidArgument,
                "1-32 names",
            ),
            (
                r#"{"v":1,"cmd":"calibrate","names":"a"}"#,
                ErrorCode::BadRequest,
                "array",
            ),
            (
                r#"{"v":1,"cmd":"calibrate","names":["a","a"]}"#,
                ErrorCode::InvalidArgument,
                "named twice",
            ),
            (
                r#"{"v":1,"cmd":"calibrate","mode":"now"}"#,
                ErrorCode::InvalidArgument,
                "\"dry-run\"",
            ),
            (
                r#"{"v":1,"cmd":"calibrate","mic":""}"#,
                ErrorCode::InvalidArgument,
                "printable",
            ),
            (
                r#"{"v":1,"cmd":"calibrate","mic_latency_ms":900}"#,
                ErrorCode::InvalidArgument,
                "0 and 500",
            ),
            (
                r#"{"v":1,"cmd":"calibrate","mic_latency_ms":5,"reference":"a"}"#,
                ErrorCode::InvalidArgument,
                "not both",
            ),
            (
                r#"{"v":1,"cmd":"calibrate","from_recording":{"a":1}}"#,
                ErrorCode::InvalidArgument,
                "2-32 outputs",
            ),
            (
                r#"{"v":1,"cmd":"calibrate","from_recording":{"a":1,"b":3000}}"#,
                ErrorCode::InvalidArgument,
                "-2000 and 2000",
            ),
            (
                r#"{"v":1,"cmd":"calibrate","sweep":1}"#,
                ErrorCode::InvalidArgument,
                "unknown key \"sweep\"",
            ),
        ];
        for (line, code, text) in cases {
            let e = err(line);
            assert_eq!(e.code, *code, "{line}: {e:?}");
            assert!(e.message.contains(text), "{line}: {}", e.message);
        }
    }
}
