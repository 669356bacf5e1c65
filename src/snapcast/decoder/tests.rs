//! Decoder tests: FLAC exactness against a tiny test-only FLAC writer, hostile-chunk limits, and a deterministic
//! property test that feeds random and mutated headers and chunks of every codec through [`new_decoder`].

use super::*;

/// A minimal FLAC writer for tests: fixed block size, independent channels, verbatim or constant subframes.
pub(crate) mod flac_writer {
    fn crc8(data: &[u8]) -> u8 {
        data.iter().fold(0u8, |mut crc, &b| {
            crc ^= b;
            for _ in 0..8 {
                crc = if crc & 0x80 != 0 { (crc << 1) ^ 0x07 } else { crc << 1 };
            }
            crc
        })
    }

    fn crc16(data: &[u8]) -> u16 {
        data.iter().fold(0u16, |mut crc, &b| {
            crc ^= (b as u16) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x8005
                } else {
                    crc << 1
                };
            }
            crc
        })
    }

    /// `fLaC` + a last STREAMINFO block for 48 kHz 16-bit audio.
    pub fn header(channels: u8, block_frames: u16) -> Vec<u8> {
        let mut h = b"fLaC".to_vec();
        h.extend([0x80, 0, 0, 34]);
        h.extend(block_frames.to_be_bytes());
        h.extend(block_frames.to_be_bytes());
        h.extend([0; 6]);
        let packed: u64 = (48_000u64 << 44) | (((channels - 1) as u64) << 41) | (15u64 << 36);
        h.extend(packed.to_be_bytes());
        h.extend([0; 16]);
        h
    }

    /// One frame. `samples` is interleaved; `constant` writes each channel as one constant subframe instead.
    pub fn frame(frame_number: u8, channels: u8, samples: &[i16], constant: bool) -> Vec<u8> {
        assert!(frame_number < 128);
        let block = samples.len() / channels as usize;
        let mut f = vec![0xff, 0xf8, 0x7a, ((channels - 1) << 4) | (0b100 << 1), frame_number];
        f.extend(((block - 1) as u16).to_be_bytes());
        f.push(crc8(&f));
        for ch in 0..channels as usize {
            if constant {
                f.push(0x00);
                f.extend(samples[ch].to_be_bytes());
            } else {
                f.push(0x02);
                for i in 0..block {
                    f.extend(samples[i * channels as usize + ch].to_be_bytes());
                }
            }
        }
        let crc = crc16(&f);
        f.extend(crc.to_be_bytes());
        f
    }
}

fn decode_chunk(d: &mut dyn Decoder, chunk: &[u8]) -> Result<Vec<f32>, DecodeError> {
    let mut out = Vec::new();
    let frames = d.decode(chunk, &mut out)?;
    assert_eq!(out.len(), frames * d.format().channels as usize);
    Ok(out)
}

#[test]
fn flac_is_bit_exact_and_chunks_hold_whole_frames() {
    let mut rng = fastrand::Rng::with_seed(7);
    let samples: Vec<i16> = (0..2 * 4 * 192).map(|_| rng.i16(..)).collect();
    let mut d = new_decoder("flac", &flac_writer::header(2, 192)).unwrap();
    assert_eq!(d.format(), AudioFormat::STEREO_48K);
    // Two chunks of two frames each.
    let mut got = Vec::new();
    for c in 0..2 {
        let mut chunk = Vec::new();
        for k in 0..2 {
            let n = c * 2 + k;
            chunk.extend(flac_writer::frame(n as u8, 2, &samples[n * 384..(n + 1) * 384], false));
        }
        got.extend(decode_chunk(d.as_mut(), &chunk).unwrap());
    }
    let want: Vec<f32> = samples.iter().map(|&s| s as f32 / 32768.0).collect();
    assert_eq!(got, want);
    assert_eq!(decode_chunk(d.as_mut(), &[]).unwrap(), Vec::<f32>::new());
}

#[test]
fn flac_lies_and_cuts_are_errors() {
    let samples = vec![100i16; 2 * 192];
    let frame = flac_writer::frame(0, 2, &samples, false);
    let mut d = new_decoder("flac", &flac_writer::header(2, 192)).unwrap();
    for n in 1..frame.len() {
        assert!(d.decode(&frame[..n], &mut Vec::new()).is_err(), "frame cut at {n}");
    }
    let mono = flac_writer::frame(0, 1, &samples[..192], false);
    let err = d.decode(&mono, &mut Vec::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "flac chunk is invalid: frame has 1 channels, STREAMINFO says 2"
    );
    assert!(new_decoder("flac", b"fLaC").is_err());
    assert!(new_decoder("flac", b"OggS").is_err());
    assert!(new_decoder("flac", &flac_writer::header(2, 192)[..20]).is_err());
}

#[test]
fn a_small_chunk_cannot_expand_without_bound() {
    // Constant subframes: 13 bytes per 65535 frames. A 1 MB chunk of them would be 5 billion samples.
    let mut d = new_decoder("flac", &flac_writer::header(2, 65535)).unwrap();
    let frame = flac_writer::frame(0, 2, &vec![1i16; 2 * 65535], true);
    assert!(frame.len() < 20);
    let chunk = frame.repeat(10);
    let err = d.decode(&chunk, &mut Vec::new()).unwrap_err();
    assert_eq!(
        err,
        DecodeError::ChunkTooLong {
            codec: "flac",
            limit_frames: 240_000
        }
    );
}

