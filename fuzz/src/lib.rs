//! The bodies of bluebridge's fuzz targets, as plain functions: the cargo-fuzz binaries in `fuzz_targets/` call
//! them from libFuzzer (nightly), and the stable regression runner (`tests/regress.rs`) calls them on each
//! target's seed corpus (`seeds/<target>/`) plus deterministic mutations. A target must return normally on any
//! input; a panic, a hang or an excessive allocation is a bug in the parser it drives.

use bluebridge::a2dp::sbc_caps::{self, SbcQuality};
use bluebridge::bap::base::Base;
use bluebridge::bap::bass::ReceiveState;
use bluebridge::bap::ltv::{parse_ltvs, CodecConfig};
use bluebridge::codec::sbc::Sbc;
use bluebridge::config::Config;
use bluebridge::control::protocol::{Request, Response};
use bluebridge::sendspin::proto::audio::{decode_frame, decode_pcm};
use bluebridge::sendspin::proto::codec::decoder_setup;
use bluebridge::sendspin::proto::stream::PcmFormat;
use bluebridge::sendspin::proto::{decode_server_text, ServerMessage};
use bluebridge::sendspin::secure::init::{handshake_text, parse_handshake, parse_message1, parse_server_init};
use bluebridge::sendspin::secure::peer_key;
use bluebridge::sendspin::secure::transport::{Plain, Reassembler, MAX_REASSEMBLED_BYTES};
use bluebridge::snapcast::decoder::new_decoder;
use bluebridge::snapcast::proto::{decode, encode, split_frame};
use bluebridge::state::State;
use sbc_frame::FrameHeader;

// The sink recorder is a test tool outside the product library (src/bin/bluebridge-sink-recorder/); its pure
// packet parser is compiled in here from its own files.
#[allow(dead_code)]
#[path = "../../src/bin/bluebridge-sink-recorder/packets.rs"]
mod packets;
#[allow(dead_code)]
#[path = "../../src/bin/bluebridge-sink-recorder/sbc_frame.rs"]
mod sbc_frame;

/// A target: its name (also its corpus directory and cargo-fuzz binary) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, in the order the runner runs them.
pub const TARGETS: &[Target] = &[
    ("proto_decode", proto_decode),
    ("audio_decode", audio_decode),
    ("control_request", control_request),
    ("control_reply", control_reply),
    ("ltv", ltv),
    ("base", base),
    ("a2dp_caps", a2dp_caps),
    ("a2dp_packet", a2dp_packet),
    ("config", config),
    ("state", state),
    ("sendspin_text", sendspin_text),
    ("sendspin_frame", sendspin_frame),
    ("sendspin_secure", sendspin_secure),
    ("bass_state", bass_state),
];

/// The Sendspin encryption's parsers of outside input. The first byte picks one: 0 `server/init` (a key it
/// accepts decodes from its id again), 1 `noise/handshake` (round trip), 2 the payload of Noise message 1, 3 the
/// framing inside the encrypted channel, fed plaintexts cut from the rest by 2-byte big-endian lengths (what it
/// assembles keeps its type and stays within the bound).
pub fn sendspin_secure(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match sel % 4 {
        0 => {
            if let Ok(s) = parse_server_init(&text) {
                assert_eq!(peer_key(&s.server_id, "server_id").unwrap(), s.key);
            }
        }
        1 => {
            if let Ok(b) = parse_handshake(&text) {
                assert_eq!(parse_handshake(&handshake_text(&b)).unwrap(), b);
            }
        }
        2 => {
            let _ = parse_message1(rest);
        }
        _ => {
            let mut r = Reassembler::default();
            let mut buf = rest;
            while buf.len() >= 2 {
                let n = (u16::from_be_bytes([buf[0], buf[1]]) as usize).min(buf.len() - 2);
                let (chunk, tail) = buf[2..].split_at(n);
                buf = tail;
                match r.push(chunk) {
                    Ok(Some(Plain::Binary(b))) => {
                        assert!(b[0] > 1 && b.len() <= MAX_REASSEMBLED_BYTES + 1, "type {}", b[0]);
                    }
                    Ok(Some(Plain::Text(t))) => assert!(t.len() <= MAX_REASSEMBLED_BYTES),
                    Ok(None) | Err(_) => {}
                }
            }
        }
    }
}

/// The Sendspin text-message decoder: any bytes (as text) either fail with a typed error or decode; a decoded
/// command, stream format (its decoder setup and the decoder it builds) and time reply are read on as the client
/// reads them.
pub fn sendspin_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match decode_server_text(&text) {
        Ok(ServerMessage::Command(c)) => {
            let _ = c.command();
        }
        Ok(ServerMessage::StreamStart(s)) => {
            if let Some(p) = s.player {
                // The codec setup and the decoder it builds (the lying-header checks) must never panic.
                if let Ok(setup) = decoder_setup(&p) {
                    let _ = bluebridge::snapcast::decoder::new_decoder(setup.codec, &setup.header);
                }
            }
        }
        Ok(ServerMessage::Time(t)) => {
            let _ = t.exchange(i64::from_le_bytes(
                data.get(..8).and_then(|b| b.try_into().ok()).unwrap_or([0; 8]),
            ));
        }
        _ => {}
    }
}

