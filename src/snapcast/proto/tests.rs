//! Whole-message tests: golden frames, round trips through [`split_frame`] + [`decode`], and a deterministic
//! property test that pushes tens of thousands of random and mutated byte strings through the decoder.

use super::*;

fn samples() -> Vec<Message> {
    vec![
        Message::CodecHeader(CodecHeader {
            codec: "flac".into(),
            header: b"fLaC\0\0\0\x22".to_vec(),
        }),
        Message::WireChunk(WireChunk {
            timestamp: Tv { sec: 12, usec: 345_678 },
            payload: vec![7; 100],
        }),
        Message::ServerSettings(ServerSettings {
            buffer_ms: 1000,
            latency_ms: 20,
            volume_pct: 55,
            muted: false,
        }),
        Message::Time(Time {
            latency: Tv { sec: 0, usec: 150 },
        }),
        Message::Hello(Hello {
            id: "bluebridge-x".into(),
            host_name: "h".into(),
            ..Hello::default()
        }),
        Message::ClientInfo(ClientInfo {
            volume_pct: 100,
            muted: true,
        }),
        Message::Error(ErrorMsg {
            code: 403,
            error: "Forbidden".into(),
            message: "no streaming".into(),
        }),
        Message::Unknown { msg_type: 6 },
        Message::Unknown { msg_type: 999 },
    ]
}

