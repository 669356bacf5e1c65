use super::*;
use crate::sendspin::proto::hello::player_formats;

fn fmt(codec: &str, rate: u32, bits: u16, header: Option<String>) -> StreamFormat {
    StreamFormat {
        codec: codec.into(),
        sample_rate: rate,
        channels: 2,
        bit_depth: bits,
        codec_header: header,
    }
}

#[test]
fn pcm_plays_as_announced() {
    let mut s = Stream::start(&player_formats(), &fmt("pcm", 44_100, 16, None)).unwrap();
    assert_eq!(
        s.format(),
        AudioFormat {
            rate_hz: 44_100,
            channels: 2
        }
    );
    assert_eq!(s.decode(&[0x00, 0x40, 0x00, 0xc0]).unwrap(), [0.5, -0.5]);
}

#[test]
fn unlisted_formats_and_lying_headers_are_refused_naming_them() {
    let e = Stream::start(&player_formats(), &fmt("pcm", 96_000, 24, None)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "stream/start format pcm/96000 Hz/2 ch/24 bit is not one this player offered"
    );
    // FLAC whose "STREAMINFO" is not one.
    let e = Stream::start(&player_formats(), &fmt("flac", 48_000, 16, Some("bm90IGZsYWM=".into()))).unwrap_err();
    assert!(e.to_string().contains("flac codec_header"), "{e}");
    assert!(Stream::start(&player_formats(), &fmt("flac", 48_000, 16, None)).is_err());
}

#[test]
fn opus_chunks_keep_the_encoders_lookahead_as_the_server_stamps_them() {
    // aiosendspin stamps the first Opus chunk one lookahead (OpusHead pre-skip) before the first input sample; the
    // decoder's output starts with that lookahead. So a click at input frame 2000 must come out at 2000 + lookahead,
    // and the player plays the decoded frames from the chunk's timestamp as they are.
    let mut enc = ::opus::Encoder::new(48_000, ::opus::Channels::Stereo, ::opus::Application::Audio).unwrap();
    let lookahead = enc.get_lookahead().unwrap() as usize;
    assert!((100..=1_000).contains(&lookahead), "{lookahead}");
    let mut input = vec![0i16; 2 * 960 * 5];
    let click = 2_000usize;
    for d in -8i32..=8 {
        let v = (0.8 * 32767.0 * (-0.5 * (d as f64 / 1.5).powi(2)).exp()) as i16;
        let i = (click as i32 + d) as usize;
        input[2 * i] = v;
        input[2 * i + 1] = v;
    }
    let mut s = Stream::start(&player_formats(), &fmt("opus", 48_000, 16, None)).unwrap();
    let mut out = vec![];
    for frame in input.chunks(2 * 960) {
        let packet = enc.encode_vec(frame, 4_000).unwrap();
        out.extend(s.decode(&packet).unwrap());
    }
    let peak = out
        .chunks(2)
        .enumerate()
        .max_by(|a, b| a.1[0].abs().total_cmp(&b.1[0].abs()))
        .unwrap()
        .0;
    assert!(
        peak.abs_diff(click + lookahead) <= 2,
        "peak at {peak}, click {click} + lookahead {lookahead}"
    );
}

#[test]
fn a_bad_chunk_is_skipped_and_a_run_of_them_breaks_the_stream() {
    let mut s = Stream::start(&player_formats(), &fmt("pcm", 48_000, 16, None)).unwrap();
    for _ in 1..MAX_BAD_CHUNKS {
        assert!(matches!(s.decode(&[1, 2, 3]), Err(ChunkError::Skipped(_))));
    }
    // A good one resets the count.
    assert!(s.decode(&[0; 4]).is_ok());
    for _ in 1..MAX_BAD_CHUNKS {
        assert!(matches!(s.decode(&[1, 2, 3]), Err(ChunkError::Skipped(_))));
    }
    let e = s.decode(&[1, 2, 3]).unwrap_err();
    assert!(matches!(e, ChunkError::Broken(_)), "{e}");
    assert!(e.to_string().contains("does not decode"), "{e}");
    s.restart();
    assert!(matches!(s.decode(&[1, 2, 3]), Err(ChunkError::Skipped(_))));
}
