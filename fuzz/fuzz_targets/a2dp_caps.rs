//! cargo-fuzz entry for `a2dp_caps`; the body is [`bluebridge_fuzz::a2dp_caps`] (the stable runner calls it too).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bluebridge_fuzz::a2dp_caps(data));