#[test]
fn golden_time_frame() {
    let bytes = encode(&Message::Time(Time::default()), 7, 0, Tv { sec: 700, usec: 1 }).unwrap();
    let golden: [u8; 34] = [
        4, 0, 7, 0, 0, 0, 0xbc, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    assert_eq!(bytes, golden);
}

#[test]
fn every_message_round_trips_through_split_and_decode() {
    let mut stream = Vec::new();
    let msgs = samples();
    for (i, m) in msgs.iter().enumerate() {
        stream.extend(encode(m, i as u16, 3, Tv { sec: 1, usec: 2 }).unwrap());
    }
    let mut rest = &stream[..];
    for (i, m) in msgs.iter().enumerate() {
        let Frame {
            header: h,
            payload,
            len: used,
        } = split_frame(rest).unwrap().unwrap();
        assert_eq!((h.id, h.refers_to, h.sent), (i as u16, 3, Tv { sec: 1, usec: 2 }));
        assert_eq!(&decode(&h, payload).unwrap(), m);
        rest = &rest[used..];
    }
    assert!(rest.is_empty());
}

#[test]
fn every_truncation_of_every_message_is_incomplete_or_an_error() {
    for m in samples() {
        let bytes = encode(&m, 1, 0, Tv::default()).unwrap();
        for n in 0..bytes.len() {
            assert_eq!(split_frame(&bytes[..n]), Ok(None), "{m:?} cut to {n}");
        }
        // A header that claims fewer bytes than the fields need: every shorter size is an error, never a panic.
        let h = BaseHeader::parse(&bytes).unwrap();
        for size in 0..h.size {
            let short = BaseHeader { size, ..h };
            let r = decode(&short, &bytes[BASE_HEADER_SIZE..BASE_HEADER_SIZE + size as usize]);
            if !matches!(m, Message::Unknown { .. }) {
                assert!(r.is_err(), "{m:?} with size {size} decoded as {r:?}");
            }
        }
    }
}

#[test]
fn unknown_types_are_skipped_by_size() {
    let mut stream = BaseHeader {
        msg_type: 42,
        size: 5,
        ..Default::default()
    }
    .to_bytes()
    .to_vec();
    stream.extend([9; 5]);
    stream.extend(encode(&Message::Time(Time::default()), 1, 0, Tv::default()).unwrap());
    let Frame {
        header: h,
        payload: p,
        len: used,
    } = split_frame(&stream).unwrap().unwrap();
    assert_eq!(decode(&h, p), Ok(Message::Unknown { msg_type: 42 }));
    let Frame {
        header: h, payload: p, ..
    } = split_frame(&stream[used..]).unwrap().unwrap();
    assert_eq!(decode(&h, p), Ok(Message::Time(Time::default())));
}

#[test]
fn size_mismatch_and_limits() {
    let h = BaseHeader {
        msg_type: 4,
        size: 8,
        ..Default::default()
    };
    assert_eq!(
        decode(&h, &[0; 7]).unwrap_err().to_string(),
        "Time payload is 7 bytes but the header says 8"
    );
    let h = BaseHeader {
        msg_type: 2,
        size: u32::MAX,
        ..Default::default()
    };
    assert!(matches!(decode(&h, &[]), Err(ProtoError::MessageTooLarge { .. })));
    assert!(matches!(
        split_frame(&h.to_bytes()),
        Err(ProtoError::MessageTooLarge { .. })
    ));
    let big = Message::WireChunk(WireChunk {
        timestamp: Tv::default(),
        payload: vec![0; 1_000_000],
    });
    assert!(matches!(
        encode(&big, 0, 0, Tv::default()),
        Err(ProtoError::EncodeTooLarge { .. })
    ));
}

/// Decodes a whole byte stream message by message; returns how many messages decoded. Panics only if the decoder
/// violates its own contract (a frame that consumes nothing or more than the buffer, an unstable round trip).
pub(crate) fn drain_stream(mut buf: &[u8]) -> usize {
    let mut decoded = 0;
    loop {
        match split_frame(buf) {
            Ok(Some(Frame {
                header: h,
                payload,
                len: used,
            })) => {
                assert!(used >= BASE_HEADER_SIZE && used <= buf.len());
                if let Ok(m) = decode(&h, payload) {
                    decoded += 1;
                    let again = encode(&m, h.id, h.refers_to, h.sent).expect("a decoded message re-encodes");
                    let f = split_frame(&again).unwrap().unwrap();
                    assert_eq!(decode(&f.header, f.payload).as_ref(), Ok(&m), "round trip of {m:?}");
                }
                buf = &buf[used..];
            }
            Ok(None) | Err(_) => return decoded,
        }
    }
}

#[test]
fn property_random_and_mutated_input_never_panics() {
    let mut rng = fastrand::Rng::with_seed(0x5eed_b1b1);
    let corpus: Vec<Vec<u8>> = samples()
        .iter()
        .map(|m| encode(m, 1, 0, Tv { sec: 5, usec: 6 }).unwrap())
        .collect();
    let mut decoded_total = 0usize;
    const CASES: usize = 30_000;
    for case in 0..CASES {
        let mut buf = match case % 4 {
            // Pure noise, sometimes with a plausible type and a small size so the payload decoders get reached.
            0 => {
                let mut b: Vec<u8> = (0..rng.usize(0..200)).map(|_| rng.u8(..)).collect();
                if b.len() >= BASE_HEADER_SIZE && rng.bool() {
                    b[0] = rng.u8(0..10);
                    b[1] = 0;
                    let size = (b.len() - BASE_HEADER_SIZE) as u32;
                    b[22..26].copy_from_slice(&size.to_le_bytes());
                }
                b
            }
            // Several valid messages glued together.
            1 => (0..rng.usize(1..5))
                .flat_map(|_| corpus[rng.usize(..corpus.len())].clone())
                .collect(),
            // One valid message with a few random byte edits.
            _ => corpus[rng.usize(..corpus.len())].clone(),
        };
        if case % 4 >= 1 {
            for _ in 0..rng.usize(0..6) {
                if buf.is_empty() {
                    break;
                }
                let i = rng.usize(..buf.len());
                match rng.u8(0..5) {
                    0 => buf[i] = rng.u8(..),
                    1 => buf[i] ^= 1 << rng.u8(0..8),
                    2 => buf.truncate(i),
                    3 => buf.insert(i, rng.u8(..)),
                    _ => {
                        // Overwrite a 32-bit field with an extreme or near-miss length.
                        let v: u32 =
                            [0, 1, u32::MAX, 0x7fff_ffff, 1_000_000, 1_000_001, rng.u32(0..300)][rng.usize(0..7)];
                        if i + 4 <= buf.len() {
                            buf[i..i + 4].copy_from_slice(&v.to_le_bytes());
                        }
                    }
                }
            }
        }
        decoded_total += drain_stream(&buf);
    }
    // The mutations must leave a good share decodable, or the test would only exercise the header check.
    assert!(decoded_total > CASES / 4, "only {decoded_total} messages decoded");
}
