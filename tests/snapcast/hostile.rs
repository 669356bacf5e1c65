//! The client against a hostile fake server on loopback: each class of bad input (bad JSON, impossible sizes,
//! truncation, a huge size field, a chunk before the codec header, codec header lies, absurd timestamps, a 401, a
//! silent server) must be logged with what was wrong, drop the connection and reconnect — the fake server sees
//! repeated connections — with no panic and without reading more than the 1 MB limit. Unknown message types are
//! skipped, not fatal.

use crate::snap_support::Harness;
use bluebridge::snapcast::proto::{
    self, BaseHeader, CodecHeader, ErrorMsg, Message, ServerSettings, Time, Tv, WireChunk, BASE_HEADER_SIZE,
};
use bluebridge::snapcast::SnapEvent;
use bluebridge::timeline::{Clock, SystemClock};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// The server side of one connection, handed to a scenario after the client's Hello arrived.
pub struct Conn {
    /// 1 for the first connection, 2 for the next…
    pub index: usize,
    writer: Arc<Mutex<OwnedWriteHalf>>,
    /// Time requests answered so far on this connection.
    pub time_replies: Arc<AtomicUsize>,
    /// Set when the client closed its side.
    closed: Arc<tokio::sync::Notify>,
}

impl Conn {
    pub async fn send(&self, msg: &Message) {
        let now = Tv::from_ns(SystemClock.now().as_ns());
        let bytes = proto::encode(msg, 0, 0, now).unwrap();
        let _ = self.writer.lock().await.write_all(&bytes).await;
    }

    pub async fn raw(&self, bytes: &[u8]) {
        let _ = self.writer.lock().await.write_all(bytes).await;
    }

    pub async fn close(&self) {
        let _ = self.writer.lock().await.shutdown().await;
    }

    /// Waits until the client has closed the connection; false after `timeout`.
    pub async fn client_closed_within(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.closed.notified()).await.is_ok()
    }

    pub async fn settings(&self) {
        let s = ServerSettings {
            buffer_ms: 1000,
            latency_ms: 0,
            volume_pct: 100,
            muted: false,
        };
        self.send(&Message::ServerSettings(s)).await;
    }

    pub async fn pcm_header(&self, rate_hz: u32, channels: u16) {
        self.send(&Message::CodecHeader(CodecHeader {
            codec: "pcm".into(),
            header: riff(rate_hz, 16, channels),
        }))
        .await;
    }

    pub async fn chunk(&self, ts_ns: i64, payload: Vec<u8>) {
        self.send(&Message::WireChunk(WireChunk {
            timestamp: Tv::from_ns(ts_ns),
            payload,
        }))
        .await;
    }
}

/// A snapserver-style 44-byte RIFF header.
pub fn riff(rate_hz: u32, bits: u16, channels: u16) -> Vec<u8> {
    let align = channels * bits / 8;
    let mut h = b"RIFF".to_vec();
    h.extend(36u32.to_le_bytes());
    h.extend(b"WAVEfmt ");
    h.extend(16u32.to_le_bytes());
    h.extend(1u16.to_le_bytes());
    h.extend(channels.to_le_bytes());
    h.extend(rate_hz.to_le_bytes());
    h.extend((rate_hz * align as u32).to_le_bytes());
    h.extend(align.to_le_bytes());
    h.extend(bits.to_le_bytes());
    h.extend(b"data");
    h.extend(0u32.to_le_bytes());
    h
}

type Scenario = Arc<dyn Fn(Conn) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// How the fake server answers Time requests: not at all, or like snapserver with a clock that runs `offset(index)`
/// nanoseconds ahead of the local one on connection `index`.
#[derive(Clone, Copy)]
pub enum TimeReplies {
    Silent,
    Offset(fn(usize) -> i64),
    /// Same clock, but silent on the connections for which the function is true.
    SilentOn(fn(usize) -> bool),
}

/// Same clock as the client (one host).
pub const SAME_CLOCK: TimeReplies = TimeReplies::Offset(|_| 0);

