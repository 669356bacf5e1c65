//! `client/hello` (who the player is and what it plays) and `server/hello` (the server's answer).

use serde::{Deserialize, Serialize};

/// The role this player takes.
pub const PLAYER_ROLE: &str = "player@v1";

/// A format the player accepts (`player@v1_support.supported_formats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupportedFormat {
    /// `flac`, `pcm` or `opus`.
    pub codec: &'static str,
    /// Channels.
    pub channels: u16,
    /// Frames per second.
    pub sample_rate: u32,
    /// Bits per sample (ignored for `opus`: the spec and aiosendspin's `SupportedAudioFormat.matches`).
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

/// `client/hello`, in either form: the transition-mode one (plain text: the id and version travel in the hello
/// itself) or the encrypted one (the id and version were in `client/init`; the hello says which pairing methods the
/// player offers and that it admits unpaired access).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientHello {
    /// Stable id of this player (transition mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The name users see.
    pub name: String,
    /// Protocol version (1; transition mode only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// `["player@v1"]`.
    pub supported_roles: Vec<&'static str>,
    /// What the player plays.
    #[serde(rename = "player@v1_support")]
    pub player_support: PlayerSupport,
    /// Encrypted only: the pairing methods offered. aiosendspin's server flags a hello without `pairing_psk` as
    /// non-compliant (and a strict server refuses it, `server/connection.py` `_note_pair_method_wire`), so it is
    /// offered, with no hint where its secret is; this player never pairs (it holds no Pairing PSK), it plays
    /// unpaired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supported_pair_methods: Option<PairMethods>,
    /// Encrypted only: `{"enabled": true}`: the player plays unpaired once the server trusts its client_id
    /// (`server/connection.py` `_playback_capable`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unpaired_access: Option<UnpairedAccess>,
}

/// `supported_pair_methods`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairMethods {
    /// `pairing_psk`: an empty descriptor.
    pub pairing_psk: serde_json::Map<String, serde_json::Value>,
}

/// `unpaired_access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct UnpairedAccess {
    /// Whether the player admits unpaired playback.
    pub enabled: bool,
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

/// The formats this player lists in its hello, in order of preference (the spec: "first is preferred";
/// aiosendspin 10.2.1 takes the first one it can encode, `server/roles/player/v1.py` `_ensure_preferred_format`,
/// unless the operator or the player's `client/state` picked another): 16-bit stereo FLAC at 48 and 44.1 kHz
/// (lossless at about half PCM's bandwidth, which counts when every speaker is a player of its own), the same as
/// PCM (every server can send it; the spec asks each player to list FLAC or PCM), then Opus at 48 kHz (lossy: only
/// when the operator chooses it, e.g. for a weak Wi-Fi link).
pub fn player_formats() -> Vec<SupportedFormat> {
    let f = |codec, sample_rate| SupportedFormat {
        codec,
        channels: 2,
        sample_rate,
        bit_depth: 16,
    };
    vec![
        f("flac", 48_000),
        f("flac", 44_100),
        f("pcm", 48_000),
        f("pcm", 44_100),
        f("opus", 48_000),
    ]
}

/// Whether `f` (a `stream/start` format) is one of `offered` (the spec: the server's format MUST be one the player
/// listed; one it did not is a lie, refused rather than guessed at). Opus ignores the bit depth, as the spec says
/// (aiosendspin announces Opus as 16-bit whatever was listed).
pub fn offered(offered: &[SupportedFormat], f: &super::stream::StreamFormat) -> bool {
    offered.iter().any(|o| {
        o.codec == f.codec
            && o.sample_rate == f.sample_rate
            && o.channels == f.channels
            && (o.codec == "opus" || o.bit_depth == f.bit_depth)
    })
}

impl ClientHello {
    /// The hello of a player named `name` with id `client_id` that plays [`player_formats`] and buffers `ahead_ms`
    /// of them (see [`buffer_capacity_bytes`]).
    pub fn player(client_id: &str, name: &str, ahead_ms: u32) -> Self {
        let supported_formats = player_formats();
        Self {
            client_id: Some(client_id.into()),
            name: name.into(),
            version: Some(1),
            supported_roles: vec![PLAYER_ROLE],
            player_support: PlayerSupport {
                buffer_capacity: buffer_capacity_bytes(ahead_ms, &supported_formats),
                supported_formats,
            },
            supported_pair_methods: None,
            unpaired_access: None,
        }
    }

