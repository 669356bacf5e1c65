//! What bluebridge reads and writes in Sendspin's mDNS records, pure: the TXT keys a player advertises, the path a
//! server dials it at, the URL a discovered server's record gives (with a bound on every field), and the choice
//! among the servers found.
//!
//! Checked against aiosendspin 10.2.1: a player advertises `_sendspin._tcp` with TXT `name` and `path`, instance
//! name its client_id (`client/listener.py` `_start_mdns`); the server reads `path` (it must start with `/`) and the
//! first address that is neither link-local nor unspecified (`server/server.py` `_service_url`,
//! `_get_first_valid_ip`). A server advertises `_sendspin-server._tcp` with the same two keys
//! (`_start_mdns_advertising`).

use std::collections::BTreeMap;
use std::net::IpAddr;

/// The service type a player advertises and the server browses for.
pub const PLAYER_SERVICE: &str = "_sendspin._tcp.local.";
/// The service type a server advertises.
pub const SERVER_SERVICE: &str = "_sendspin-server._tcp.local.";
/// The port the spec recommends for a player's listener.
pub const DEFAULT_PLAYER_PORT: u16 = 8928;
/// Longest `path` TXT value taken from the network, bytes.
pub const MAX_PATH_BYTES: usize = 255;
/// Longest `name` TXT value kept for the log, chars.
pub const MAX_NAME_CHARS: usize = 64;
/// Servers remembered at once (a network announcing more is cut off here).
pub const MAX_SERVERS: usize = 16;
/// An mDNS instance name is one DNS label: at most this many bytes.
pub const MAX_INSTANCE_BYTES: usize = 63;

/// A discovered record that gives no usable URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// No `path` TXT key.
    #[error("no `path` in its TXT record")]
    NoPath,
    /// A `path` that is not an absolute URL path of visible ASCII within the bound.
    #[error("its `path` {0:?} is not a path (it must start with / and hold at most 255 visible ASCII characters)")]
    BadPath(String),
    /// Port 0.
    #[error("its port is 0")]
    NoPort,
    /// Only link-local or unspecified addresses (or none).
    #[error("no usable address (only link-local, unspecified or none)")]
    NoAddress,
}

/// What a path segment keeps as it is: RFC 3986's unreserved characters. Clients normalise `%2D` to `-` before
/// they send (aiohttp's yarl does), so encoding an unreserved character would make the path the server asks for
/// differ from the one advertised; the listener compares decoded paths besides ([`decoded_path`]).
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The path a server dials a player at on bluebridge's listener: `/sendspin/<client id>`, the id percent-encoded
/// (a base64url client id needs none).
pub fn player_path(client_id: &str) -> String {
    let id: String = percent_encoding::utf8_percent_encode(client_id, SEGMENT).collect();
    format!("/sendspin/{id}")
}

/// A request path with its percent-escapes decoded, the form the listener routes by.
pub fn decoded_path(path: &str) -> String {
    percent_encoding::percent_decode_str(path)
        .decode_utf8_lossy()
        .into_owned()
}

/// The instance name a player advertises under: its client id (as aiosendspin's listener does), cut to one DNS
/// label.
pub fn instance_name(client_id: &str) -> String {
    let mut end = client_id.len().min(MAX_INSTANCE_BYTES);
    while !client_id.is_char_boundary(end) {
        end -= 1;
    }
    client_id[..end].to_string()
}