/// A fake snapserver: answers Time requests as told and runs `scenario` on every connection once the Hello is in.
pub struct FakeServer {
    pub url: String,
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    pub async fn start(time: TimeReplies, scenario: Scenario) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("tcp://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let index = count.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::spawn(serve(sock, index, time, scenario.clone()));
            }
        });
        Self { url, connections, task }
    }

    pub fn count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn read_frame(rd: &mut tokio::net::tcp::OwnedReadHalf) -> Option<(BaseHeader, Message)> {
    let mut raw = [0u8; BASE_HEADER_SIZE];
    rd.read_exact(&mut raw).await.ok()?;
    let h = BaseHeader::parse(&raw).ok()?;
    let mut payload = vec![0; h.size as usize];
    rd.read_exact(&mut payload).await.ok()?;
    Some((h, proto::decode(&h, &payload).ok()?))
}

async fn serve(sock: TcpStream, index: usize, time: TimeReplies, scenario: Scenario) {
    let (mut rd, wr) = sock.into_split();
    let writer = Arc::new(Mutex::new(wr));
    let time_replies = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(tokio::sync::Notify::new());
    match read_frame(&mut rd).await {
        Some((_, Message::Hello(hello))) => {
            assert!(hello.id.starts_with("bluebridge-"), "{hello:?}")
        }
        other => panic!("expected Hello first, got {other:?}"),
    }
    let conn = Conn {
        index,
        writer: writer.clone(),
        time_replies: time_replies.clone(),
        closed: closed.clone(),
    };
    tokio::spawn(scenario(conn));
    // Answer Time requests until the client goes away.
    while let Some((h, msg)) = read_frame(&mut rd).await {
        let offset = match time {
            TimeReplies::Offset(offset) => Some(offset(index)),
            TimeReplies::SilentOn(silent) if !silent(index) => Some(0),
            _ => None,
        };
        if let (Message::Time(_), Some(offset)) = (msg, offset) {
            let now = SystemClock.now().as_ns() + offset;
            let reply = Message::Time(Time {
                latency: Tv::from_ns(now - h.sent.to_ns()),
            });
            let bytes = proto::encode(&reply, 0, h.id, Tv::from_ns(now)).unwrap();
            if writer.lock().await.write_all(&bytes).await.is_err() {
                break;
            }
            time_replies.fetch_add(1, Ordering::SeqCst);
        }
    }
    closed.notify_one();
}

pub fn scenario<F, Fut>(f: F) -> Scenario
where
    F: Fn(Conn) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Arc::new(move |c| Box::pin(f(c)))
}

/// Runs the client against `server` until it has connected `connections` times, and returns the Disconnected
/// reasons seen. Fails if that takes longer than `timeout` or the client panics.
async fn reconnects(server: &FakeServer, connections: usize, timeout: Duration) -> Vec<String> {
    let mut h = Harness::start(&server.url, "hostile");
    let mut reasons = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while server.count() < connections || reasons.len() + 1 < connections {
        match tokio::time::timeout_at(deadline, h.events.recv()).await {
            Ok(Some(SnapEvent::Disconnected { reason })) => reasons.push(reason),
            Ok(Some(_)) => {}
            Ok(None) => panic!("client task ended (panic?)"),
            Err(_) => panic!(
                "only {} connections and reasons {reasons:?} within {timeout:?}",
                server.count()
            ),
        }
    }
    h.stop().await;
    reasons
}

fn assert_all_contain(reasons: &[String], want: &str) {
    assert!(!reasons.is_empty());
    for r in reasons {
        assert!(r.contains(want), "reason {r:?} should contain {want:?}");
    }
}

const T: Duration = Duration::from_secs(6);

#[tokio::test]
async fn hostile_bad_json_settings() {
    let server = FakeServer::start(
        SAME_CLOCK,
        scenario(|c: Conn| async move {
            let mut payload = 16u32.to_le_bytes().to_vec();
            payload.extend(b"{\"bufferMs\": oops");
            let mut bytes = BaseHeader {
                msg_type: 3,
                size: payload.len() as u32,
                ..Default::default()
            }
            .to_bytes()
            .to_vec();
            bytes.extend(payload);
            c.raw(&bytes).await;
        }),
    )
    .await;
    let reasons = reconnects(&server, 3, T).await;
    assert_all_contain(&reasons, "ServerSettings JSON is invalid");
}

