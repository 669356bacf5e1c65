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

/// The PCM layout a player decodes: little-endian signed integers, interleaved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcmFormat {
    /// Frames per second.
    pub rate_hz: u32,
    /// Channels.
    pub channels: u16,
    /// Bytes per sample: 2, 3 or 4.
    pub bytes_per_sample: u16,
}

impl StreamFormat {
    /// The PCM layout, or why this player cannot play the stream.
    pub fn pcm(&self) -> Result<PcmFormat, String> {
        if self.codec != "pcm" {
            return Err(format!(
                "codec {:?} not supported yet (pcm only)",
                self.codec.chars().take(16).collect::<String>()
            ));
        }
        if self.sample_rate == 0 || self.sample_rate > MAX_RATE_HZ {
            return Err(format!("sample rate {} Hz out of range", self.sample_rate));
        }
        if self.channels == 0 || self.channels > MAX_CHANNELS {
            return Err(format!("{} channels out of range", self.channels));
        }
        let bytes_per_sample = match self.bit_depth {
            16 => 2,
            24 => 3,
            32 => 4,
            b => return Err(format!("bit depth {b} not supported")),
        };
        Ok(PcmFormat {
            rate_hz: self.sample_rate,
            channels: self.channels,
            bytes_per_sample,
        })
    }
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
    fn the_reference_servers_stream_start_parses_to_pcm() {
        let m = decode_server_text(
            r#"{"payload":{"server_transmitted":36033841531,"player":{"codec":"pcm","sample_rate":48000,"channels":2,"bit_depth":16}},"type":"stream/start"}"#,
        )
        .unwrap();
        let ServerMessage::StreamStart(s) = m else {
            panic!("{m:?}")
        };
        assert_eq!(
            s.player.unwrap().pcm(),
            Ok(PcmFormat {
                rate_hz: 48_000,
                channels: 2,
                bytes_per_sample: 2
            })
        );
    }

    #[test]
    fn formats_a_player_cannot_play_are_refused_with_the_reason() {
        let f = |codec: &str, sample_rate, channels, bit_depth| StreamFormat {
            codec: codec.into(),
            sample_rate,
            channels,
            bit_depth,
            codec_header: None,
        };
        assert!(f("opus", 48_000, 2, 16).pcm().unwrap_err().contains("opus"));
        assert!(f("pcm", 0, 2, 16).pcm().is_err());
        assert!(f("pcm", 48_000, 0, 16).pcm().is_err());
        assert!(f("pcm", 48_000, 200, 16).pcm().is_err());
        assert!(f("pcm", 48_000, 2, 12).pcm().is_err());
        assert_eq!(f("pcm", 44_100, 1, 24).pcm().unwrap().bytes_per_sample, 3);
    }
}
