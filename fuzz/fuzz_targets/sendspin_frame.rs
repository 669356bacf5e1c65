//! cargo-fuzz entry for `sendspin_frame`; the body is [`bluebridge_fuzz::sendspin_frame`] (the stable runner calls it too).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bluebridge_fuzz::sendspin_frame(data));
