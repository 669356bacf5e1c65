//! The control socket's server: accepts connections on a unix socket and passes each parsed request to the
//! service's handler.
//!
//! A hostile or broken client cannot hurt the service:
//! - a request line longer than [`Limits::max_line`] is answered with `line-too-long` and the connection closed,
//!   without ever buffering more than that;
//! - every request must arrive complete within [`Limits::request_timeout`] of the previous reply (or of the
//!   connection), so a client trickling bytes (slowloris) or sitting idle is closed;
//! - a reply that the client does not read within [`Limits::write_timeout`] closes the connection;
//! - at most [`Limits::max_connections`] connections are served at once; the next ones get `busy` at once;
//! - garbage gets an error reply and the connection stays usable.

use super::protocol::{ErrorCode, Request, Response, MAX_LINE_BYTES};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

/// File mode of the socket: owner and group may connect.
pub const SOCKET_MODE: u32 = 0o660;
/// What is read and dropped after refusing a connection's input, at most (bytes and time).
const DRAIN_BYTES: u64 = 1 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// The group given the socket when it exists.
pub const SOCKET_GROUP: &str = "bluebridge";

/// What a connection may use.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest request line, bytes.
    pub max_line: usize,
    /// Connections served at once.
    pub max_connections: usize,
    /// A whole request line must arrive within this of the previous reply (or the connection).
    pub request_timeout: Duration,
    /// A reply must be taken by the client within this.
    pub write_timeout: Duration,
    /// The handler must answer within this.
    pub handler_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line: MAX_LINE_BYTES,
            max_connections: 16,
            request_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(5),
            handler_timeout: Duration::from_secs(30),
        }
    }
}

/// One request for the service, with where its reply goes.
pub type Call = (Request, oneshot::Sender<Response>);

/// Creates the socket at `path`: its directory if missing, a stale socket file replaced, mode
/// [`SOCKET_MODE`], group [`SOCKET_GROUP`] if that group exists and the socket lacks it (a failure to change the group is logged, not
/// fatal). Fails if another process is listening there or the path is something other than a socket.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "{}: another process is listening there (is bluebridge already running?)",
                        path.display()
                    ),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists and is not a socket", path.display()),
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))?;
    // Under the shipped unit (Group=bluebridge) the socket is born with that group, and chown(2) is one of the
    // `@privileged` system calls the unit's filter refuses (EPERM): change the group only when it differs.
    let have_gid = std::fs::symlink_metadata(path)?.gid();
    if let Some(gid) = group_id(SOCKET_GROUP).filter(|&gid| gid != have_gid) {
        if let Err(e) = nix::unistd::chown(path, None, Some(nix::unistd::Gid::from_raw(gid))) {
            tracing::warn!(
                "control socket {}: cannot give it group {SOCKET_GROUP}: {}",
                path.display(),
                io::Error::from(e)
            );
        }
    }
    Ok(listener)
}

/// The id of group `name`, if it exists.
pub fn group_id(name: &str) -> Option<u32> {
    Some(nix::unistd::Group::from_name(name).ok()??.gid.as_raw())
}

/// Serves `listener` until `shutdown` turns true, passing each request to `handler`.
pub async fn serve(
    listener: UnixListener,
    handler: mpsc::Sender<Call>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = stopped(&mut shutdown) => return,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                // Out of file descriptors, most likely: back off instead of spinning.
                tracing::warn!("control socket: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        match slots.clone().try_acquire_owned() {
            Ok(permit) => {
                let handler = handler.clone();
                tokio::spawn(async move {
                    connection(stream, handler, limits).await;
                    drop(permit);
                });
            }
            Err(_) => {
                tokio::spawn(async move {
                    let mut stream = stream;
                    let reply = Response::err(
                        ErrorCode::Busy,
                        format!("too many connections (at most {}); try again", limits.max_connections),
                    );
                    let _ =
                        tokio::time::timeout(limits.write_timeout, stream.write_all(reply.encode().as_bytes())).await;
                });
            }
        }
    }
}

/// Returns once `shutdown` is true (or its sender is gone).
pub async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// How reading a line ended.
#[derive(Debug, PartialEq, Eq)]
enum LineRead {
    /// A line is in the buffer (its newline removed; also a last line without newline at end of stream).
    Line,
    /// End of stream before any byte.
    Eof,
    /// Longer than allowed; what was read is dropped.
    TooLong,
}

/// Reads one line into `out` (cleared first), never holding more than `max` bytes of it.
async fn read_line_bounded<R: AsyncBufRead + Unpin>(r: &mut R, out: &mut Vec<u8>, max: usize) -> io::Result<LineRead> {
    out.clear();
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if out.is_empty() { LineRead::Eof } else { LineRead::Line });
        }
        let (take, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if out.len() + take > max {
            out.clear();
            return Ok(LineRead::TooLong);
        }
        out.extend_from_slice(&buf[..take]);
        r.consume(take + usize::from(done));
        if done {
            return Ok(LineRead::Line);
        }
    }
}

