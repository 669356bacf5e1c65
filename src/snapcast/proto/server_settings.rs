//! ServerSettings (type 3, server → client): buffer, latency, volume and mute for this client.
//!
//! Payload: `u32` length + JSON `{"bufferMs":int,"latency":int,"volume":0-100,"muted":bool}`. Sent in reply to
//! Hello and pushed unsolicited whenever a controller changes the client. Missing fields take snapclient's
//! defaults (0, 0, 100, false); fields of the wrong type or out of range are errors, unknown fields are ignored.

use super::wire::{put_sized_json, Reader};
use super::{ProtoError, MAX_JSON_LEN};
use serde::{Deserialize, Serialize};

const NAME: &str = "ServerSettings";

/// Largest buffer accepted, in milliseconds (snapserver's default is 1000).
pub const MAX_BUFFER_MS: i32 = 60_000;
/// Largest latency magnitude accepted, in milliseconds (snapserver clamps to −10000..=bufferMs).
pub const MAX_LATENCY_MS: i32 = 60_000;

/// Playout settings for one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerSettings {
    /// End-to-end buffer: a sample captured at `T` plays at `T + buffer − latency`.
    #[serde(rename = "bufferMs")]
    pub buffer_ms: i32,
    /// Per-client latency set by the user; positive plays earlier.
    #[serde(rename = "latency")]
    pub latency_ms: i32,
    /// Volume, percent.
    #[serde(rename = "volume")]
    pub volume_pct: u16,
    /// Muted.
    pub muted: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            buffer_ms: 0,
            latency_ms: 0,
            volume_pct: 100,
            muted: false,
        }
    }
}

impl ServerSettings {
    /// Parses and validates the payload.
    pub fn decode(payload: &[u8]) -> Result<Self, ProtoError> {
        let json = Reader::new(NAME, payload).sized_bytes("JSON", MAX_JSON_LEN)?;
        let bad = |reason: String| ProtoError::BadJson { message: NAME, reason };
        let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
        if !value.is_object() {
            let kind = match value {
                serde_json::Value::Array(_) => "an array",
                serde_json::Value::String(_) => "a string",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::Bool(_) => "a boolean",
                _ => "null",
            };
            return Err(bad(format!("expected an object, got {kind}")));
        }
        let s: Self = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
        let range = |field, value: i64, lo: i64, hi: i64, expected| {
            if (lo..=hi).contains(&value) {
                Ok(())
            } else {
                Err(ProtoError::OutOfRange {
                    message: NAME,
                    field,
                    value,
                    expected,
                })
            }
        };
        range("bufferMs", s.buffer_ms.into(), 0, MAX_BUFFER_MS.into(), "0..=60000")?;
        range(
            "latency",
            s.latency_ms.into(),
            (-MAX_LATENCY_MS).into(),
            MAX_LATENCY_MS.into(),
            "-60000..=60000",
        )?;
        range("volume", s.volume_pct.into(), 0, 100, "0..=100")?;
        Ok(s)
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_sized_json(out, self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapcast::proto::wire::put_sized;

    fn with_json(json: &str) -> Vec<u8> {
        let mut out = Vec::new();
        put_sized(&mut out, json.as_bytes());
        out
    }

    #[test]
    fn golden_and_round_trip() {
        let bytes = with_json(r#"{"bufferMs":1000,"latency":-20,"muted":true,"volume":74,"extra":[1]}"#);
        let s = ServerSettings::decode(&bytes).unwrap();
        assert_eq!(
            s,
            ServerSettings {
                buffer_ms: 1000,
                latency_ms: -20,
                volume_pct: 74,
                muted: true
            }
        );
        let mut out = Vec::new();
        s.encode(&mut out);
        assert_eq!(
            &out[4..],
            br#"{"bufferMs":1000,"latency":-20,"volume":74,"muted":true}"#
        );
        assert_eq!(ServerSettings::decode(&out), Ok(s));
        for n in 0..out.len() {
            assert!(ServerSettings::decode(&out[..n]).is_err(), "truncated to {n} bytes");
        }
    }

    #[test]
    fn defaults_for_missing_fields() {
        assert_eq!(ServerSettings::decode(&with_json("{}")), Ok(ServerSettings::default()));
    }

    #[test]
    fn bad_json_and_ranges_are_errors() {
        let err = ServerSettings::decode(&with_json("{bufferMs:1")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ServerSettings JSON is invalid: key must be a string"),
            "{err}"
        );
        let err = ServerSettings::decode(&with_json(r#"{"volume":"loud"}"#)).unwrap_err();
        assert!(err.to_string().contains("invalid type"), "{err}");
        let err = ServerSettings::decode(&with_json(r#"{"volume":101}"#)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ServerSettings volume value 101 is out of range (0..=100)"
        );
        let err = ServerSettings::decode(&with_json(r#"{"bufferMs":-5}"#)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ServerSettings bufferMs value -5 is out of range (0..=60000)"
        );
        assert!(ServerSettings::decode(&with_json(r#"{"latency":99999999999}"#)).is_err());
        let err = ServerSettings::decode(&with_json("[]")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ServerSettings JSON is invalid: expected an object, got an array"
        );
    }
}
