//! Sendspin wire messages: JSON text messages `{"type": …, "payload": {…}}` and binary frames whose first byte says
//! what follows (4 = a player's audio chunk). Pure: no I/O, every size bounded.
//!
//! One module per message group: [`hello`] (client/hello, server/hello), [`time`] (client/time, server/time),
//! [`state`] (client/state, server/command), [`stream`] (stream/start, stream/clear, stream/end, group/update),
//! [`audio`] (the binary audio chunk and its PCM payload); [`codec`] turns a stream/start format into a decoder
//! setup (PCM, FLAC, Opus).
//!
//! Fields the player does not know are ignored, never refused: the spec lets servers add fields, and the reference
//! server does (`application_objects`, `server_transmitted` in stream/start). A message type the player does not
//! know is a typed error ([`ProtoError::UnknownType`]) its caller logs and skips.

pub mod audio;
pub mod codec;
pub mod hello;
pub mod state;
pub mod stream;
pub mod time;

use serde::Deserialize;

/// Largest text message accepted, bytes (the reference server's messages are a few hundred bytes; metadata with
/// artwork URLs stays well under this).
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Largest binary frame accepted, bytes: 1 s of 8-channel 32-bit 192 kHz PCM is 6 MB, the spec's chunks are
/// 15–150 ms; 1 MiB holds 150 ms of anything a player here accepts (48 kHz stereo s32: 57.6 KB).
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// Most entries in any list a server sends (roles, formats).
pub const MAX_LIST_ENTRIES: usize = 32;

/// A message that could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProtoError {
    /// Bigger than the bound for its kind.
    #[error("{what} of {len} bytes is over the {max}-byte bound")]
    TooLarge {
        /// Text message or binary frame.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// Not the JSON envelope, or a payload that does not fit its type.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// The message type, or "message" when the envelope itself is broken.
        what: String,
        /// serde's reason.
        reason: String,
    },
    /// A well-formed message of a type a player does not handle.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A binary frame of a type a player does not handle (artwork, visualizer, or one the server made up).
    #[error("binary frame: type {0} is not a player audio chunk")]
    NotAudio(u8),
    /// A binary frame shorter than the header its type byte announces (an empty frame has 0 bytes).
    #[error("binary frame: {len} bytes, shorter than the {header}-byte header")]
    Short {
        /// Its length.
        len: usize,
        /// The header's length.
        header: usize,
    },
    /// A PCM payload that is not whole frames of the stream's format.
    #[error("PCM payload of {len} bytes is not whole {frame_bytes}-byte frames")]
    PartialFrame {
        /// Its length.
        len: usize,
        /// Bytes per frame (all channels).
        frame_bytes: usize,
    },
    /// A PCM layout other than 2, 3 or 4 bytes per sample.
    #[error("PCM of {0} bytes per sample (2, 3 or 4)")]
    SampleBytes(u16),
    /// A list with more entries than [`MAX_LIST_ENTRIES`].
    #[error("{what} has {len} entries, over the {MAX_LIST_ENTRIES}-entry bound")]
    TooManyEntries {
        /// The list.
        what: &'static str,
        /// Its length.
        len: usize,
    },
}

/// A text message from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    /// `server/hello` (the transition-mode hello: identity, version and the roles it activated).
    Hello(hello::ServerHello),
    /// `server/activate` (encrypted connections): the roles the server activated, or none while it does not trust
    /// the player.
    Activate(hello::ServerActivate),
    /// `server/time`: the answer to a `client/time`.
    Time(time::ServerTimeReply),
    /// `server/command`: volume, mute or output delay.
    Command(state::ServerCommand),
    /// `stream/start`: the format of the audio that follows.
    StreamStart(stream::StreamStart),
    /// `stream/clear`: drop buffered audio (a seek); the stream goes on.
    StreamClear,
    /// `stream/end`: the stream stopped.
    StreamEnd,
    /// `group/update`: the group's playback state and name.
    GroupUpdate(stream::GroupUpdate),
    /// A message a player receives and has nothing to do with (`server/state`: metadata and controller state).
    Ignored(String),
}

