//! Test support for the Snapcast tests: a real `snapserver` 0.26 on loopback (free ports, tempdir, pipe streams),
//! a FIFO signal writer, JSON-RPC on the control port, a harness around `snapcast::run`, and signal alignment.

#![allow(dead_code)]

use bluebridge::snapcast::{self, ClientCommand, ClientConfig, SnapEvent};
use bluebridge::timeline::server_clock::{ServerClock, SharedServerClock};
use bluebridge::timeline::{Clock, SystemClock};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, watch};

/// One pipe stream of a test server.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    pub name: &'static str,
    pub codec: &'static str,
    /// `rate:bits:channels`.
    pub sample_format: &'static str,
}

impl StreamSpec {
    pub fn new(name: &'static str, codec: &'static str, sample_format: &'static str) -> Self {
        Self {
            name,
            codec,
            sample_format,
        }
    }
}

/// Two ports nobody listens on right now.
pub fn free_ports() -> (u16, u16) {
    let a = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let b = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    (a.local_addr().unwrap().port(), b.local_addr().unwrap().port())
}

/// A running `snapserver` with pipe streams in a private directory. Killed on drop.
pub struct SnapServer {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub stream_port: u16,
    pub control_port: u16,
    streams: Vec<StreamSpec>,
}

impl SnapServer {
    pub fn start(streams: &[StreamSpec]) -> Self {
        let probe = Command::new("snapserver")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        assert!(
            matches!(probe, Ok(s) if s.success()),
            "snapserver is not installed or does not run ({probe:?}): run scripts/setup first"
        );
        let (stream_port, control_port) = free_ports();
        let dir = tempfile::Builder::new()
            .prefix("bluebridge-snap")
            .tempdir()
            .expect("tempdir");
        let mut s = Self {
            child: None,
            dir,
            stream_port,
            control_port,
            streams: streams.to_vec(),
        };
        s.spawn();
        s
    }

    /// (Re)starts the server process on the same ports and data directory, and waits until it accepts.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "server already running");
        let d = self.dir.path();
        let mut cmd = Command::new("snapserver");
        cmd.env("HOME", d)
            .arg("-c")
            .arg("/dev/null")
            .arg(format!("--server.datadir={}", d.display()))
            .arg("--stream.bind_to_address=127.0.0.1")
            .arg(format!("--stream.port={}", self.stream_port))
            .arg("--tcp.bind_to_address=127.0.0.1")
            .arg(format!("--tcp.port={}", self.control_port))
            .arg("--http.enabled=false")
            .arg("--stream.buffer=1000")
            .arg("--logging.sink=stdout");
        for s in &self.streams {
            cmd.arg(format!(
                "--stream.source=pipe://{}?name={}&sampleformat={}&codec={}&chunk_ms=20",
                self.fifo(s.name).display(),
                s.name,
                s.sample_format,
                s.codec
            ));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("snapserver.log"))
            .unwrap();
        cmd.stdout(log.try_clone().unwrap()).stderr(log).stdin(Stdio::null());
        self.child = Some(cmd.spawn().expect("spawn snapserver (run scripts/setup)"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.control_port)).is_ok()
                && self.streams.iter().all(|s| self.fifo(s.name).exists())
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "snapserver did not come up; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn fifo(&self, stream: &str) -> PathBuf {
        self.dir.path().join(format!("{stream}.fifo"))
    }

    pub fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.stream_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("snapserver.log")).unwrap_or_default()
    }

    /// One JSON-RPC call on the control port; returns `result` (panics on an error reply).
    pub async fn rpc(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", self.control_port))
            .await
            .expect("control port");
        let req = serde_json::json!({"id": 1, "jsonrpc": "2.0", "method": method, "params": params});
        s.write_all(format!("{req}\n").as_bytes()).await.unwrap();
        let mut lines = BufReader::new(s).lines();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
                .await
                .expect("JSON-RPC reply in time")
                .unwrap()
                .expect("JSON-RPC connection closed");
            let v: serde_json::Value = serde_json::from_str(&line).expect("JSON reply");
            if v.get("id") == Some(&serde_json::json!(1)) {
                assert!(v.get("error").is_none(), "{method} failed: {v}");
                return v["result"].clone();
            }
        }
    }

    /// The group id that holds client `client_id`.
    pub async fn group_of(&self, client_id: &str) -> String {
        let status = self.rpc("Server.GetStatus", serde_json::json!({})).await;
        for g in status["server"]["groups"].as_array().expect("groups") {
            if g["clients"].as_array().unwrap().iter().any(|c| c["id"] == client_id) {
                return g["id"].as_str().unwrap().to_string();
            }
        }
        panic!("client {client_id} not in any group: {status}");
    }
}

impl Drop for SnapServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Writes interleaved 16-bit samples into a FIFO at about real time (snapserver paces its reads anyway) from a
/// thread; stops at the end of the signal or when dropped.
pub struct FifoWriter {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FifoWriter {
    pub fn start(path: &Path, samples: Vec<i16>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let path = path.to_path_buf();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&path) else {
                return;
            };
            let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
            for piece in bytes.chunks(3840) {
                if flag.load(Ordering::Relaxed) || f.write_all(piece).is_err() {
                    return;
                }
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FifoWriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // The thread may sit in a blocking write to a dead server: do not join it.
        drop(self.thread.take());
    }
}

/// A client under test: `snapcast::run` on a task, with its channels.
pub struct Harness {
    pub events: mpsc::Receiver<SnapEvent>,
    pub commands: mpsc::Sender<ClientCommand>,
    pub server_clock: SharedServerClock,
    pub client_id: String,
    shutdown: watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<()>,
}

impl Harness {
    pub fn start(url: &str, name: &str) -> Self {
        let cfg = ClientConfig::new(url, name);
        let client_id = cfg.client_id.clone();
        let (ev_tx, events) = mpsc::channel(256);
        let (commands, cmd_rx) = mpsc::channel(8);
        let (shutdown, sd_rx) = watch::channel(false);
        let server_clock: SharedServerClock = Arc::new(Mutex::new(ServerClock::new()));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let task = tokio::spawn(snapcast::run(cfg, clock, server_clock.clone(), ev_tx, cmd_rx, sd_rx));
        Self {
            events,
            commands,
            server_clock,
            client_id,
            shutdown,
            task,
        }
    }

