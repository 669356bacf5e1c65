//! Sendspin ingest (Music Assistant's multi-room protocol): the wire messages and the player connection.
//!
//! - [`proto`]: the JSON messages and the binary audio frame, pure encode/decode with a bound on every size
//!   (fuzzed in `fuzz/`).
//! - [`client`]: one WebSocket connection per output, as a Sendspin player: hello, clock sync into the shared
//!   server-clock estimate, PCM chunks onto the timeline by their server timestamps, volume and mute commands,
//!   reconnects with backoff.
//!
//! This slice speaks the reference server's transition mode (a plain `client/hello`, admitted by aiosendspin's
//! `allow_unencrypted=True`); the Noise KKpsk2 handshake that servers require by default is not implemented yet.

pub mod client;
pub mod delay;
pub mod proto;

pub use client::{run, PlayerConfig};
