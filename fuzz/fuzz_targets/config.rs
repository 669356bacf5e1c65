//! cargo-fuzz entry for `config`; the body is [`bluebridge_fuzz::config`] (the stable runner calls it too).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bluebridge_fuzz::config(data));
