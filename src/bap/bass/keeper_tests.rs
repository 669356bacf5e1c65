use super::*;
use crate::bap::bass::SubgroupState;

const S: u64 = 1_000_000_000;

fn ours(code: Option<[u8; 16]>) -> OurBroadcast {
    OurBroadcast {
        source: SourceAddress {
            address_type: 0,
            address: [0x00, 0xAA, 0x01, 0x00, 0x00, 0x00],
            adv_sid: 0,
            broadcast_id: 0x00AB_CDEF,
        },
        code,
    }
}

fn state(pa: PaSyncState, enc: BigEncryption, bis: u32) -> ReceiveState {
    ReceiveState {
        source_id: 1,
        source: ours(None).source,
        pa_sync: pa,
        encryption: enc,
        subgroups: vec![SubgroupState {
            bis_sync: bis,
            metadata: vec![],
        }],
    }
}

fn connected(k: &mut Keeper, now: u64) {
    k.connection(now, true, vec![None, None]);
}

#[test]
fn connects_then_adds_our_source_once_and_reports_playing() {
    let mut k = Keeper::new(ours(None));
    assert_eq!(k.state(), ReceiverState::Disconnected);
    assert_eq!(k.next(0), Action::Connect);
    connected(&mut k, 0);
    assert_eq!(k.state(), ReceiverState::NoSource);
    let Action::Write(op) = k.next(0) else {
        panic!("should add the source")
    };
    assert_eq!(op, k.add_source());
    let bytes = op.encode().unwrap();
    // Add Source, public, address LSB first, SID 0, Broadcast_ID LE24, PA sync (no PAST), interval unknown, one
    // subgroup: any BIS, no metadata.
    assert_eq!(
        bytes,
        vec![
            0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0xAA, 0x00, 0x00, 0xEF, 0xCD, 0xAB, 0x02, 0xFF, 0xFF, 0x01, 0xFF, 0xFF,
            0xFF, 0xFF, 0x00
        ]
    );
    // Not told again while it syncs.
    assert_eq!(k.next(S), Action::WaitUntil(SYNC_GRACE_NS));
    k.receive_state(0, Some(state(PaSyncState::NotSynced, BigEncryption::NotEncrypted, 0)));
    assert_eq!(k.state(), ReceiverState::Told);
    k.receive_state(0, Some(state(PaSyncState::Synced, BigEncryption::NotEncrypted, 0)));
    assert_eq!(k.state(), ReceiverState::PaSynced);
    k.receive_state(0, Some(state(PaSyncState::Synced, BigEncryption::NotEncrypted, 0b1)));
    assert_eq!(k.state(), ReceiverState::BisSynced(1));
    assert!(k.state().playing());
    assert_eq!(k.next(2 * S), Action::WaitUntil(u64::MAX));
}

#[test]
fn another_broadcast_at_the_receiver_is_not_ours() {
    let mut k = Keeper::new(ours(None));
    connected(&mut k, 0);
    let mut other = state(PaSyncState::Synced, BigEncryption::NotEncrypted, 1);
    other.source.adv_sid = 3;
    k.receive_state(0, Some(other.clone()));
    assert_eq!(k.state(), ReceiverState::NoSource);
    other.source.adv_sid = 0;
    other.source.broadcast_id = 0x123456;
    k.receive_state(0, Some(other.clone()));
    assert_eq!(
        k.state(),
        ReceiverState::NoSource,
        "a different Broadcast_ID from the same address is not ours"
    );
    // An unknown Broadcast_ID (0) on either side matches by address and SID, as BlueZ's delegator does.
    other.source.broadcast_id = 0;
    k.receive_state(0, Some(other));
    assert!(k.state().playing());
}

#[test]
fn hands_over_the_code_when_asked_and_reports_a_bad_one() {
    let code = *b"secret\0\0\0\0\0\0\0\0\0\0";
    let mut k = Keeper::new(ours(Some(code)));
    connected(&mut k, 0);
    assert!(matches!(k.next(0), Action::Write(Operation::AddSource { .. })));
    k.receive_state(1, Some(state(PaSyncState::Synced, BigEncryption::CodeRequired, 0)));
    let Action::Write(op) = k.next(S) else {
        panic!("should send the code")
    };
    assert_eq!(op, Operation::SetBroadcastCode { source_id: 1, code });
    assert_eq!(op.encode().unwrap()[..3], [0x04, 0x01, b's']);
    // Sent once per request.
    assert!(matches!(k.next(2 * S), Action::WaitUntil(_)));
    k.receive_state(1, Some(state(PaSyncState::Synced, BigEncryption::BadCode([9; 16]), 0)));
    assert_eq!(k.state(), ReceiverState::BadCode);
    assert_eq!(k.state().word(), "bad-code");
    // Our code is the bad one: no hammering, the longest backoff.
    assert_eq!(k.next(3 * S), Action::WaitUntil(3 * S + BACKOFF_MAX_NS));
    k.receive_state(1, Some(state(PaSyncState::Synced, BigEncryption::Decrypting, 1)));
    assert!(k.state().playing());
}

