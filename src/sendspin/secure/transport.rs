//! The encrypted channel after the handshake (`noise/wire.py` `EncryptedWebSocket`).
//!
//! Every WebSocket frame is BINARY and holds one Noise transport message (≤ 65535 bytes, so ≤ 65519 bytes of
//! plaintext). The plaintext's first byte says what follows: 0 = a JSON text message (UTF-8), 1 = a fragment of a
//! longer message, 2–3 reserved by the transport (the pre-spec-#172 fragment framing, which the server uses only
//! for legacy clients), anything else a binary message whose type byte is kept (4 = a player's audio chunk).
//! A fragment's second byte holds flags (0x02 first, 0x01 last, the rest reserved); the first fragment's third byte
//! is the original type. A TEXT frame after the handshake is an error, as in the reference.
//!
//! Nonces count up per direction from 0 (snow keeps them; a frame lost, replayed or reordered fails to
//! authenticate, and the channel is then dead). aiosendspin never rekeys in transport mode (it re-handshakes only
//! for pairing, which this player does not do).
//!
//! [`Reassembler`] is the framing alone (no cipher), fuzzed in `fuzz/`.

use super::SecureError;

/// Largest Noise transport message, bytes.
pub const MAX_NOISE_FRAME_BYTES: usize = 65_535;
/// Largest plaintext one transport message carries: Noise's limit less the 16-byte AEAD tag
/// (`noise/constants.py:36`).
pub const MAX_TRANSPORT_PLAINTEXT: usize = MAX_NOISE_FRAME_BYTES - 16;
/// Largest reassembled message, bytes: the player's own bound on any message
/// ([`MAX_FRAME_BYTES`](crate::sendspin::proto::MAX_FRAME_BYTES)), tighter than the reference's 64 MiB.
pub const MAX_REASSEMBLED_BYTES: usize = crate::sendspin::proto::MAX_FRAME_BYTES;

/// Type byte of a JSON body.
pub const TYPE_JSON: u8 = 0;
/// Type byte of a fragment.
pub const TYPE_FRAGMENT: u8 = 1;
/// Fragment flag: the last fragment.
const FLAG_LAST: u8 = 0x01;
/// Fragment flag: the first fragment.
const FLAG_FIRST: u8 = 0x02;
/// Fragment flags no one may set.
const FLAGS_RESERVED: u8 = 0xFC;

/// A complete message from the channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plain {
    /// A JSON text message.
    Text(String),
    /// A binary message, its type byte first (4 = audio).
    Binary(Vec<u8>),
}

/// Joins fragments into messages; one message at a time, bounded by [`MAX_REASSEMBLED_BYTES`].
#[derive(Debug, Default)]
pub struct Reassembler {
    /// The message in flight: its original type and what has arrived.
    partial: Option<(u8, Vec<u8>)>,
}

impl Reassembler {
    /// Takes one decrypted plaintext; a complete message, `None` while fragments are still due, or an error (after
    /// which the message in flight is dropped).
    pub fn push(&mut self, plaintext: &[u8]) -> Result<Option<Plain>, SecureError> {
        let r = self.push_inner(plaintext);
        if r.is_err() {
            self.partial = None;
        }
        r
    }

