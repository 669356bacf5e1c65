//! The 26-byte base header that precedes every Snapcast message, and the `timeval` stamps it carries.
//!
//! | off | field | type |
//! |---|---|---|
//! | 0 | type | u16 |
//! | 2 | id | u16 |
//! | 4 | refersTo | u16 |
//! | 6 | sent.sec, sent.usec | i32, i32 |
//! | 14 | received.sec, received.usec | i32, i32 |
//! | 22 | size (payload bytes after the header) | u32 |
//!
//! All little-endian. The stamps are the sender's and receiver's `CLOCK_MONOTONIC` on Linux.

use super::{message_name, ProtoError, MAX_PAYLOAD_SIZE};

/// Size of the base header in bytes.
pub const BASE_HEADER_SIZE: usize = 26;

/// A `timeval`: seconds and microseconds. Snapcast keeps `usec` in `0..1_000_000` (also for negative values, which
/// have a negative `sec`), and [`Tv::from_ns`] does the same; [`Tv::to_ns`] accepts any pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tv {
    /// Whole seconds.
    pub sec: i32,
    /// Microseconds.
    pub usec: i32,
}

impl Tv {
    /// Nanoseconds represented by this pair (exact; cannot overflow an `i64`).
    pub fn to_ns(self) -> i64 {
        self.sec as i64 * 1_000_000_000 + self.usec as i64 * 1_000
    }

    /// The pair for `ns` nanoseconds, truncated to the microsecond below (seconds saturate at the `i32` range).
    pub fn from_ns(ns: i64) -> Self {
        let us = ns.div_euclid(1_000);
        let sec = us.div_euclid(1_000_000).clamp(i32::MIN as i64, i32::MAX as i64);
        Self {
            sec: sec as i32,
            usec: us.rem_euclid(1_000_000) as i32,
        }
    }
}

/// The header of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BaseHeader {
    /// Message type (see [`super::msg_type`]).
    pub msg_type: u16,
    /// Request id (0 when the message is not a request).
    pub id: u16,
    /// Id of the request this message answers (0 when unsolicited).
    pub refers_to: u16,
    /// Sender's clock when it was sent.
    pub sent: Tv,
    /// Receiver's clock when it arrived (the receiver overwrites it).
    pub received: Tv,
    /// Payload bytes that follow the header.
    pub size: u32,
}

impl BaseHeader {
    /// Parses the first [`BASE_HEADER_SIZE`] bytes of `bytes` and checks `size` against [`MAX_PAYLOAD_SIZE`], so a
    /// caller may allocate `size` bytes for the payload once this returns `Ok`.
    pub fn parse(bytes: &[u8]) -> Result<Self, ProtoError> {
        let raw: &[u8; BASE_HEADER_SIZE] = bytes
            .get(..BASE_HEADER_SIZE)
            .and_then(|b| b.try_into().ok())
            .ok_or(ProtoError::ShortHeader { got: bytes.len() })?;
        let h = Self::from_bytes(raw);
        if h.size > MAX_PAYLOAD_SIZE {
            return Err(ProtoError::MessageTooLarge {
                message: message_name(h.msg_type),
                size: h.size,
            });
        }
        Ok(h)
    }

    /// Reads the fields without any check.
    pub fn from_bytes(b: &[u8; BASE_HEADER_SIZE]) -> Self {
        let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
        let i32_at = |o: usize| i32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        Self {
            msg_type: u16_at(0),
            id: u16_at(2),
            refers_to: u16_at(4),
            sent: Tv {
                sec: i32_at(6),
                usec: i32_at(10),
            },
            received: Tv {
                sec: i32_at(14),
                usec: i32_at(18),
            },
            size: u32::from_le_bytes([b[22], b[23], b[24], b[25]]),
        }
    }

    /// The 26 wire bytes.
    pub fn to_bytes(&self) -> [u8; BASE_HEADER_SIZE] {
        let mut b = [0u8; BASE_HEADER_SIZE];
        b[0..2].copy_from_slice(&self.msg_type.to_le_bytes());
        b[2..4].copy_from_slice(&self.id.to_le_bytes());
        b[4..6].copy_from_slice(&self.refers_to.to_le_bytes());
        b[6..10].copy_from_slice(&self.sent.sec.to_le_bytes());
        b[10..14].copy_from_slice(&self.sent.usec.to_le_bytes());
        b[14..18].copy_from_slice(&self.received.sec.to_le_bytes());
        b[18..22].copy_from_slice(&self.received.usec.to_le_bytes());
        b[22..26].copy_from_slice(&self.size.to_le_bytes());
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tv_round_trips_and_normalises_negative_values() {
        assert_eq!(Tv::from_ns(1_500_000_000), Tv { sec: 1, usec: 500_000 });
        assert_eq!(Tv::from_ns(-1), Tv { sec: -1, usec: 999_999 });
        assert_eq!(Tv::from_ns(-1_500_000_000), Tv { sec: -2, usec: 500_000 });
        assert_eq!(Tv { sec: -2, usec: 500_000 }.to_ns(), -1_500_000_000);
        for ns in [0i64, 1_000, -1_000, 123_456_789_000, -987_654_321_000] {
            assert_eq!(Tv::from_ns(ns).to_ns(), ns);
        }
        assert_eq!(Tv::from_ns(i64::MAX).sec, i32::MAX);
        assert_eq!(
            Tv {
                sec: i32::MIN,
                usec: i32::MIN
            }
            .to_ns(),
            i32::MIN as i64 * 1_000_001_000
        );
    }

    #[test]
    fn header_golden_bytes() {
        let h = BaseHeader {
            msg_type: 4,
            id: 0x0102,
            refers_to: 0x0304,
            sent: Tv {
                sec: 0x05060708,
                usec: 0x090a0b0c,
            },
            received: Tv { sec: -1, usec: 1 },
            size: 8,
        };
        let golden: [u8; 26] = [
            4, 0, 2, 1, 4, 3, 8, 7, 6, 5, 0x0c, 0x0b, 0x0a, 0x09, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 8, 0, 0, 0,
        ];
        assert_eq!(h.to_bytes(), golden);
        assert_eq!(BaseHeader::parse(&golden), Ok(h));
    }

    #[test]
    fn header_truncation_and_size_limit() {
        let bytes = BaseHeader {
            msg_type: 2,
            size: MAX_PAYLOAD_SIZE,
            ..Default::default()
        }
        .to_bytes();
        assert!(BaseHeader::parse(&bytes).is_ok());
        for n in 0..BASE_HEADER_SIZE {
            assert_eq!(BaseHeader::parse(&bytes[..n]), Err(ProtoError::ShortHeader { got: n }));
        }
        let big = BaseHeader {
            msg_type: 2,
            size: MAX_PAYLOAD_SIZE + 1,
            ..Default::default()
        }
        .to_bytes();
        let err = BaseHeader::parse(&big).unwrap_err();
        assert_eq!(
            err.to_string(),
            "WireChunk message size 1000001 exceeds the limit of 1000000 bytes"
        );
        let huge = BaseHeader {
            msg_type: 77,
            size: u32::MAX,
            ..Default::default()
        }
        .to_bytes();
        assert!(matches!(
            BaseHeader::parse(&huge),
            Err(ProtoError::MessageTooLarge { size: u32::MAX, .. })
        ));
    }
}
