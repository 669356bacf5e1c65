//! ClientInfo (type 7, client → server): the client's own volume and mute, after a local change.
//!
//! Payload: `u32` length + JSON `{"volume":0-100,"muted":bool}`. The server turns it into `Client.OnVolumeChanged`.

use super::wire::{decode_sized_json, put_sized_json};
use super::ProtoError;
use serde::{Deserialize, Serialize};

const NAME: &str = "ClientInfo";

/// Local volume report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// Volume, percent (0..=100).
    #[serde(rename = "volume")]
    pub volume_pct: u16,
    /// Muted.
    pub muted: bool,
}

impl ClientInfo {
    /// Parses and validates the payload.
    pub fn decode(payload: &[u8]) -> Result<Self, ProtoError> {
        let c: Self = decode_sized_json(NAME, payload)?;
        if c.volume_pct > 100 {
            return Err(ProtoError::OutOfRange {
                message: NAME,
                field: "volume",
                value: c.volume_pct.into(),
                expected: "0..=100",
            });
        }
        Ok(c)
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

    #[test]
    fn golden_round_trip_truncation() {
        let m = ClientInfo {
            volume_pct: 42,
            muted: false,
        };
        let mut out = Vec::new();
        m.encode(&mut out);
        assert_eq!(&out[..4], &[27, 0, 0, 0]);
        assert_eq!(&out[4..], br#"{"volume":42,"muted":false}"#);
        assert_eq!(ClientInfo::decode(&out), Ok(m));
        for n in 0..out.len() {
            assert!(ClientInfo::decode(&out[..n]).is_err(), "truncated to {n} bytes");
        }
        let mut bad = Vec::new();
        put_sized(&mut bad, br#"{"volume":300,"muted":false}"#);
        assert!(ClientInfo::decode(&bad).is_err());
    }
}
