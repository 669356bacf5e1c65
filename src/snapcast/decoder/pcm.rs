//! `pcm`: a RIFF/WAVE header, then raw interleaved little-endian integer samples in every chunk.
//!
//! Snapserver writes a 44-byte header (`RIFF`, `WAVE`, a 16-byte `fmt ` chunk, an empty `data` chunk). We walk the
//! RIFF chunks properly, so a `fmt ` chunk with an extension, a `WAVE_FORMAT_EXTENSIBLE` tag or extra chunks are
//! fine. Supported: 16-bit, 24-bit (in 4-byte containers as snapserver sends them, or packed in 3 bytes when
//! the block align says so), 32-bit integer, and 32-bit float.

use super::{DecodeError, Decoder};
use crate::timeline::AudioFormat;

const CODEC: &str = "pcm";
const FORMAT_PCM: u16 = 1;
const FORMAT_FLOAT: u16 = 3;
const FORMAT_EXTENSIBLE: u16 = 0xfffe;

/// How one sample sits on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SampleLayout {
    I16,
    /// 24-bit in the low three bytes of a 4-byte little-endian container.
    I24In4,
    /// 24-bit packed in 3 bytes.
    I24Packed,
    I32,
    F32,
}

impl SampleLayout {
    fn bytes(self) -> usize {
        match self {
            SampleLayout::I16 => 2,
            SampleLayout::I24Packed => 3,
            _ => 4,
        }
    }
}

/// Raw PCM.
pub(super) struct PcmDecoder {
    format: AudioFormat,
    layout: SampleLayout,
}

