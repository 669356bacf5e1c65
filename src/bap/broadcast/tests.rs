//! Tests of the per-BIS `SetConfiguration` values, the BASE, and broadcast codes.

use super::*;
use crate::bap::ltv::CodecConfig;
use crate::bap::presets::PRESETS;
use PropValue::{Byte, Bytes, Dict, U16, U32};

/// The keys BlueZ accepts in a broadcast source's `SetConfiguration`, with the D-Bus type it checks
/// (profiles/audio/bap.c HEAD 690c16df: `setup_parse_configuration`, `setup_parse_bcast_qos`, `parse_io_qos`;
/// a wrong type is `InvalidArguments`). `Framing` is not parsed for broadcast but bluetoothctl sends it as `y`.
const BLUEZ_TOP_KEYS: [(&str, &str); 3] = [("Capabilities", "ay"), ("Metadata", "ay"), ("QoS", "a{sv}")];
const BLUEZ_QOS_KEYS: [(&str, &str); 17] = [
    ("Encryption", "y"),
    ("BIG", "y"),
    ("Options", "y"),
    ("Skip", "q"),
    ("SyncTimeout", "q"),
    ("SyncType", "y"),
    ("SyncFactor", "y"),
    ("MSE", "y"),
    ("Timeout", "q"),
    ("PresentationDelay", "u"),
    ("BCode", "ay"),
    ("Interval", "u"),
    ("PHY", "y"),
    ("SDU", "q"),
    ("Retransmissions", "y"),
    ("Latency", "q"),
    ("Framing", "y"),
];

fn preset(name: &str) -> &'static Preset {
    Preset::by_name(name).unwrap()
}

#[test]
fn stereo_48_2_1_golden_properties() {
    let setups = BroadcastConfig::new(preset("48_2_1"), ChannelLayout::Stereo)
        .bis_setups()
        .unwrap();
    assert_eq!(setups.len(), 2);
    // Capabilities: 48 kHz (08), 10 ms (01), 100 octets (64 00), then FL (01) / FR (02) — BlueZ's
    // LC3_CONFIG_48_2_AC layout (src/shared/lc3.h); Metadata: Streaming_Audio_Contexts = Media.
    let qos = vec![
        ("BIG", Byte(0)),
        ("Framing", Byte(0)),
        ("PresentationDelay", U32(40_000)),
        ("Interval", U32(10_000)),
        ("PHY", Byte(0x02)),
        ("SDU", U16(100)),
        ("Retransmissions", Byte(4)),
        ("Latency", U16(20)),
    ];
    for (i, alloc) in [0x01u8, 0x02].into_iter().enumerate() {
        assert_eq!(setups[i].channel, i);
        assert_eq!(setups[i].allocation, Some(u32::from(alloc)));
        assert_eq!(
            setups[i].properties(),
            vec![
                (
                    "Capabilities",
                    Bytes(vec![2, 1, 8, 2, 2, 1, 3, 4, 0x64, 0, 5, 3, alloc, 0, 0, 0])
                ),
                ("Metadata", Bytes(vec![3, 2, 4, 0])),
                ("QoS", Dict(qos.clone())),
            ]
        );
    }
}

#[test]
fn every_key_has_the_type_bluez_checks() {
    let mut cfg = BroadcastConfig::new(preset("16_2_2"), ChannelLayout::Stereo);
    cfg.code = Some(BroadcastCode::parse("secret").unwrap());
    cfg.sync_factor = Some(2);
    for setup in cfg.bis_setups().unwrap() {
        for (key, value) in setup.properties() {
            let want = BLUEZ_TOP_KEYS
                .iter()
                .find(|(k, _)| *k == key)
                .unwrap_or_else(|| panic!("{key} unknown"));
            assert_eq!(value.signature(), want.1, "{key}");
            if let Dict(entries) = value {
                for (k, v) in entries {
                    let want = BLUEZ_QOS_KEYS
                        .iter()
                        .find(|(q, _)| *q == k)
                        .unwrap_or_else(|| panic!("{k} unknown"));
                    assert_eq!(v.signature(), want.1, "QoS {k}");
                }
            }
        }
    }
}

