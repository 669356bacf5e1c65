use super::*;

fn source() -> SourceAddress {
    SourceAddress {
        address_type: 1,
        address: [0xC0, 0x11, 0x22, 0x33, 0x44, 0x55],
        adv_sid: 2,
        broadcast_id: 0x123456,
    }
}

#[test]
fn add_source_bytes() {
    let op = Operation::AddSource {
        source: source(),
        pa_sync: PaSync::SyncPastNotAvailable,
        pa_interval: PA_INTERVAL_UNKNOWN,
        subgroups: vec![SubgroupRequest {
            bis_sync: 0b11,
            metadata: vec![0x03, 0x02, 0x04, 0x00],
        }],
    };
    assert_eq!(
        op.encode().unwrap(),
        vec![
            0x02, // Add Source
            0x01, 0x55, 0x44, 0x33, 0x22, 0x11, 0xC0, // random, address LSB first
            0x02, // SID
            0x56, 0x34, 0x12, // Broadcast_ID
            0x02, // PA sync, no PAST
            0xFF, 0xFF, // PA interval unknown
            0x01, // one subgroup
            0x03, 0x00, 0x00, 0x00, // BIS 1 and 2
            0x04, 0x03, 0x02, 0x04, 0x00, // metadata: contexts = media
        ]
    );
    let bad = Operation::AddSource {
        source: SourceAddress {
            broadcast_id: 0x100_0000,
            ..source()
        },
        pa_sync: PaSync::DoNotSync,
        pa_interval: 0,
        subgroups: vec![],
    };
    assert!(bad.encode().is_err());
}

/// What BlueZ's delegator would acknowledge and then ignore (`src/shared/bass.c:712-764`) is refused here.
#[test]
fn add_sources_bluez_would_ignore_are_refused() {
    let add = |source: SourceAddress, subgroups: Vec<SubgroupRequest>| Operation::AddSource {
        source,
        pa_sync: PaSync::SyncPastNotAvailable,
        pa_interval: PA_INTERVAL_UNKNOWN,
        subgroups,
    };
    let sg = |bis_sync| SubgroupRequest {
        bis_sync,
        metadata: vec![],
    };
    let e = add(
        SourceAddress {
            adv_sid: 0x10,
            ..source()
        },
        vec![],
    )
    .encode();
    assert!(matches!(&e, Err(BassError::Bad(m)) if m.contains("SID")), "{e:?}");
    let e = add(
        SourceAddress {
            address_type: 2,
            ..source()
        },
        vec![],
    )
    .encode();
    assert!(
        matches!(&e, Err(BassError::Bad(m)) if m.contains("address type")),
        "{e:?}"
    );
    let e = add(source(), vec![sg(0b011), sg(0b110)]).encode();
    assert!(
        matches!(&e, Err(BassError::Bad(m)) if m.contains("another subgroup")),
        "{e:?}"
    );
    // Disjoint subgroups, and "no preference" beside anything, are fine; SID 15 is the largest.
    assert!(add(source(), vec![sg(0b01), sg(0b10)]).encode().is_ok());
    assert!(add(source(), vec![sg(BIS_SYNC_NO_PREFERENCE), sg(0b1)])
        .encode()
        .is_ok());
    assert!(add(
        SourceAddress {
            adv_sid: 0x0F,
            ..source()
        },
        vec![]
    )
    .encode()
    .is_ok());
    let modify = Operation::ModifySource {
        source_id: 1,
        pa_sync: PaSync::SyncPastNotAvailable,
        pa_interval: 0,
        subgroups: vec![sg(1), sg(1)],
    };
    assert!(modify.encode().is_err());
}

/// The bytes of a Broadcast Receive State as BlueZ's `bass_parse_bcast_src` (`bass.c:464-491`) pushes them for
/// a source with a bad code: the 16 code bytes sit between the encryption state and the subgroup count.
#[test]
fn receive_state_in_bluez_push_order() {
    let mut b = vec![
        0x02, 0x00, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, 0x0F, 0x01, 0x00, 0x80, 0x03, 0x03,
    ];
    b.extend_from_slice(&[0x11; 16]);
    b.extend_from_slice(&[0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x00]);
    let s = ReceiveState::decode(&b).unwrap().unwrap();
    assert_eq!(s.source_id, 2);
    assert_eq!(s.source.address, [0x01, 0x02, 0x03, 0x04, 0x05, 0x06]);
    assert_eq!((s.source.adv_sid, s.source.broadcast_id), (0x0F, 0x800001));
    assert_eq!(s.pa_sync, PaSyncState::Failed);
    assert_eq!(s.encryption, BigEncryption::BadCode([0x11; 16]));
    assert_eq!(s.subgroups[0].bis_sync, 1);
    assert_eq!(s.subgroups[1].bis_sync, BIS_SYNC_FAILED);
    assert!(!s.playing());
}

