//! A player's stream: what a `stream/start` set up (a decoder of bluebridge's own, via
//! [`decoder_setup`](super::proto::codec::decoder_setup)) and each chunk's payload decoded to timeline samples.
//!
//! Timing: a chunk's timestamp is the play time of the first sample its payload decodes to, for every codec, so
//! the decoded samples go onto the timeline from that timestamp as they are. Checked in aiosendspin 10.2.1: the
//! server stamps each encoded frame with the encoder's running position (`server/push_stream.py`
//! `_encode_for_transform_key`: `pending_timestamp_us − total duration`, then `+ duration` per frame), which starts
//! at the first input sample (FLAC: `audio/codecs.py` `FlacEncoder.process`, no lookahead) or, for Opus, one
//! encoder lookahead (the OpusHead pre-skip, 312 frames = 6.5 ms at 48 kHz) before it (`OpusEncoder.process`:
//! `first_input − lookahead_us`). The decoder's first pre-skip frames are that lookahead, so they are played, not
//! dropped: dropping them (as an Ogg player would) puts every Opus chunk 6.5 ms early.
//!
//! Bad input: a `stream/start` this player cannot play (a format it did not list, a codec header that lies or that
//! the decoder refuses) is a [`StreamError`]: the client drops the connection and reconnects with backoff. A chunk
//! that does not decode is skipped; [`MAX_BAD_CHUNKS`] in a row are a stream that does not decode, and the client
//! reconnects.
//!
//! Pure: no I/O.

use super::proto::codec::{decoder_setup, CodecError, DecoderSetup};
use super::proto::hello::{offered, SupportedFormat};
use super::proto::stream::StreamFormat;
use crate::snapcast::decoder::{new_decoder, DecodeError, Decoder};
use crate::timeline::AudioFormat;
use std::sync::Mutex;

/// Chunks in a row that fail to decode before the stream is given up on (about 0.5 s of Opus, 2.4 s of FLAC).
pub const MAX_BAD_CHUNKS: u32 = 25;

/// Why a `stream/start` cannot be played.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// Not one of the formats the player listed in its hello.
    #[error("stream/start format {0} is not one this player offered")]
    NotOffered(String),
    /// The format or its codec header is refused (a header that lies names both sides).
    #[error("stream/start: {0}")]
    Codec(#[from] CodecError),
    /// The decoder refused the header.
    #[error("stream/start: {0}")]
    Decoder(#[from] DecodeError),
}

/// Why a chunk gave no audio.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// This chunk does not decode; it is skipped.
    #[error("{0}")]
    Skipped(DecodeError),
    /// [`MAX_BAD_CHUNKS`] in a row did not decode: the stream is broken.
    #[error("the stream does not decode ({MAX_BAD_CHUNKS} chunks in a row), the last: {0}")]
    Broken(DecodeError),
}

/// One stream's decoder.
pub struct Stream {
    setup: DecoderSetup,
    /// In a mutex only to make the stream `Sync` (the client's session is borrowed across awaits); every use has
    /// `&mut self`, so it is never locked.
    decoder: Mutex<Box<dyn Decoder>>,
    announced: String,
    bad_in_row: u32,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream").field("format", &self.announced).finish()
    }
}

/// `codec/rate Hz/channels ch/bits bit`, the codec name bounded (it comes from the server).
fn describe(f: &StreamFormat) -> String {
    format!(
        "{}/{} Hz/{} ch/{} bit",
        f.codec.chars().take(16).collect::<String>(),
        f.sample_rate,
        f.channels,
        f.bit_depth
    )
}

impl Stream {
    /// The decoder for `f`, which must be one of `listed` (the player's hello formats).
    pub fn start(listed: &[SupportedFormat], f: &StreamFormat) -> Result<Self, StreamError> {
        if !offered(listed, f) {
            return Err(StreamError::NotOffered(describe(f)));
        }
        let setup = decoder_setup(f)?;
        let decoder = new_decoder(setup.codec, &setup.header)?;
        Ok(Self {
            setup,
            decoder: Mutex::new(decoder),
            announced: describe(f),
            bad_in_row: 0,
        })
    }

    /// What the decoder produces.
    pub fn format(&self) -> AudioFormat {
        self.decoder.lock().expect("never locked").format()
    }

    /// The announced format, for logs.
    pub fn describe(&self) -> &str {
        &self.announced
    }

    /// A fresh decoder for the same stream (after `stream/clear`: no state carried over a seek).
    pub fn restart(&mut self) {
        if let Ok(d) = new_decoder(self.setup.codec, &self.setup.header) {
            self.decoder = Mutex::new(d);
        }
        self.bad_in_row = 0;
    }

    /// One chunk's payload as interleaved samples, the first at the chunk's timestamp.
    pub fn decode(&mut self, payload: &[u8]) -> Result<Vec<f32>, ChunkError> {
        let mut out = Vec::new();
        let decoder = self.decoder.get_mut().expect("never poisoned");
        match decoder.decode(payload, &mut out) {
            Ok(_) => {
                self.bad_in_row = 0;
                Ok(out)
            }
            Err(e) => {
                self.bad_in_row += 1;
                if self.bad_in_row >= MAX_BAD_CHUNKS {
                    Err(ChunkError::Broken(e))
                } else {
                    Err(ChunkError::Skipped(e))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
