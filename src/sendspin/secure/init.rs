//! The cleartext messages of the init exchange and the handshake (`noise/models.py`): `client/init`, `server/init`,
//! `server/error` and `noise/handshake`, plus the JSON payloads Noise messages 1 and 2 carry inside.

use super::{b64url, peer_key, SecureError, Suite, KEY_BYTES, PROTOCOL_VERSION};
use base64::Engine as _;
use serde::Deserialize;

/// Largest cleartext message accepted during the handshake, bytes (`server/init` is ~110 bytes, a
/// `noise/handshake` ~150).
pub const MAX_INIT_TEXT_BYTES: usize = 4096;
/// Largest Noise handshake message, bytes (Noise's own limit).
pub const MAX_NOISE_MESSAGE_BYTES: usize = 65_535;

/// The `client/init` text for a player whose client_id is `client_id`. Its exact bytes start the prologue.
pub fn client_init(client_id: &str, suite: Suite) -> String {
    serde_json::json!({
        "type": "client/init",
        "payload": { "client_id": client_id, "version": PROTOCOL_VERSION, "suite": suite.name() },
    })
    .to_string()
}

/// A `server/init`: the server's static key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInit {
    /// The server_id as sent.
    pub server_id: String,
    /// The key it encodes.
    pub key: [u8; KEY_BYTES],
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: serde_json::Value,
}

fn envelope(text: &str, what: &'static str) -> Result<Envelope, SecureError> {
    if text.len() > MAX_INIT_TEXT_BYTES {
        return Err(SecureError::TooLarge {
            what,
            len: text.len(),
            max: MAX_INIT_TEXT_BYTES,
        });
    }
    serde_json::from_str(text).map_err(|e| SecureError::Malformed {
        what,
        reason: e.to_string(),
    })
}

fn field<T: serde::de::DeserializeOwned>(
    v: &serde_json::Value,
    name: &str,
    what: &'static str,
) -> Result<T, SecureError> {
    let f = v.get(name).ok_or_else(|| SecureError::Malformed {
        what,
        reason: format!("no {name}"),
    })?;
    T::deserialize(f).map_err(|e| SecureError::Malformed {
        what,
        reason: format!("{name}: {e}"),
    })
}

/// Reads the server's answer to `client/init`: `server/init`, or `server/error` as [`SecureError::Refused`].
/// The version must be the integer 1 (`noise/driver.py` `_parse_server_init`: a float or a boolean is refused).
pub fn parse_server_init(text: &str) -> Result<ServerInit, SecureError> {
    const WHAT: &str = "server/init";
    let env = envelope(text, WHAT)?;
    match env.kind.as_str() {
        "server/init" => {}
        "server/error" => {
            let reason = env
                .payload
                .get("reason")
                .and_then(|r| r.as_str())
                .unwrap_or("(none)")
                .chars()
                .take(64)
                .collect();
            return Err(SecureError::Refused { reason });
        }
        other => {
            return Err(SecureError::Malformed {
                what: WHAT,
                reason: format!("got a {:?} message", other.chars().take(64).collect::<String>()),
            })
        }
    }
    let version: u64 = field(&env.payload, "version", WHAT)?;
    if version != PROTOCOL_VERSION {
        return Err(SecureError::Version(version));
    }
    let server_id: String = field(&env.payload, "server_id", WHAT)?;
    let key = peer_key(&server_id, "server_id")?;
    Ok(ServerInit { server_id, key })
}

/// Reads a `noise/handshake` message: the Noise bytes it carries.
pub fn parse_handshake(text: &str) -> Result<Vec<u8>, SecureError> {
    const WHAT: &str = "noise/handshake";
    let env = envelope(text, WHAT)?;
    if env.kind != "noise/handshake" {
        return Err(SecureError::Malformed {
            what: WHAT,
            reason: format!("got a {:?} message", env.kind.chars().take(64).collect::<String>()),
        });
    }
    let data: String = field(&env.payload, "data", WHAT)?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(data.as_bytes())
        .map_err(|e| SecureError::Malformed {
            what: WHAT,
            reason: format!("data is not base64url: {e}"),
        })
}

/// The `noise/handshake` text carrying `noise` bytes.
pub fn handshake_text(noise: &[u8]) -> String {
    serde_json::json!({ "type": "noise/handshake", "payload": { "data": b64url(noise) } }).to_string()
}

/// Which kind of PSK the server keyed message 1 with (`noise/trust_store.py` `PskCategory`, its wire codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PskCategory {
    /// `lt`: a long-term PSK from a completed pairing.
    LongTerm,
    /// `pr`: a Pairing PSK handed to the player out of band.
    Pairing,
    /// `sn`: the published Sentinel PSK (unpaired playback, pairing by code).
    Sentinel,
}

/// The payload of Noise message 1: the PSK the server used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message1 {
    /// The psk_id.
    pub psk_id: String,
    /// Its category.
    pub category: PskCategory,
}

