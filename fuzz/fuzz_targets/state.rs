//! cargo-fuzz entry for `state`; the body is [`bluebridge_fuzz::state`] (the stable runner calls it too).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bluebridge_fuzz::state(data));
