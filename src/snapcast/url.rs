//! Server addresses: `tcp://[user[:password]@]host[:port]` (default port 1704), as snapclient ≥ 0.32 takes them.
//!
//! A bare `host[:port]` is read as `tcp://`. IPv6 hosts go in brackets (`tcp://[fd00::5]:1704`). User and password
//! may be percent-encoded; they become the Hello's `Auth` (`Basic base64(user:password)`). Errors never echo the
//! password.

use super::proto::Auth;
use base64::Engine as _;
use std::fmt;

/// Snapserver's stream port.
pub const DEFAULT_PORT: u16 = 1704;

/// A parsed server address.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User and password for servers with authorization.
    pub credentials: Option<(String, String)>,
}

impl fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|c| &c.0))
            .finish()
    }
}

/// Why a server URL was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("server URL {url:?}: {reason}")]
pub struct UrlError {
    /// The URL, with any password replaced by `***`.
    pub url: String,
    /// What is wrong with it.
    pub reason: String,
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl ServerUrl {
    /// Parses `tcp://[user[:password]@]host[:port]`.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let (scheme, rest) = match url.split_once("://") {
            Some((s, r)) => (s, r),
            None => ("tcp", url),
        };
        // The part before the last '@' holds credentials; redact it in errors.
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let redacted = match userinfo {
            Some(u) => {
                let user = u.split(':').next().unwrap_or_default();
                let shown_scheme = if url.contains("://") {
                    format!("{scheme}://")
                } else {
                    String::new()
                };
                format!("{shown_scheme}{user}:***@{hostport}")
            }
            None => url.to_string(),
        };
        let err = |reason: String| UrlError {
            url: redacted.clone(),
            reason,
        };
        match scheme {
            "tcp" => {}
            "ws" | "wss" => {
                return Err(err(format!(
                    "{scheme}:// streaming is not supported, use tcp://host[:{DEFAULT_PORT}]"
                )))
            }
            other => return Err(err(format!("unknown scheme {other:?}, expected tcp://"))),
        }
        let hostport = hostport.strip_suffix('/').unwrap_or(hostport);
        if hostport.contains(['/', '?', '#']) {
            return Err(err("a server URL has no path, query or fragment".into()));
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| err("unclosed '[' in IPv6 host".into()))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| err(format!("unexpected {p:?} after IPv6 host")))?,
                ),
            };
            (host, port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, _)) if h.contains(':') => {
                    return Err(err(
                        "IPv6 addresses must be written in brackets, e.g. tcp://[::1]:1704".into()
                    ))
                }
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(err("no host".into()));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(err(format!("port {p:?} is not a number in 1..=65535"))),
                Ok(n) => n,
            },
        };
        let credentials = match userinfo {
            None => None,
            Some(u) => {
                let (user, pw) = u.split_once(':').unwrap_or((u, ""));
                let user = percent_decode(user).ok_or_else(|| err("bad percent-encoding in the user".into()))?;
                let pw = percent_decode(pw).ok_or_else(|| err("bad percent-encoding in the password".into()))?;
                if user.is_empty() {
                    return Err(err("empty user name before '@'".into()));
                }
                Some((user, pw))
            }
        };
        Ok(Self {
            host: host.to_string(),
            port,
            credentials,
        })
    }

    /// `host:port` for logs and `connect` (IPv6 in brackets); never contains credentials.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The Hello `Auth` for these credentials: `Basic base64(user:password)`.
    pub fn auth(&self) -> Option<Auth> {
        self.credentials.as_ref().map(|(user, pw)| Auth {
            scheme: "Basic".to_string(),
            param: base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> ServerUrl {
        ServerUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn accepted_forms() {
        let u = ok("tcp://192.168.1.5");
        assert_eq!((u.host.as_str(), u.port, u.credentials), ("192.168.1.5", 1704, None));
        assert_eq!(ok("tcp://music.local:18704/").address(), "music.local:18704");
        assert_eq!(ok("snapserver").address(), "snapserver:1704");
        assert_eq!(ok("tcp://[::1]:1800").address(), "[::1]:1800");
        assert_eq!(ok("tcp://[fd00::5]").host, "fd00::5");
        let u = ok("tcp://alice:s%40cret:x@host:1");
        assert_eq!(u.credentials, Some(("alice".into(), "s@cret:x".into())));
        let a = u.auth().unwrap();
        assert_eq!((a.scheme.as_str(), a.param.as_str()), ("Basic", "YWxpY2U6c0BjcmV0Ong="));
        assert_eq!(ok("tcp://bob@h").credentials, Some(("bob".into(), String::new())));
    }

    #[test]
    fn rejected_forms_say_why_and_hide_the_password() {
        for (url, want) in [
            ("ws://host", "ws:// streaming is not supported"),
            ("http://host", "unknown scheme \"http\""),
            ("tcp://", "no host"),
            ("tcp://:1704", "no host"),
            ("tcp://host:0", "port \"0\" is not a number in 1..=65535"),
            ("tcp://host:99999", "port \"99999\""),
            ("tcp://host:abc", "port \"abc\""),
            ("tcp://host/stream", "no path"),
            ("tcp://::1", "brackets"),
            ("tcp://[::1", "unclosed"),
            ("tcp://[::1]x", "unexpected \"x\""),
            ("tcp://:pw@host", "empty user"),
            ("tcp://u:%zz@host", "percent-encoding in the password"),
        ] {
            let e = ServerUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(want), "{url}: {e}");
        }
        let e = ServerUrl::parse("tcp://alice:hunter2@host:0").unwrap_err().to_string();
        assert_eq!(
            e,
            "server URL \"tcp://alice:***@host:0\": port \"0\" is not a number in 1..=65535"
        );
        assert!(!format!("{:?}", ok("tcp://alice:hunter2@h")).contains("hunter2"));
    }
}
