//! Replies on the wire: success with a result (and warnings) or an error with its code.

use super::{ErrorCode, ProtocolError, VERSION};
use serde::Serialize;
use serde_json::{json, Value};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
