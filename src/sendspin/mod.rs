//! Sendspin ingest (Music Assistant's multi-room protocol): the wire messages and the player connection.
//!
//! - [`proto`]: the JSON messages and the binary audio frame, pure encode/decode with a bound on every size
//!   (fuzzed in `fuzz/`).
//! - [`client`]: one WebSocket connection per output, as a Sendspin player: hello, clock sync into the shared
//!   server-clock estimate, chunks (PCM, FLAC, Opus: [`playback`]) onto the timeline by their server timestamps, volume and mute commands,
//!   reconnects with backoff.
//!
//! - [`secure`]: the Noise KKpsk2 handshake and the encrypted framing servers require by default (pure).
//! - [`identity`]: each output's X25519 keypair, kept in the state directory (its client_id).
//! - [`link`]: the connection up to playing: WebSocket, handshake, hello, activation.
//! - [`error`]: why a connection ended ([`ConnectionError`](error::ConnectionError)), each cause naming the bad
//!   input.
//! - [`meet`]: where a player's connections come from: a configured URL, a server found over mDNS, or a server
//!   dialling the player's [`listen`]er after finding its [`mdns`] record.
//!
//! Encryption is the default; the reference server's plain transition mode (a plain `client/hello`, admitted by
//! aiosendspin's `allow_unencrypted=True`) stays available (`[source] encryption = false`).

pub mod client;
pub mod delay;
pub mod error;
pub mod identity;
pub mod link;
pub mod listen;
pub mod mdns;
pub mod meet;
pub mod playback;
pub mod proto;
pub mod secure;

pub use client::{run, PlayerConfig};
pub use meet::Meet;
