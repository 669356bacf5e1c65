//! The blocking control client the CLI uses: connect, send one request, read one reply.

use super::protocol::{ProtocolError, Request, Response};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// How long the CLI waits for the service (a reload may open outputs, so this is generous).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(35);
/// Longest reply accepted, bytes.
pub const MAX_REPLY_BYTES: u64 = 16 << 20;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect.
    #[error("cannot connect to {path}: {reason}")]
    Connect {
        /// The socket.
        path: String,
        /// Why, with a hint.
        reason: String,
    },
    /// The connection broke or timed out.
    #[error("talking to {path}: {error}")]
    Io {
        /// The socket.
        path: String,
        /// The error.
        error: io::Error,
    },
    /// The reply made no sense.
    #[error("{path}: {reason}")]
    Garbled {
        /// The socket.
        path: String,
        /// What was wrong (in the text, not also a `source`: `{e:#}` would print it twice).
        reason: GarbledReply,
    },
    /// The service refused the request.
    #[error(transparent)]
    Refused(#[from] ProtocolError),
}

/// A reply that is not one.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GarbledReply(String);

/// Sends `req` to the service at `path` and returns its result and warnings (an error reply is
/// [`ClientError::Refused`]).
pub fn call(path: &Path, req: &Request, timeout: Duration) -> Result<(serde_json::Value, Vec<String>), ClientError> {
    let p = path.display().to_string();
    let mut s = UnixStream::connect(path).map_err(|e| ClientError::Connect {
        path: p.clone(),
        reason: match e.kind() {
            io::ErrorKind::NotFound => format!(
                "{e} (is bluebridge running? the socket is [service] control_socket in its config; --socket PATH)"
            ),
            io::ErrorKind::PermissionDenied => format!("{e} (is your user in group bluebridge? or use sudo)"),
            io::ErrorKind::ConnectionRefused => format!("{e} (nothing listens there: is bluebridge running?)"),
            _ => e.to_string(),
        },
    })?;
    let io_err = |error| ClientError::Io { path: p.clone(), error };
    s.set_read_timeout(Some(timeout)).map_err(io_err)?;
    s.set_write_timeout(Some(timeout)).map_err(io_err)?;
    s.write_all(req.encode().as_bytes()).map_err(io_err)?;
    let mut line = Vec::new();
    BufReader::new(s.take(MAX_REPLY_BYTES))
        .read_until(b'\n', &mut line)
        .map_err(io_err)?;
    if line.is_empty() {
        return Err(ClientError::Garbled {
            path: p,
            reason: GarbledReply("the service closed the connection without a reply".into()),
        });
    }
    match Response::parse(&line) {
        Ok(Response::Ok { result, warnings }) => Ok((result, warnings)),
        Ok(Response::Err(e)) => Err(ClientError::Refused(e)),
        Err(reason) => Err(ClientError::Garbled {
            path: p,
            reason: GarbledReply(reason),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::ErrorCode;

    /// A one-shot fake server that answers with `reply` (raw bytes) and returns what it was sent.
    fn fake(reply: &'static [u8]) -> (tempfile::TempDir, std::path::PathBuf, std::thread::JoinHandle<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let h = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            let mut got = String::new();
            BufReader::new(&s).read_line(&mut got).unwrap();
            (&s).write_all(reply).unwrap();
            got
        });
        (dir, path, h)
    }

    #[test]
    fn a_call_sends_one_line_and_returns_the_result() {
        let (_d, path, h) = fake(b"{\"v\":1,\"ok\":true,\"result\":{\"x\":2},\"warnings\":[\"w\"]}\n");
        let (r, w) = call(&path, &Request::Status, Duration::from_secs(5)).unwrap();
        assert_eq!(r["x"], 2);
        assert_eq!(w, vec!["w"]);
        assert_eq!(h.join().unwrap(), "{\"cmd\":\"status\",\"v\":1}\n");
    }

    #[test]
    fn refusals_missing_sockets_and_garbage_are_clear_errors() {
        let (_d, path, _h) =
            fake(b"{\"v\":1,\"ok\":false,\"error\":{\"code\":\"unknown-output\",\"message\":\"no output\"}}\n");
        match call(&path, &Request::Enable { name: "x".into() }, Duration::from_secs(5)) {
            Err(ClientError::Refused(e)) => assert_eq!(e.code, ErrorCode::UnknownOutput),
            other => panic!("{other:?}"),
        }
        let e = call(
            Path::new("/nonexistent/c.sock"),
            &Request::Status,
            Duration::from_secs(1),
        )
        .unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("/nonexistent/c.sock") && m.contains("is bluebridge running"),
            "{m}"
        );
        let (_d, path, _h) = fake(b"HTTP/1.0 200 OK\n");
        let m = call(&path, &Request::Status, Duration::from_secs(5))
            .unwrap_err()
            .to_string();
        assert!(m.contains("not JSON"), "{m}");
        let (_d, path, _h) = fake(b"");
        let m = call(&path, &Request::Status, Duration::from_secs(5))
            .unwrap_err()
            .to_string();
        assert!(m.contains("without a reply"), "{m}");
    }
}
