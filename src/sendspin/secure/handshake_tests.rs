//! The responder against a server side built the way aiosendspin builds its initiator (`noise/session.py`
//! `as_initiator`, `noise/driver.py` `run_handshake_server`): prologue = client/init text + server/init text, the
//! PSK set up front, message 1 carrying {psk_id, psk_category}. The real server is the integration test's.

use super::super::init::{handshake_text, parse_handshake};
use super::super::transport::Plain;
use super::super::{b64url, psk_id, sentinel_psk};
use super::*;

struct TestServer {
    keys: Keypair,
    init_text: String,
}

impl TestServer {
    fn new() -> Self {
        let keys = Keypair::generate().unwrap();
        let init_text = format!(
            r#"{{"payload":{{"server_id":"{}","version":1}},"type":"server/init"}}"#,
            keys.client_id()
        );
        Self { keys, init_text }
    }

    /// Writes message 1 for a client whose public key is `client_id`, keyed by `psk` and naming `category`.
    fn message1(
        &self,
        client_init: &str,
        client_id: &str,
        psk: &[u8; 32],
        category: &str,
    ) -> (snow::HandshakeState, String) {
        let mut prologue = client_init.as_bytes().to_vec();
        prologue.extend_from_slice(self.init_text.as_bytes());
        let remote = crate::sendspin::secure::peer_key(client_id, "client_id").unwrap();
        let mut hs = snow::Builder::new(Suite::ChaChaPoly.params())
            .local_private_key(self.keys.private())
            .unwrap()
            .remote_public_key(&remote)
            .unwrap()
            .prologue(&prologue)
            .unwrap()
            .psk(2, psk)
            .unwrap()
            .build_initiator()
            .unwrap();
        let payload = format!(r#"{{"psk_id":"{}","psk_category":"{category}"}}"#, psk_id(psk));
        let mut out = vec![0u8; 1024];
        let n = hs.write_message(payload.as_bytes(), &mut out).unwrap();
        (hs, handshake_text(&out[..n]))
    }
}

#[test]
fn a_player_and_a_server_agree_and_talk_both_ways() {
    let player = Keypair::generate().unwrap();
    let server = TestServer::new();
    let (ci, init_text) = ClientInit::start(&player, Suite::ChaChaPoly);
    let awaiting = ci.server_init(&server.init_text).unwrap();
    assert_eq!(awaiting.server_id(), server.keys.client_id());
    let (mut hs, m1) = server.message1(&init_text, &player.client_id(), &sentinel_psk(), "sn");
    let mut est = awaiting.message1(&m1).unwrap();
    assert!(!est.credential_mismatch);
    assert_eq!(est.referenced.category, PskCategory::Sentinel);
    // The server reads message 2: its payload is the literal `{}`.
    let m2 = parse_handshake(&est.reply).unwrap();
    let mut buf = vec![0u8; 1024];
    let n = hs.read_message(&m2, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"{}");
    let mut srv = hs.into_transport_mode().unwrap();

    // Player → server: a JSON body behind type byte 0.
    let frames = est.transport.seal_text(r#"{"type":"client/hello"}"#).unwrap();
    assert_eq!(frames.len(), 1);
    let n = srv.read_message(&frames[0], &mut buf).unwrap();
    assert_eq!(&buf[..n], b"\0{\"type\":\"client/hello\"}");
    // Server → player: audio (type 4) and text, in nonce order.
    for (plain, want) in [
        (&[4u8, 1, 2, 3][..], Plain::Binary(vec![4, 1, 2, 3])),
        (&b"\0{}"[..], Plain::Text("{}".into())),
    ] {
        let mut ct = vec![0u8; 64];
        let n = srv.write_message(plain, &mut ct).unwrap();
        assert_eq!(est.transport.open(&ct[..n]).unwrap(), Some(want));
    }
    // A replayed or tampered frame fails to authenticate.
    let mut ct = vec![0u8; 64];
    let n = srv.write_message(b"\0{}", &mut ct).unwrap();
    let mut bad = ct[..n].to_vec();
    bad[0] ^= 1;
    assert!(matches!(est.transport.open(&bad), Err(SecureError::Noise { .. })));
}

#[test]
fn a_psk_the_player_does_not_hold_is_answered_under_the_sentinel_and_reported() {
    let player = Keypair::generate().unwrap();
    let server = TestServer::new();
    let (ci, init_text) = ClientInit::start(&player, Suite::ChaChaPoly);
    let awaiting = ci.server_init(&server.init_text).unwrap();
    // The server keyed message 1 with a long-term PSK from a pairing this player never made.
    let (mut hs, m1) = server.message1(&init_text, &player.client_id(), &[9u8; 32], "lt");
    let est = awaiting.message1(&m1).unwrap();
    assert!(est.credential_mismatch);
    assert_eq!(est.referenced.category, PskCategory::LongTerm);
    // Under its own PSK the server cannot read message 2 (aiosendspin then retries under the Sentinel).
    let m2 = parse_handshake(&est.reply).unwrap();
    let mut buf = vec![0u8; 1024];
    assert!(hs.read_message(&m2, &mut buf).is_err());
}

#[test]
fn a_server_with_another_key_than_it_announced_fails_at_message_1() {
    let player = Keypair::generate().unwrap();
    let server = TestServer::new();
    let impostor = TestServer::new();
    let (ci, init_text) = ClientInit::start(&player, Suite::ChaChaPoly);
    // The player is told server's key, but message 1 comes from the impostor's key (same server/init text).
    let awaiting = ci.server_init(&server.init_text).unwrap();
    let forged = TestServer {
        keys: impostor.keys,
        init_text: server.init_text.clone(),
    };
    let (_, m1) = forged.message1(&init_text, &player.client_id(), &sentinel_psk(), "sn");
    assert!(matches!(awaiting.message1(&m1), Err(SecureError::Noise { .. })));
}

#[test]
fn a_changed_prologue_fails_at_message_1() {
    let player = Keypair::generate().unwrap();
    let server = TestServer::new();
    let (ci, init_text) = ClientInit::start(&player, Suite::ChaChaPoly);
    let awaiting = ci.server_init(&server.init_text).unwrap();
    // The server saw a different client/init (e.g. rewritten on the way): its prologue differs.
    let (_, m1) = server.message1(&format!("{init_text} "), &player.client_id(), &sentinel_psk(), "sn");
    assert!(matches!(awaiting.message1(&m1), Err(SecureError::Noise { .. })));
}

#[test]
fn a_keypair_is_its_private_key_and_its_id_is_the_public_key() {
    let k = Keypair::generate().unwrap();
    let again = Keypair::from_private(*k.private());
    assert_eq!(k, again);
    assert_eq!(k.client_id().len(), 43);
    // RFC 7748 §6.1: Alice's private key and public key.
    let hex = |s: &str| -> [u8; 32] {
        (0..32)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect::<Vec<_>>()
            .try_into()
            .unwrap()
    };
    let alice = Keypair::from_private(hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"));
    assert_eq!(
        alice.client_id(),
        b64url(&hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"))
    );
    assert!(
        !format!("{alice:?}").contains("77076d"),
        "the private key stays out of logs"
    );
}
