//! The Snapcast binary stream protocol (port 1704): pure encode/decode, no I/O.
//!
//! Every message is a 26-byte [`BaseHeader`] followed by `size` payload bytes, all little-endian. One module per
//! message type mirrors snapcast's `common/message/*.hpp`. [`decode`] turns a header and its payload into a
//! [`Message`]; [`encode`] does the reverse; [`split_frame`] cuts one message off the front of a byte buffer.
//!
//! Untrusted input is bounded before anything is allocated: a payload may not exceed [`MAX_PAYLOAD_SIZE`]
//! (snapcast's 1,000,000-byte limit), every length-prefixed field must fit in what is left of its message and under
//! its own limit ([`MAX_JSON_LEN`], [`MAX_TEXT_LEN`], [`MAX_CODEC_NAME_LEN`]). Unknown message types decode to
//! [`Message::Unknown`] so a reader can skip them by size. Bytes after the last field of a known message are
//! ignored (room for fields a future server may append). Every error says which message and field was wrong.

mod base;
mod client_info;
mod codec_header;
mod error;
mod hello;
mod server_settings;
mod time;
mod wire;
mod wire_chunk;

pub use base::{BaseHeader, Tv, BASE_HEADER_SIZE};
pub use client_info::ClientInfo;
pub use codec_header::CodecHeader;
pub use error::ErrorMsg;
pub use hello::{Auth, Hello};
pub use server_settings::{ServerSettings, MAX_BUFFER_MS, MAX_LATENCY_MS};
pub use time::Time;
pub use wire_chunk::WireChunk;

/// Largest payload (bytes after the base header) accepted or produced: snapcast's `msg::max_size`.
pub const MAX_PAYLOAD_SIZE: u32 = 1_000_000;
/// Largest JSON document in Hello, ServerSettings and ClientInfo, in bytes.
pub const MAX_JSON_LEN: usize = 64 * 1024;
/// Largest text field of an Error message, in bytes.
pub const MAX_TEXT_LEN: usize = 64 * 1024;
/// Largest codec name, in bytes.
pub const MAX_CODEC_NAME_LEN: usize = 64;

/// Message type numbers (`message_type` in snapcast's `message.hpp`).
pub mod msg_type {
    /// Base (never sent on its own).
    pub const BASE: u16 = 0;
    /// [`super::CodecHeader`].
    pub const CODEC_HEADER: u16 = 1;
    /// [`super::WireChunk`].
    pub const WIRE_CHUNK: u16 = 2;
    /// [`super::ServerSettings`].
    pub const SERVER_SETTINGS: u16 = 3;
    /// [`super::Time`].
    pub const TIME: u16 = 4;
    /// [`super::Hello`].
    pub const HELLO: u16 = 5;
    /// StreamTags: in the 0.26 enum, never sent since; decoded as [`super::Message::Unknown`].
    pub const STREAM_TAGS: u16 = 6;
    /// [`super::ClientInfo`].
    pub const CLIENT_INFO: u16 = 7;
    /// [`super::ErrorMsg`] (snapserver ≥ 0.32).
    pub const ERROR: u16 = 8;
}

/// Name of a message type, for logs and errors.
pub fn message_name(msg_type: u16) -> &'static str {
    match msg_type {
        msg_type::BASE => "Base",
        msg_type::CODEC_HEADER => "CodecHeader",
        msg_type::WIRE_CHUNK => "WireChunk",
        msg_type::SERVER_SETTINGS => "ServerSettings",
        msg_type::TIME => "Time",
        msg_type::HELLO => "Hello",
        msg_type::STREAM_TAGS => "StreamTags",
        msg_type::CLIENT_INFO => "ClientInfo",
        msg_type::ERROR => "Error",
        _ => "unknown",
    }
}