    /// The same player's hello on an encrypted connection (`client/connection.py` `_build_client_hello`).
    pub fn secure_player(name: &str, ahead_ms: u32) -> Self {
        Self {
            client_id: None,
            version: None,
            supported_pair_methods: Some(PairMethods {
                pairing_psk: Default::default(),
            }),
            unpaired_access: Some(UnpairedAccess { enabled: true }),
            ..Self::player("", name, ahead_ms)
        }
    }

    /// The message text.
    pub fn encode(&self) -> String {
        super::encode("client/hello", self)
    }
}

/// `server/hello`. In transition mode it also carries the server's id and the roles it activated; on an encrypted
/// connection it has the name only (the id was in `server/init`, the roles follow in `server/activate`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ServerHello {
    /// The server's id (transition mode).
    #[serde(default)]
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

/// `server/activate` (encrypted connections): what the connection is for now, and the roles active on it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ServerActivate {
    /// `playback`, `pairing`, … (may be empty).
    #[serde(default)]
    pub activities: Vec<String>,
    /// The active roles; absent means "as before" (`models/core.py` `ServerActivatePayload`: sticky).
    #[serde(default)]
    pub active_roles: Option<Vec<String>>,
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
        let formats = &v["payload"]["player@v1_support"]["supported_formats"];
        assert_eq!(formats[0]["sample_rate"], 48_000);
        let codecs: Vec<_> = formats
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["codec"].as_str().unwrap())
            .collect();
        assert_eq!(codecs, ["flac", "flac", "pcm", "pcm", "opus"]);
        // 3 s of 48 kHz stereo s16, the fastest format listed.
        assert_eq!(v["payload"]["player@v1_support"]["buffer_capacity"], 576_000);
        assert!(v["payload"].get("unpaired_access").is_none());
    }

    #[test]
    fn the_encrypted_hello_leaves_the_id_to_client_init_and_asks_for_unpaired_access() {
        let v: serde_json::Value = serde_json::from_str(&ClientHello::secure_player("k", 3_000).encode()).unwrap();
        let p = &v["payload"];
        assert!(p.get("client_id").is_none() && p.get("version").is_none(), "{p}");
        assert_eq!(p["unpaired_access"]["enabled"], true);
        assert_eq!(p["supported_pair_methods"]["pairing_psk"], serde_json::json!({}));
        assert_eq!(p["name"], "k");
        assert_eq!(p["supported_roles"][0], "player@v1");
    }

    #[test]
    fn the_encrypted_servers_hello_and_activate_parse() {
        // As aiosendspin 10.2.1 sends them on an encrypted connection.
        let m = decode_server_text(r#"{"payload":{"name":"t"},"type":"server/hello"}"#).unwrap();
        let ServerMessage::Hello(h) = m else { panic!("{m:?}") };
        assert_eq!(h.name, "t");
        assert!(h.active_roles.is_empty());
        let m =
            decode_server_text(r#"{"payload":{"activities":[],"active_roles":[]},"type":"server/activate"}"#).unwrap();
        assert_eq!(
            m,
            ServerMessage::Activate(ServerActivate {
                activities: vec![],
                active_roles: Some(vec![])
            })
        );
        let m = decode_server_text(r#"{"payload":{"activities":["playback"]},"type":"server/activate"}"#).unwrap();
        let ServerMessage::Activate(a) = m else { panic!("{m:?}") };
        assert_eq!(a.active_roles, None);
    }

    #[test]
    fn a_stream_start_is_checked_against_the_list_ignoring_opus_bit_depth() {
        let f = |codec: &str, sample_rate, bit_depth| super::super::stream::StreamFormat {
            codec: codec.into(),
            sample_rate,
            channels: 2,
            bit_depth,
            codec_header: None,
        };
        let list = player_formats();
        assert!(offered(&list, &f("flac", 44_100, 16)));
        assert!(offered(&list, &f("opus", 48_000, 16)));
        assert!(offered(&list, &f("opus", 48_000, 24)));
        assert!(!offered(&list, &f("flac", 48_000, 24)));
        assert!(!offered(&list, &f("opus", 44_100, 16)));
        assert!(!offered(&list, &f("mp3", 48_000, 16)));
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