#[test]
fn encrypted_broadcast_sends_encryption_and_a_16_byte_bcode() {
    let mut cfg = BroadcastConfig::new(preset("24_2_1"), ChannelLayout::Mono);
    cfg.code = Some(BroadcastCode::parse("Børne House").unwrap());
    cfg.sync_factor = Some(2);
    cfg.big = 3;
    let q = cfg.qos().entries();
    let mut code = b"B\xc3\xb8rne House".to_vec();
    code.resize(16, 0);
    assert_eq!(
        q,
        vec![
            ("BIG", Byte(3)),
            ("Encryption", Byte(1)),
            ("BCode", Bytes(code)),
            ("Framing", Byte(0)),
            ("PresentationDelay", U32(40_000)),
            ("Interval", U32(10_000)),
            ("PHY", Byte(2)),
            ("SDU", U16(60)),
            ("Retransmissions", Byte(2)),
            ("Latency", U16(10)),
            ("SyncFactor", Byte(2)),
        ]
    );
}

#[test]
fn mono_is_one_bis_without_allocation() {
    let mut cfg = BroadcastConfig::new(preset("16_2_1"), ChannelLayout::Mono);
    cfg.metadata = Metadata::default();
    let setups = cfg.bis_setups().unwrap();
    assert_eq!(setups.len(), 1);
    assert_eq!(setups[0].allocation, None);
    // No allocation LTV, and no Metadata key when the metadata is empty.
    assert_eq!(
        setups[0].properties()[..1],
        [("Capabilities", Bytes(vec![2, 1, 3, 2, 2, 1, 3, 4, 40, 0]))]
    );
    assert!(setups[0].properties().iter().all(|(k, _)| *k != "Metadata"));
    assert_eq!(ChannelLayout::Mono.bis_count(), 1);
    assert_eq!(ChannelLayout::Stereo.bis_count(), 2);
    assert_eq!("mono".parse::<ChannelLayout>(), Ok(ChannelLayout::Mono));
    assert_eq!("stereo".parse::<ChannelLayout>(), Ok(ChannelLayout::Stereo));
    assert_eq!(
        "left".parse::<ChannelLayout>().unwrap_err(),
        "unknown broadcast channel layout \"left\"; valid: stereo, mono"
    );
}

#[test]
fn every_preset_and_layout_yields_matching_setups() {
    for p in PRESETS {
        for layout in [ChannelLayout::Stereo, ChannelLayout::Mono] {
            let cfg = BroadcastConfig::new(p, layout);
            let setups = cfg.bis_setups().unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert_eq!(setups.len(), layout.bis_count());
            for (s, alloc) in setups.iter().zip(layout.allocations()) {
                let c = CodecConfig::parse(&s.capabilities).unwrap();
                assert_eq!(c.sample_rate_hz, p.sample_rate_hz, "{}", p.name);
                assert_eq!(c.frame_duration, p.frame_duration, "{}", p.name);
                assert_eq!(c.octets_per_frame, p.octets_per_frame, "{}", p.name);
                assert_eq!(c.audio_channel_allocation, *alloc, "{}", p.name);
                assert_eq!(
                    s.qos, setups[0].qos,
                    "all BISes of a BIG carry identical QoS (BlueZ 5.80 checks)"
                );
                assert_eq!(
                    (s.qos.sdu, s.qos.interval_us, s.qos.latency_ms, s.qos.retransmissions),
                    (
                        p.octets_per_frame,
                        p.sdu_interval_us,
                        p.max_transport_latency_ms,
                        p.retransmissions
                    )
                );
                assert_eq!(s.qos.framing, p.framing.as_u8());
            }
        }
    }
}

/// The BASE of 48_2_1 stereo with Media metadata, derived by hand from the layout in `base.rs`.
const BASE_48_2_1_STEREO: [u8; 42] = [
    0x40, 0x9c, 0x00, // presentation delay 40 000 µs
    0x01, // one subgroup
    0x02, // two BISes
    0x06, 0x00, 0x00, 0x00, 0x00, // LC3
    0x0a, 0x02, 0x01, 0x08, 0x02, 0x02, 0x01, 0x03, 0x04, 0x64, 0x00, // 48 kHz, 10 ms, 100 octets
    0x04, 0x03, 0x02, 0x04, 0x00, // Streaming_Audio_Contexts = Media
    0x01, 0x06, 0x05, 0x03, 0x01, 0x00, 0x00, 0x00, // BIS 1: front left
    0x02, 0x06, 0x05, 0x03, 0x02, 0x00, 0x00, 0x00, // BIS 2: front right
];