/// What was wrong with a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// Fewer than 26 bytes where a base header was expected.
    #[error("base header needs {BASE_HEADER_SIZE} bytes, got {got}")]
    ShortHeader {
        /// Bytes available.
        got: usize,
    },
    /// The header's size field is over [`MAX_PAYLOAD_SIZE`].
    #[error("{message} message size {size} exceeds the limit of {MAX_PAYLOAD_SIZE} bytes")]
    MessageTooLarge {
        /// Message type name.
        message: &'static str,
        /// The size field.
        size: u32,
    },
    /// The payload handed to [`decode`] is not as long as the header says.
    #[error("{message} payload is {got} bytes but the header says {size}")]
    PayloadSizeMismatch {
        /// Message type name.
        message: &'static str,
        /// The size field.
        size: u32,
        /// Bytes given.
        got: usize,
    },
    /// A fixed-size field runs past the end of the payload.
    #[error("{message} truncated: {field} needs {needed} bytes, only {available} left")]
    Truncated {
        /// Message type name.
        message: &'static str,
        /// The field.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the payload.
        available: usize,
    },
    /// A length prefix points past the end of the payload.
    #[error("{message} {field} length {len} exceeds message size {size}")]
    LengthExceedsMessage {
        /// Message type name.
        message: &'static str,
        /// The field.
        field: &'static str,
        /// The length prefix.
        len: u32,
        /// The payload size.
        size: usize,
    },
    /// A length prefix is over that field's limit.
    #[error("{message} {field} length {len} exceeds the limit of {limit} bytes")]
    LengthOverLimit {
        /// Message type name.
        message: &'static str,
        /// The field.
        field: &'static str,
        /// The length prefix.
        len: u32,
        /// The field's limit.
        limit: usize,
    },
    /// A text field is not UTF-8.
    #[error("{message} {field} is not valid UTF-8")]
    BadUtf8 {
        /// Message type name.
        message: &'static str,
        /// The field.
        field: &'static str,
    },
    /// The JSON document does not parse or has fields of the wrong type.
    #[error("{message} JSON is invalid: {reason}")]
    BadJson {
        /// Message type name.
        message: &'static str,
        /// serde_json's explanation.
        reason: String,
    },
    /// A field parsed but its value makes no sense.
    #[error("{message} {field} value {value} is out of range ({expected})")]
    OutOfRange {
        /// Message type name.
        message: &'static str,
        /// The field.
        field: &'static str,
        /// The value received.
        value: i64,
        /// The accepted range.
        expected: &'static str,
    },
    /// [`encode`] was asked to produce a payload over [`MAX_PAYLOAD_SIZE`].
    #[error("cannot encode {message}: payload of {size} bytes exceeds the limit of {MAX_PAYLOAD_SIZE} bytes")]
    EncodeTooLarge {
        /// Message type name.
        message: &'static str,
        /// The payload size.
        size: usize,
    },
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Type 1.
    CodecHeader(CodecHeader),
    /// Type 2.
    WireChunk(WireChunk),
    /// Type 3.
    ServerSettings(ServerSettings),
    /// Type 4.
    Time(Time),
    /// Type 5.
    Hello(Hello),
    /// Type 7.
    ClientInfo(ClientInfo),
    /// Type 8.
    Error(ErrorMsg),
    /// Any other type (0, 6, ≥ 9): its payload was skipped.
    Unknown {
        /// The type number.
        msg_type: u16,
    },
}

impl Message {
    /// The wire type number.
    pub fn msg_type(&self) -> u16 {
        match self {
            Message::CodecHeader(_) => msg_type::CODEC_HEADER,
            Message::WireChunk(_) => msg_type::WIRE_CHUNK,
            Message::ServerSettings(_) => msg_type::SERVER_SETTINGS,
            Message::Time(_) => msg_type::TIME,
            Message::Hello(_) => msg_type::HELLO,
            Message::ClientInfo(_) => msg_type::CLIENT_INFO,
            Message::Error(_) => msg_type::ERROR,
            Message::Unknown { msg_type } => *msg_type,
        }
    }

