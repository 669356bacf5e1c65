//! `stream/start` (the format of the audio that follows), `stream/clear`, `stream/end` and `group/update`.

use serde::Deserialize;

/// Highest sample rate accepted, Hz.
pub const MAX_RATE_HZ: u32 = 384_000;
/// Most channels accepted.
pub const MAX_CHANNELS: u16 = 8;

/// `stream/start.player`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StreamFormat {
    /// `pcm`, `flac` or `opus`.
    pub codec: String,
    /// Frames per second.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// Bits per sample.
    pub bit_depth: u16,
    /// Base64 codec header (FLAC's STREAMINFO), when the codec has one.
    #[serde(default)]
    pub codec_header: Option<String>,
}

/// `stream/start`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StreamStart {
    /// The player part (absent when the stream is for other roles only).
    #[serde(default)]
    pub player: Option<StreamFormat>,
}

/// The PCM layout of a chunk's payload: little-endian signed integers, interleaved (see
/// [`decode_pcm`](super::audio::decode_pcm); a stream's format is checked by
/// [`decoder_setup`](super::codec::decoder_setup)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmFormat {
    /// Frames per second.
    pub rate_hz: u32,
    /// Channels.
    pub channels: u16,
    /// Bytes per sample: 2, 3 or 4.
    pub bytes_per_sample: u16,
}

/// `group/update`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupUpdate {
    /// `playing`, `stopped`, …
    #[serde(default)]
    pub playback_state: Option<String>,
    /// The group's id.
    #[serde(default)]
    pub group_id: Option<String>,
    /// The group's name.
    #[serde(default)]
    pub group_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::super::{decode_server_text, ServerMessage};
    use super::*;

    #[test]
    fn the_reference_servers_stream_start_parses() {
        let m = decode_server_text(
            r#"{"payload":{"server_transmitted":36033841531,"player":{"codec":"pcm","sample_rate":48000,"channels":2,"bit_depth":16}},"type":"stream/start"}"#,
        )
        .unwrap();
        let ServerMessage::StreamStart(s) = m else {
            panic!("{m:?}")
        };
        assert_eq!(
            s.player,
            Some(StreamFormat {
                codec: "pcm".into(),
                sample_rate: 48_000,
                channels: 2,
                bit_depth: 16,
                codec_header: None
            })
        );
    }
}