#[test]
fn null_and_unknown_codecs() {
    let mut d = new_decoder("null", &[]).unwrap();
    assert_eq!(decode_chunk(d.as_mut(), &[1, 2, 3]).unwrap(), Vec::<f32>::new());
    let err = new_decoder("mp3", &[]).err().unwrap();
    assert_eq!(
        err.to_string(),
        "unknown codec \"mp3\" (expected pcm, flac, opus, ogg or null)"
    );
}

/// Seeds for the property test: for each codec, a valid header and valid chunks.
type Seed = (&'static str, Vec<u8>, Vec<Vec<u8>>);

fn seeds() -> Vec<Seed> {
    let mut rng = fastrand::Rng::with_seed(11);
    let pcm16: Vec<u8> = (0..400).map(|_| rng.u8(..)).collect();
    let flac_samples: Vec<i16> = (0..2 * 64).map(|_| rng.i16(..)).collect();
    let mut enc = ::opus::Encoder::new(48_000, ::opus::Channels::Stereo, ::opus::Application::Audio).unwrap();
    let tone: Vec<f32> = (0..960 * 2).map(|i| ((i / 2) as f32 * 0.05).sin() * 0.3).collect();
    let opus_packets: Vec<Vec<u8>> = (0..3).map(|_| enc.encode_vec_float(&tone, 4000).unwrap()).collect();
    vec![
        (
            "pcm",
            super::pcm::tests::riff_header(48_000, 16, 2),
            vec![pcm16.clone()],
        ),
        ("pcm", super::pcm::tests::riff_header(44_100, 24, 1), vec![pcm16]),
        (
            "flac",
            flac_writer::header(2, 64),
            vec![
                flac_writer::frame(0, 2, &flac_samples, false),
                flac_writer::frame(1, 2, &flac_samples, true),
            ],
        ),
        ("opus", super::opus::tests::header(48_000, 16, 2), opus_packets),
        (
            "ogg",
            include_bytes!("testdata/ogg_header.bin").to_vec(),
            ogg_fixture_chunks(),
        ),
        ("null", vec![], vec![vec![1, 2]]),
    ]
}

/// Vorbis chunks captured from snapserver 0.26 (`testdata/ogg_chunks.bin`: each chunk as u32 LE length + bytes).
pub(crate) fn ogg_fixture_chunks() -> Vec<Vec<u8>> {
    let mut data: &[u8] = include_bytes!("testdata/ogg_chunks.bin");
    let mut chunks = Vec::new();
    while data.len() >= 4 {
        let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
        chunks.push(data[4..4 + len].to_vec());
        data = &data[4 + len..];
    }
    chunks
}

#[test]
fn ogg_fixture_from_snapserver_decodes() {
    let mut d = new_decoder("ogg", include_bytes!("testdata/ogg_header.bin")).unwrap();
    assert_eq!(d.format(), AudioFormat::STEREO_48K);
    let mut frames = 0;
    for c in ogg_fixture_chunks() {
        frames += decode_chunk(d.as_mut(), &c).unwrap().len() / 2;
    }
    assert!(frames > 10_000, "{frames} frames");
}

fn mutate(rng: &mut fastrand::Rng, buf: &mut Vec<u8>) {
    for _ in 0..rng.usize(1..5) {
        if buf.is_empty() {
            buf.push(rng.u8(..));
            continue;
        }
        let i = rng.usize(..buf.len());
        match rng.u8(0..5) {
            0 => buf[i] = rng.u8(..),
            1 => buf[i] ^= 1 << rng.u8(0..8),
            2 => buf.truncate(i),
            3 => buf.insert(i, rng.u8(..)),
            _ => {
                let v: [u8; 4] = [[0; 4], [0xff; 4], [0, 0, 0, 0x80], [1, 0, 0, 0]][rng.usize(0..4)];
                let end = (i + 4).min(buf.len());
                buf[i..end].copy_from_slice(&v[..end - i]);
            }
        }
    }
}

#[test]
fn property_mutated_headers_and_chunks_never_panic() {
    let mut rng = fastrand::Rng::with_seed(0x00de_c0de);
    let seeds = seeds();
    let (mut built, mut decoded) = (0, 0);
    const CASES: usize = 4_000;
    for case in 0..CASES {
        let (codec, header, chunks) = &seeds[case % seeds.len()];
        let mut header = header.clone();
        if rng.u8(0..4) == 0 {
            mutate(&mut rng, &mut header);
        }
        let Ok(mut d) = new_decoder(codec, &header) else {
            continue;
        };
        built += 1;
        let f = d.format();
        assert!(f.rate_hz > 0 && f.rate_hz <= MAX_RATE_HZ && f.channels > 0 && f.channels <= MAX_CHANNELS);
        for chunk in chunks.iter().take(6) {
            let mut chunk = chunk.clone();
            if rng.bool() {
                mutate(&mut rng, &mut chunk);
            }
            let mut out = vec![0.25];
            match d.decode(&chunk, &mut out) {
                Ok(frames) => {
                    decoded += 1;
                    assert_eq!(out.len(), 1 + frames * f.channels as usize);
                    assert!(
                        out.iter().all(|s| (-1.0..1.0).contains(s)),
                        "{codec}: sample out of range"
                    );
                }
                Err(_) => break,
            }
        }
    }
    assert!(
        built > CASES / 2 && decoded > CASES / 2,
        "built {built} decoders, decoded {decoded} chunks"
    );
}