impl ServerMessage {
    /// Its wire type (`server/hello`, `stream/start`, …), for messages that name what came instead of what was
    /// awaited.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Hello(_) => "server/hello",
            Self::Activate(_) => "server/activate",
            Self::Time(_) => "server/time",
            Self::Command(_) => "server/command",
            Self::StreamStart(_) => "stream/start",
            Self::StreamClear => "stream/clear",
            Self::StreamEnd => "stream/end",
            Self::GroupUpdate(_) => "group/update",
            Self::Ignored(_) => "server/state",
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    payload: Option<serde_json::Value>,
}

fn payload<T: serde::de::DeserializeOwned>(kind: &str, p: Option<serde_json::Value>) -> Result<T, ProtoError> {
    serde_json::from_value(p.unwrap_or(serde_json::Value::Object(Default::default()))).map_err(|e| {
        ProtoError::Malformed {
            what: kind.to_string(),
            reason: e.to_string(),
        }
    })
}

/// Reads one text message from the server.
pub fn decode_server_text(text: &str) -> Result<ServerMessage, ProtoError> {
    if text.len() > MAX_TEXT_BYTES {
        return Err(ProtoError::TooLarge {
            what: "text message",
            len: text.len(),
            max: MAX_TEXT_BYTES,
        });
    }
    let env: Envelope = serde_json::from_str(text).map_err(|e| ProtoError::Malformed {
        what: "message".into(),
        reason: e.to_string(),
    })?;
    let kind = env.kind.as_ref();
    Ok(match kind {
        "server/hello" => {
            let h: hello::ServerHello = payload(kind, env.payload)?;
            if h.active_roles.len() > MAX_LIST_ENTRIES {
                return Err(ProtoError::TooManyEntries {
                    what: "server/hello active_roles",
                    len: h.active_roles.len(),
                });
            }
            ServerMessage::Hello(h)
        }
        "server/time" => ServerMessage::Time(payload(kind, env.payload)?),
        "server/command" => ServerMessage::Command(payload(kind, env.payload)?),
        "stream/start" => ServerMessage::StreamStart(payload(kind, env.payload)?),
        "stream/clear" => ServerMessage::StreamClear,
        "stream/end" => ServerMessage::StreamEnd,
        "group/update" => ServerMessage::GroupUpdate(payload(kind, env.payload)?),
        "server/activate" => {
            let a: hello::ServerActivate = payload(kind, env.payload)?;
            let roles = a.active_roles.as_ref().map_or(0, |r| r.len());
            if a.activities.len() > MAX_LIST_ENTRIES || roles > MAX_LIST_ENTRIES {
                return Err(ProtoError::TooManyEntries {
                    what: "server/activate lists",
                    len: a.activities.len().max(roles),
                });
            }
            ServerMessage::Activate(a)
        }
        "server/state" => ServerMessage::Ignored(kind.to_string()),
        other => return Err(ProtoError::UnknownType(other.chars().take(64).collect())),
    })
}

/// Writes a client message `{"type": kind, "payload": payload}`.
pub(crate) fn encode<T: serde::Serialize>(kind: &str, payload: &T) -> String {
    serde_json::json!({ "type": kind, "payload": payload }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_types_are_a_typed_error_and_broken_json_is_malformed() {
        assert_eq!(
            decode_server_text(r#"{"type":"server/frobnicate","payload":{}}"#),
            Err(ProtoError::UnknownType("server/frobnicate".into()))
        );
        assert!(matches!(
            decode_server_text(r#"{"type":"server/time""#),
            Err(ProtoError::Malformed { .. })
        ));
        assert!(matches!(
            decode_server_text(r#"{"type":"server/time","payload":{"client_transmitted":"x"}}"#),
            Err(ProtoError::Malformed { what, .. }) if what == "server/time"
        ));
        assert_eq!(
            decode_server_text(r#"{"type":"server/state","payload":{"metadata":{}}}"#),
            Ok(ServerMessage::Ignored("server/state".into()))
        );
        assert_eq!(
            decode_server_text(r#"{"type":"stream/end"}"#),
            Ok(ServerMessage::StreamEnd)
        );
    }

    #[test]
    fn oversized_text_is_refused_before_parsing() {
        let big = format!(
            r#"{{"type":"group/update","payload":{{"group_name":"{}"}}}}"#,
            "a".repeat(MAX_TEXT_BYTES)
        );
        assert!(matches!(decode_server_text(&big), Err(ProtoError::TooLarge { .. })));
    }
}
