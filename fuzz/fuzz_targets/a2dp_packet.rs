//! cargo-fuzz entry for `a2dp_packet`; the body is [`bluebridge_fuzz::a2dp_packet`] (the stable runner calls it too).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bluebridge_fuzz::a2dp_packet(data));
