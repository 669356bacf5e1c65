//! Snapcast ingest: the binary protocol, the client connection, time sync and the decoders.
//!
//! - [`proto`]: wire messages, pure encode/decode (fuzzed in `fuzz/`).
//! - [`decoder`]: codec payloads (pcm, flac, opus, ogg/vorbis, null) to interleaved `f32`.
//! - [`client`]: one TCP connection per output, time sync into the shared server clock, reconnects.

pub mod decoder;
pub mod proto;