#[test]
fn without_a_code_an_encrypted_broadcast_is_reported_not_guessed() {
    let mut k = Keeper::new(ours(None));
    connected(&mut k, 0);
    let _ = k.next(0);
    k.receive_state(0, Some(state(PaSyncState::Synced, BigEncryption::CodeRequired, 0)));
    assert_eq!(k.state(), ReceiverState::CodeRequired);
    assert!(matches!(k.next(S), Action::WaitUntil(_)));
}

#[test]
fn a_lost_sync_is_told_again_with_growing_waits() {
    let mut k = Keeper::new(ours(None));
    connected(&mut k, 0);
    let _ = k.next(0); // Add Source at 0
    k.receive_state(0, Some(state(PaSyncState::Failed, BigEncryption::NotEncrypted, 0)));
    assert_eq!(k.state(), ReceiverState::Failed("PA sync"));
    assert_eq!(k.next(S), Action::WaitUntil(SYNC_GRACE_NS));
    let Action::Write(Operation::ModifySource {
        source_id: 1, pa_sync, ..
    }) = k.next(SYNC_GRACE_NS)
    else {
        panic!("should tell it again")
    };
    assert_eq!(pa_sync, PaSync::SyncPastNotAvailable);
    // The next round waits twice as long.
    assert_eq!(k.next(SYNC_GRACE_NS + S), Action::WaitUntil(3 * SYNC_GRACE_NS));
    k.receive_state(
        0,
        Some(state(PaSyncState::Synced, BigEncryption::NotEncrypted, BIS_SYNC_FAILED)),
    );
    assert_eq!(k.state(), ReceiverState::Failed("BIG sync"));
}

#[test]
fn a_receiver_that_comes_back_is_told_again_at_once() {
    let mut k = Keeper::new(ours(None));
    connected(&mut k, 0);
    let _ = k.next(0);
    k.receive_state(0, Some(state(PaSyncState::Synced, BigEncryption::NotEncrypted, 1)));
    assert!(k.state().playing());
    // Powered off: the link drops; reconnecting backs off 1 s, 2 s, 4 s …
    k.connection(10 * S, false, vec![]);
    assert_eq!(k.state(), ReceiverState::Disconnected);
    assert_eq!(k.next(10 * S), Action::WaitUntil(11 * S));
    assert_eq!(k.next(11 * S), Action::Connect);
    k.connection(11 * S, false, vec![]);
    assert_eq!(k.next(11 * S), Action::WaitUntil(13 * S));
    // Back, with the source kept but not synced: Modify Source now, not after the grace period.
    k.connection(
        13 * S,
        true,
        vec![Some(state(PaSyncState::NotSynced, BigEncryption::NotEncrypted, 0))],
    );
    assert!(matches!(k.next(13 * S), Action::Write(Operation::ModifySource { .. })));
    // Back with its sources forgotten: Add Source now.
    k.connection(20 * S, true, vec![None]);
    assert!(matches!(k.next(20 * S), Action::Write(Operation::AddSource { .. })));
}

#[test]
fn an_add_source_that_never_shows_is_retried_with_backoff() {
    let mut k = Keeper::new(ours(None));
    connected(&mut k, 0);
    assert!(matches!(k.next(0), Action::Write(Operation::AddSource { .. })));
    assert_eq!(k.next(SYNC_GRACE_NS), Action::WaitUntil(SYNC_GRACE_NS + BACKOFF_MIN_NS));
    assert!(matches!(
        k.next(SYNC_GRACE_NS + BACKOFF_MIN_NS),
        Action::Write(Operation::AddSource { .. })
    ));
    // A failed write backs off too.
    k.fail(SYNC_GRACE_NS + BACKOFF_MIN_NS);
    assert_eq!(
        k.next(SYNC_GRACE_NS + BACKOFF_MIN_NS),
        Action::WaitUntil(SYNC_GRACE_NS + 3 * BACKOFF_MIN_NS)
    );
}