#[test]
fn base_golden_and_bluez_equivalent() {
    let cfg = BroadcastConfig::new(preset("48_2_1"), ChannelLayout::Stereo);
    let base = cfg.base().unwrap();
    assert_eq!(base.encode().unwrap(), BASE_48_2_1_STEREO);
    assert_eq!(Base::parse(&BASE_48_2_1_STEREO).unwrap(), base);

    // BlueZ's own grouping of the same two SetConfiguration calls (src/shared/bap.c set_base_subgroup): BIS 1's
    // whole configuration at subgroup level, BIS 2 carrying only its differing allocation.
    let setups = cfg.bis_setups().unwrap();
    let inputs: Vec<_> = setups
        .iter()
        .map(|s| (s.capabilities.clone(), s.metadata.clone()))
        .collect();
    let bluez = Base::bluez_layout(&inputs, cfg.presentation_delay_us).unwrap();
    let mut want = vec![0x40, 0x9c, 0x00, 0x01, 0x02, 0x06, 0x00, 0x00, 0x00, 0x00, 0x10];
    want.extend_from_slice(&setups[0].capabilities);
    want.extend_from_slice(&[
        0x04, 0x03, 0x02, 0x04, 0x00, 0x01, 0x00, 0x02, 0x06, 0x05, 0x03, 0x02, 0x00, 0x00, 0x00,
    ]);
    assert_eq!(bluez.encode().unwrap(), want);

    // Both BASEs tell a receiver the same thing about each BIS: exactly what its SetConfiguration carried.
    for (i, s) in setups.iter().enumerate() {
        let index = i as u8 + 1;
        assert_eq!(
            base.bis_codec_config(index).unwrap().unwrap(),
            s.capabilities,
            "BIS {index}"
        );
        assert_eq!(
            bluez.bis_codec_config(index).unwrap().unwrap(),
            s.capabilities,
            "BIS {index}"
        );
    }
}

/// The BASE of 16 and 24 kHz presets (which bluebridge encodes from its 48 kHz audio): the subgroup's codec
/// configuration carries the preset's own Sampling_Frequency code (16 kHz 0x03, 24 kHz 0x05), Frame_Duration
/// (7.5 ms 0x00, 10 ms 0x01) and Octets_Per_Codec_Frame, never the 48 kHz of the PCM.
#[test]
fn base_golden_for_16_and_24_khz_presets() {
    // (preset, layout, the subgroup's codec configuration LTVs: rate, duration, octets)
    let table: [(&str, ChannelLayout, [u8; 10]); 4] = [
        ("16_2_1", ChannelLayout::Stereo, [2, 1, 0x03, 2, 2, 0x01, 3, 4, 40, 0]),
        ("16_1_2", ChannelLayout::Mono, [2, 1, 0x03, 2, 2, 0x00, 3, 4, 30, 0]),
        ("24_2_1", ChannelLayout::Stereo, [2, 1, 0x05, 2, 2, 0x01, 3, 4, 60, 0]),
        ("24_1_1", ChannelLayout::Stereo, [2, 1, 0x05, 2, 2, 0x00, 3, 4, 45, 0]),
    ];
    for (name, layout, codec_config) in table {
        let cfg = BroadcastConfig::new(preset(name), layout);
        let mut want = vec![
            0x40,
            0x9c,
            0x00,
            0x01,
            layout.bis_count() as u8,
            0x06,
            0x00,
            0x00,
            0x00,
            0x00,
            0x0a,
        ];
        want.extend_from_slice(&codec_config);
        want.extend_from_slice(&[0x04, 0x03, 0x02, 0x04, 0x00]); // Streaming_Audio_Contexts = Media
        match layout {
            ChannelLayout::Stereo => want.extend_from_slice(&[
                0x01, 0x06, 0x05, 0x03, 0x01, 0x00, 0x00, 0x00, // BIS 1: front left
                0x02, 0x06, 0x05, 0x03, 0x02, 0x00, 0x00, 0x00, // BIS 2: front right
            ]),
            ChannelLayout::Mono => want.extend_from_slice(&[0x01, 0x00]), // BIS 1, no allocation
        }
        let base = cfg.base().unwrap();
        assert_eq!(base.encode().unwrap(), want, "{name}");
        assert_eq!(Base::parse(&want).unwrap(), base, "{name}");
        // What each BIS's SetConfiguration carries, and what a receiver reads for each BIS from the BASE, agree.
        for (i, s) in cfg.bis_setups().unwrap().iter().enumerate() {
            let c = CodecConfig::parse(&s.capabilities).unwrap();
            let p = preset(name);
            assert_eq!(
                (c.sample_rate_hz, c.frame_duration, c.octets_per_frame),
                (p.sample_rate_hz, p.frame_duration, p.octets_per_frame),
                "{name}"
            );
            assert_eq!(&s.capabilities[..10], &codec_config[..], "{name}");
            assert_eq!(
                base.bis_codec_config(i as u8 + 1).unwrap().unwrap(),
                s.capabilities,
                "{name}"
            );
        }
    }
}

