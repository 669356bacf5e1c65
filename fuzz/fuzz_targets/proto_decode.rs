//! cargo-fuzz entry for `proto_decode`; the body is [`bluebridge_fuzz::proto_decode`] (the stable runner calls it too).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bluebridge_fuzz::proto_decode(data));