async fn connection(stream: UnixStream, handler: mpsc::Sender<Call>, limits: Limits) {
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let mut line = Vec::new();
    loop {
        let read = tokio::time::timeout(
            limits.request_timeout,
            read_line_bounded(&mut rd, &mut line, limits.max_line),
        )
        .await;
        let (reply, close) = match read {
            Err(_) => (
                Response::err(
                    ErrorCode::Timeout,
                    format!(
                        "no complete request within {} s; closing",
                        limits.request_timeout.as_secs()
                    ),
                ),
                true,
            ),
            Ok(Err(_)) | Ok(Ok(LineRead::Eof)) => return,
            Ok(Ok(LineRead::TooLong)) => (
                Response::err(
                    ErrorCode::LineTooLong,
                    format!("request longer than {} bytes; closing", limits.max_line),
                ),
                true,
            ),
            Ok(Ok(LineRead::Line)) => {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match Request::parse(&line) {
                    Err(e) => (Response::Err(e), false),
                    Ok(req) => {
                        // A calibration plays and records for seconds per output: its own bound.
                        let timeout = match &req {
                            Request::Calibrate(a) => a.timeout(32).max(limits.handler_timeout),
                            _ => limits.handler_timeout,
                        };
                        (dispatch(&handler, req, timeout).await, false)
                    }
                }
            }
        };
        let sent = tokio::time::timeout(limits.write_timeout, wr.write_all(reply.encode().as_bytes())).await;
        if !matches!(sent, Ok(Ok(()))) {
            return;
        }
        if close {
            // Closing with unread input would reset the connection and could destroy the reply before the client
            // reads it: say we are done, then read and drop a bounded amount for a short while.
            let _ = wr.shutdown().await;
            let mut rest = (&mut rd).take(DRAIN_BYTES);
            let mut sink = tokio::io::sink();
            let _ = tokio::time::timeout(DRAIN_TIME, tokio::io::copy(&mut rest, &mut sink)).await;
            return;
        }
    }
}

