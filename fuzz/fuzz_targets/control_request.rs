//! cargo-fuzz entry for `control_request`; the body is [`bluebridge_fuzz::control_request`] (the stable runner calls it too).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bluebridge_fuzz::control_request(data));