/// The TXT properties of a player: `name` (what the server lists) and `path`.
pub fn player_txt(name: &str, path: &str) -> [(&'static str, String); 2] {
    [("name", name.to_string()), ("path", path.to_string())]
}

/// Checks a `path` from the network.
pub fn check_path(path: &str) -> Result<(), RecordError> {
    let ok = path.starts_with('/')
        && path.len() <= MAX_PATH_BYTES
        && path.bytes().all(|b| b.is_ascii_graphic() && b != b'#');
    if ok {
        Ok(())
    } else {
        Err(RecordError::BadPath(path.chars().take(MAX_PATH_BYTES).collect()))
    }
}

/// The WebSocket URL of a discovered server: the first usable address (IPv4 before IPv6, as the server itself
/// browses IPv4 only), its port and its `path`.
pub fn server_url(addresses: &[IpAddr], port: u16, path: Option<&str>) -> Result<String, RecordError> {
    let path = path.ok_or(RecordError::NoPath)?;
    check_path(path)?;
    if port == 0 {
        return Err(RecordError::NoPort);
    }
    let usable = |a: &&IpAddr| {
        !a.is_unspecified()
            && match a {
                IpAddr::V4(v4) => !v4.is_link_local(),
                IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
            }
    };
    let mut sorted: Vec<&IpAddr> = addresses.iter().filter(usable).collect();
    sorted.sort_by_key(|a| (a.is_ipv6(), **a));
    match sorted.first() {
        Some(IpAddr::V4(a)) => Ok(format!("ws://{a}:{port}{path}")),
        Some(IpAddr::V6(a)) => Ok(format!("ws://[{a}]:{port}{path}")),
        None => Err(RecordError::NoAddress),
    }
}

/// A server's `name` TXT value, cut for the log.
pub fn display_name(name: Option<&str>) -> String {
    name.unwrap_or("?")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect()
}

/// The servers found so far and the one the players use: the first found that is still announced, so a second
/// server appearing never moves the players.
#[derive(Debug, Default)]
pub struct Servers {
    // fullname → (order found, url)
    found: BTreeMap<String, (u64, String)>,
    next: u64,
}

impl Servers {
    /// A server announced (or re-announced) at `url`; returns the chosen URL when it changed.
    pub fn found(&mut self, fullname: &str, url: String) -> Option<String> {
        let before = self.chosen();
        if let Some(entry) = self.found.get_mut(fullname) {
            entry.1 = url;
        } else if self.found.len() < MAX_SERVERS {
            self.next += 1;
            self.found.insert(fullname.to_string(), (self.next, url));
        }
        let after = self.chosen();
        (after != before).then_some(after).flatten()
    }

    /// A server withdrew; returns the new choice (None: no server left) when it changed.
    pub fn removed(&mut self, fullname: &str) -> Option<Option<String>> {
        let before = self.chosen();
        self.found.remove(fullname);
        let after = self.chosen();
        (after != before).then_some(after)
    }

    /// The URL the players use.
    pub fn chosen(&self) -> Option<String> {
        self.found.values().min_by_key(|(n, _)| *n).map(|(_, u)| u.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_players_path_is_its_client_id_made_url_safe() {
        // A base64url id (the encrypted players') is its own path: a client normalising the URL changes nothing.
        assert_eq!(player_path("LBU-wJMb_1~x.y"), "/sendspin/LBU-wJMb_1~x.y");
        assert_eq!(player_path("bluebridge-a b/c"), "/sendspin/bluebridge-a%20b%2Fc");
        assert_eq!(decoded_path("/sendspin/LBU%2DwJ"), "/sendspin/LBU-wJ");
        assert_eq!(decoded_path(&player_path("a b/é")), "/sendspin/a b/é");
        check_path(&player_path(&"é".repeat(20))).unwrap();
        assert_eq!(instance_name(&"x".repeat(80)).len(), 63);
        assert_eq!(instance_name(&"é".repeat(40)).len(), 62);
    }

    #[test]
    fn a_server_record_becomes_its_url_or_an_error_naming_what_is_wrong() {
        let v4: IpAddr = "192.168.1.10".parse().unwrap();
        let ll: IpAddr = "169.254.3.4".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        let v6ll: IpAddr = "fe80::1".parse().unwrap();
        assert_eq!(
            server_url(&[ll, v6, v4], 8927, Some("/sendspin")).unwrap(),
            "ws://192.168.1.10:8927/sendspin"
        );
        assert_eq!(
            server_url(&[v6ll, v6], 1, Some("/s")).unwrap(),
            "ws://[2001:db8::1]:1/s"
        );
        assert_eq!(server_url(&[ll, v6ll], 1, Some("/s")), Err(RecordError::NoAddress));
        assert_eq!(server_url(&[v4], 1, None), Err(RecordError::NoPath));
        assert_eq!(server_url(&[v4], 0, Some("/s")), Err(RecordError::NoPort));
        for bad in ["sendspin", "/a b", "/a\u{7f}", "/é", "/x#y"] {
            let e = server_url(&[v4], 1, Some(bad)).unwrap_err();
            assert!(e.to_string().contains("is not a path"), "{bad}: {e}");
        }
        let long = format!("/{}", "a".repeat(255));
        assert!(matches!(
            server_url(&[v4], 1, Some(&long)),
            Err(RecordError::BadPath(_))
        ));
        assert_eq!(display_name(Some(&format!("a\u{1b}[31m{}", "b".repeat(100)))).len(), 64);
    }

    #[test]
    fn the_first_server_found_stays_chosen_until_it_leaves() {
        let mut s = Servers::default();
        assert_eq!(s.found("a", "ws://1:1/s".into()), Some("ws://1:1/s".into()));
        assert_eq!(s.found("b", "ws://2:1/s".into()), None);
        assert_eq!(s.found("a", "ws://1:1/s".into()), None);
        assert_eq!(s.found("a", "ws://3:1/s".into()), Some("ws://3:1/s".into()));
        assert_eq!(s.removed("b"), None);
        assert_eq!(s.removed("a"), Some(None));
        for i in 0..100 {
            s.found(&format!("n{i}"), format!("ws://{i}:1/s"));
        }
        assert_eq!(s.found.len(), MAX_SERVERS);
        assert_eq!(s.chosen().as_deref(), Some("ws://0:1/s"));
    }
}
