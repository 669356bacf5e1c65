//! What a `stream/start` format becomes for bluebridge's decoders: a codec name and the header that
//! [`new_decoder`](crate::snapcast::decoder::new_decoder) takes for it. The codecs are the same ones the Snapcast
//! path decodes (and fuzzes); only the way the stream describes itself differs:
//!
//! - `pcm`: the format is in the message (rate, channels, 16/24/32-bit little-endian integers, 24-bit packed in
//!   3 bytes); it becomes the RIFF/WAVE header the PCM decoder reads.
//! - `flac`: `codec_header` is Base64 of `fLaC` and a STREAMINFO block (aiosendspin's `audio/codecs.py` builds it as
//!   `b"fLaC\x80" + len + extradata`); each chunk holds whole FLAC frames. The STREAMINFO must agree with the
//!   message's rate, channels and bit depth: a header that lies is refused, naming both.
//! - `opus`: no header; each chunk is one raw Opus packet. The rate and channels from the message become the 12-byte
//!   pseudo header of the Opus decoder.
//!
//! Pure: bytes in, bytes out.

use super::stream::{StreamFormat, MAX_CHANNELS, MAX_RATE_HZ};
use base64::Engine as _;

/// Largest FLAC codec header accepted, bytes after Base64 decoding (STREAMINFO alone is 42; a server may add other
/// metadata blocks, which are bounded here).
pub const MAX_CODEC_HEADER_BYTES: usize = 16 * 1024;

/// The decoder to build for a stream: `new_decoder(codec, &header)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecoderSetup {
    /// `pcm`, `flac` or `opus`.
    pub codec: &'static str,
    /// The header that decoder takes.
    pub header: Vec<u8>,
}

/// Why a `stream/start` format cannot be played.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// A codec the player did not offer.
    #[error("codec {0:?} is not one this player offered (pcm, flac, opus)")]
    Unknown(String),
    /// Rate, channels or bit depth out of range for the codec.
    #[error("{codec}: {reason}")]
    Format {
        /// The codec.
        codec: &'static str,
        /// What is out of range.
        reason: String,
    },
    /// The FLAC codec header is missing, not Base64, too big, or not `fLaC` + STREAMINFO.
    #[error("flac codec_header: {0}")]
    Header(String),
    /// The FLAC STREAMINFO says something else than the message.
    #[error("flac codec_header says {header}, stream/start says {message}")]
    Lies {
        /// What STREAMINFO says.
        header: String,
        /// What the message says.
        message: String,
    },
}

/// The Opus decoder's pseudo-header magic (see `snapcast::decoder::opus`).
const OPUS_MAGIC: u32 = 0x4F50_5553;

/// The decoder setup for `f`.
pub fn decoder_setup(f: &StreamFormat) -> Result<DecoderSetup, CodecError> {
    let codec: &'static str = match f.codec.as_str() {
        "pcm" => "pcm",
        "flac" => "flac",
        "opus" => "opus",
        other => return Err(CodecError::Unknown(other.chars().take(16).collect())),
    };
    let bad = |reason: String| CodecError::Format { codec, reason };
    if f.sample_rate == 0 || f.sample_rate > MAX_RATE_HZ {
        return Err(bad(format!("sample rate {} Hz out of range", f.sample_rate)));
    }
    if f.channels == 0 || f.channels > MAX_CHANNELS {
        return Err(bad(format!("{} channels out of range 1..={MAX_CHANNELS}", f.channels)));
    }
    let header = match codec {
        "pcm" => {
            let bytes = match f.bit_depth {
                16 => 2,
                24 => 3,
                32 => 4,
                b => return Err(bad(format!("bit depth {b} not supported (16, 24, 32)"))),
            };
            wav_header(f.sample_rate, f.channels, bytes)
        }
        "flac" => flac_header(f)?,
        _ => {
            if ![8_000, 12_000, 16_000, 24_000, 48_000].contains(&f.sample_rate) {
                return Err(bad(format!("sample rate {} Hz is not an Opus rate", f.sample_rate)));
            }
            if f.channels > 2 {
                return Err(bad(format!("{} channels (Opus here: 1 or 2)", f.channels)));
            }
            let mut h = Vec::with_capacity(12);
            h.extend_from_slice(&OPUS_MAGIC.to_le_bytes());
            h.extend_from_slice(&f.sample_rate.to_le_bytes());
            h.extend_from_slice(&16u16.to_le_bytes());
            h.extend_from_slice(&f.channels.to_le_bytes());
            h
        }
    };
    Ok(DecoderSetup { codec, header })
}

