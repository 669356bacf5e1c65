//! cargo-fuzz entry for `base`; the body is [`bluebridge_fuzz::base`] (the stable runner calls it too).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bluebridge_fuzz::base(data));
