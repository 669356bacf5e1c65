//! Sendspin's encryption as the reference server (aiosendspin 10.2.1, `aiosendspin/noise/`) runs it by default:
//! Noise `KKpsk2` over the WebSocket, the player being the Noise **responder**. Pure: no I/O, every size bounded.
//!
//! The exchange (`noise/driver.py` `run_handshake_client`, `run_handshake_server`):
//! 1. player → `client/init` {client_id = its X25519 public key (43-char base64url), version 1, suite}, a TEXT frame;
//! 2. server → `server/init` {server_id = its public key, version 1} (or `server/error` {reason}, then it closes);
//! 3. server → `noise/handshake` {data = base64url(Noise message 1)}, its payload JSON {psk_id, psk_category};
//! 4. player → `noise/handshake` {data = base64url(Noise message 2)}, its payload the literal bytes `{}`.
//!
//! The prologue is the exact text of `client/init` followed by that of `server/init`; the PSK (slot 2, mixed in at
//! message 2) is the one message 1 names. A player that holds no pairing record answers under the published
//! Sentinel PSK, as aiosendspin's own client does for a PSK it cannot resolve; the server then admits it for
//! playback only if its client_id is trusted for unpaired access. After the handshake every WebSocket frame is
//! BINARY, one Noise transport message each ([`transport`]).
//!
//! - [`init`]: the cleartext JSON messages of steps 1–4.
//! - [`handshake`]: the responder's state machine (`snow`).
//! - [`transport`]: the framing inside the encrypted channel (type byte, fragments) and the cipher states.

pub mod handshake;
pub mod init;
pub mod transport;

use base64::Engine as _;
use sha2::Digest as _;

/// The core protocol version `client/init` and `server/init` carry (`noise/constants.py:8`).
pub const PROTOCOL_VERSION: u64 = 1;
/// Bytes of an X25519 key (`noise/keys.py:18`).
pub const KEY_BYTES: usize = 32;
/// Characters of a base64url X25519 key without padding: a client_id or server_id (`noise/keys.py:22`).
pub const PEER_ID_CHARS: usize = 43;
/// Label of the Sentinel PSK: `SENTINEL_PSK = SHA-256("sendspin-sentinel-psk-v1")` (`noise/constants.py:11`).
const SENTINEL_LABEL: &[u8] = b"sendspin-sentinel-psk-v1";
/// Prefix of a psk_id: `psk_id = base64url(SHA-256("sendspin-psk-id-v1" || psk))` (`noise/keys.py:36-42`).
const PSK_ID_LABEL: &[u8] = b"sendspin-psk-id-v1";

/// A Noise cipher suite the reference implementation offers (`noise/session.py:18-26`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    /// `25519_ChaChaPoly_SHA256`, what aiosendspin's client picks by default.
    ChaChaPoly,
    /// `25519_AESGCM_SHA256`.
    AesGcm,
}

impl Suite {
    /// The suite's name in `client/init`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ChaChaPoly => "25519_ChaChaPoly_SHA256",
            Self::AesGcm => "25519_AESGCM_SHA256",
        }
    }

    /// The full Noise protocol name.
    pub fn pattern(self) -> &'static str {
        match self {
            Self::ChaChaPoly => "Noise_KKpsk2_25519_ChaChaPoly_SHA256",
            Self::AesGcm => "Noise_KKpsk2_25519_AESGCM_SHA256",
        }
    }

    pub(crate) fn params(self) -> snow::params::NoiseParams {
        self.pattern().parse().expect("a Noise pattern snow knows")
    }
}

/// The published Sentinel PSK (public, so it authenticates nothing: admission rests on the static keys).
pub fn sentinel_psk() -> [u8; KEY_BYTES] {
    sha2::Sha256::digest(SENTINEL_LABEL).into()
}

/// The psk_id naming `psk` in Noise message 1.
pub fn psk_id(psk: &[u8; KEY_BYTES]) -> String {
    let mut h = sha2::Sha256::new();
    h.update(PSK_ID_LABEL);
    h.update(psk);
    b64url(&h.finalize())
}

/// base64url without padding, as every Sendspin key, id and handshake blob is written.
pub fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Reads a peer id (a client_id or server_id): 43 base64url characters that decode to a 32-byte key.
pub fn peer_key(id: &str, what: &'static str) -> Result<[u8; KEY_BYTES], SecureError> {
    let bad = |reason: String| SecureError::Malformed { what, reason };
    if id.len() != PEER_ID_CHARS {
        return Err(bad(format!("{} characters, not {PEER_ID_CHARS}", id.len())));
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(id)
        .map_err(|e| bad(format!("not base64url: {e}")))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| bad(format!("decodes to {} bytes, not {KEY_BYTES}", b.len())))
}

/// Why the secure channel could not be set up or broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecureError {
    /// The server answered `client/init` with `server/error`.
    #[error("the server refused the connection (server/error {reason:?})")]
    Refused {
        /// Its reason (`malformed`, `unsupported_version`, `unsupported_suite`, or one this player does not know).
        reason: String,
    },
    /// A message that is not what the handshake expects at this step.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// The message or field.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A protocol version other than [`PROTOCOL_VERSION`].
    #[error("the server speaks protocol version {0}, this player speaks {PROTOCOL_VERSION}")]
    Version(u64),
    /// Bigger than its bound.
    #[error("{what} of {len} bytes is over the {max}-byte bound")]
    TooLarge {
        /// What.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// Noise refused a message: it does not authenticate (a wrong key, a tampered or replayed frame).
    #[error("{what} failed Noise authentication: {reason}")]
    Noise {
        /// Which message.
        what: &'static str,
        /// snow's reason.
        reason: String,
    },
    /// The framing inside the encrypted channel is broken (fragments out of order, reserved flags).
    #[error("encrypted framing: {0}")]
    Framing(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sentinel_psk_and_its_id_are_the_published_constants() {
        // Computed with aiosendspin 10.2.1: `SENTINEL_PSK.hex()`, `psk_id_for(SENTINEL_PSK)`.
        let s = sentinel_psk();
        assert_eq!(s.iter().map(|b| format!("{b:02x}")).collect::<String>(), SENTINEL_HEX);
        assert_eq!(psk_id(&s), SENTINEL_ID);
    }

    const SENTINEL_HEX: &str = "1b5e24dbc1aed95fc2a5a338a90c05df44bd10f5ec1f4cd66cbf86272767b9d3";
    const SENTINEL_ID: &str = "GFsV9tLaSQm9HcFWpKsgYQOr7wFTvNUtkmFwuVz3zoo";

    #[test]
    fn peer_ids_are_43_base64url_characters_of_a_32_byte_key() {
        let k = [7u8; 32];
        assert_eq!(peer_key(&b64url(&k), "client_id"), Ok(k));
        assert!(matches!(
            peer_key("abc", "server_id"),
            Err(SecureError::Malformed { what: "server_id", .. })
        ));
        assert!(peer_key(&"*".repeat(43), "server_id").is_err());
        // 44 characters: padding is not allowed.
        assert!(peer_key(&format!("{}=", b64url(&k)), "server_id").is_err());
    }

    #[test]
    fn both_suites_are_patterns_snow_knows() {
        for s in [Suite::ChaChaPoly, Suite::AesGcm] {
            let _ = s.params();
        }
    }
}