/// Reads the decrypted payload of Noise message 1 (`{"psk_id": …, "psk_category": "lt" | "pr" | "sn"}`).
pub fn parse_message1(payload: &[u8]) -> Result<Message1, SecureError> {
    const WHAT: &str = "Noise message 1 payload";
    #[derive(Deserialize)]
    struct Raw {
        psk_id: String,
        psk_category: String,
    }
    let raw: Raw = serde_json::from_slice(payload).map_err(|e| SecureError::Malformed {
        what: WHAT,
        reason: e.to_string(),
    })?;
    let category = match raw.psk_category.as_str() {
        "lt" => PskCategory::LongTerm,
        "pr" => PskCategory::Pairing,
        "sn" => PskCategory::Sentinel,
        other => {
            return Err(SecureError::Malformed {
                what: WHAT,
                reason: format!("unknown psk_category {:?}", other.chars().take(16).collect::<String>()),
            })
        }
    };
    Ok(Message1 {
        psk_id: raw.psk_id.chars().take(64).collect(),
        category,
    })
}

/// The payload of Noise message 2: the literal bytes `{}` (`noise/driver.py` `_validate_msg2_payload`).
pub const MESSAGE2_PAYLOAD: &[u8] = b"{}";

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER_ID: &str = "mQvKMJgqbd8vzGq0mN9f8Bv4k3bqFQm9yFZ3SZ7xoFk";

    #[test]
    fn client_init_carries_the_id_version_and_suite() {
        let v: serde_json::Value = serde_json::from_str(&client_init("abc", Suite::ChaChaPoly)).unwrap();
        assert_eq!(v["type"], "client/init");
        assert_eq!(v["payload"]["client_id"], "abc");
        assert_eq!(v["payload"]["version"], 1);
        assert_eq!(v["payload"]["suite"], "25519_ChaChaPoly_SHA256");
    }

    #[test]
    fn server_init_as_aiosendspin_writes_it_parses() {
        // `ServerInitMessage(...).to_json()` of aiosendspin 10.2.1.
        let t = format!(r#"{{"payload":{{"server_id":"{SERVER_ID}","version":1}},"type":"server/init"}}"#);
        let s = parse_server_init(&t).unwrap();
        assert_eq!(s.server_id, SERVER_ID);
    }

    #[test]
    fn a_server_error_a_wrong_version_and_a_bad_key_are_told_apart() {
        assert_eq!(
            parse_server_init(r#"{"type":"server/error","payload":{"reason":"unsupported_suite"}}"#),
            Err(SecureError::Refused {
                reason: "unsupported_suite".into()
            })
        );
        let v2 = format!(r#"{{"type":"server/init","payload":{{"server_id":"{SERVER_ID}","version":2}}}}"#);
        assert_eq!(parse_server_init(&v2), Err(SecureError::Version(2)));
        for version in ["1.0", "true", "\"1\""] {
            let t = format!(r#"{{"type":"server/init","payload":{{"server_id":"{SERVER_ID}","version":{version}}}}}"#);
            assert!(
                matches!(parse_server_init(&t), Err(SecureError::Malformed { .. })),
                "{version}"
            );
        }
        let short = r#"{"type":"server/init","payload":{"server_id":"abc","version":1}}"#;
        assert!(matches!(
            parse_server_init(short),
            Err(SecureError::Malformed { what: "server_id", .. })
        ));
        assert!(matches!(
            parse_server_init(r#"{"type":"server/hello","payload":{}}"#),
            Err(SecureError::Malformed { .. })
        ));
        let big = format!(
            r#"{{"type":"server/init","payload":{{"x":"{}"}}}}"#,
            "a".repeat(MAX_INIT_TEXT_BYTES)
        );
        assert!(matches!(parse_server_init(&big), Err(SecureError::TooLarge { .. })));
    }

    #[test]
    fn handshake_frames_round_trip_and_refuse_padding() {
        let bytes = [1u8, 2, 3, 250, 251];
        assert_eq!(parse_handshake(&handshake_text(&bytes)).unwrap(), bytes);
        assert!(parse_handshake(r#"{"type":"noise/handshake","payload":{"data":"AQID+g=="}}"#).is_err());
        assert!(parse_handshake(r#"{"type":"noise/handshake","payload":{}}"#).is_err());
    }

    #[test]
    fn message1_payloads_name_a_known_category() {
        let m = parse_message1(br#"{"psk_id":"x","psk_category":"sn"}"#).unwrap();
        assert_eq!(m.category, PskCategory::Sentinel);
        assert_eq!(
            parse_message1(br#"{"psk_id":"x","psk_category":"lt"}"#)
                .unwrap()
                .category,
            PskCategory::LongTerm
        );
        assert!(parse_message1(br#"{"psk_id":"x","psk_category":"zz"}"#).is_err());
        assert!(parse_message1(b"\xff").is_err());
    }
}
