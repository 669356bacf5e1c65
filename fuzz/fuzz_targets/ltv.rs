//! cargo-fuzz entry for `ltv`; the body is [`bluebridge_fuzz::ltv`] (the stable runner calls it too).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bluebridge_fuzz::ltv(data));