    fn push_inner(&mut self, p: &[u8]) -> Result<Option<Plain>, SecureError> {
        let bad = |s: &str| Err(SecureError::Framing(s.to_string()));
        let Some(&kind) = p.first() else {
            return bad("an empty plaintext");
        };
        if kind != TYPE_FRAGMENT {
            if self.partial.is_some() {
                return bad("a whole message while a fragmented one is in flight");
            }
            return dispatch(kind, &p[1..]).map(Some);
        }
        let Some(&flags) = p.get(1) else {
            return bad("a fragment without its flags byte");
        };
        if flags & FLAGS_RESERVED != 0 {
            return Err(SecureError::Framing(format!(
                "fragment flags 0x{flags:02x} set reserved bits"
            )));
        }
        let data = if flags & FLAG_FIRST != 0 {
            if self.partial.is_some() {
                return bad("a first fragment while a fragmented message is in flight");
            }
            let Some(&orig) = p.get(2) else {
                return bad("a first fragment without its original type");
            };
            if orig == TYPE_FRAGMENT {
                return bad("a first fragment whose original type is 1");
            }
            self.partial = Some((orig, Vec::new()));
            &p[3..]
        } else {
            if self.partial.is_none() {
                return bad("a continuation fragment with no message in flight");
            }
            &p[2..]
        };
        let (orig, buf) = self.partial.as_mut().expect("a message in flight");
        if buf.len() + data.len() > MAX_REASSEMBLED_BYTES {
            return Err(SecureError::TooLarge {
                what: "fragmented message",
                len: buf.len() + data.len(),
                max: MAX_REASSEMBLED_BYTES,
            });
        }
        buf.extend_from_slice(data);
        if flags & FLAG_LAST == 0 {
            return Ok(None);
        }
        let (orig, buf) = (*orig, std::mem::take(buf));
        self.partial = None;
        dispatch(orig, &buf).map(Some)
    }
}

fn dispatch(kind: u8, body: &[u8]) -> Result<Plain, SecureError> {
    if kind == TYPE_JSON {
        return String::from_utf8(body.to_vec())
            .map(Plain::Text)
            .map_err(|_| SecureError::Framing("a JSON body that is not UTF-8".into()));
    }
    let mut v = Vec::with_capacity(body.len() + 1);
    v.push(kind);
    v.extend_from_slice(body);
    Ok(Plain::Binary(v))
}

/// Splits a typed plaintext into what the channel carries: itself when it fits one transport message, else
/// type-1 fragments (`noise/wire.py` `_fragment`).
pub fn fragment(plaintext: &[u8]) -> Vec<Vec<u8>> {
    if plaintext.len() <= MAX_TRANSPORT_PLAINTEXT {
        return vec![plaintext.to_vec()];
    }
    let (orig, data) = (plaintext[0], &plaintext[1..]);
    let first_cap = MAX_TRANSPORT_PLAINTEXT - 3;
    let cont_cap = MAX_TRANSPORT_PLAINTEXT - 2;
    let mut chunks = vec![&data[..first_cap]];
    chunks.extend(data[first_cap..].chunks(cont_cap));
    let last = chunks.len() - 1;
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let flags = if i == last { FLAG_LAST } else { 0 };
            let mut f = if i == 0 {
                vec![TYPE_FRAGMENT, flags | FLAG_FIRST, orig]
            } else {
                vec![TYPE_FRAGMENT, flags]
            };
            f.extend_from_slice(c);
            f
        })
        .collect()
}

/// The channel: the cipher states of both directions and the reassembly of what arrives.
pub struct Transport {
    noise: snow::TransportState,
    reassembler: Reassembler,
}

impl Transport {
    pub(super) fn new(noise: snow::TransportState) -> Self {
        Self {
            noise,
            reassembler: Reassembler::default(),
        }
    }

    /// The BINARY frames that carry the text message `text`.
    pub fn seal_text(&mut self, text: &str) -> Result<Vec<Vec<u8>>, SecureError> {
        let mut p = Vec::with_capacity(text.len() + 1);
        p.push(TYPE_JSON);
        p.extend_from_slice(text.as_bytes());
        self.seal(&p)
    }

    fn seal(&mut self, plaintext: &[u8]) -> Result<Vec<Vec<u8>>, SecureError> {
        if plaintext.len() > MAX_REASSEMBLED_BYTES {
            return Err(SecureError::TooLarge {
                what: "outgoing message",
                len: plaintext.len(),
                max: MAX_REASSEMBLED_BYTES,
            });
        }
        fragment(plaintext)
            .into_iter()
            .map(|p| {
                let mut out = vec![0u8; p.len() + 16];
                let n = self.noise.write_message(&p, &mut out).map_err(|e| SecureError::Noise {
                    what: "an outgoing frame",
                    reason: e.to_string(),
                })?;
                out.truncate(n);
                Ok(out)
            })
            .collect()
    }