    /// Appends the payload (an [`Message::Unknown`] has none).
    pub fn encode_payload(&self, out: &mut Vec<u8>) {
        match self {
            Message::CodecHeader(m) => m.encode(out),
            Message::WireChunk(m) => m.encode(out),
            Message::ServerSettings(m) => m.encode(out),
            Message::Time(m) => m.encode(out),
            Message::Hello(m) => m.encode(out),
            Message::ClientInfo(m) => m.encode(out),
            Message::Error(m) => m.encode(out),
            Message::Unknown { .. } => {}
        }
    }
}

/// Decodes the payload of the message that `header` announces. `payload.len()` must equal `header.size`.
pub fn decode(header: &BaseHeader, payload: &[u8]) -> Result<Message, ProtoError> {
    let message = message_name(header.msg_type);
    if header.size > MAX_PAYLOAD_SIZE {
        return Err(ProtoError::MessageTooLarge {
            message,
            size: header.size,
        });
    }
    if payload.len() != header.size as usize {
        return Err(ProtoError::PayloadSizeMismatch {
            message,
            size: header.size,
            got: payload.len(),
        });
    }
    Ok(match header.msg_type {
        msg_type::CODEC_HEADER => Message::CodecHeader(CodecHeader::decode(payload)?),
        msg_type::WIRE_CHUNK => Message::WireChunk(WireChunk::decode(payload)?),
        msg_type::SERVER_SETTINGS => Message::ServerSettings(ServerSettings::decode(payload)?),
        msg_type::TIME => Message::Time(Time::decode(payload)?),
        msg_type::HELLO => Message::Hello(Hello::decode(payload)?),
        msg_type::CLIENT_INFO => Message::ClientInfo(ClientInfo::decode(payload)?),
        msg_type::ERROR => Message::Error(ErrorMsg::decode(payload)?),
        other => Message::Unknown { msg_type: other },
    })
}

/// Serializes `msg` with a base header carrying `id`, `refers_to` and `sent` (`received` zero, `size` filled in).
pub fn encode(msg: &Message, id: u16, refers_to: u16, sent: Tv) -> Result<Vec<u8>, ProtoError> {
    let mut out = vec![0u8; BASE_HEADER_SIZE];
    msg.encode_payload(&mut out);
    let size = out.len() - BASE_HEADER_SIZE;
    if size > MAX_PAYLOAD_SIZE as usize {
        return Err(ProtoError::EncodeTooLarge {
            message: message_name(msg.msg_type()),
            size,
        });
    }
    let header = BaseHeader {
        msg_type: msg.msg_type(),
        id,
        refers_to,
        sent,
        received: Tv::default(),
        size: size as u32,
    };
    out[..BASE_HEADER_SIZE].copy_from_slice(&header.to_bytes());
    Ok(out)
}

/// One message cut off the front of a buffer by [`split_frame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Its header (size already checked against [`MAX_PAYLOAD_SIZE`]).
    pub header: BaseHeader,
    /// Its `header.size` payload bytes.
    pub payload: &'a [u8],
    /// Bytes it took from the buffer (header + payload).
    pub len: usize,
}

/// Cuts one whole message off the front of `buf`: `Ok(None)` when more bytes are needed. An over-limit size is an
/// error as soon as the header is in, so a stream reader never buffers more than `BASE_HEADER_SIZE +
/// MAX_PAYLOAD_SIZE` bytes for one message.
pub fn split_frame(buf: &[u8]) -> Result<Option<Frame<'_>>, ProtoError> {
    if buf.len() < BASE_HEADER_SIZE {
        return Ok(None);
    }
    let header = BaseHeader::parse(buf)?;
    let len = BASE_HEADER_SIZE + header.size as usize;
    Ok(buf
        .get(BASE_HEADER_SIZE..len)
        .map(|payload| Frame { header, payload, len }))
}

#[cfg(test)]
mod tests;
