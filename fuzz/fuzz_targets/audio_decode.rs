//! cargo-fuzz entry for `audio_decode`; the body is [`bluebridge_fuzz::audio_decode`] (the stable runner calls it too).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bluebridge_fuzz::audio_decode(data));
