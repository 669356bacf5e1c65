//! The sound-card edge's shared parts: what the local playback output ([`crate::output::local`]) and the capture
//! source ([`crate::source::capture`]) both build on. Today that is the lock-free frame ring of their callback
//! hand-offs ([`ring`]); each side keeps its own stamps and counters, because their directions differ.

pub mod ring;
