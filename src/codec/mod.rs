//! Codecs: thin FFI + safe wrappers, each reporting its algorithmic delay.

pub mod lc3;
pub mod sbc;