fn bad(reason: impl Into<String>) -> DecodeError {
    DecodeError::BadHeader {
        codec: CODEC,
        reason: reason.into(),
    }
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl PcmDecoder {
    pub(super) fn new(header: &[u8]) -> Result<Self, DecodeError> {
        if header.len() < 12 || &header[0..4] != b"RIFF" || &header[8..12] != b"WAVE" {
            return Err(bad(format!(
                "expected a RIFF/WAVE header, got {} bytes not starting with RIFF…WAVE",
                header.len()
            )));
        }
        let mut pos = 12;
        let mut fmt = None;
        while pos + 8 <= header.len() {
            let id = &header[pos..pos + 4];
            let size = le32(header, pos + 4) as usize;
            let body = &header[pos + 8..];
            if id == b"fmt " {
                if size < 16 {
                    return Err(bad(format!("fmt chunk of {size} bytes is shorter than 16")));
                }
                if body.len() < 16 {
                    return Err(bad(format!(
                        "fmt chunk is cut: the header holds {} of its 16 bytes",
                        body.len()
                    )));
                }
                let mut tag = le16(body, 0);
                if tag == FORMAT_EXTENSIBLE {
                    if size < 40 || body.len() < 40 {
                        return Err(bad("WAVE_FORMAT_EXTENSIBLE fmt chunk is shorter than 40 bytes"));
                    }
                    tag = le16(body, 24);
                }
                fmt = Some((tag, le16(body, 2), le32(body, 4), le16(body, 12), le16(body, 14)));
            }
            if id == b"data" {
                break;
            }
            // Chunks are padded to an even size.
            pos = pos.saturating_add(8).saturating_add(size).saturating_add(size & 1);
        }
        let (tag, channels, rate_hz, block_align, bits) = fmt.ok_or_else(|| bad("no fmt chunk"))?;
        if rate_hz == 0 {
            return Err(bad("sample rate is 0"));
        }
        if channels == 0 || channels > super::MAX_CHANNELS {
            return Err(bad(format!(
                "{channels} channels is outside 1..={}",
                super::MAX_CHANNELS
            )));
        }
        let ch = channels as usize;
        let layout = match (tag, bits) {
            (FORMAT_PCM, 16) => SampleLayout::I16,
            (FORMAT_PCM, 24) if block_align as usize == 3 * ch => SampleLayout::I24Packed,
            (FORMAT_PCM, 24) => SampleLayout::I24In4,
            (FORMAT_PCM, 32) => SampleLayout::I32,
            (FORMAT_FLOAT, 32) => SampleLayout::F32,
            (FORMAT_PCM | FORMAT_FLOAT, _) => {
                return Err(bad(format!("{bits}-bit samples are not supported (16, 24 or 32)")));
            }
            _ => return Err(bad(format!("format tag {tag:#06x} is not PCM or float"))),
        };
        if block_align as usize != layout.bytes() * ch {
            return Err(bad(format!(
                "block align {block_align} does not match {channels} channels of {bits}-bit samples ({} bytes)",
                layout.bytes() * ch
            )));
        }
        Ok(Self {
            format: AudioFormat { rate_hz, channels },
            layout,
        })
    }
}

/// `2^-(n)` as `f32`.
fn scale(bits: i32) -> f32 {
    (2.0f32).powi(-bits)
}

impl Decoder for PcmDecoder {
    fn format(&self) -> AudioFormat {
        self.format
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<f32>) -> Result<usize, DecodeError> {
        let sample_bytes = self.layout.bytes();
        let frame_bytes = sample_bytes * self.format.channels as usize;
        if payload.len() % frame_bytes != 0 {
            return Err(DecodeError::BadChunk {
                codec: CODEC,
                reason: format!(
                    "payload of {} bytes is not a whole number of {frame_bytes}-byte frames",
                    payload.len()
                ),
            });
        }
        out.reserve(payload.len() / sample_bytes);
        let samples = payload.chunks_exact(sample_bytes);
        match self.layout {
            SampleLayout::I16 => out.extend(samples.map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 * scale(15))),
            SampleLayout::I24In4 => out.extend(samples.map(|b| {
                // Sign-extend the low 24 bits (the top byte of the container is ignored).
                ((i32::from_le_bytes([b[0], b[1], b[2], b[3]]) << 8) >> 8) as f32 * scale(23)
            })),
            SampleLayout::I24Packed => {
                out.extend(samples.map(|b| (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 * scale(23)))
            }
            // Rounds to the nearest f32 (24-bit mantissa); the top value would round to 1.0 and is clamped below.
            SampleLayout::I32 => {
                out.extend(samples.map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 * scale(31)))
            }
            SampleLayout::F32 => out.extend(samples.map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
        }
        Ok(payload.len() / frame_bytes)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::snapcast::decoder::new_decoder;

    /// The 44-byte header snapserver's pcm encoder writes.
    pub(crate) fn riff_header(rate_hz: u32, bits: u16, channels: u16) -> Vec<u8> {
        let container = if bits == 24 { 4 } else { bits / 8 };
        let block_align = channels * container;
        let mut h = Vec::new();
        h.extend(b"RIFF");
        h.extend(36u32.to_le_bytes());
        h.extend(b"WAVEfmt ");
        h.extend(16u32.to_le_bytes());
        h.extend(1u16.to_le_bytes());
        h.extend(channels.to_le_bytes());
        h.extend(rate_hz.to_le_bytes());
        h.extend((rate_hz * block_align as u32).to_le_bytes());
        h.extend(block_align.to_le_bytes());
        h.extend(bits.to_le_bytes());
        h.extend(b"data");
        h.extend(0u32.to_le_bytes());
        assert_eq!(h.len(), 44);
        h
    }

    fn decode_all(header: &[u8], payload: &[u8]) -> Result<Vec<f32>, DecodeError> {
        let mut d = new_decoder("pcm", header)?;
        let mut out = Vec::new();
        let frames = d.decode(payload, &mut out)?;
        assert_eq!(frames * d.format().channels as usize, out.len());
        Ok(out)
    }

    #[test]
    fn sixteen_bit_is_exact() {
        let values: [i16; 6] = [0, 1, -1, i16::MAX, i16::MIN, 12345];
        let payload: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let out = decode_all(&riff_header(48_000, 16, 2), &payload).unwrap();
        let expect: Vec<f32> = values.iter().map(|&v| v as f32 / 32768.0).collect();
        assert_eq!(out, expect);
        assert_eq!(out[4], -1.0);
        assert!(out[3] < 1.0);
    }

    #[test]
    fn twenty_four_bit_in_four_byte_containers_is_exact() {
        let values: [i32; 4] = [8_388_607, -8_388_608, -1, 4_000_000];
        let payload: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let out = decode_all(&riff_header(44_100, 24, 1), &payload).unwrap();
        let expect: Vec<f32> = values.iter().map(|&v| v as f32 / 8_388_608.0).collect();
        assert_eq!(out, expect);
        // Only the low 24 bits count, whatever the top byte holds.
        let junk_top = [0xff, 0xff, 0x7f, 0x55];
        assert_eq!(
            decode_all(&riff_header(44_100, 24, 1), &junk_top).unwrap(),
            [8_388_607.0 / 8_388_608.0]
        );
    }

    #[test]
    fn twenty_four_bit_packed_when_block_align_says_so() {
        let mut h = riff_header(48_000, 24, 2);
        h[32..34].copy_from_slice(&6u16.to_le_bytes());
        let payload = [0xff, 0xff, 0x7f, 0x00, 0x00, 0x80];
        assert_eq!(decode_all(&h, &payload).unwrap(), [8_388_607.0 / 8_388_608.0, -1.0]);
    }

    #[test]
    fn thirty_two_bit_is_nearest_f32_and_below_one() {
        let values: [i32; 4] = [i32::MAX, i32::MIN, 1 << 20, -(1 << 30)];
        let payload: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let out = decode_all(&riff_header(48_000, 32, 2), &payload).unwrap();
        assert!(out[0] < 1.0 && out[0] > 0.999_999);
        assert_eq!(&out[1..], &[-1.0, (1 << 20) as f32 / 2_147_483_648.0, -0.5]);
    }

    #[test]
    fn lying_headers_are_errors() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (riff_header(0, 16, 2), "sample rate is 0"),
            (riff_header(48_000, 16, 0), "0 channels is outside 1..=8"),
            (riff_header(48_000, 16, 9), "9 channels is outside 1..=8"),
            (riff_header(48_000, 8, 2), "8-bit samples are not supported"),
            (riff_header(48_000, 12, 2), "12-bit samples are not supported"),
            (b"RIFX".to_vec(), "expected a RIFF/WAVE header"),
            (
                riff_header(48_000, 16, 2)[..30].to_vec(),
                "fmt chunk is cut: the header holds 10 of its 16 bytes",
            ),
            (riff_header(48_000, 16, 2)[..12].to_vec(), "no fmt chunk"),
        ];
        for (h, want) in cases {
            let err = new_decoder("pcm", &h).err().expect(want);
            assert!(err.to_string().contains(want), "{err} should contain {want}");
        }
        let mut lying_align = riff_header(48_000, 16, 2);
        lying_align[32] = 3;
        assert!(new_decoder("pcm", &lying_align)
            .err()
            .unwrap()
            .to_string()
            .contains("block align 3"));
        let mut d = new_decoder("pcm", &riff_header(48_000, 16, 2)).unwrap();
        let err = d.decode(&[0; 6], &mut Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pcm chunk is invalid: payload of 6 bytes is not a whole number of 4-byte frames"
        );
    }

    #[test]
    fn extra_chunks_and_huge_chunk_sizes_do_not_confuse_the_walk() {
        let base = riff_header(48_000, 16, 2);
        let mut h = base[..12].to_vec();
        h.extend(b"LIST");
        h.extend(3u32.to_le_bytes());
        h.extend([1, 2, 3, 0]);
        h.extend(&base[12..]);
        assert_eq!(
            new_decoder("pcm", &h).unwrap().format(),
            AudioFormat {
                rate_hz: 48_000,
                channels: 2
            }
        );
        let mut huge = base[..12].to_vec();
        huge.extend(b"LIST");
        huge.extend(u32::MAX.to_le_bytes());
        assert!(new_decoder("pcm", &huge).is_err());
    }
}
