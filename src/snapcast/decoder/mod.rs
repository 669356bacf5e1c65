//! Codec payloads to interleaved `f32`: one [`Decoder`] per CodecHeader, fed every WireChunk that follows.
//!
//! Snapserver's codecs and what their header and chunks hold (see `notes/snapcast.md` §2):
//!
//! | codec | CodecHeader | each WireChunk |
//! |---|---|---|
//! | `pcm` | 44-byte RIFF/WAVE header | raw interleaved little-endian samples (24-bit in 4-byte containers) |
//! | `flac` | `fLaC` + STREAMINFO + other metadata blocks | whole FLAC frames |
//! | `opus` | 12-byte pseudo header: `OPUS` magic, rate, bits, channels | one raw Opus packet |
//! | `ogg` | the Ogg pages holding the 3 Vorbis header packets | whole Ogg pages |
//! | `null` | nothing | ignored |
//!
//! A header or chunk that lies (rate 0, no channels, a payload that is not a whole number of frames, a frame whose
//! channel count differs from the header's) is an error, never a panic: the client then drops the connection.
//! Third-party decoders (claxon, lewton, libopus) run behind a panic guard for the same reason. Output per chunk is
//! capped at [`MAX_CHUNK_MS`] so a tiny hostile chunk cannot expand into gigabytes.

mod flac;
mod ogg;
mod opus;
mod pcm;

use crate::timeline::AudioFormat;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Most channels any codec may announce.
pub const MAX_CHANNELS: u16 = 8;
/// Highest sample rate accepted, in Hz.
pub const MAX_RATE_HZ: u32 = 192_000;
/// Longest audio one chunk may decode to, in milliseconds (snapserver's chunks are 10–60 ms).
pub const MAX_CHUNK_MS: u32 = 5_000;

/// Why a header or chunk could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The CodecHeader names a codec we do not have.
    #[error("unknown codec {0:?} (expected pcm, flac, opus, ogg or null)")]
    UnknownCodec(String),
    /// The codec header is malformed or announces an impossible format.
    #[error("{codec} header is invalid: {reason}")]
    BadHeader {
        /// Codec name.
        codec: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A chunk does not decode.
    #[error("{codec} chunk is invalid: {reason}")]
    BadChunk {
        /// Codec name.
        codec: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A chunk decodes to more audio than [`MAX_CHUNK_MS`].
    #[error("{codec} chunk decodes to more than {limit_frames} frames ({MAX_CHUNK_MS} ms)")]
    ChunkTooLong {
        /// Codec name.
        codec: &'static str,
        /// The cap.
        limit_frames: usize,
    },
}

/// Decodes the chunks of one codec stream. Push model: the client calls [`Decoder::decode`] once per WireChunk, in
/// order, and the decoder appends whatever audio that chunk completes.
pub trait Decoder: Send {
    /// Rate and channels of the audio this decoder produces (fixed for its lifetime).
    fn format(&self) -> AudioFormat;

    /// Decodes one chunk's payload, appending interleaved samples in `[-1, 1)` to `out`; returns the frames
    /// appended. On error `out` may hold part of the chunk; the stream should be abandoned.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<f32>) -> Result<usize, DecodeError>;
}

/// The decoder for a CodecHeader.
pub fn new_decoder(codec: &str, header: &[u8]) -> Result<Box<dyn Decoder>, DecodeError> {
    let codec_name: &'static str = match codec {
        "pcm" => "pcm",
        "flac" => "flac",
        "opus" => "opus",
        "ogg" => "ogg",
        "null" => "null",
        other => return Err(DecodeError::UnknownCodec(other.chars().take(64).collect())),
    };
    let built = guarded(codec_name, true, || -> Result<Box<dyn Decoder>, DecodeError> {
        Ok(match codec_name {
            "pcm" => Box::new(pcm::PcmDecoder::new(header)?),
            "flac" => Box::new(flac::FlacDecoder::new(header)?),
            "opus" => Box::new(opus::OpusDecoder::new(header)?),
            "ogg" => Box::new(ogg::VorbisDecoder::new(header)?),
            _ => Box::new(NullDecoder),
        })
    })?;
    let f = built.format();
    check_format(codec_name, f)?;
    Ok(Box::new(Guarded {
        codec: codec_name,
        inner: built,
    }))
}

/// Checks a format announced by a header against the limits.
fn check_format(codec: &'static str, f: AudioFormat) -> Result<(), DecodeError> {
    let bad = |reason: String| Err(DecodeError::BadHeader { codec, reason });
    if f.rate_hz == 0 || f.rate_hz > MAX_RATE_HZ {
        return bad(format!("sample rate {} Hz is outside 1..={MAX_RATE_HZ}", f.rate_hz));
    }
    if f.channels == 0 || f.channels > MAX_CHANNELS {
        return bad(format!("{} channels is outside 1..={MAX_CHANNELS}", f.channels));
    }
    Ok(())
}

/// Most frames one chunk of `format` may produce.
fn chunk_limit_frames(format: AudioFormat) -> usize {
    (format.rate_hz as u64 * MAX_CHUNK_MS as u64 / 1000) as usize
}

/// `v` clamped into `[-1, 1)`; NaN becomes silence.
fn clamp_sample(v: f32) -> f32 {
    /// The largest `f32` below 1.
    const BELOW_ONE: f32 = 1.0 - f32::EPSILON / 2.0;
    if v.is_nan() {
        0.0
    } else {
        v.clamp(-1.0, BELOW_ONE)
    }
}

/// Runs third-party decoder code, turning a panic into an error.
fn guarded<T>(codec: &'static str, header: bool, f: impl FnOnce() -> Result<T, DecodeError>) -> Result<T, DecodeError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        let reason = "the decoder library panicked on this input".to_string();
        Err(if header {
            DecodeError::BadHeader { codec, reason }
        } else {
            DecodeError::BadChunk { codec, reason }
        })
    })
}

/// Wraps a decoder: panic guard, output cap and clamping in one place.
struct Guarded {
    codec: &'static str,
    inner: Box<dyn Decoder>,
}

impl Decoder for Guarded {
    fn format(&self) -> AudioFormat {
        self.inner.format()
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<f32>) -> Result<usize, DecodeError> {
        let start = out.len();
        let frames = guarded(self.codec, false, || self.inner.decode(payload, out))?;
        let channels = self.inner.format().channels as usize;
        if out.len() - start != frames * channels {
            out.truncate(start);
            return Err(DecodeError::BadChunk {
                codec: self.codec,
                reason: "decoder produced a partial frame".to_string(),
            });
        }
        for s in &mut out[start..] {
            *s = clamp_sample(*s);
        }
        Ok(frames)
    }
}

/// The `null` codec: no audio.
struct NullDecoder;

impl Decoder for NullDecoder {
    fn format(&self) -> AudioFormat {
        AudioFormat::STEREO_48K
    }

    fn decode(&mut self, _payload: &[u8], _out: &mut Vec<f32>) -> Result<usize, DecodeError> {
        Ok(0)
    }
}

#[cfg(test)]
mod tests;
