//! Little-endian field readers and writers shared by the message modules.
//!
//! [`Reader`] walks a payload and turns every short read into a [`ProtoError`] that names the message and field,
//! so no message module indexes a slice directly. Length-prefixed fields are checked against both the bytes left
//! in the message and an explicit limit *before* anything is copied.

use super::ProtoError;

/// A cursor over one message payload.
pub(crate) struct Reader<'a> {
    message: &'static str,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`, the payload of a `message` (its name, for errors).
    pub(crate) fn new(message: &'static str, buf: &'a [u8]) -> Self {
        Self { message, buf, pos: 0 }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], ProtoError> {
        if self.remaining() < n {
            return Err(ProtoError::Truncated {
                message: self.message,
                field,
                needed: n,
                available: self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], ProtoError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(field, N)?);
        Ok(out)
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, ProtoError> {
        Ok(u32::from_le_bytes(self.array(field)?))
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, ProtoError> {
        Ok(i32::from_le_bytes(self.array(field)?))
    }

    /// A `u32` length followed by that many bytes; the length may not exceed `limit` nor the bytes left.
    pub(crate) fn sized_bytes(&mut self, field: &'static str, limit: usize) -> Result<&'a [u8], ProtoError> {
        let len = self.u32(field)?;
        if len as usize > self.remaining() {
            return Err(ProtoError::LengthExceedsMessage {
                message: self.message,
                field,
                len,
                size: self.buf.len(),
            });
        }
        if len as usize > limit {
            return Err(ProtoError::LengthOverLimit {
                message: self.message,
                field,
                len,
                limit,
            });
        }
        self.take(field, len as usize)
    }

    /// Like [`Reader::sized_bytes`], and the bytes must be UTF-8.
    pub(crate) fn sized_str(&mut self, field: &'static str, limit: usize) -> Result<&'a str, ProtoError> {
        let bytes = self.sized_bytes(field, limit)?;
        std::str::from_utf8(bytes).map_err(|_| ProtoError::BadUtf8 {
            message: self.message,
            field,
        })
    }
}

/// Appends a `u32` length and the bytes.
pub(crate) fn put_sized(out: &mut Vec<u8>, bytes: &[u8]) {
    // Callers keep every field under the 1 MB message limit, checked again in `encode`.
    out.extend_from_slice(&(bytes.len().min(u32::MAX as usize) as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Reads a `u32`-sized JSON field of at most [`super::MAX_JSON_LEN`] bytes from `payload` and deserializes it;
/// every failure names `message`. The JSON messages (Hello, ClientInfo) validate their values afterwards.
pub(crate) fn decode_sized_json<T: serde::de::DeserializeOwned>(
    message: &'static str,
    payload: &[u8],
) -> Result<T, ProtoError> {
    let json = Reader::new(message, payload).sized_bytes("JSON", super::MAX_JSON_LEN)?;
    serde_json::from_slice(json).map_err(|e| ProtoError::BadJson {
        message,
        reason: e.to_string(),
    })
}

/// Appends `value` as a `u32`-sized JSON field.
pub(crate) fn put_sized_json<T: serde::Serialize>(out: &mut Vec<u8>, value: &T) {
    put_sized(out, &serde_json::to_vec(value).unwrap_or_default());
}
