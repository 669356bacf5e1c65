//! `bluebridge run` (one `pipe` output, a Sendspin source) against a scripted hostile Sendspin server on
//! loopback. Each connection gets the next case, in a cycle: malformed JSON for a hello, unknown message types and
//! broken JSON mid-session, an oversized frame, chunks with wild timestamps, stream/starts that lie about the
//! format (one the player never offered), a stall (the server reads, never answers), a flood (audio as fast as TCP
//! carries it, stamped inside the buffer window, plus a burst of text), a FLAC codec header that lies (its STREAMINFO
//! says 44.1 kHz, the message 48 kHz) and a stream whose chunks do not decode (PCM that is not whole frames). A
//! stream the player cannot play ends the connection; a chunk that does not decode is skipped, a run of them ends it. Every case must leave a clear line in bluebridge's log, the player must reconnect (with
//! backoff) each time, the service must stay up and keep its output playing, and its resident memory must stay
//! bounded over the run (~2 min; `BLUEBRIDGE_HOSTILE_SECS` lengthens it).

use futures::{SinkExt, StreamExt};
use std::io::Read;
use std::process::Command;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

/// How long the service runs against the server: 100 s, or `BLUEBRIDGE_HOSTILE_SECS` (a longer soak, e.g. 600, for
/// the memory figure; docs/sendspin.md).
fn run_time() -> Duration {
    let secs = std::env::var("BLUEBRIDGE_HOSTILE_SECS")
        .ok()
        .map(|v| v.parse::<u64>().expect("BLUEBRIDGE_HOSTILE_SECS: whole seconds"))
        .unwrap_or(100);
    Duration::from_secs(secs)
}
/// Resident growth allowed over the run: the timeline's bound (4 s of 48 kHz stereo f32, twice, + 64 KiB: 3.1 MB),
/// 16 queued chunks of at most 1 MiB of PCM each (as f32: 8 MB), the WebSocket's 1 MiB frame bound, plus allocator
/// slack.
const RSS_BOUND_BYTES: u64 = 100_000_000;

type Sink = futures::stream::SplitSink<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>, Message>;

fn now_us() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000 + ts.tv_nsec / 1_000
}

/// The cases, in the order connections get them, with the line bluebridge's log must show for each.
const CASES: &[(&str, &str)] = &[
    ("malformed hello", "expected server/hello: malformed message"),
    (
        "unknown types",
        "skipped a message: unknown message type \"server/frobnicate\"",
    ),
    ("oversized frame", "Space limit exceeded"),
    ("wild timestamps", "chunk timestamp 9223372036854775807 µs out of range"),
    ("format lie", "is not one this player offered"),
    ("stall", "nothing from the server for 10000 ms"),
    ("flood", "sendspin: connected"),
    (
        "header lie",
        "flac codec_header says 44100 Hz, 2 ch, 16 bit, stream/start says 48000 Hz",
    ),
    ("undecodable chunks", "the stream does not decode (25 chunks in a row)"),
];

/// `fLaC` + a STREAMINFO block for 16-bit stereo at `rate` Hz, Base64 (as aiosendspin sends it).
fn streaminfo_b64(rate: u32) -> String {
    use base64::Engine as _;
    let mut h = b"fLaC\x80\x00\x00\x22".to_vec();
    let mut si = [0u8; 34];
    si[0..2].copy_from_slice(&4608u16.to_be_bytes());
    si[2..4].copy_from_slice(&4608u16.to_be_bytes());
    si[10] = (rate >> 12) as u8;
    si[11] = (rate >> 4) as u8;
    si[12] = ((rate & 0xf) as u8) << 4 | 1 << 1;
    si[13] = 15 << 4;
    h.extend_from_slice(&si);
    base64::engine::general_purpose::STANDARD.encode(h)
}

fn text(kind: &str, payload: serde_json::Value) -> Message {
    Message::Text(serde_json::json!({"type": kind, "payload": payload}).to_string().into())
}

fn chunk(ts_us: i64, payload: &[u8]) -> Message {
    let mut b = vec![4u8];
    b.extend_from_slice(&ts_us.to_be_bytes());
    b.extend_from_slice(&500_000u32.to_be_bytes());
    b.extend_from_slice(payload);
    Message::Binary(b.into())
}

fn pcm_start() -> Message {
    text(
        "stream/start",
        serde_json::json!({"player": {"codec": "pcm", "sample_rate": 48000, "channels": 2, "bit_depth": 16}}),
    )
}

async fn send(tx: &Mutex<Sink>, m: Message) -> bool {
    tx.lock().await.send(m).await.is_ok()
}

/// 20 ms of 48 kHz stereo s16 chunks stamped from `first_us`, for `n` chunks, paced to stay `lead_us` ahead.
async fn audio(tx: &Mutex<Sink>, first_us: i64, n: usize) -> bool {
    let payload = vec![0x08u8; 960 * 4];
    for i in 0..n {
        let ts = first_us + i as i64 * 20_000;
        let wait = ts - 1_000_000 - now_us();
        if wait > 0 {
            tokio::time::sleep(Duration::from_micros(wait as u64)).await;
        }
        if !send(tx, chunk(ts, &payload)).await {
            return false;
        }
    }
    true
}

