//! cargo-fuzz entry for `bass_state`; the body is [`bluebridge_fuzz::bass_state`] (the stable runner calls it too).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bluebridge_fuzz::bass_state(data));