/// A 44-byte RIFF/WAVE header for integer PCM of `bytes` bytes per sample.
fn wav_header(rate_hz: u32, channels: u16, bytes: u16) -> Vec<u8> {
    let block_align = channels * bytes;
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&36u32.to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&1u16.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate_hz.to_le_bytes());
    h.extend_from_slice(&(rate_hz * u32::from(block_align)).to_le_bytes());
    h.extend_from_slice(&block_align.to_le_bytes());
    h.extend_from_slice(&(bytes * 8).to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&0u32.to_le_bytes());
    h
}

/// The decoded FLAC header, checked against the message.
fn flac_header(f: &StreamFormat) -> Result<Vec<u8>, CodecError> {
    let b64 = f
        .codec_header
        .as_deref()
        .ok_or_else(|| CodecError::Header("missing (FLAC needs STREAMINFO)".into()))?;
    // Base64 grows by 4/3: refuse before decoding what could not fit.
    if b64.len() > MAX_CODEC_HEADER_BYTES / 3 * 4 + 4 {
        return Err(CodecError::Header(format!(
            "{} Base64 characters, over the {MAX_CODEC_HEADER_BYTES}-byte bound",
            b64.len()
        )));
    }
    let h = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| CodecError::Header(format!("not Base64: {e}")))?;
    // "fLaC", a metadata block header (type 0 = STREAMINFO, 34 bytes), then STREAMINFO.
    if h.len() < 4 + 4 + 34 || &h[0..4] != b"fLaC" {
        return Err(CodecError::Header(format!(
            "{} bytes not starting with fLaC and a STREAMINFO block",
            h.len()
        )));
    }
    let (kind, len) = (h[4] & 0x7f, u32::from_be_bytes([0, h[5], h[6], h[7]]));
    if kind != 0 || len < 34 {
        return Err(CodecError::Header(format!(
            "first metadata block is type {kind} of {len} bytes, not STREAMINFO (type 0, 34 bytes)"
        )));
    }
    let si = &h[8..8 + 34];
    // STREAMINFO bits 80..: 20 bits rate, 3 bits channels − 1, 5 bits bits-per-sample − 1.
    let rate = (u32::from(si[10]) << 12) | (u32::from(si[11]) << 4) | (u32::from(si[12]) >> 4);
    let channels = u16::from((si[12] >> 1) & 0x07) + 1;
    let bits = ((u16::from(si[12] & 1) << 4) | u16::from(si[13] >> 4)) + 1;
    if (rate, channels, bits) != (f.sample_rate, f.channels, f.bit_depth) {
        return Err(CodecError::Lies {
            header: format!("{rate} Hz, {channels} ch, {bits} bit"),
            message: format!("{} Hz, {} ch, {} bit", f.sample_rate, f.channels, f.bit_depth),
        });
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapcast::decoder::new_decoder;
    use crate::timeline::AudioFormat;

    fn fmt(codec: &str, rate: u32, ch: u16, bits: u16, header: Option<&[u8]>) -> StreamFormat {
        StreamFormat {
            codec: codec.into(),
            sample_rate: rate,
            channels: ch,
            bit_depth: bits,
            codec_header: header.map(|h| base64::engine::general_purpose::STANDARD.encode(h)),
        }
    }

    /// `fLaC` + STREAMINFO for `rate`/`ch`/`bits` (block sizes 4096, no frame sizes, no total, no MD5), as
    /// aiosendspin sends it (last-block flag set).
    fn streaminfo(rate: u32, ch: u8, bits: u8) -> Vec<u8> {
        let mut h = b"fLaC\x80\x00\x00\x22".to_vec();
        let mut si = [0u8; 34];
        si[0..2].copy_from_slice(&4096u16.to_be_bytes());
        si[2..4].copy_from_slice(&4096u16.to_be_bytes());
        si[10] = (rate >> 12) as u8;
        si[11] = (rate >> 4) as u8;
        si[12] = ((rate & 0xf) as u8) << 4 | (ch - 1) << 1 | (bits - 1) >> 4;
        si[13] = ((bits - 1) & 0xf) << 4;
        h.extend_from_slice(&si);
        h
    }

    #[test]
    fn each_codec_becomes_a_decoder_of_the_announced_format() {
        for f in [
            fmt("pcm", 48_000, 2, 16, None),
            fmt("pcm", 44_100, 2, 24, None),
            fmt("pcm", 48_000, 1, 32, None),
            fmt("flac", 48_000, 2, 16, Some(&streaminfo(48_000, 2, 16))),
            fmt("flac", 44_100, 2, 24, Some(&streaminfo(44_100, 2, 24))),
            fmt("opus", 48_000, 2, 16, None),
        ] {
            let s = decoder_setup(&f).unwrap_or_else(|e| panic!("{f:?}: {e}"));
            let d = new_decoder(s.codec, &s.header).unwrap_or_else(|e| panic!("{f:?}: {e}"));
            assert_eq!(
                d.format(),
                AudioFormat {
                    rate_hz: f.sample_rate,
                    channels: f.channels
                },
                "{f:?}"
            );
        }
    }

    #[test]
    fn pcm_24_bit_is_packed_in_three_bytes() {
        let s = decoder_setup(&fmt("pcm", 48_000, 2, 24, None)).unwrap();
        let mut d = new_decoder(s.codec, &s.header).unwrap();
        // One stereo frame: left = 0x400000 (+0.5), right = 0xC00000 (−0.5).
        let mut out = Vec::new();
        assert_eq!(d.decode(&[0, 0, 0x40, 0, 0, 0xC0], &mut out).unwrap(), 1);
        assert_eq!(out, [0.5, -0.5]);
    }

    #[test]
    fn bad_formats_and_lying_headers_are_refused_naming_what() {
        for (f, want) in [
            (fmt("mp3", 48_000, 2, 16, None), "codec \"mp3\""),
            (fmt("pcm", 0, 2, 16, None), "sample rate 0"),
            (fmt("pcm", 48_000, 9, 16, None), "9 channels"),
            (fmt("pcm", 48_000, 2, 8, None), "bit depth 8"),
            (fmt("opus", 44_100, 2, 16, None), "not an Opus rate"),
            (fmt("opus", 48_000, 6, 16, None), "6 channels"),
            (fmt("flac", 48_000, 2, 16, None), "missing"),
            (fmt("flac", 48_000, 2, 16, Some(b"OggS....")), "not starting with fLaC"),
            (
                fmt("flac", 48_000, 2, 16, Some(&streaminfo(44_100, 2, 16))),
                "says 44100 Hz, 2 ch, 16 bit, stream/start says 48000 Hz, 2 ch, 16 bit",
            ),
            (
                fmt("flac", 48_000, 2, 16, Some(&streaminfo(48_000, 1, 24))),
                "1 ch, 24 bit",
            ),
        ] {
            let e = decoder_setup(&f).unwrap_err().to_string();
            assert!(e.contains(want), "{f:?}: {e}");
        }
        let mut f = fmt("flac", 48_000, 2, 16, None);
        f.codec_header = Some("!!!".into());
        assert!(decoder_setup(&f).unwrap_err().to_string().contains("not Base64"));
        f.codec_header = Some("A".repeat(MAX_CODEC_HEADER_BYTES * 2));
        assert!(decoder_setup(&f).unwrap_err().to_string().contains("bound"));
    }
}
