//! Error (type 8, server → client, snapserver ≥ 0.32): why the server refuses this client.
//!
//! Payload: `u32` code, `u32` length + error, `u32` length + message. Codes seen: 401 Unauthorized (no or bad
//! Auth in Hello), 403 Forbidden (the user lacks the Streaming permission). The server closes the session after it.

use super::wire::{put_sized, Reader};
use super::{ProtoError, MAX_TEXT_LEN};

const NAME: &str = "Error";

/// A server-side refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMsg {
    /// HTTP-like status code.
    pub code: u32,
    /// Short error name, e.g. "Unauthorized".
    pub error: String,
    /// Human-readable detail.
    pub message: String,
}

impl ErrorMsg {
    /// Parses the payload (text that is not UTF-8 is replaced, not rejected: it is only logged).
    pub fn decode(payload: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(NAME, payload);
        let code = r.u32("code")?;
        let error = String::from_utf8_lossy(r.sized_bytes("error", MAX_TEXT_LEN)?).into_owned();
        let message = String::from_utf8_lossy(r.sized_bytes("message", MAX_TEXT_LEN)?).into_owned();
        Ok(Self { code, error, message })
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.code.to_le_bytes());
        put_sized(out, self.error.as_bytes());
        put_sized(out, self.message.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_round_trip_truncation() {
        let m = ErrorMsg {
            code: 401,
            error: "Unauthorized".into(),
            message: "bad".into(),
        };
        let mut out = Vec::new();
        m.encode(&mut out);
        assert_eq!(&out[..8], &[0x91, 1, 0, 0, 12, 0, 0, 0]);
        assert_eq!(ErrorMsg::decode(&out), Ok(m));
        for n in 0..out.len() {
            assert!(ErrorMsg::decode(&out[..n]).is_err(), "truncated to {n} bytes");
        }
    }
}
