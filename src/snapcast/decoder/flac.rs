//! `flac`: the header is every byte libFLAC wrote before the first frame (`fLaC`, STREAMINFO, more metadata);
//! each chunk holds whole FLAC frames.
//!
//! The header is parsed once with claxon for STREAMINFO (rate, channels, bits). Each chunk is then decoded on its
//! own with a fresh claxon frame reader over just that chunk's bytes: a frame that does not end inside its chunk is
//! an error, so nothing is carried between chunks and every chunk is decoded completely when it arrives.

use super::{chunk_limit_frames, DecodeError, Decoder};
use crate::timeline::AudioFormat;
use claxon::frame::FrameReader;
use std::io::Cursor;

const CODEC: &str = "flac";

/// FLAC via claxon.
pub(super) struct FlacDecoder {
    format: AudioFormat,
    bits: u32,
    /// Reused between frames.
    buffer: Vec<i32>,
}

impl FlacDecoder {
    pub(super) fn new(header: &[u8]) -> Result<Self, DecodeError> {
        let bad = |reason: String| DecodeError::BadHeader { codec: CODEC, reason };
        let options = claxon::FlacReaderOptions {
            metadata_only: true,
            read_vorbis_comment: false,
        };
        let reader = claxon::FlacReader::new_ext(Cursor::new(header), options).map_err(|e| bad(e.to_string()))?;
        let info = reader.streaminfo();
        if !(4..=32).contains(&info.bits_per_sample) {
            return Err(bad(format!(
                "{} bits per sample is outside 4..=32",
                info.bits_per_sample
            )));
        }
        if info.channels == 0 || info.channels > super::MAX_CHANNELS as u32 {
            return Err(bad(format!(
                "{} channels is outside 1..={}",
                info.channels,
                super::MAX_CHANNELS
            )));
        }
        Ok(Self {
            format: AudioFormat {
                rate_hz: info.sample_rate,
                channels: info.channels as u16,
            },
            bits: info.bits_per_sample,
            buffer: Vec::new(),
        })
    }
}

impl Decoder for FlacDecoder {
    fn format(&self) -> AudioFormat {
        self.format
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<f32>) -> Result<usize, DecodeError> {
        let bad = |reason: String| DecodeError::BadChunk { codec: CODEC, reason };
        let limit_frames = chunk_limit_frames(self.format);
        let channels = self.format.channels as usize;
        let scale = (2.0f64).powi(1 - self.bits as i32) as f32;
        let mut cursor = Cursor::new(payload);
        let mut frames = 0usize;
        let mut blocks = 0usize;
        loop {
            let left = payload.len() - cursor.position() as usize;
            if left == 0 {
                break;
            }
            let buffer = std::mem::take(&mut self.buffer);
            // claxon reports a lone trailing byte as a clean end of stream, so the end is checked above instead.
            let block = match FrameReader::new(&mut cursor).read_next_or_eof(buffer) {
                Ok(Some(block)) => block,
                Ok(None) => return Err(bad(format!("{left} trailing bytes after the last FLAC frame"))),
                Err(e) => return Err(bad(format!("FLAC frame {blocks} of the chunk: {e}"))),
            };
            if block.channels() as usize != channels {
                return Err(bad(format!(
                    "frame has {} channels, STREAMINFO says {channels}",
                    block.channels()
                )));
            }
            let len = block.duration() as usize;
            if frames + len > limit_frames {
                return Err(DecodeError::ChunkTooLong {
                    codec: CODEC,
                    limit_frames,
                });
            }
            out.reserve(len * channels);
            for i in 0..len as u32 {
                for ch in 0..channels as u32 {
                    out.push(block.sample(ch, i) as f32 * scale);
                }
            }
            frames += len;
            blocks += 1;
            self.buffer = block.into_buffer();
        }
        Ok(frames)
    }
}
