//! Hello (type 5, client → server): who this client is.
//!
//! Payload: `u32` length + JSON with `MAC`, `HostName`, `Version`, `ClientName`, `OS`, `Arch`, `Instance`, `ID`,
//! `SnapStreamProtocolVersion` and, for servers with authorization (≥ 0.32), `Auth`. The server keys the client by
//! [`Hello::unique_id`]: `ID` (or `MAC` when `ID` is empty), plus `#Instance` when the instance is not 1.

use super::wire::{decode_sized_json, put_sized_json};
use super::ProtoError;
use serde::{Deserialize, Serialize};

const NAME: &str = "Hello";

/// Credentials, `{"scheme":"Basic","param":base64("user:password")}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Auth {
    /// "Basic" (snapserver also accepts "Plain").
    pub scheme: String,
    /// Scheme parameter.
    pub param: String,
}

/// The client's introduction. Missing fields decode as empty / 0 (Instance: 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Hello {
    /// MAC address of the client's interface (informational).
    #[serde(rename = "MAC")]
    pub mac: String,
    /// Host name shown in the apps.
    #[serde(rename = "HostName")]
    pub host_name: String,
    /// Client software version.
    #[serde(rename = "Version")]
    pub version: String,
    /// Client software name.
    #[serde(rename = "ClientName")]
    pub client_name: String,
    /// Operating system.
    #[serde(rename = "OS")]
    pub os: String,
    /// CPU architecture.
    #[serde(rename = "Arch")]
    pub arch: String,
    /// Instance number on this host (1 = the only one).
    #[serde(rename = "Instance")]
    pub instance: u32,
    /// Stable client id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Stream protocol version (2).
    #[serde(rename = "SnapStreamProtocolVersion")]
    pub protocol_version: u32,
    /// Credentials, if the server needs them.
    #[serde(rename = "Auth", skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
}

impl Default for Hello {
    fn default() -> Self {
        Self {
            mac: String::new(),
            host_name: String::new(),
            version: String::new(),
            client_name: String::new(),
            os: String::new(),
            arch: String::new(),
            instance: 1,
            id: String::new(),
            protocol_version: 2,
            auth: None,
        }
    }
}

impl Hello {
    /// The id the server files this client under (used by every JSON-RPC call).
    pub fn unique_id(&self) -> String {
        let id = if self.id.is_empty() { &self.mac } else { &self.id };
        if self.instance == 1 {
            id.clone()
        } else {
            format!("{id}#{}", self.instance)
        }
    }

    /// Parses the payload.
    pub fn decode(payload: &[u8]) -> Result<Self, ProtoError> {
        decode_sized_json(NAME, payload)
    }

    /// Appends the payload.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_sized_json(out, self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_round_trip_truncation() {
        let m = Hello {
            mac: "00:00:00:00:00:00".into(),
            host_name: "pi".into(),
            version: "0.1.0".into(),
            client_name: "bluebridge".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            instance: 1,
            id: "bluebridge-kitchen".into(),
            protocol_version: 2,
            auth: Some(Auth {
                scheme: "Basic".into(),
                param: "dTpw".into(),
            }),
        };
        let mut out = Vec::new();
        m.encode(&mut out);
        let json = std::str::from_utf8(&out[4..]).unwrap();
        assert_eq!(
            json,
            r#"{"MAC":"00:00:00:00:00:00","HostName":"pi","Version":"0.1.0","ClientName":"bluebridge","OS":"linux","Arch":"x86_64","Instance":1,"ID":"bluebridge-kitchen","SnapStreamProtocolVersion":2,"Auth":{"scheme":"Basic","param":"dTpw"}}"#
        );
        assert_eq!(Hello::decode(&out), Ok(m.clone()));
        for n in 0..out.len() {
            assert!(Hello::decode(&out[..n]).is_err(), "truncated to {n} bytes");
        }
        assert_eq!(m.unique_id(), "bluebridge-kitchen");
        let m2 = Hello {
            instance: 3,
            id: String::new(),
            ..m
        };
        assert_eq!(m2.unique_id(), "00:00:00:00:00:00#3");
    }
}
