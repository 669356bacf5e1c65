//! Why a Snapcast connection ended: one variant per cause, so the reconnect policy reads the cause from the type
//! (a refused login waits the longest backoff) and the log line says what was wrong.

use crate::snapcast::decoder::DecodeError;
use crate::snapcast::proto::ProtoError;

/// What ended a connection (it is logged, and a reconnect follows).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The TCP connect failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The TCP connect got no answer in time.
    #[error("cannot connect to {addr}: no answer in {ms} ms")]
    ConnectTimeout {
        /// `host:port`.
        addr: String,
        /// The connect timeout, ms.
        ms: u64,
    },
    /// The server closed the connection between messages.
    #[error("server closed the connection")]
    Closed,
    /// Reading a message header failed.
    #[error("read error: {0}")]
    Read(std::io::Error),
    /// The connection ended inside a message's payload.
    #[error("connection lost inside a {what} message of {size} bytes: {source}")]
    Truncated {
        /// The message type's name.
        what: &'static str,
        /// Its announced payload size, bytes.
        size: u32,
        /// The socket error.
        source: std::io::Error,
    },
    /// A header or payload that does not parse, or a message that cannot be encoded.
    #[error(transparent)]
    Protocol(#[from] ProtoError),
    /// The socket reader task stopped without saying why.
    #[error("socket reader stopped")]
    ReaderStopped,
    /// A write failed.
    #[error("cannot send {what}: {source}")]
    Send {
        /// The message type's name.
        what: &'static str,
        /// The socket error.
        source: std::io::Error,
    },
    /// A write did not finish in time.
    #[error("cannot send {what}: socket blocked for {ms} ms")]
    SendTimeout {
        /// The message type's name.
        what: &'static str,
        /// The write timeout, ms.
        ms: u64,
    },
    /// Sending before the connection is up (a bug, reported rather than panicking).
    #[error("not connected")]
    NotConnected,
    /// A Time request got no reply in time.
    #[error("Time request {id} unanswered for {ms} ms")]
    TimeUnanswered {
        /// The request's id.
        id: u16,
        /// The reply timeout, ms.
        ms: i64,
    },
    /// Hello was not answered with ServerSettings in time.
    #[error("no ServerSettings within {ms} ms of Hello")]
    NoSettings {
        /// The handshake timeout, ms.
        ms: u64,
    },
    /// A CodecHeader that does not decode.
    #[error("CodecHeader: {0}")]
    CodecHeader(DecodeError),
    /// A WireChunk before any CodecHeader.
    #[error("WireChunk before any CodecHeader")]
    ChunkBeforeHeader,
    /// A WireChunk stamped absurdly far from the server's now.
    #[error(
        "WireChunk timestamp {start_s:.3} s is {skew_s:.1} s away from the server's now {server_now_s:.3} s (limit {limit_s} s)"
    )]
    ChunkSkew {
        /// The chunk's timestamp, server seconds.
        start_s: f64,
        /// How far from the server's now, s.
        skew_s: f64,
        /// The server's now, s.
        server_now_s: f64,
        /// The bound, s.
        limit_s: i64,
    },
    /// A WireChunk whose payload does not decode.
    #[error("WireChunk: {0}")]
    Chunk(DecodeError),
    /// The server sent an Error message.
    #[error("server refused this client: {code} {error}: {message}")]
    Refused {
        /// Its code (401/403: authorization).
        code: u32,
        /// Its error text.
        error: String,
        /// Its message.
        message: String,
    },
}

impl SessionError {
    /// The server refused our credentials: retry only after the longest backoff, and log it as an error.
    pub fn is_auth_refusal(&self) -> bool {
        matches!(self, Self::Refused { code: 401 | 403, .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_401_and_403_are_auth_refusals() {
        let refused = |code| SessionError::Refused {
            code,
            error: "Unauthorized".into(),
            message: "bad password".into(),
        };
        assert!(refused(401).is_auth_refusal() && refused(403).is_auth_refusal());
        assert!(!refused(500).is_auth_refusal() && !SessionError::Closed.is_auth_refusal());
        assert_eq!(
            refused(401).to_string(),
            "server refused this client: 401 Unauthorized: bad password"
        );
    }
}
