//! `opus`: a 12-byte pseudo header, then one raw Opus packet per chunk.
//!
//! Header (little-endian): `u32` magic 0x4F505553 ("OPUS"), `u32` rate, `u16` bits, `u16` channels. Snapserver
//! resamples to 48000:16:2 before encoding, so in practice this is always 48 kHz stereo. Packets are decoded with
//! libopus at the header's rate (any rate libopus supports) into `f32`. Opus adds the encoder's look-ahead
//! (6.5 ms at 48 kHz) of delay that the chunk timestamps do not account for; snapclient does not correct it either.

use super::{DecodeError, Decoder};
use crate::timeline::AudioFormat;

const CODEC: &str = "opus";
/// The magic, 0x4F505553 ("OPUS" read big-endian; on the wire, little-endian, the bytes are `SUPO`).
pub(super) const MAGIC: u32 = 0x4F50_5553;
/// Longest Opus packet, in milliseconds.
const MAX_PACKET_MS: u32 = 120;

/// Opus via libopus.
pub(super) struct OpusDecoder {
    format: AudioFormat,
    decoder: opus::Decoder,
    /// Scratch for one packet: 120 ms at the stream rate.
    scratch: Vec<f32>,
}

impl OpusDecoder {
    pub(super) fn new(header: &[u8]) -> Result<Self, DecodeError> {
        let bad = |reason: String| DecodeError::BadHeader { codec: CODEC, reason };
        let h: &[u8; 12] = header
            .get(..12)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| bad(format!("pseudo header is {} bytes, expected 12", header.len())))?;
        let magic = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let rate_hz = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        let bits = u16::from_le_bytes([h[8], h[9]]);
        let channels = u16::from_le_bytes([h[10], h[11]]);
        if magic != MAGIC {
            return Err(bad(format!("magic {magic:#010x} is not {MAGIC:#010x} (\"OPUS\")")));
        }
        if ![8_000, 12_000, 16_000, 24_000, 48_000].contains(&rate_hz) {
            return Err(bad(format!(
                "sample rate {rate_hz} Hz is not one Opus decodes at (8/12/16/24/48 kHz)"
            )));
        }
        if bits == 0 || bits > 32 {
            return Err(bad(format!("{bits} bits per sample is outside 1..=32")));
        }
        let ch = match channels {
            1 => opus::Channels::Mono,
            2 => opus::Channels::Stereo,
            n => return Err(bad(format!("{n} channels is not 1 or 2"))),
        };
        let decoder = opus::Decoder::new(rate_hz, ch).map_err(|e| bad(format!("libopus: {e}")))?;
        let scratch = vec![0.0; (rate_hz * MAX_PACKET_MS / 1000) as usize * channels as usize];
        Ok(Self {
            format: AudioFormat { rate_hz, channels },
            decoder,
            scratch,
        })
    }
}

impl Decoder for OpusDecoder {
    fn format(&self) -> AudioFormat {
        self.format
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<f32>) -> Result<usize, DecodeError> {
        if payload.is_empty() {
            // An empty packet would ask libopus for loss concealment; there is simply no audio.
            return Ok(0);
        }
        let frames = self
            .decoder
            .decode_float(payload, &mut self.scratch, false)
            .map_err(|e| DecodeError::BadChunk {
                codec: CODEC,
                reason: format!("libopus: {e}"),
            })?;
        let samples = frames * self.format.channels as usize;
        let decoded = self.scratch.get(..samples).ok_or_else(|| DecodeError::BadChunk {
            codec: CODEC,
            reason: format!("libopus reported {frames} frames, more than a packet holds"),
        })?;
        out.extend_from_slice(decoded);
        Ok(frames)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::snapcast::decoder::new_decoder;

    pub(crate) fn header(rate_hz: u32, bits: u16, channels: u16) -> Vec<u8> {
        let mut h = MAGIC.to_le_bytes().to_vec();
        h.extend(rate_hz.to_le_bytes());
        h.extend(bits.to_le_bytes());
        h.extend(channels.to_le_bytes());
        h
    }

    #[test]
    fn round_trip_through_libopus() {
        let mut enc = opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio).unwrap();
        let mut d = new_decoder("opus", &header(48_000, 16, 2)).unwrap();
        assert_eq!(d.format(), AudioFormat::STEREO_48K);
        let mut out = Vec::new();
        let mut sent = Vec::new();
        for k in 0..50 {
            // 20 ms of a 1 kHz tone at half scale.
            let pcm: Vec<f32> = (0..960 * 2)
                .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 1000.0 * ((k * 960 + i / 2) as f32) / 48_000.0).sin())
                .collect();
            let packet = enc.encode_vec_float(&pcm, 4000).unwrap();
            assert_eq!(d.decode(&packet, &mut out).unwrap(), 960);
            sent.extend(pcm);
        }
        // After the codec delay settles, the energy matches.
        let energy = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32;
        let (a, b) = (energy(&sent[48_000..]), energy(&out[48_000..]));
        assert!((a - b).abs() / a < 0.05, "energy {a} vs {b}");
        assert_eq!(d.decode(&[], &mut out).unwrap(), 0);
    }

    #[test]
    fn lying_headers_are_errors() {
        for (h, want) in [
            (header(0, 16, 2), "sample rate 0 Hz"),
            (header(44_100, 16, 2), "sample rate 44100 Hz"),
            (header(48_000, 16, 0), "0 channels"),
            (header(48_000, 16, 3), "3 channels"),
            (header(48_000, 0, 2), "0 bits"),
            (b"OPUS\x80\xbb\0\0\x10\0\x02\0".to_vec(), "magic 0x5355504f"),
            (header(48_000, 16, 2)[..11].to_vec(), "11 bytes"),
        ] {
            let err = new_decoder("opus", &h).err().expect(want);
            assert!(err.to_string().contains(want), "{err} should contain {want}");
        }
        let mut d = new_decoder("opus", &header(48_000, 16, 2)).unwrap();
        assert!(d.decode(&[0xff; 3], &mut Vec::new()).is_err());
    }
}
