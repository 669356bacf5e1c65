//! Why a Sendspin connection ended or never got going: one variant per cause, each naming what was wrong (the step
//! awaited, what the server sent instead, the bound exceeded). The client logs it in one line and reconnects with
//! backoff ([`super::client`]); the text also goes to the source glue as the `Disconnected` reason.
//!
//! Everything quoted from the server is bounded ([`MAX_QUOTED_CHARS`]), so a hostile server cannot make a log line
//! long.

use super::playback::StreamError;
use super::proto::ProtoError;
use super::secure::SecureError;
use crate::snapcast::decoder::DecodeError;
use tokio_tungstenite::tungstenite;

/// Characters of a server-supplied string (a close reason, a role name) that go into an error message.
pub const MAX_QUOTED_CHARS: usize = 64;

/// `s`, cut to [`MAX_QUOTED_CHARS`] characters.
pub(crate) fn quoted(s: &str) -> String {
    s.chars().take(MAX_QUOTED_CHARS).collect()
}

/// What ended a connection (or its setup).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// The TCP connect and WebSocket upgrade did not finish in time.
    #[error("cannot connect to {url}: no connection within {ms} ms")]
    ConnectTimeout {
        /// The URL dialled.
        url: String,
        /// The connect timeout, ms.
        ms: u64,
    },
    /// The TCP connect or the WebSocket upgrade failed.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL dialled.
        url: String,
        /// The WebSocket error.
        source: Box<tungstenite::Error>,
    },
    /// Reading from the WebSocket failed (this includes a frame over the bounds of
    /// [`ws_config`](super::link::ws_config): "Space limit exceeded").
    #[error("read: {0}")]
    Read(Box<tungstenite::Error>),
    /// Writing to the WebSocket failed.
    #[error("write: {0}")]
    Write(Box<tungstenite::Error>),
    /// A write did not finish in time (the server stopped reading).
    #[error("write stalled for {ms} ms")]
    WriteStalled {
        /// The write timeout, ms.
        ms: u64,
    },
    /// The server closed the connection (or the TCP stream ended).
    #[error("the server closed the connection{}{}", awaiting.map(|w| format!(" awaiting {w}")).unwrap_or_default(),
            close.as_ref().map(|(c, r)| format!(" (close code {c}, reason {r:?})")).unwrap_or_default())]
    Closed {
        /// The handshake step awaited, if any.
        awaiting: Option<&'static str>,
        /// The close frame's code and reason (bounded), when it sent one.
        close: Option<(u16, String)>,
    },
    /// A handshake or hello step did not come in time.
    #[error("no {what} within {ms} ms")]
    Timeout {
        /// The message awaited.
        what: &'static str,
        /// The step timeout, ms.
        ms: u64,
    },
    /// A BINARY frame where a cleartext handshake message (TEXT) must come.
    #[error("expected {what} (TEXT), got a BINARY frame of {len} bytes")]
    BinaryInHandshake {
        /// The message awaited.
        what: &'static str,
        /// The frame's length.
        len: usize,
    },
    /// A cleartext TEXT frame once the channel is encrypted (every frame must be BINARY then).
    #[error("a TEXT frame of {len} bytes after the Noise handshake")]
    TextAfterHandshake {
        /// The frame's length.
        len: usize,
    },
    /// A well-formed message of another type than the step awaits.
    #[error("expected {what}, got {got}")]
    Unexpected {
        /// The message awaited.
        what: &'static str,
        /// The type of the one that came.
        got: &'static str,
    },
    /// The message at a setup step does not parse.
    #[error("expected {what}: {source}")]
    Proto {
        /// The message awaited.
        what: &'static str,
        /// Why it does not parse.
        source: ProtoError,
    },
    /// The Noise handshake or the encrypted channel failed.
    #[error(transparent)]
    Secure(#[from] SecureError),
    /// In plain transition mode, the server answered the hello with `server/error`: it requires encryption.
    #[error(
        "the server refused the unencrypted hello (server/error {reason:?}): it requires encryption, remove \
         `encryption = false` from [source]"
    )]
    PlainRefused {
        /// The server's reason (bounded).
        reason: String,
    },
    /// The plain `server/hello` did not activate the player role.
    #[error("the server did not activate the player role (active_roles {roles:?})")]
    NotActivated {
        /// The roles it activated (each bounded).
        roles: Vec<String>,
    },
    /// The server kept the player connected but unactivated: it does not trust its client_id.
    #[error("the server has not accepted player {name:?} (client id {client_id}) within {ms} ms")]
    Untrusted {
        /// The player's name.
        name: String,
        /// Its client_id.
        client_id: String,
        /// How long it waited, ms.
        ms: u64,
    },
    /// A `server/activate` mid-session without the player role.
    #[error("the server deactivated the player role (it no longer trusts this player)")]
    Deactivated,
    /// Nothing came from the server for the silence timeout (a stalled server).
    #[error("nothing from the server for {ms} ms")]
    Silence {
        /// The silence timeout, ms.
        ms: u64,
    },
    /// A `stream/start` this player cannot play.
    #[error("cannot play this stream: {0}")]
    Unplayable(#[from] StreamError),
    /// A run of chunks that do not decode.
    #[error("the stream does not decode ({chunks} chunks in a row), the last: {last}")]
    Undecodable {
        /// How many in a row.
        chunks: u32,
        /// The last one's decoder error.
        last: DecodeError,
    },
    /// The mDNS browser stopped (the service is shutting down).
    #[error("mDNS discovery stopped")]
    DiscoveryStopped,
    /// The players' listener stopped (the service is shutting down).
    #[error("the players' listener stopped")]
    ListenerStopped,
}

impl ConnectionError {
    /// The server never activated the player (not a fault to hurry: the user has to accept it).
    pub fn is_untrusted(&self) -> bool {
        matches!(self, Self::Untrusted { .. })
    }

    /// A read error or the end of the stream, as the WebSocket reported it.
    pub(crate) fn read(e: tungstenite::Error) -> Self {
        match e {
            tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => Self::Closed {
                awaiting: None,
                close: None,
            },
            e => Self::Read(Box::new(e)),
        }
    }

    /// A close frame (or none), seen while awaiting `awaiting`.
    pub(crate) fn closed(awaiting: Option<&'static str>, frame: Option<&tungstenite::protocol::CloseFrame>) -> Self {
        Self::Closed {
            awaiting,
            close: frame.map(|f| (u16::from(f.code), quoted(&f.reason))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_messages_name_the_step_and_what_came() {
        assert_eq!(
            ConnectionError::Unexpected {
                what: "server/hello",
                got: "stream/start"
            }
            .to_string(),
            "expected server/hello, got stream/start"
        );
        assert_eq!(
            ConnectionError::Silence { ms: 10_000 }.to_string(),
            "nothing from the server for 10000 ms"
        );
        let frame = tungstenite::protocol::CloseFrame {
            code: tungstenite::protocol::frame::coding::CloseCode::Away,
            reason: "x".repeat(500).into(),
        };
        let closed = ConnectionError::closed(Some("server/init"), Some(&frame)).to_string();
        assert!(
            closed.starts_with("the server closed the connection awaiting server/init (close code 1001, reason \"xxx"),
            "{closed}"
        );
        assert_eq!(
            closed.matches('x').count(),
            MAX_QUOTED_CHARS,
            "the server's reason is bounded: {closed}"
        );
        assert_eq!(
            ConnectionError::closed(None, None).to_string(),
            "the server closed the connection"
        );
        assert!(ConnectionError::Untrusted {
            name: "bb".into(),
            client_id: "id".into(),
            ms: 30_000
        }
        .is_untrusted());
    }
}