#[tokio::test]
async fn hostile_impossible_inner_size() {
    let server = FakeServer::start(
        SAME_CLOCK,
        scenario(|c: Conn| async move {
            c.settings().await;
            c.pcm_header(48_000, 2).await;
            // A WireChunk whose payload length (5000) exceeds its message (200 bytes).
            let mut payload = vec![0u8; 8];
            payload.extend(5000u32.to_le_bytes());
            payload.resize(200, 0);
            let mut bytes = BaseHeader {
                msg_type: 2,
                size: 200,
                ..Default::default()
            }
            .to_bytes()
            .to_vec();
            bytes.extend(payload);
            c.raw(&bytes).await;
        }),
    )
    .await;
    let reasons = reconnects(&server, 3, T).await;
    assert_all_contain(&reasons, "WireChunk payload length 5000 exceeds message size 200");
}

#[tokio::test]
async fn hostile_truncated_message_then_close() {
    let server = FakeServer::start(
        SAME_CLOCK,
        scenario(|c: Conn| async move {
            c.settings().await;
            let mut bytes = BaseHeader {
                msg_type: 1,
                size: 100,
                ..Default::default()
            }
            .to_bytes()
            .to_vec();
            bytes.extend([7u8; 10]);
            c.raw(&bytes).await;
            c.close().await;
        }),
    )
    .await;
    let reasons = reconnects(&server, 3, T).await;
    assert_all_contain(&reasons, "connection lost inside a CodecHeader message of 100 bytes");
}