    /// Opens one BINARY frame: a complete message, or `None` while fragments are still due. Any error leaves the
    /// channel unusable (the nonces no longer match): close the connection.
    pub fn open(&mut self, frame: &[u8]) -> Result<Option<Plain>, SecureError> {
        if frame.len() > MAX_NOISE_FRAME_BYTES {
            return Err(SecureError::TooLarge {
                what: "encrypted frame",
                len: frame.len(),
                max: MAX_NOISE_FRAME_BYTES,
            });
        }
        let mut p = vec![0u8; frame.len()];
        let n = self.noise.read_message(frame, &mut p).map_err(|e| SecureError::Noise {
            what: "an encrypted frame",
            reason: e.to_string(),
        })?;
        self.reassembler.push(&p[..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_messages_keep_their_type() {
        let mut r = Reassembler::default();
        assert_eq!(r.push(b"\0{\"a\":1}").unwrap(), Some(Plain::Text("{\"a\":1}".into())));
        assert_eq!(r.push(&[4, 9, 9]).unwrap(), Some(Plain::Binary(vec![4, 9, 9])));
        assert!(r.push(&[]).is_err());
        assert!(r.push(&[0, 0xff]).is_err());
    }

    #[test]
    fn a_long_message_splits_into_fragments_that_join_again() {
        let mut msg = vec![4u8];
        msg.extend((0..200_000u32).map(|i| (i % 251) as u8));
        let frames = fragment(&msg);
        assert_eq!(frames.len(), 4);
        assert!(frames.iter().all(|f| f.len() <= MAX_TRANSPORT_PLAINTEXT));
        assert_eq!(&frames[0][..3], &[TYPE_FRAGMENT, FLAG_FIRST, 4]);
        assert_eq!(&frames[3][..2], &[TYPE_FRAGMENT, FLAG_LAST]);
        let mut r = Reassembler::default();
        for f in &frames[..3] {
            assert_eq!(r.push(f).unwrap(), None);
        }
        assert_eq!(r.push(&frames[3]).unwrap(), Some(Plain::Binary(msg)));
        // A short one is not fragmented.
        assert_eq!(fragment(b"\0{}"), vec![b"\0{}".to_vec()]);
    }

    #[test]
    fn broken_fragment_sequences_are_errors_and_reset_the_message() {
        let mut r = Reassembler::default();
        // A continuation with nothing in flight, reserved flags, orig type 1, a first without its type.
        assert!(r.push(&[1, 0, 5]).is_err());
        assert!(r.push(&[1, 0x04 | FLAG_FIRST, 4]).is_err());
        assert!(r.push(&[1, FLAG_FIRST, 1]).is_err());
        assert!(r.push(&[1, FLAG_FIRST]).is_err());
        assert!(r.push(&[1]).is_err());
        // A whole message or a second first fragment in the middle of one.
        assert_eq!(r.push(&[1, FLAG_FIRST, 0, b'{']).unwrap(), None);
        assert!(r.push(&[0, b'{', b'}']).is_err());
        assert_eq!(r.push(&[1, FLAG_FIRST, 0, b'{']).unwrap(), None);
        assert!(r.push(&[1, FLAG_FIRST, 0, b'{']).is_err());
        // After an error the next message starts clean.
        assert_eq!(
            r.push(&[1, FLAG_FIRST | FLAG_LAST, 0, b'{', b'}']).unwrap(),
            Some(Plain::Text("{}".into()))
        );
    }

    #[test]
    fn reassembly_is_bounded() {
        let mut r = Reassembler::default();
        let chunk = vec![0u8; MAX_TRANSPORT_PLAINTEXT];
        let mut first = vec![1, FLAG_FIRST, 4];
        first.extend_from_slice(&chunk[3..]);
        assert_eq!(r.push(&first).unwrap(), None);
        let mut cont = vec![1, 0];
        cont.extend_from_slice(&chunk[2..]);
        let mut failed = false;
        for _ in 0..(MAX_REASSEMBLED_BYTES / chunk.len() + 2) {
            if let Err(e) = r.push(&cont) {
                assert!(matches!(e, SecureError::TooLarge { .. }), "{e}");
                failed = true;
                break;
            }
        }
        assert!(failed);
    }
}
