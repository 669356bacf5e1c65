//! cargo-fuzz entry for `sendspin_secure`; the body is [`bluebridge_fuzz::sendspin_secure`] (the stable runner calls it too).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bluebridge_fuzz::sendspin_secure(data));
