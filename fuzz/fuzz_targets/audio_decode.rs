//! Fuzzes the codec decoders. Input: one byte picks the codec, a `u16` LE header length and the header, then chunks
//! as `u16` LE length + bytes. Decoders must return errors, never panic, and produce whole frames in [-1, 1).
#![no_main]

use bluebridge::snapcast::decoder::new_decoder;
use libfuzzer_sys::fuzz_target;

fn take<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = data.split_first_chunk::<2>()?;
    let len = u16::from_le_bytes(*len) as usize;
    let out = rest.get(..len)?;
    *data = &rest[len..];
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, mut rest)) = data.split_first() else {
        return;
    };
    let codec = ["pcm", "flac", "opus", "ogg", "null"][which as usize % 5];
    let Some(header) = take(&mut rest) else { return };
    let Ok(mut decoder) = new_decoder(codec, header) else {
        return;
    };
    let channels = decoder.format().channels as usize;
    let mut out = Vec::new();
    while let Some(chunk) = take(&mut rest) {
        out.clear();
        match decoder.decode(chunk, &mut out) {
            Ok(frames) => {
                assert_eq!(out.len(), frames * channels);
                assert!(out.iter().all(|s| (-1.0..1.0).contains(s)));
            }
            Err(_) => break,
        }
    }
});
