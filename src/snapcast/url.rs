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

/// The reason for a URL the `url` crate refused, in this file's words.
fn parse_error_reason(e: url::ParseError) -> String {
    match e {
        url::ParseError::EmptyHost => "no host".into(),
        url::ParseError::InvalidPort => "the port is not a number in 1..=65535".into(),
        url::ParseError::InvalidIpv6Address => {
            "bad IPv6 host: an unclosed '[', not an IPv6 address, or text after ']'".into()
        }
        other => other.to_string(),
    }
}

/// Percent-decodes a user or password; the bytes must be UTF-8 afterwards.
fn decoded(part: &str, what: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| format!("the {what} is not UTF-8 after percent-decoding"))
}

impl ServerUrl {
    /// Parses `tcp://[user[:password]@]host[:port]` with the `url` crate; what is ours is the scheme default, the
    /// refusals that name what Snapcast does not take, and the redaction of the password in errors.
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
        // `tcp://::1` would parse as an empty host and a bad port; say what was meant.
        if !hostport.starts_with('[') && hostport.matches(':').count() > 1 {
            return Err(err(
                "IPv6 addresses must be written in brackets, e.g. tcp://[::1]:1704".into()
            ));
        }
        let parsed = url::Url::parse(&format!("tcp://{rest}")).map_err(|e| err(parse_error_reason(e)))?;
        if !matches!(parsed.path(), "" | "/") || parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(err("a server URL has no path, query or fragment".into()));
        }
        let host = match parsed.host() {
            Some(url::Host::Ipv6(a)) => a.to_string(),
            Some(url::Host::Ipv4(a)) => a.to_string(),
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_string(),
            _ => return Err(err("no host".into())),
        };
        let port = match parsed.port() {
            None => DEFAULT_PORT,
            Some(0) => return Err(err("port 0 is not a number in 1..=65535".into())),
            Some(n) => n,
        };
        let credentials = match (parsed.username(), parsed.password()) {
            ("", None) => None,
            ("", Some(_)) => return Err(err("empty user name before '@'".into())),
            (user, pw) => Some((
                decoded(user, "user").map_err(err)?,
                decoded(pw.unwrap_or_default(), "password").map_err(err)?,
            )),
        };
        Ok(Self {
            host,
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
            ("tcp://host:0", "port 0 is not a number in 1..=65535"),
            ("tcp://host:99999", "port is not a number"),
            ("tcp://host:abc", "port is not a number"),
            ("tcp://host/stream", "no path"),
            ("tcp://::1", "brackets"),
            ("tcp://[::1", "unclosed"),
            ("tcp://[::1]x", "text after ']'"),
            ("tcp://[fd00::zz]", "bad IPv6 host"),
            ("tcp://:pw@host", "empty user"),
            ("tcp://u:%ff@host", "password is not UTF-8"),
            ("tcp://%ff@host", "user is not UTF-8"),
            ("tcp://host?x=1", "no path, query"),
            ("tcp://host#x", "no path, query"),
        ] {
            let e = ServerUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(want), "{url}: {e}");
        }
        let e = ServerUrl::parse("tcp://alice:hunter2@host:0").unwrap_err().to_string();
        assert_eq!(
            e,
            "server URL \"tcp://alice:***@host:0\": port 0 is not a number in 1..=65535"
        );
        assert!(!format!("{:?}", ok("tcp://alice:hunter2@h")).contains("hunter2"));
    }
}
