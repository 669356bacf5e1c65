//! CodecHeader (type 1, server → client): the codec name and the codec's stream header.
//!
//! Payload: `u32` length + codec name (`"pcm"`, `"flac"`, `"ogg"`, `"opus"`, `"null"`), `u32` length + header
//! bytes. The server sends one after the Hello reply and again whenever the group's stream changes; everything that
//! follows is in the new codec.

use super::wire::{put_sized, Reader};
use super::{ProtoError, MAX_CODEC_NAME_LEN, MAX_PAYLOAD_SIZE};

const NAME: &str = "CodecHeader";

/// A codec announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecHeader {
    /// Codec name, e.g. `"flac"`.
    pub codec: String,
    /// The codec's own header (RIFF header, FLAC metadata, Vorbis header pages, Opus pseudo header).
    pub header: Vec<u8>,
}

impl CodecHeader {
    /// Parses the payload.
    pub fn decode(payload: &[u8]) -> Result<Self, ProtoError> {
        let mut r = Reader::new(NAME, payload);
        let codec = r.sized_str("codec name", MAX_CODEC_NAME_LEN)?.to_owned();
        let header = r.sized_bytes("header", MAX_PAYLOAD_SIZE as usize)?.to_vec();
        Ok(Self { codec, header })
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_sized(out, self.codec.as_bytes());
        put_sized(out, &self.header);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_and_round_trip() {
        let m = CodecHeader {
            codec: "pcm".into(),
            header: vec![0xaa, 0xbb],
        };
        let mut out = Vec::new();
        m.encode(&mut out);
        assert_eq!(out, [3, 0, 0, 0, b'p', b'c', b'm', 2, 0, 0, 0, 0xaa, 0xbb]);
        assert_eq!(CodecHeader::decode(&out), Ok(m));
        for n in 0..out.len() {
            assert!(CodecHeader::decode(&out[..n]).is_err(), "truncated to {n} bytes");
        }
    }

    #[test]
    fn lengths_are_checked() {
        let err = CodecHeader::decode(&[200, 0, 0, 0, b'x']).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CodecHeader codec name length 200 exceeds message size 5"
        );
        let mut long = vec![100, 0, 0, 0];
        long.extend([b'a'; 100]);
        let err = CodecHeader::decode(&long).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CodecHeader codec name length 100 exceeds the limit of 64 bytes"
        );
        let err = CodecHeader::decode(&[2, 0, 0, 0, 0xff, 0xfe, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(err.to_string(), "CodecHeader codec name is not valid UTF-8");
    }
}
