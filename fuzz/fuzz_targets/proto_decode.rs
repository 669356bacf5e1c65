//! Fuzzes the Snapcast wire decoder: the input is a byte stream cut into messages with `split_frame` and decoded
//! one by one; every decoded message must re-encode and decode to itself.
#![no_main]

use bluebridge::snapcast::proto::{decode, encode, split_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = data;
    while let Ok(Some(frame)) = split_frame(buf) {
        assert!(frame.len <= buf.len());
        let h = frame.header;
        if let Ok(msg) = decode(&h, frame.payload) {
            let again = encode(&msg, h.id, h.refers_to, h.sent).expect("re-encode");
            let f2 = split_frame(&again).expect("split").expect("whole");
            assert_eq!(decode(&f2.header, f2.payload).expect("re-decode"), msg);
        }
        buf = &buf[frame.len..];
    }
});
