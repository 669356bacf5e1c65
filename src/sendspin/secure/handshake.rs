//! The player's side of the handshake: the Noise responder of `Noise_KKpsk2_25519_*_SHA256` (`snow`), driven by the
//! cleartext messages of [`super::init`]. A typestate: [`ClientInit`] (sent `client/init`) → [`AwaitMessage1`]
//! (read `server/init`) → [`Established`] (read message 1, wrote message 2, transport keys split).
//!
//! What it does with the PSK mirrors aiosendspin's client (`noise/driver.py` `_exchange_as_responder`,
//! `client/connection.py` `_resolve_psk`): the Sentinel PSK when message 1 names it; for any PSK it does not hold
//! (a long-term or Pairing PSK: this player never pairs) it answers under the Sentinel and reports the mismatch, so
//! the server can still admit it as an unpaired player.

use super::init::{self, Message1, PskCategory, MAX_NOISE_MESSAGE_BYTES, MESSAGE2_PAYLOAD};
use super::transport::Transport;
use super::{psk_id, sentinel_psk, SecureError, Suite, KEY_BYTES};

/// Slot of the PSK in `KKpsk2` (the end of message 2).
const PSK_SLOT: usize = 2;

/// A player's static X25519 keypair: its Sendspin identity.
#[derive(Clone, PartialEq, Eq)]
pub struct Keypair {
    private: [u8; KEY_BYTES],
    public: [u8; KEY_BYTES],
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keypair {{ client_id: {} }}", self.client_id())
    }
}

impl Keypair {
    /// A fresh keypair from the operating system's random source.
    pub fn generate() -> Result<Self, SecureError> {
        let k = snow::Builder::new(Suite::ChaChaPoly.params())
            .generate_keypair()
            .map_err(|e| SecureError::Noise {
                what: "key generation",
                reason: e.to_string(),
            })?;
        let private: [u8; KEY_BYTES] = k.private.as_slice().try_into().expect("a 32-byte X25519 key");
        Ok(Self::from_private(private))
    }

    /// The keypair of a stored private key (the public key is derived, never stored).
    pub fn from_private(private: [u8; KEY_BYTES]) -> Self {
        use snow::resolvers::CryptoResolver as _;
        let mut dh = snow::resolvers::DefaultResolver
            .resolve_dh(&snow::params::DHChoice::Curve25519)
            .expect("snow's default resolver has X25519");
        dh.set(&private);
        let public = dh.pubkey().try_into().expect("a 32-byte X25519 key");
        Self { private, public }
    }

    /// The private key.
    pub fn private(&self) -> &[u8; KEY_BYTES] {
        &self.private
    }

    /// The client_id: the public key in base64url (`noise/keys.py` `Identity.peer_id`).
    pub fn client_id(&self) -> String {
        super::b64url(&self.public)
    }
}

/// Step 1: `client/init` is written, `server/init` awaited.
pub struct ClientInit {
    keys: Keypair,
    suite: Suite,
    text: String,
}

impl ClientInit {
    /// Starts a handshake; send the returned text as a TEXT frame.
    pub fn start(keys: &Keypair, suite: Suite) -> (Self, String) {
        let text = init::client_init(&keys.client_id(), suite);
        (
            Self {
                keys: keys.clone(),
                suite,
                text: text.clone(),
            },
            text,
        )
    }

    /// Step 2: reads `server/init` (or `server/error`) and sets up the Noise responder.
    pub fn server_init(self, text: &str) -> Result<AwaitMessage1, SecureError> {
        let server = init::parse_server_init(text)?;
        let mut prologue = self.text.into_bytes();
        prologue.extend_from_slice(text.as_bytes());
        let noise = |e: snow::Error| SecureError::Noise {
            what: "handshake set-up",
            reason: e.to_string(),
        };
        let state = snow::Builder::new(self.suite.params())
            .local_private_key(self.keys.private())
            .map_err(noise)?
            .remote_public_key(&server.key)
            .map_err(noise)?
            .prologue(&prologue)
            .map_err(noise)?
            .build_responder()
            .map_err(noise)?;
        Ok(AwaitMessage1 {
            state,
            server_id: server.server_id,
        })
    }
}

/// Step 3: the Noise responder waits for message 1.
pub struct AwaitMessage1 {
    state: snow::HandshakeState,
    server_id: String,
}

/// A completed handshake.
pub struct Established {
    /// The `noise/handshake` text carrying message 2: send it as a TEXT frame; everything after is encrypted.
    pub reply: String,
    /// The encrypted channel.
    pub transport: Transport,
    /// The server's id (its public key), authenticated by the handshake.
    pub server_id: String,
    /// What message 1 referred to.
    pub referenced: Message1,
    /// Message 1 named a PSK this player does not hold, so it answered under the Sentinel.
    pub credential_mismatch: bool,
}

impl AwaitMessage1 {
    /// The server's id from `server/init`.
    pub fn server_id(&self) -> &str {
        &self.server_id
    }

    /// Step 3–4: reads message 1, answers with message 2 under the Sentinel PSK, and splits the transport keys.
    pub fn message1(mut self, text: &str) -> Result<Established, SecureError> {
        let noise = init::parse_handshake(text)?;
        if noise.len() > MAX_NOISE_MESSAGE_BYTES {
            return Err(SecureError::TooLarge {
                what: "Noise message 1",
                len: noise.len(),
                max: MAX_NOISE_MESSAGE_BYTES,
            });
        }
        let mut payload = vec![0u8; MAX_NOISE_MESSAGE_BYTES];
        let n = self
            .state
            .read_message(&noise, &mut payload)
            .map_err(|e| SecureError::Noise {
                what: "Noise message 1",
                reason: e.to_string(),
            })?;
        let referenced = init::parse_message1(&payload[..n])?;
        let sentinel = sentinel_psk();
        let credential_mismatch =
            !(referenced.category == PskCategory::Sentinel && referenced.psk_id == psk_id(&sentinel));
        self.state
            .set_psk(PSK_SLOT, &sentinel)
            .map_err(|e| SecureError::Noise {
                what: "Noise message 2",
                reason: e.to_string(),
            })?;
        let mut out = vec![0u8; MAX_NOISE_MESSAGE_BYTES];
        let n = self
            .state
            .write_message(MESSAGE2_PAYLOAD, &mut out)
            .map_err(|e| SecureError::Noise {
                what: "Noise message 2",
                reason: e.to_string(),
            })?;
        let reply = init::handshake_text(&out[..n]);
        let transport = self.state.into_transport_mode().map_err(|e| SecureError::Noise {
            what: "handshake completion",
            reason: e.to_string(),
        })?;
        Ok(Established {
            reply,
            transport: Transport::new(transport),
            server_id: self.server_id,
            referenced,
            credential_mismatch,
        })
    }
}

#[cfg(test)]
#[path = "handshake_tests.rs"]
mod tests;
