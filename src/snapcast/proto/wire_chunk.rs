//! WireChunk (type 2, server → client): one chunk of encoded audio and its capture time.
//!
//! Payload: `i32` timestamp seconds, `i32` microseconds (the server's clock when the chunk's first sample was
//! captured), `u32` length, then the encoded bytes.

use super::wire::{put_sized, Reader};
use super::{ProtoError, Tv, MAX_PAYLOAD_SIZE};

const NAME: &str = "WireChunk";

/// Encoded audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireChunk {
    /// Server time of the first sample.
    pub timestamp: Tv,
    /// Codec payload.
    pub payload: Vec<u8>,
}

impl WireChunk {
    /// Parses the payload.
    pub fn decode(payload: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(NAME, payload);
        let timestamp = Tv {
            sec: r.i32("timestamp sec")?,
            usec: r.i32("timestamp usec")?,
        };
        let data = r.sized_bytes("payload", MAX_PAYLOAD_SIZE as usize)?.to_vec();
        Ok(Self {
            timestamp,
            payload: data,
        })
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.sec.to_le_bytes());
        out.extend_from_slice(&self.timestamp.usec.to_le_bytes());
        put_sized(out, &self.payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_and_round_trip() {
        let m = WireChunk {
            timestamp: Tv {
                sec: 700,
                usec: 250_000,
            },
            payload: vec![1, 2, 3],
        };
        let mut out = Vec::new();
        m.encode(&mut out);
        assert_eq!(out, [0xbc, 2, 0, 0, 0x90, 0xd0, 3, 0, 3, 0, 0, 0, 1, 2, 3]);
        assert_eq!(WireChunk::decode(&out), Ok(m));
        for n in 0..out.len() {
            assert!(WireChunk::decode(&out[..n]).is_err(), "truncated to {n} bytes");
        }
    }

    #[test]
    fn payload_length_must_fit_the_message() {
        let mut bytes = vec![0u8; 8];
        bytes.extend(5000u32.to_le_bytes());
        bytes.resize(200, 0);
        let err = WireChunk::decode(&bytes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "WireChunk payload length 5000 exceeds message size 200"
        );
    }
}