async fn dispatch(handler: &mpsc::Sender<Call>, req: Request, timeout: Duration) -> Response {
    let (tx, rx) = oneshot::channel();
    if handler.send((req, tx)).await.is_err() {
        return Response::err(ErrorCode::Failed, "the service is shutting down");
    }
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Response::err(ErrorCode::Failed, "the service dropped the request"),
        Err(_) => Response::err(ErrorCode::Failed, format!("no answer within {} s", timeout.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A server on a temp socket whose handler answers `status` with `{"n":…}` (a request counter) and every other
    /// command with an unknown-output error.
    async fn start(limits: Limits) -> (tempfile::TempDir, std::path::PathBuf, watch::Sender<bool>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sock");
        let listener = bind(&path).unwrap();
        let (tx, mut rx) = mpsc::channel::<Call>(8);
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            let mut n = 0;
            while let Some((req, reply)) = rx.recv().await {
                n += 1;
                let _ = reply.send(match req {
                    Request::Status => Response::ok(json!({ "n": n })),
                    _ => Response::err(ErrorCode::UnknownOutput, "no output \"x\"; outputs: a, b"),
                });
            }
        });
        tokio::spawn(serve(listener, tx, limits, stop_rx));
        (dir, path, stop)
    }

    async fn ask(s: &mut BufReader<UnixStream>, line: &[u8]) -> Response {
        s.get_mut().write_all(line).await.unwrap();
        let mut reply = String::new();
        s.read_line(&mut reply).await.unwrap();
        Response::parse(reply.as_bytes()).unwrap()
    }

    async fn connect(path: &Path) -> BufReader<UnixStream> {
        BufReader::new(UnixStream::connect(path).await.unwrap())
    }

    #[tokio::test]
    async fn requests_are_answered_in_order_and_garbage_does_not_close_the_connection() {
        let (_d, path, _stop) = start(Limits::default()).await;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, SOCKET_MODE);
        let mut c = connect(&path).await;
        assert_eq!(
            ask(&mut c, b"{\"v\":1,\"cmd\":\"status\"}\n").await,
            Response::ok(json!({"n": 1}))
        );
        let r = ask(&mut c, b"\x00\xffgarbage\n").await;
        assert!(
            matches!(r, Response::Err(ref e) if e.code == ErrorCode::BadRequest),
            "{r:?}"
        );
        let r = ask(&mut c, b"{\"v\":7,\"cmd\":\"status\"}\n").await;
        assert!(
            matches!(r, Response::Err(ref e) if e.code == ErrorCode::UnsupportedVersion),
            "{r:?}"
        );
        let r = ask(&mut c, b"\n\n{\"v\":1,\"cmd\":\"enable\",\"name\":\"x\"}\n").await;
        assert!(
            matches!(r, Response::Err(ref e) if e.message.contains("outputs: a, b")),
            "{r:?}"
        );
        assert_eq!(
            ask(&mut c, b"{\"v\":1,\"cmd\":\"status\"}\n").await,
            Response::ok(json!({"n": 3}))
        );
    }

    #[tokio::test]
    async fn a_huge_line_is_refused_without_being_buffered() {
        let (_d, path, _stop) = start(Limits::default()).await;
        let mut c = connect(&path).await;
        // 1 MiB without a newline: the server answers after 64 KiB and closes; the rest may not even be read.
        let big = vec![b'x'; 1 << 20];
        let (mut rd, mut wr) = c.get_mut().split();
        let writer = async {
            let _ = wr.write_all(&big).await;
            let _ = wr.shutdown().await;
        };
        let reader = async {
            let mut reply = Vec::new();
            rd.read_to_end(&mut reply).await.unwrap();
            reply
        };
        let (_, reply) = tokio::join!(writer, reader);
        let r = Response::parse(&reply).unwrap();
        assert!(
            matches!(r, Response::Err(ref e) if e.code == ErrorCode::LineTooLong),
            "{r:?}"
        );
        // The service still answers others.
        let mut c2 = connect(&path).await;
        assert!(matches!(
            ask(&mut c2, b"{\"v\":1,\"cmd\":\"status\"}\n").await,
            Response::Ok { .. }
        ));
    }

    #[tokio::test]
    async fn a_slow_or_idle_client_is_closed_after_the_request_timeout() {
        let limits = Limits {
            request_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let (_d, path, _stop) = start(limits).await;
        let mut c = connect(&path).await;
        let t = std::time::Instant::now();
        // Slowloris: a byte every 100 ms never completes a line within 300 ms.
        let mut reply = Vec::new();
        for b in b"{\"v\":1,\"cmd\"" {
            if c.get_mut().write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            if t.elapsed() > Duration::from_millis(600) {
                break;
            }
        }
        c.read_to_end(&mut reply).await.unwrap();
        assert!(t.elapsed() < Duration::from_secs(2));
        let r = Response::parse(&reply).unwrap();
        assert!(
            matches!(r, Response::Err(ref e) if e.code == ErrorCode::Timeout),
            "{r:?}"
        );
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_are_told_busy() {
        let limits = Limits {
            max_connections: 2,
            ..Limits::default()
        };
        let (_d, path, _stop) = start(limits).await;
        let mut held = vec![connect(&path).await, connect(&path).await];
        // Make sure both are being served before the third arrives.
        for c in &mut held {
            assert!(matches!(
                ask(c, b"{\"v\":1,\"cmd\":\"status\"}\n").await,
                Response::Ok { .. }
            ));
        }
        let mut third = connect(&path).await;
        let mut reply = Vec::new();
        third.read_to_end(&mut reply).await.unwrap();
        let r = Response::parse(&reply).unwrap();
        assert!(matches!(r, Response::Err(ref e) if e.code == ErrorCode::Busy), "{r:?}");
        drop(held);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut again = connect(&path).await;
        assert!(matches!(
            ask(&mut again, b"{\"v\":1,\"cmd\":\"status\"}\n").await,
            Response::Ok { .. }
        ));
    }

    #[tokio::test]
    async fn a_stale_socket_is_replaced_but_a_live_one_is_not() {
        let (_d, path, stop) = start(Limits::default()).await;
        let e = bind(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
        stop.send(true).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The listener is gone but its file remains: a stale socket, replaced.
        let dir = tempfile::tempdir().unwrap();
        let stale = dir.path().join("s.sock");
        drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
        assert!(stale.exists());
        let _l = bind(&stale).unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, "").unwrap();
        assert!(bind(&file).unwrap_err().to_string().contains("not a socket"));
    }

    #[tokio::test]
    async fn a_line_split_across_reads_and_one_without_newline_at_eof_are_whole() {
        let data: &[u8] = b"abc\ndefg";
        let mut r = BufReader::with_capacity(2, data);
        let mut out = Vec::new();
        assert_eq!(read_line_bounded(&mut r, &mut out, 10).await.unwrap(), LineRead::Line);
        assert_eq!(out, b"abc");
        assert_eq!(read_line_bounded(&mut r, &mut out, 10).await.unwrap(), LineRead::Line);
        assert_eq!(out, b"defg");
        assert_eq!(read_line_bounded(&mut r, &mut out, 10).await.unwrap(), LineRead::Eof);
        let mut r = BufReader::with_capacity(3, &b"0123456789A\n"[..]);
        assert_eq!(
            read_line_bounded(&mut r, &mut out, 10).await.unwrap(),
            LineRead::TooLong
        );
        let mut r = BufReader::with_capacity(3, &b"0123456789\n"[..]);
        assert_eq!(read_line_bounded(&mut r, &mut out, 10).await.unwrap(), LineRead::Line);
    }
}
