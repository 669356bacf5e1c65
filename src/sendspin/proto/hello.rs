//! `client/hello` (who the player is and what it plays) and `server/hello` (the server's answer).

use serde::{Deserialize, Serialize};

/// The role this player takes.
pub const PLAYER_ROLE: &str = "player@v1";

/// A PCM format the player accepts (`player@v1_support.supported_formats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportedFormat {
    /// `pcm` (this slice accepts PCM only).
    pub codec: &'static str,
    /// Channels.
    pub channels: u16,
    /// Frames per second.
    pub sample_rate: u32,
    /// Bits per sample.
    pub bit_depth: u16,
}

/// `player@v1_support`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlayerSupport {
    /// In order of preference.
    pub supported_formats: Vec<SupportedFormat>,
    /// Bytes of not-yet-played audio the player buffers at most.
    pub buffer_capacity: u32,
}

/// `client/hello` in the transition-mode form (plain text: the id and version travel in the hello itself).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientHello {
    /// Stable id of this player.
    pub client_id: String,
    /// The name users see.
    pub name: String,
    /// Protocol version (1).
    pub version: u32,
    /// `["player@v1"]`.
    pub supported_roles: Vec<&'static str>,
    /// What the player plays.
    #[serde(rename = "player@v1_support")]
    pub player_support: PlayerSupport,
}

/// `buffer_capacity` for a player that holds `ahead_ms` of audio in any of `formats`: that long at the fastest
/// format's PCM byte rate (the spec counts the bytes of the audio messages it holds unplayed; for PCM those are the
/// samples), so the server never sends further ahead than the player's buffer, whichever format it picks.
pub fn buffer_capacity_bytes(ahead_ms: u32, formats: &[SupportedFormat]) -> u32 {
    let per_s = formats
        .iter()
        .map(|f| f.sample_rate as u64 * f.channels as u64 * (f.bit_depth as u64).div_ceil(8))
        .max()
        .unwrap_or(0);
    (per_s * ahead_ms as u64 / 1000).min(u32::MAX as u64) as u32
}

/// The formats this player lists in its hello, in order of preference: 16-bit stereo PCM at 48 and 44.1 kHz.
pub fn player_formats() -> Vec<SupportedFormat> {
    let pcm = |sample_rate| SupportedFormat {
        codec: "pcm",
        channels: 2,
        sample_rate,
        bit_depth: 16,
    };
    vec![pcm(48_000), pcm(44_100)]
}

/// Whether `f` (a `stream/start` format) is one of `offered` (the spec: the server's format MUST be one the player
/// listed; one it did not is a lie, refused rather than guessed at).
pub fn offered(offered: &[SupportedFormat], f: &super::stream::StreamFormat) -> bool {
    offered.iter().any(|o| {
        o.codec == f.codec && o.sample_rate == f.sample_rate && o.channels == f.channels && o.bit_depth == f.bit_depth
    })
}

impl ClientHello {
    /// The hello of a player named `name` with id `client_id` that plays 16-bit stereo PCM at 48 or 44.1 kHz and
    /// buffers `ahead_ms` of it (see [`buffer_capacity_bytes`]).
    pub fn player(client_id: &str, name: &str, ahead_ms: u32) -> Self {
        let supported_formats = player_formats();
        Self {
            client_id: client_id.into(),
            name: name.into(),
            version: 1,
            supported_roles: vec![PLAYER_ROLE],
            player_support: PlayerSupport {
                buffer_capacity: buffer_capacity_bytes(ahead_ms, &supported_formats),
                supported_formats,
            },
        }
    }

    /// The message text.
    pub fn encode(&self) -> String {
        super::encode("client/hello", self)
    }
}

/// `server/hello` (transition mode: it also says which roles are active).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ServerHello {
    /// The server's id.
    pub server_id: String,
    /// Its name.
    pub name: String,
    /// Protocol version.
    #[serde(default)]
    pub version: Option<u32>,
    /// The roles the server activated for this client.
    #[serde(default)]
    pub active_roles: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::super::{decode_server_text, ServerMessage};
    use super::*;

    #[test]
    fn the_hello_names_the_player_its_role_and_formats() {
        let v: serde_json::Value =
            serde_json::from_str(&ClientHello::player("bluebridge-k", "k", 3_000).encode()).unwrap();
        assert_eq!(v["type"], "client/hello");
        assert_eq!(v["payload"]["client_id"], "bluebridge-k");
        assert_eq!(v["payload"]["supported_roles"][0], "player@v1");
        assert_eq!(
            v["payload"]["player@v1_support"]["supported_formats"][0]["sample_rate"],
            48_000
        );
        // 3 s of 48 kHz stereo s16, the fastest format listed.
        assert_eq!(v["payload"]["player@v1_support"]["buffer_capacity"], 576_000);
    }

    #[test]
    fn the_buffer_capacity_is_the_time_ahead_at_the_fastest_format() {
        let f = |sample_rate, channels, bit_depth| SupportedFormat {
            codec: "pcm",
            channels,
            sample_rate,
            bit_depth,
        };
        assert_eq!(buffer_capacity_bytes(1_000, &[f(44_100, 2, 16)]), 176_400);
        assert_eq!(
            buffer_capacity_bytes(1_000, &[f(44_100, 2, 16), f(48_000, 2, 24)]),
            288_000
        );
        assert_eq!(buffer_capacity_bytes(1_000, &[]), 0);
        assert_eq!(buffer_capacity_bytes(u32::MAX, &[f(192_000, 8, 32)]), u32::MAX);
    }

    #[test]
    fn the_reference_servers_hello_parses() {
        // As aiosendspin 10.2.1 sends it in transition mode.
        let m = decode_server_text(
            r#"{"payload":{"server_id":"-g9q","name":"t","version":1,"connection_reason":"discovery","active_roles":["player@v1"]},"type":"server/hello"}"#,
        )
        .unwrap();
        let ServerMessage::Hello(h) = m else { panic!("{m:?}") };
        assert_eq!(h.active_roles, vec!["player@v1".to_string()]);
        assert_eq!(h.version, Some(1));
    }
}