#[test]
fn modify_code_remove_and_scan_bytes() {
    let modify = Operation::ModifySource {
        source_id: 7,
        pa_sync: PaSync::DoNotSync,
        pa_interval: 0x0030,
        subgroups: vec![SubgroupRequest {
            bis_sync: 0,
            metadata: vec![],
        }],
    };
    assert_eq!(
        modify.encode().unwrap(),
        vec![0x03, 0x07, 0x00, 0x30, 0x00, 0x01, 0, 0, 0, 0, 0x00]
    );
    let mut code = [0u8; 16];
    code[..6].copy_from_slice(b"secret");
    let set = Operation::SetBroadcastCode { source_id: 7, code };
    let bytes = set.encode().unwrap();
    assert_eq!(
        (bytes.len(), &bytes[..2], &bytes[2..8]),
        (18, &[0x04, 0x07][..], &b"secret"[..])
    );
    assert_eq!(
        Operation::RemoveSource { source_id: 7 }.encode().unwrap(),
        vec![0x05, 0x07]
    );
    assert_eq!(Operation::RemoteScanStarted.encode().unwrap(), vec![0x01]);
    assert_eq!(Operation::RemoteScanStopped.encode().unwrap(), vec![0x00]);
}

fn state_bytes(encryption: &[u8], bis_sync: u32) -> Vec<u8> {
    let mut b = vec![
        0x01, 0x01, 0x55, 0x44, 0x33, 0x22, 0x11, 0xC0, 0x02, 0x56, 0x34, 0x12, 0x02,
    ];
    b.extend_from_slice(encryption);
    b.push(1);
    b.extend_from_slice(&bis_sync.to_le_bytes());
    b.extend_from_slice(&[0x02, 0x01, 0x05]);
    b
}

#[test]
fn receive_state_decodes() {
    let s = ReceiveState::decode(&state_bytes(&[0x02], 0b01)).unwrap().unwrap();
    assert_eq!(s.source_id, 1);
    assert_eq!(s.source, source());
    assert_eq!(s.pa_sync, PaSyncState::Synced);
    assert_eq!(s.encryption, BigEncryption::Decrypting);
    assert_eq!(
        s.subgroups,
        vec![SubgroupState {
            bis_sync: 1,
            metadata: vec![0x01, 0x05]
        }]
    );
    assert!(s.playing());
    let failed = ReceiveState::decode(&state_bytes(&[0x00], BIS_SYNC_FAILED))
        .unwrap()
        .unwrap();
    assert!(!failed.playing());
    assert_eq!(ReceiveState::decode(&[]).unwrap(), None);
}

#[test]
fn bad_code_carries_the_code() {
    let mut enc = vec![0x03];
    enc.extend_from_slice(&[0xAB; 16]);
    let s = ReceiveState::decode(&state_bytes(&enc, 0)).unwrap().unwrap();
    assert_eq!(s.encryption, BigEncryption::BadCode([0xAB; 16]));
    assert!(!s.playing());
}

#[test]
fn malformed_receive_states_are_refused() {
    let good = state_bytes(&[0x00], 1);
    for cut in 1..good.len() {
        assert!(ReceiveState::decode(&good[..cut]).is_err(), "cut at {cut}");
    }
    let mut extra = good.clone();
    extra.push(0);
    assert!(ReceiveState::decode(&extra).is_err());
    let mut reserved = good.clone();
    reserved[12] = 9;
    assert!(ReceiveState::decode(&reserved).is_err());
    let mut reserved_enc = good;
    reserved_enc[13] = 9;
    assert!(ReceiveState::decode(&reserved_enc).is_err());
}

#[test]
fn the_fuzz_seeds_are_receive_states() {
    let synced = ReceiveState::decode(include_bytes!("../../../fuzz/seeds/bass_state/synced-one-bis"))
        .unwrap()
        .unwrap();
    assert!(synced.playing());
    assert_eq!(synced.source.broadcast_id, 0x12_34_56);
    let bad = ReceiveState::decode(include_bytes!("../../../fuzz/seeds/bass_state/bad-code-metadata"))
        .unwrap()
        .unwrap();
    assert!(matches!(bad.encryption, BigEncryption::BadCode(_)));
    assert_eq!(bad.subgroups[0].metadata.len(), 4);
    let two = ReceiveState::decode(include_bytes!("../../../fuzz/seeds/bass_state/no-sync-two-subgroups"))
        .unwrap()
        .unwrap();
    assert_eq!(two.subgroups.len(), 2);
    assert!(!two.playing());
}