async fn serve(sock: tokio::net::TcpStream, case: usize, flood_bytes: Arc<AtomicU64>) {
    let Ok(ws) = tokio_tungstenite::accept_async(sock).await else {
        return;
    };
    let (tx, mut rx) = ws.split();
    let tx = Arc::new(Mutex::new(tx));
    // The client's hello first.
    match rx.next().await {
        Some(Ok(Message::Text(_))) => {}
        _ => return,
    }
    let hello = text(
        "server/hello",
        serde_json::json!({"server_id": "hostile", "name": "hostile", "version": 1, "active_roles": ["player@v1"]}),
    );
    if case == 0 {
        let _ = send(&tx, Message::Text("{\"type\": \"server/hello\", \"payload\": {".into())).await;
        let _ = rx.next().await;
        return;
    }
    if !send(&tx, hello).await {
        return;
    }
    // Answer clock requests (except in the stall), from a reader task.
    let answers = case != 5;
    let reader_tx = tx.clone();
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = rx.next().await {
            let Message::Text(t) = m else { continue };
            let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
            if answers && v["type"] == "client/time" {
                let n = now_us();
                let reply = text(
                    "server/time",
                    serde_json::json!({"client_transmitted": v["payload"]["client_transmitted"],
                                       "server_received": n, "server_transmitted": n}),
                );
                if !send(&reader_tx, reply).await {
                    break;
                }
            }
        }
    });
    // Let the clock sync.
    tokio::time::sleep(Duration::from_millis(800)).await;
    match case {
        1 => {
            for m in [
                text("server/frobnicate", serde_json::json!({})),
                Message::Text("{\"type\": \"group/update\", \"payload\": [".into()),
                text("server/time", serde_json::json!({"client_transmitted": "x"})),
                Message::Text("not json at all".into()),
                Message::Binary(vec![9u8, 1, 2].into()),
            ] {
                let _ = send(&tx, m).await;
            }
            let _ = send(&tx, pcm_start()).await;
            audio(&tx, now_us() + 1_500_000, 100).await;
        }
        2 => {
            let _ = send(&tx, pcm_start()).await;
            let _ = send(&tx, chunk(now_us() + 1_000_000, &vec![0u8; 2 * 1024 * 1024])).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        3 => {
            let _ = send(&tx, pcm_start()).await;
            let p = vec![0x08u8; 960 * 4];
            for ts in [
                i64::MAX,
                i64::MIN,
                now_us() + 3_600_000_000,
                now_us() - 3_600_000_000,
                -1,
            ] {
                let _ = send(&tx, chunk(ts, &p)).await;
            }
            audio(&tx, now_us() + 1_500_000, 50).await;
        }
        4 => {
            // A format the player never listed: the connection ends at once.
            let lie =
                serde_json::json!({"player": {"codec": "pcm", "sample_rate": 384000, "channels": 8, "bit_depth": 32}});
            let _ = send(&tx, text("stream/start", lie)).await;
            let _ = send(&tx, chunk(now_us() + 1_000_000, &[1u8; 4 * 480])).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        5 => {
            // Reads (the reader task drains), never answers: the player must give up on its own.
            tokio::time::sleep(Duration::from_secs(20)).await;
        }
        7 => {
            let lie = serde_json::json!({"player": {"codec": "flac", "sample_rate": 48000, "channels": 2, "bit_depth": 16,
                                                    "codec_header": streaminfo_b64(44_100)}});
            let _ = send(&tx, text("stream/start", lie)).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        8 => {
            // A true stream/start, then chunks that are not whole frames: skipped, then given up on.
            let _ = send(&tx, pcm_start()).await;
            for i in 0..40 {
                let _ = send(&tx, chunk(now_us() + 1_000_000 + i * 20_000, &[1u8; 1001])).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        _ => {
            let _ = send(&tx, pcm_start()).await;
            for i in 0..2_000 {
                let _ = send(
                    &tx,
                    text("group/update", serde_json::json!({"group_name": format!("flood {i}")})),
                )
                .await;
            }
            // 400 ms chunks (76.8 kB), all stamped inside the next 3 s, as fast as they go, for 3 s.
            let payload = vec![0x08u8; 19_200 * 4];
            let until = Instant::now() + Duration::from_secs(3);
            let mut i = 0i64;
            while Instant::now() < until {
                let ts = now_us() + 500_000 + (i % 6) * 400_000;
                if !send(&tx, chunk(ts, &payload)).await {
                    break;
                }
                flood_bytes.fetch_add(payload.len() as u64, Ordering::Relaxed);
                i += 1;
            }
        }
    }
    let _ = tx.lock().await.close().await;
    reader.abort();
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}

#[test]
fn a_hostile_sendspin_server_is_logged_survived_and_bounded() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let flood_bytes = Arc::new(AtomicU64::new(0));
    {
        let (connections, flood_bytes) = (connections.clone(), flood_bytes.clone());
        rt.spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let n = connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(sock, n % CASES.len(), flood_bytes.clone()));
            }
        });
    }

    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("out.pcm");
    bluebridge::bench::snapcast::mkfifo(&fifo).unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[service]\ncontrol_socket = \"{}\"\n\n[source]\nkind = \"sendspin\"\nurl = \"ws://127.0.0.1:{port}/sendspin\"\nencryption = false\n\n\
             [[output]]\nname = \"out\"\nkind = \"pipe\"\npath = \"{}\"\n",
            dir.path().join("control.sock").display(),
            fifo.display()
        ),
    )
    .unwrap();
    // The output's reader: counts what is played (silence included), to show the output never stops.
    let played = Arc::new(AtomicU64::new(0));
    let reader = {
        let (fifo, played) = (fifo.clone(), played.clone());
        std::thread::spawn(move || {
            let Ok(mut f) = std::fs::File::open(&fifo) else { return };
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(n) = f.read(&mut buf) {
                if n == 0 {
                    break;
                }
                played.fetch_add(n as u64, Ordering::Relaxed);
            }
        })
    };
    let mut bb = Command::new(env!("CARGO_BIN_EXE_bluebridge"))
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stderr(std::fs::File::create(dir.path().join("bb.log")).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut rss = vec![];
    let mut played_at = vec![];
    let run = run_time();
    while start.elapsed() < run {
        std::thread::sleep(Duration::from_secs(1));
        if let Some(r) = rss_bytes(bb.id()) {
            rss.push(r);
        }
        played_at.push(played.load(Ordering::Relaxed));
        assert!(bb.try_wait().unwrap().is_none(), "bluebridge exited during the run");
    }
    let status = Command::new(env!("CARGO_BIN_EXE_bluebridge"))
        .args(["status", "--socket"])
        .arg(dir.path().join("control.sock"))
        .output()
        .unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(bb.id() as i32, libc::SIGTERM) };
    let _ = bb.wait();
    let _ = reader.join();
    let log = std::fs::read_to_string(dir.path().join("bb.log")).unwrap_or_default();
    let n = connections.load(Ordering::SeqCst);
    let tail = |s: &str| {
        s.lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    };

    let baseline = rss.get(5).copied().unwrap_or(0);
    let peak = rss.iter().copied().max().unwrap_or(0);
    eprintln!(
        "hostile sendspin: {n} connections ({} full cycles), flood {:.1} MB sent, RSS {:.1} MB after 5 s, peak {:.1} MB, \
         last {:.1} MB; at each tenth of the run: {}",
        n / CASES.len(),
        flood_bytes.load(Ordering::Relaxed) as f64 / 1e6,
        baseline as f64 / 1e6,
        peak as f64 / 1e6,
        rss.last().copied().unwrap_or(0) as f64 / 1e6,
        (1..=10)
            .filter_map(|k| (rss.len() * k / 10).checked_sub(usize::from(k == 10)))
            .filter_map(|i| rss.get(i))
            .map(|r| format!("{:.1}", *r as f64 / 1e6))
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert!(status.status.success(), "status failed after the run: {status:?}");
    assert!(
        n > CASES.len(),
        "only {n} connections: the player stopped reconnecting\n{}",
        tail(&log)
    );
    for (case, line) in CASES {
        let hits = log.matches(line).count();
        eprintln!("  {case}: {hits} × {line:?}");
        assert!(hits > 0, "case {case:?}: no {line:?} in the log\n{}", tail(&log));
    }
    for also in [
        "skipped a message: malformed",
        "cannot play this stream: stream/start format pcm/384000 Hz/8 ch/32 bit is not one this player offered",
        "skipped a binary frame: pcm chunk is invalid",
        "reconnecting in",
    ] {
        assert!(log.contains(also), "no {also:?} in the log\n{}", tail(&log));
    }
    assert!(!log.contains("panicked"), "a panic:\n{}", tail(&log));
    // A flood of 2 000 group/updates is logged at most once a second (GROUP_LOG_INTERVAL_MS), not once a message.
    let floods = log.matches("sendspin: connected").count().div_ceil(CASES.len() - 1);
    let group_lines = log.matches("sendspin: group").count();
    eprintln!("  group/update flood: {group_lines} log lines over {floods} floods");
    assert!(
        group_lines <= 10 * floods.max(1),
        "{group_lines} group lines for {floods} floods: the flood is logged message by message"
    );
    assert!(
        flood_bytes.load(Ordering::Relaxed) > 10_000_000,
        "the flood never got going"
    );
    assert!(
        peak.saturating_sub(baseline) < RSS_BOUND_BYTES,
        "resident memory grew from {baseline} to {peak} bytes (bound {RSS_BOUND_BYTES})"
    );
    // The output kept playing (silence while the server misbehaves): 48 kHz stereo s16 is 192 kB/s.
    let last10 = played_at[played_at.len() - 1] - played_at[played_at.len() - 11];
    assert!(last10 > 1_500_000, "the output played {last10} bytes in the last 10 s");
}