#[test]
fn bluez_layout_splits_subgroups_by_metadata() {
    // Different metadata → a second subgroup whose BIS has an empty BIS-level configuration.
    let a = (vec![2, 1, 8, 2, 2, 1, 3, 4, 100, 0], vec![3, 2, 4, 0]);
    let b = (vec![2, 1, 8, 2, 2, 1, 3, 4, 100, 0], vec![4, 4, b'e', b'n', b'g']);
    let base = Base::bluez_layout(&[a.clone(), b.clone()], 40_000).unwrap();
    assert_eq!(base.subgroups.len(), 2);
    assert_eq!(
        base.subgroups[1].bises,
        [BaseBis {
            index: 2,
            codec_config: vec![]
        }]
    );
    assert_eq!(base.subgroups[1].metadata, b.1);
}

#[test]
fn broadcast_codes() {
    let text = BroadcastCode::parse("Hello").unwrap();
    assert_eq!(text.as_bytes(), b"Hello\0\0\0\0\0\0\0\0\0\0\0");
    assert_eq!(
        BroadcastCode::parse("0123456789abcdef").unwrap().as_bytes(),
        b"0123456789abcdef"
    );
    let hex = BroadcastCode::parse("000102030405060708090a0b0c0d0eFF").unwrap();
    assert_eq!(
        hex.as_bytes(),
        &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff]
    );
    assert_eq!("Hello".parse::<BroadcastCode>(), Ok(text));
    assert_eq!(BroadcastCode::from_bytes(*hex.as_bytes()), hex);
    // The secret never reaches logs through Debug.
    assert_eq!(format!("{text:?}"), "BroadcastCode(<redacted>)");

    let cases = [
        ("", "broadcast code is empty; give up to 16 characters or 32 hex digits"),
        (
            "0123456789abcdefg",
            "broadcast code is 17 bytes long; a text code has at most 16 bytes (UTF-8), a hex code exactly 32 hex digits",
        ),
        // 31 hex digits: neither text (too long) nor hex.
        (
            "000102030405060708090a0b0c0d0e0",
            "broadcast code is 31 bytes long; a text code has at most 16 bytes (UTF-8), a hex code exactly 32 hex digits",
        ),
        // 32 characters but not all hex.
        (
            "000102030405060708090a0b0c0d0eZZ",
            "broadcast code is 32 bytes long; a text code has at most 16 bytes (UTF-8), a hex code exactly 32 hex digits",
        ),
        // 9 characters but 18 UTF-8 bytes.
        (
            "ØØØØØØØØØ",
            "broadcast code is 18 bytes long; a text code has at most 16 bytes (UTF-8), a hex code exactly 32 hex digits",
        ),
        (
            "0x000102030405060708090a0b0c0d0e0f",
            "broadcast code \"0x000102030405060708090a0b0c0d0e0f\": write the 32 hex digits without \"0x\", first byte first (as bluetoothctl takes them)",
        ),
    ];
    for (input, msg) in cases {
        assert_eq!(BroadcastCode::parse(input).unwrap_err().to_string(), msg, "{input:?}");
    }
}

#[test]
fn invalid_configurations_are_refused() {
    let base = BroadcastConfig::new(preset("48_2_1"), ChannelLayout::Stereo);
    let with = |f: &dyn Fn(&mut BroadcastConfig)| {
        let mut c = base.clone();
        f(&mut c);
        c.bis_setups().unwrap_err().to_string()
    };
    assert_eq!(
        with(&|c| c.big = 0xff),
        "broadcast BIG 0xff means \"auto\" to BlueZ and would put every BIS in a BIG of its own; use 0x00..=0xef"
    );
    assert_eq!(with(&|c| c.big = 0xf0), "broadcast BIG 0xf0 out of range 0x00..=0xef");
    assert_eq!(
        with(&|c| c.presentation_delay_us = 20_000_000),
        "broadcast presentation delay 20000000 µs exceeds the BASE's 24-bit maximum 16777215 µs"
    );
    assert!(with(&|c| c.metadata.language = Some("english".into())).contains("not an ISO 639-3 code"));
    assert_eq!(
        with(&|c| c.metadata.program_info = Some("x".repeat(230))),
        "broadcast configuration: BASE structure is 274 bytes, at most 248 allowed"
    );
    let mut ok = base.clone();
    ok.big = 0xef;
    ok.presentation_delay_us = 0xff_ffff;
    assert!(ok.bis_setups().is_ok());
}
