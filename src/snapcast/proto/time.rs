//! Time (type 4, both ways): the clock-sync exchange.
//!
//! Payload: `i32` seconds, `i32` microseconds of `latency`. The client sends it with any value (snapclient: 0);
//! the server answers with `latency = server_received − client_sent` (the client-to-server leg, `c2s`), with
//! `refersTo` = the request id and its own `sent` stamp, from which the client takes `s2c = client_received −
//! server_sent`. Then `server − local = (c2s − s2c) / 2`.

use super::wire::Reader;
use super::{ProtoError, Tv};

const NAME: &str = "Time";

/// A Time request or reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Time {
    /// In a reply: server receive time − client send time.
    pub latency: Tv,
}

impl Time {
    /// Parses the payload.
    pub fn decode(payload: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(NAME, payload);
        Ok(Self {
            latency: Tv {
                sec: r.i32("latency sec")?,
                usec: r.i32("latency usec")?,
            },
        })
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.latency.sec.to_le_bytes());
        out.extend_from_slice(&self.latency.usec.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_round_trip_truncation() {
        let m = Time {
            latency: Tv { sec: -1, usec: 999_000 },
        };
        let mut out = Vec::new();
        m.encode(&mut out);
        assert_eq!(out, [0xff, 0xff, 0xff, 0xff, 0x58, 0x3e, 0x0f, 0]);
        assert_eq!(Time::decode(&out), Ok(m));
        for n in 0..out.len() {
            assert!(Time::decode(&out[..n]).is_err(), "truncated to {n} bytes");
        }
        assert_eq!(
            Time::decode(&out[..5]).unwrap_err().to_string(),
            "Time truncated: latency usec needs 4 bytes, only 1 left"
        );
    }
}
