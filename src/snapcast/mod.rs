//! Snapcast ingest: the binary protocol, the client connection, time sync and the decoders.
//!
//! - [`proto`]: wire messages, pure encode/decode (fuzzed in `fuzz/`).
//! - [`decoder`]: codec payloads (pcm, flac, opus, ogg/vorbis, null) to interleaved `f32`.
//! - [`url`]: `tcp://[user:password@]host[:port]` server addresses.
//! - [`time_sync`]: when to send Time requests and how replies become clock samples.
//! - [`client`]: one TCP connection per output: Hello, settings, decoding, time sync, reconnects.

pub mod client;
pub mod decoder;
pub mod proto;
pub mod time_sync;
pub mod url;

pub use client::{run, ClientCommand, ClientConfig, SnapEvent};