    /// The next event, failing the test after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> SnapEvent {
        tokio::time::timeout(timeout, self.events.recv())
            .await
            .unwrap_or_else(|_| panic!("no event within {timeout:?}"))
            .expect("client task ended")
    }

    /// Waits for the first event that `pick` accepts, returning what it returns; other events are passed to
    /// `others`.
    pub async fn wait_for<T>(
        &mut self,
        timeout: Duration,
        mut pick: impl FnMut(&SnapEvent) -> Option<T>,
        mut others: impl FnMut(SnapEvent),
    ) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let ev = tokio::time::timeout(left, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("expected event did not arrive within {timeout:?}"))
                .expect("client task ended");
            match pick(&ev) {
                Some(t) => return t,
                None => others(ev),
            }
        }
    }

    /// Stops the client and checks that it ends promptly and did not panic.
    pub async fn stop(self) {
        assert!(!self.task.is_finished(), "client task ended before shutdown (panic?)");
        let _ = self.shutdown.send(true);
        tokio::time::timeout(Duration::from_secs(3), self.task)
            .await
            .expect("client stops within 3 s of shutdown")
            .expect("client task did not panic");
    }
}

/// Audio received: chunk starts (ns) and frame counts, and all samples.
#[derive(Default, Debug)]
pub struct Received {
    pub starts_ns: Vec<(i64, usize)>,
    pub samples: Vec<f32>,
}

impl Received {
    pub fn push(&mut self, ev: &SnapEvent, channels: usize) -> bool {
        if let SnapEvent::Audio { start, samples } = ev {
            self.starts_ns.push((start.as_ns(), samples.len() / channels));
            self.samples.extend_from_slice(samples);
            true
        } else {
            false
        }
    }
}

/// Deterministic noise, interleaved stereo, `frames` frames.
pub fn noise(frames: usize, seed: u64) -> Vec<i16> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..frames * 2).map(|_| rng.i16(-20_000..20_000)).collect()
}

/// A linear chirp 200 Hz → 4 kHz (left) and the same delayed by a quarter period in phase (right), at 0.4 of
/// full scale, with 50 ms fades.
pub fn chirp(frames: usize, rate_hz: u32) -> Vec<i16> {
    let dur = frames as f64 / rate_hz as f64;
    let (f0, f1) = (200.0, 4000.0);
    let mut out = Vec::with_capacity(frames * 2);
    for n in 0..frames {
        let t = n as f64 / rate_hz as f64;
        let phase = 2.0 * std::f64::consts::PI * (f0 * t + (f1 - f0) * t * t / (2.0 * dur));
        let fade = (t / 0.05).min((dur - t) / 0.05).clamp(0.0, 1.0);
        out.push((0.4 * fade * phase.sin() * 32767.0) as i16);
        out.push((0.4 * fade * phase.cos() * 32767.0) as i16);
    }
    out
}

/// Where `received` (interleaved, 2 channels, f32) starts inside `sent` (interleaved i16): the frame offset of the
/// first non-silent received frame, matched exactly over 32 frames. Returns (received frame, sent frame).
pub fn align_exact(sent: &[i16], received: &[f32]) -> Option<(usize, usize)> {
    let rx: Vec<i32> = received.iter().map(|&s| (s * 32768.0) as i32).collect();
    let first = rx.chunks(2).position(|f| f != [0, 0])?;
    let window = rx.get(first * 2..first * 2 + 64)?;
    (0..sent.len() / 2)
        .find(|&k| {
            sent.get(k * 2..k * 2 + 64)
                .is_some_and(|w| w.iter().zip(window).all(|(&a, &b)| a as i32 == b))
        })
        .map(|k| (first, k))
}

/// Normalised cross-correlation of the left channels of `sent` (from frame `s0`) and `received` (from frame
/// `r0`) over `n` frames.
pub fn correlation(sent: &[i16], s0: usize, received: &[f32], r0: usize, n: usize) -> f64 {
    let (mut sxy, mut sxx, mut syy) = (0.0f64, 0.0f64, 0.0f64);
    for i in 0..n {
        let x = sent[(s0 + i) * 2] as f64 / 32768.0;
        let y = received[(r0 + i) * 2] as f64;
        sxy += x * y;
        sxx += x * x;
        syy += y * y;
    }
    sxy / (sxx * syy).sqrt().max(1e-12)
}

/// Best lag of a 1024-frame template of `received` (left channel, from frame `r0`) inside `sent`: returns the sent
/// frame that matches `r0`.
pub fn align_by_correlation(sent: &[i16], received: &[f32], r0: usize) -> usize {
    const N: usize = 1024;
    let tpl: Vec<f32> = (0..N).map(|i| received[(r0 + i) * 2]).collect();
    let left: Vec<f32> = sent.iter().step_by(2).map(|&s| s as f32 / 32768.0).collect();
    let mut best = (f32::MIN, 0);
    for k in 0..left.len().saturating_sub(N) {
        let dot: f32 = left[k..k + N].iter().zip(&tpl).map(|(a, b)| a * b).sum();
        if dot > best.0 {
            best = (dot, k);
        }
    }
    best.1
}