#[tokio::test]
async fn hostile_huge_size_field_is_refused_before_reading_the_payload() {
    let prompt = Arc::new(AtomicUsize::new(0));
    let p = prompt.clone();
    let server = FakeServer::start(
        SAME_CLOCK,
        scenario(move |c: Conn| {
            let p = p.clone();
            async move {
                c.settings().await;
                c.raw(
                    &BaseHeader {
                        msg_type: 2,
                        size: u32::MAX,
                        ..Default::default()
                    }
                    .to_bytes(),
                )
                .await;
                // The client must hang up at once, without waiting for (or allocating) 4 GB.
                if c.client_closed_within(Duration::from_millis(500)).await {
                    p.fetch_add(1, Ordering::SeqCst);
                }
            }
        }),
    )
    .await;
    let reasons = reconnects(&server, 3, T).await;
    assert_all_contain(
        &reasons,
        "WireChunk message size 4294967295 exceeds the limit of 1000000 bytes",
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(prompt.load(Ordering::SeqCst) >= 2, "client did not hang up promptly");
}

#[tokio::test]
async fn hostile_chunk_before_codec_header() {
    let server = FakeServer::start(
        SAME_CLOCK,
        scenario(|c: Conn| async move {
            c.settings().await;
            c.chunk(SystemClock.now().as_ns(), vec![0; 3840]).await;
        }),
    )
    .await;
    let reasons = reconnects(&server, 3, T).await;
    assert_all_contain(&reasons, "WireChunk before any CodecHeader");
}

#[tokio::test]
async fn hostile_codec_header_lies() {
    let server = FakeServer::start(
        SAME_CLOCK,
        scenario(|c: Conn| async move {
            c.settings().await;
            match c.index {
                1 => c.pcm_header(48_000, 0).await,
                2 => c.pcm_header(0, 2).await,
                _ => {
                    // Header says 16-bit stereo (4-byte frames); the chunk has 6 bytes.
                    c.pcm_header(48_000, 2).await;
                    c.chunk(SystemClock.now().as_ns(), vec![0; 6]).await;
                }
            }
        }),
    )
    .await;
    let reasons = reconnects(&server, 4, T).await;
    assert!(
        reasons[0].contains("CodecHeader: pcm header is invalid: 0 channels"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("CodecHeader: pcm header is invalid: sample rate is 0"),
        "{reasons:?}"
    );
    assert!(
        reasons[2].contains("payload of 6 bytes is not a whole number of 4-byte frames"),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn hostile_timestamp_far_in_the_future() {
    let server = FakeServer::start(
        SAME_CLOCK,
        scenario(|c: Conn| async move {
            c.settings().await;
            c.pcm_header(48_000, 2).await;
            // Let the client's clock estimate settle first.
            while c.time_replies.load(Ordering::SeqCst) < 5 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let now = SystemClock.now().as_ns();
            c.chunk(now, vec![0; 3840]).await;
            c.chunk(now + 3_600_000_000_000, vec![0; 3840]).await;
        }),
    )
    .await;
    let reasons = reconnects(&server, 3, T).await;
    assert_all_contain(&reasons, "s away from the server's now");
    assert_all_contain(&reasons, "(limit 60 s)");
}

#[tokio::test]
async fn hostile_unknown_message_types_are_skipped_and_audio_flows() {
    let server = FakeServer::start(
        SAME_CLOCK,
        scenario(|c: Conn| async move {
            let mut junk = BaseHeader {
                msg_type: 6,
                size: 3,
                ..Default::default()
            }
            .to_bytes()
            .to_vec();
            junk.extend([1, 2, 3]);
            junk.extend(
                BaseHeader {
                    msg_type: 4242,
                    size: 0,
                    ..Default::default()
                }
                .to_bytes(),
            );
            c.raw(&junk).await;
            c.settings().await;
            c.pcm_header(48_000, 2).await;
            let start = SystemClock.now().as_ns();
            for k in 0..20 {
                c.chunk(start + k * 20_000_000, vec![0x11; 3840]).await;
            }
        }),
    )
    .await;
    let mut h = Harness::start(&server.url, "lenient");
    let mut frames = 0;
    while frames < 20 * 960 {
        match h.next(Duration::from_secs(3)).await {
            SnapEvent::Audio { samples, .. } => frames += samples.len() / 2,
            SnapEvent::Disconnected { reason } => panic!("disconnected: {reason}"),
            _ => {}
        }
    }
    assert_eq!(server.count(), 1);
    h.stop().await;
}

#[tokio::test]
async fn hostile_401_is_logged_and_retried_only_after_the_maximum_backoff() {
    let server = FakeServer::start(
        SAME_CLOCK,
        scenario(|c: Conn| async move {
            let e = ErrorMsg {
                code: 401,
                error: "Unauthorized".into(),
                message: "bad password".into(),
            };
            c.send(&Message::Error(e)).await;
            c.close().await;
        }),
    )
    .await;
    let mut h = Harness::start(&server.url, "locked out");
    let reason = h
        .wait_for(
            Duration::from_secs(3),
            |e| {
                if let SnapEvent::Disconnected { reason } = e {
                    Some(reason.clone())
                } else {
                    None
                }
            },
            |_| {},
        )
        .await;
    assert_eq!(reason, "server refused this client: 401 Unauthorized: bad password");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(server.count(), 1, "must not hammer a server that refuses us");
    h.stop().await;
}

#[tokio::test]
async fn hostile_silent_server_times_out_time_sync_and_reconnects() {
    let server = FakeServer::start(
        TimeReplies::Silent,
        scenario(|c: Conn| async move { c.settings().await }),
    )
    .await;
    let reasons = reconnects(&server, 2, T).await;
    assert_all_contain(&reasons, "unanswered for 2000 ms");
}

#[tokio::test]
async fn server_clock_jump_replaces_the_shared_estimate() {
    const JUMP_NS: i64 = 1_000_000_000_000;
    let server = FakeServer::start(
        // The "server" reboots between connections: its clock is 1000 s ahead from the second one on.
        TimeReplies::Offset(|index| if index == 1 { 0 } else { JUMP_NS }),
        scenario(|c: Conn| async move {
            c.settings().await;
            c.pcm_header(48_000, 2).await;
            // Connection 1: the whole burst (50 samples at offset 0). Connection 2: 20 samples at the new offset,
            // so the old samples would still win a shared median.
            let wanted = if c.index == 1 { 50 } else { 20 };
            while c.time_replies.load(Ordering::SeqCst) < wanted {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if c.index == 1 {
                c.close().await;
            } else {
                // Audio stamped with the new clock is accepted.
                c.chunk(SystemClock.now().as_ns() + JUMP_NS, vec![0x22; 3840]).await;
            }
        }),
    )
    .await;
    let mut h = Harness::start(&server.url, "jumpy");
    let start = h
        .wait_for(
            Duration::from_secs(5),
            |e| {
                if let SnapEvent::Audio { start, .. } = e {
                    Some(*start)
                } else {
                    None
                }
            },
            |_| {},
        )
        .await;
    assert_eq!(server.count(), 2);
    let offset_ns = h.server_clock.lock().unwrap().offset_ns().expect("estimate");
    assert!(
        (offset_ns - JUMP_NS).abs() < 5_000_000,
        "shared offset {offset_ns} ns, expected about {JUMP_NS}"
    );
    let age_ns = SystemClock.now().as_ns() + JUMP_NS - start.as_ns();
    assert!((0..1_000_000_000).contains(&age_ns), "chunk age {age_ns} ns");
    h.stop().await;
}