/// The Sendspin binary frame decoder and its PCM payload decoder, with a format taken from the frame's last byte.
pub fn sendspin_frame(data: &[u8]) {
    if let Ok(c) = decode_frame(data) {
        assert!(c.payload.len() + 13 == data.len());
        let sel = data.last().copied().unwrap_or(0);
        let f = PcmFormat {
            rate_hz: 48_000,
            channels: 1 + (sel % 8) as u16,
            bytes_per_sample: 2 + ((sel / 8) % 3) as u16,
        };
        if let Ok(s) = decode_pcm(c.payload, f) {
            assert_eq!(s.len() * f.bytes_per_sample as usize, c.payload.len());
            assert!(s.iter().all(|v| (-1.0..1.0).contains(v)));
        }
    }
}

/// The Snapcast wire decoder: the input is a byte stream cut into messages with `split_frame` and decoded one by
/// one; every decoded message must re-encode and decode to itself.
pub fn proto_decode(data: &[u8]) {
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
}

fn take<'a>(data: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (len, rest) = data.split_first_chunk::<2>()?;
    let len = u16::from_le_bytes(*len) as usize;
    let out = rest.get(..len)?;
    *data = &rest[len..];
    Some(out)
}

/// The codec decoders. Input: one byte picks the codec, a `u16` LE header length and the header, then chunks as
/// `u16` LE length + bytes. Decoders must return errors, never panic, and produce whole frames in [-1, 1).
pub fn audio_decode(data: &[u8]) {
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
}

/// The control socket's request parser (one request line, newline stripped).
pub fn control_request(data: &[u8]) {
    let _ = Request::parse(data);
}

/// The control client's reply parser (one reply line from the service).
pub fn control_reply(data: &[u8]) {
    let _ = Response::parse(data);
}

/// LE Audio LTV structures: the generic LTV splitter and the LC3 codec configuration parser; a configuration that
/// parses must encode and parse back to itself.
pub fn ltv(data: &[u8]) {
    let _ = parse_ltvs(data);
    if let Ok(c) = CodecConfig::parse(data) {
        let bytes = c.to_bytes().expect("a parsed configuration encodes");
        assert_eq!(CodecConfig::parse(&bytes).expect("re-parse"), c);
    }
}

/// The BASE (Broadcast Audio Source Endpoint) parser: a BASE that parses must encode to the same bytes (when not
/// too long to encode), and every BIS's effective configuration must be computable without panicking.
pub fn base(data: &[u8]) {
    let Ok(b) = Base::parse(data) else { return };
    if let Ok(bytes) = b.encode() {
        assert_eq!(bytes, data, "BASE re-encodes to other bytes");
    }
    for sg in &b.subgroups {
        for bis in &sg.bises {
            if let Some(Ok(cfg)) = b.bis_codec_config(bis.index) {
                let _ = CodecConfig::parse(&cfg);
            }
        }
    }
}

/// A2DP SBC capabilities and configurations from BlueZ (SelectConfiguration / SetConfiguration). The first byte
/// picks the quality, the rest is the capability or configuration blob. What `select` chooses must pass `check`,
/// and what `check` accepts must open the SBC encoder.
pub fn a2dp_caps(data: &[u8]) {
    let Some((&q, blob)) = data.split_first() else {
        return;
    };
    let quality = if q & 1 == 0 { SbcQuality::High } else { SbcQuality::Xq };
    if let Ok(conf) = sbc_caps::select(blob, quality) {
        sbc_caps::check(&conf).expect("a selected configuration passes check");
        Sbc::new_a2dp(&conf).expect("a selected configuration opens the encoder");
    }
    if sbc_caps::check(blob).is_ok() {
        let conf: [u8; 4] = blob.try_into().expect("check accepts 4 bytes only");
        assert!((1..=2).contains(&sbc_caps::channels(&conf)));
        Sbc::new_a2dp(blob).expect("a checked configuration opens the encoder");
    }
}

/// An A2DP media packet as the sink recorder receives it: RTP and SBC media payload headers, then SBC frames.
pub fn a2dp_packet(data: &[u8]) {
    let _ = FrameHeader::parse(data);
    let Ok(p) = packets::parse(data) else { return };
    if let Some(frames) = packets::split_frames(p.sbc, usize::from(p.frames)) {
        for (h, f) in frames {
            assert_eq!(h.len, f.len());
            let _ = h.peak_estimate(f);
        }
    }
}

/// The config file parser (TOML to source and outputs, `[service]` included). Non-UTF-8 input is refused before
/// the parser, as `read_to_string` does.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::parse_all("fuzz.toml", text);
    }
}

/// The persisted user-settings file as `StateStore::load` reads it (JSON, then range checks); a state that loads
/// must save and load back to itself.
pub fn state(data: &[u8]) {
    let Ok(s) = serde_json::from_slice::<State>(data) else {
        return;
    };
    if s.validate().is_ok() {
        let saved = serde_json::to_vec_pretty(&s).expect("a loaded state serialises");
        assert_eq!(serde_json::from_slice::<State>(&saved).expect("re-load"), s);
    }
}

/// A Broadcast Receive State as an LE Audio receiver's BASS server sends it (the assistant reads and is notified
/// of it): what decodes holds no more than the input carried (15 header bytes, 5 per subgroup, its metadata).
pub fn bass_state(data: &[u8]) {
    if let Ok(Some(s)) = ReceiveState::decode(data) {
        let metadata: usize = s.subgroups.iter().map(|g| g.metadata.len()).sum();
        assert!(
            15 + 5 * s.subgroups.len() + metadata <= data.len(),
            "decoded more than the input held"
        );
        let _ = s.playing();
    }
}
