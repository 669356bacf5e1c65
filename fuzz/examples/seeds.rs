//! Writes the seeds of every target but proto_decode and audio_decode (those come from a real snapserver:
//! `tools/snapcast_seeds.py`): what bluebridge itself sends or receives (A2DP packets of its SBC encoder and RTP
//! packetizer, the BASE and per-BIS configurations of every broadcast preset, every control request and reply),
//! the byte fixtures of the parsers' tests (BlueZ's `lc3.h` BASEs, speaker capabilities, the documented configs)
//! and the shipped config file. Run from `fuzz/`: `cargo run --release --no-default-features --example seeds`.

use bluebridge::a2dp::rtp::RtpPacketizer;
use bluebridge::a2dp::sbc_caps;
use bluebridge::bap::broadcast::{BroadcastConfig, ChannelLayout};
use bluebridge::bap::presets::PRESETS;
use bluebridge::codec::sbc::Sbc;
use bluebridge::control::protocol::{ErrorCode, Request, Response};
use bluebridge::state::{OutputState, Placement, State, StateStore};
use std::path::Path;

fn put(target: &str, name: &str, data: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), data).unwrap();
}

fn main() {
    // A2DP: bluebridge's own packets (a 440 Hz tone) for every channel mode it selects.
    for (name, conf) in [
        ("joint", [0x11, 0x15, 2, 51]),
        ("stereo", [0x12, 0x15, 2, 51]),
        ("dual", [0x14, 0x15, 2, 39]),
        ("mono", [0x18, 0x15, 2, 29]),
        ("sub4-blk4", [0x11, 0x8a, 2, 35]),
    ] {
        let mut enc = Sbc::new_a2dp(&conf).unwrap();
        let channels = sbc_caps::channels(&conf);
        let frames_pcm = enc.codesize() / (2 * channels);
        let pcm: Vec<u8> = (0..frames_pcm * 3)
            .flat_map(|i| {
                let v = (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * i as f64 / 48_000.0).sin()) as i16;
                std::iter::repeat_n(v.to_le_bytes(), channels).flatten()
            })
            .collect();
        let mut sbc = Vec::new();
        for block in pcm.chunks(enc.codesize()) {
            enc.encode_frame(block, &mut sbc).unwrap();
        }
        let mut rtp = RtpPacketizer::new(0xfffe, 1000, 1);
        let mut pkt = Vec::new();
        rtp.packet(&sbc, 3, frames_pcm, &mut pkt);
        put("a2dp_packet", &format!("bluebridge-{name}"), &pkt);
    }
    // The parser test's packet with CSRCs, an extension and padding.
    let mut pkt = vec![0xb2, 96, 0, 7, 0, 0, 0, 9, 0, 0, 0, 1];
    pkt.extend_from_slice(&[
        1, 1, 1, 1, 2, 2, 2, 2, 0xbe, 0xde, 0, 1, 5, 5, 5, 5, 3, 0x9c, 1, 2, 3, 0, 0, 3,
    ]);
    put("a2dp_packet", "csrc-extension-padding", &pkt);

    // A2DP capabilities (quality byte + blob): what speakers offer (sbc_caps tests) and what bluebridge offers.
    for (name, q, blob) in [
        ("source-caps", 0, sbc_caps::SOURCE_CAPABILITIES.to_vec()),
        ("speaker-all", 0, vec![0xff, 0xff, 2, 250]),
        ("speaker-all-xq", 1, vec![0xff, 0xff, 2, 250]),
        ("speaker-bitpool-35", 0, vec![0xff, 0xff, 2, 35]),
        ("speaker-44k-48k-stereo", 0, vec![0x32, 0x4a, 10, 60]),
        ("speaker-mono", 0, vec![0x18, 0xff, 2, 250]),
        ("conf-joint", 0, vec![0x11, 0x15, 2, 51]),
        ("conf-mono", 0, vec![0x18, 0x15, 2, 29]),
    ] {
        put("a2dp_caps", name, &[&[q][..], &blob].concat());
    }

    // LE Audio: BlueZ's LC3_CFG_48_2 and the BASE_LC3_48_2(_MBIS) macros (src/shared/lc3.h), then what every
    // preset configures (mono and stereo): the per-BIS SetConfiguration LTVs and the BASE BlueZ will build.
    let cfg_48_2 = [0x02, 0x01, 0x08, 0x02, 0x02, 0x01, 0x03, 0x04, 0x64, 0x00];
    put("ltv", "bluez-lc3-cfg-48-2", &cfg_48_2);
    let mut base = vec![0x40, 0x9c, 0x00, 0x01, 0x01, 0x06, 0x00, 0x00, 0x00, 0x00, 0x0a];
    base.extend_from_slice(&cfg_48_2);
    base.extend_from_slice(&[0x00, 0x01, 0x00]);
    put("base", "bluez-base-lc3-48-2", &base);
    base[4] = 0x02;
    base.extend_from_slice(&[0x02, 0x00]);
    put("base", "bluez-base-lc3-48-2-mbis", &base);
    for p in PRESETS
        .iter()
        .filter(|p| ["16_2_1", "24_2_1", "441_1_1", "48_2_1", "48_4_2", "48_6_2"].contains(&p.name))
    {
        for layout in [ChannelLayout::Stereo, ChannelLayout::Mono] {
            let b = BroadcastConfig::new(p, layout);
            let tag = format!(
                "{}-{}",
                p.name,
                if layout == ChannelLayout::Mono {
                    "mono"
                } else {
                    "stereo"
                }
            );
            put(
                "base",
                &format!("bluebridge-{tag}"),
                &b.base().unwrap().encode().unwrap(),
            );
            let setups = b.bis_setups().unwrap();
            put(
                "ltv",
                &format!("bluebridge-{tag}"),
                &setups.last().unwrap().capabilities,
            );
            if !setups[0].metadata.is_empty() {
                put("ltv", "bluebridge-metadata", &setups[0].metadata);
            }
        }
    }

    // Control: every request bluebridge's CLI sends, newline stripped, and replies of each shape.
    for r in [
        Request::Status,
        Request::Speakers,
        Request::SetOffset {
            name: "kitchen".into(),
            ms: -12.5,
        },
        Request::SetVolume {
            name: "kitchen".into(),
            pct: 40,
        },
        Request::Enable { name: "kitchen".into() },
        Request::Disable { name: "kitchen".into() },
        Request::Reload,
    ] {
        put("control_request", r.cmd(), r.encode().trim_end().as_bytes());
    }
    let ok = Response::ok(serde_json::json!({"name": "kitchen", "offset_ms": -12.5, "volume_pct": 40}));
    put("control_reply", "ok", ok.encode().trim_end().as_bytes());
    let warned = Response::Ok {
        result: serde_json::json!({"reloaded": true}),
        warnings: vec!["not persisted".into()],
    };
    put("control_reply", "ok-warnings", warned.encode().trim_end().as_bytes());
    let err = Response::err(ErrorCode::UnknownOutput, "no output named \"x\"");
    put("control_reply", "error", err.encode().trim_end().as_bytes());

    // Config: the shipped file and the configs of the tests.
    let shipped = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../dist/bluebridge.toml")).unwrap();
    put("config", "dist-bluebridge", &shipped);
    put(
        "config",
        "documented-example",
        b"[source]\nkind = \"snapcast\"\nurl = \"tcp://127.0.0.1:1704\"\n\n[[output]]\nname = \"kitchen\"\nkind = \
          \"sim\"\noffset_ms = -3.5\n\n[[output]]\nname = \"recorder\"\nkind = \"pipe\"\npath = \
          \"/run/bluebridge/recorder.pcm\"\ndelay_ms = 10\n\n[bluetooth]\nmax_a2dp_per_adapter = 3\n",
    );
    put(
        "config",
        "broadcast",
        b"[source]\nkind = \"tone\"\n[[output]]\nname = \"b\"\nkind = \"broadcast\"\n",
    );
    put(
        "config",
        "every-output",
        b"[source]\nkind = \"snapcast\"\nurl = \"tcp://snapserver.local:1704\"\n\n[[output]]\nname = \"kitchen\"\n\
          kind = \"a2dp\"\naddress = \"00:11:22:33:44:55\"\nadapter = \"hci0\"\nidle_release_s = 60\nkeep_alive = \
          false\navrcp_volume = true\nsbc_quality = \"xq\"\noffset_ms = 12\ncalibration_ms = -4\nchannel = \"left\"\n\
          volume = 80\n\n[[output]]\nname = \"hall\"\nkind = \"broadcast\"\npreset = \"48_4_2\"\n\
          presentation_delay_ms = 40\nbroadcast_code = \"correct horse\"\nchannels = \"mono\"\n\n[[output]]\n\
          name = \"disk\"\nkind = \"file\"\npath = \"/tmp/out.wav\"\n",
    );

    // State: files as StateStore::save writes them.
    let dir = std::env::temp_dir().join(format!("bluebridge-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = StateStore::new(&dir);
    let mut st = State::default();
    store.save(&st).unwrap();
    put("state", "empty", &std::fs::read(store.path()).unwrap());
    *st.output_mut("kitchen") = OutputState {
        offset_ms: Some(-12.5),
        volume_pct: Some(40),
        enabled: Some(false),
        calibration_ms: Some(3.0),
        placement: Some(Placement {
            room: Some("kitchen".into()),
            adapter: Some("hci0".into()),
            ..Placement::default()
        }),
        ..OutputState::default()
    };
    st.output_mut("hall").volume_pct = Some(100);
    store.save(&st).unwrap();
    put("state", "two-outputs", &std::fs::read(store.path()).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}
