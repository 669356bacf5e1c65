//! Codecs: thin FFI + safe wrappers, each reporting its algorithmic delay.

pub mod sbc;
