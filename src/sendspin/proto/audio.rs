//! The binary audio chunk of a player (type 4): `type: u8 = 4`, the play time of its first sample as `i64`
//! big-endian µs on the server clock, `send_ahead` as `u32` big-endian µs (how far ahead of that play time the
//! server sent it; 0 and `u32::MAX` are saturated), then the payload (13-byte header, aiosendspin
//! `models/player.py` `PLAYER_AUDIO_HEADER_FORMAT = ">BqI"`).

use super::stream::PcmFormat;
use super::{ProtoError, MAX_FRAME_BYTES};

/// The first byte of a player audio chunk.
pub const AUDIO_CHUNK: u8 = 4;
/// Header bytes before the payload.
pub const HEADER_BYTES: usize = 13;

/// A player audio chunk, borrowing its payload from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioChunk<'a> {
    /// Play time of the first sample, server µs.
    pub timestamp_us: i64,
    /// µs between the server sending it and its play time.
    pub send_ahead_us: u32,
    /// The encoded audio.
    pub payload: &'a [u8],
}

/// Reads a binary frame. Other binary types (artwork, visualizer) are a [`ProtoError::NotAudio`] the caller skips.
pub fn decode_frame(frame: &[u8]) -> Result<AudioChunk<'_>, ProtoError> {
    if frame.len() > MAX_FRAME_BYTES {
        return Err(ProtoError::TooLarge {
            what: "binary frame",
            len: frame.len(),
            max: MAX_FRAME_BYTES,
        });
    }
    let Some(&kind) = frame.first() else {
        return Err(ProtoError::Short {
            len: 0,
            header: HEADER_BYTES,
        });
    };
    if kind != AUDIO_CHUNK {
        return Err(ProtoError::NotAudio(kind));
    }
    if frame.len() < HEADER_BYTES {
        return Err(ProtoError::Short {
            len: frame.len(),
            header: HEADER_BYTES,
        });
    }
    Ok(AudioChunk {
        timestamp_us: i64::from_be_bytes(frame[1..9].try_into().expect("8 bytes")),
        send_ahead_us: u32::from_be_bytes(frame[9..13].try_into().expect("4 bytes")),
        payload: &frame[HEADER_BYTES..],
    })
}

/// PCM (little-endian signed, interleaved) to `f32` in `[-1, 1)`; an error when the payload is not whole frames.
pub fn decode_pcm(payload: &[u8], f: PcmFormat) -> Result<Vec<f32>, ProtoError> {
    let bps = f.bytes_per_sample as usize;
    let frame = bps * f.channels as usize;
    if frame == 0 || payload.len() % frame != 0 {
        return Err(ProtoError::PartialFrame {
            len: payload.len(),
            frame_bytes: frame,
        });
    }
    Ok(match bps {
        2 => payload
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32_768.0)
            .collect(),
        3 => payload
            .chunks_exact(3)
            .map(|b| (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 / 8_388_608.0)
            .collect(),
        4 => payload
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0)
            .collect(),
        _ => return Err(ProtoError::SampleBytes(f.bytes_per_sample)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_server_frame_decodes() {
        // The first chunk aiosendspin 10.2.1 sent in a probe: ts 0x0863d872aa µs, send_ahead 0, then a click.
        let mut f = hex("040000000863d872aa00000000");
        f.extend_from_slice(&[0x20, 0x4e, 0x20, 0x4e]);
        let c = decode_frame(&f).unwrap();
        assert_eq!(c.timestamp_us, 36_034_867_882);
        assert_eq!(c.send_ahead_us, 0);
        let pcm = PcmFormat {
            rate_hz: 48_000,
            channels: 2,
            bytes_per_sample: 2,
        };
        assert_eq!(decode_pcm(c.payload, pcm).unwrap(), vec![20_000.0 / 32_768.0; 2]);
    }

    #[test]
    fn short_foreign_and_oversized_frames_are_errors() {
        assert_eq!(decode_frame(&[]), Err(ProtoError::Short { len: 0, header: 13 }));
        assert_eq!(decode_frame(&[4, 0, 0]), Err(ProtoError::Short { len: 3, header: 13 }));
        assert_eq!(decode_frame(&[8; 20]), Err(ProtoError::NotAudio(8)));
        assert_eq!(
            ProtoError::NotAudio(8).to_string(),
            "binary frame: type 8 is not a player audio chunk"
        );
        assert!(matches!(
            decode_frame(&vec![4; MAX_FRAME_BYTES + 1]),
            Err(ProtoError::TooLarge { .. })
        ));
        let c = decode_frame(&[4; 13]).unwrap();
        assert!(c.payload.is_empty());
    }

    #[test]
    fn pcm_depths_decode_and_partial_frames_are_refused() {
        let f = |bytes_per_sample| PcmFormat {
            rate_hz: 48_000,
            channels: 1,
            bytes_per_sample,
        };
        assert_eq!(decode_pcm(&[0x00, 0x80], f(2)).unwrap(), vec![-1.0]);
        assert_eq!(decode_pcm(&[0x00, 0x00, 0x40], f(3)).unwrap(), vec![0.5]);
        assert_eq!(decode_pcm(&[0, 0, 0, 0xc0], f(4)).unwrap(), vec![-0.5]);
        let stereo = PcmFormat { channels: 2, ..f(2) };
        assert_eq!(
            decode_pcm(&[0; 6], stereo),
            Err(ProtoError::PartialFrame { len: 6, frame_bytes: 4 })
        );
        assert_eq!(decode_pcm(&[0; 2], f(1)), Err(ProtoError::SampleBytes(1)));
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }
}
