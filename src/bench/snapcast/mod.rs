//! `bluebridge bench snapcast`: bluebridge and the reference client, snapclient, side by side on a real snapserver
//! on loopback, each measured against the truth.
//!
//! The truth: a snapserver chunk's timestamp is the server's steady clock (CLOCK_MONOTONIC on Linux) when its first
//! sample was captured, and every client should play that sample at timestamp + the server's buffer (latency 0). On
//! one host the server's clock is this machine's CLOCK_MONOTONIC, so a third client of our own (the protocol
//! client alone, no player) reads each click's intended play time straight from the chunks. bluebridge plays into
//! a FIFO through a `pipe` output (declared delay 0), snapclient through `--player file` into another (it assumes a
//! fixed 10 ms DAC delay); both FIFOs are read by threads that timestamp their reads, and each click's onset is
//! placed from the block it arrived in (the earliest read of a block bounds its write time; see
//! [`timed_clicks`]). Both clients and both readers run at the same real-time priority (SCHED_FIFO 10, the
//! engine's) when this process may set it.
//!
//! bluebridge's deviation is also taken apart ([`Parts`]): its status, read every [`STATUS_PERIOD`], gives the
//! server-clock estimate, the sync loop's own error, the pipe writer's hand-off lateness and the engine's wake-up
//! lateness; [`reader_floor`] measures the instrument's own FIFO delay. The table prints each with the mean they
//! predict beside the mean measured.

mod fifo;
mod processes;
mod results;
#[cfg(test)]
mod tests;

pub use fifo::{
    mkfifo, reader_floor, timed_clicks, timed_clicks_and_levels, Level, FIRST_BYTE_TIMEOUT, LEVEL_WINDOW_FRAMES,
};
pub use processes::{realtime_command, realtime_self, reference_snapclient};
pub use results::{Deviation, Parts, Signed, SnapcastBench, STATUS_PERIOD};

use processes::free_port;
pub(crate) use processes::Children;

use crate::control::protocol::{Request, StatusReport};
use crate::report::ClickDetector;
use crate::snapcast::{self, ClientConfig, SnapEvent};
use crate::source::tone::TestSignal;
use crate::timeline::server_clock::{ServerClock, SharedServerClock};
use crate::timeline::{LocalTime, SystemClock};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The real-time priority of the clients and readers (bluebridge's engine priority).
pub const RT_PRIORITY: i32 = 10;
/// Clicks in the first seconds are left out: the clients start, measure the server clock and lock.
pub const SETTLE_S: f64 = 5.0;
/// The server's buffer (`--stream.buffer`), ms.
pub const SERVER_BUFFER_MS: i64 = 1000;
/// snapclient's file player writes blocks of 50 ms.
pub const SNAPCLIENT_BLOCK_FRAMES: u64 = 2_400;
/// …and assumes this DAC delay.
pub const SNAPCLIENT_DAC_DELAY_NS: i64 = 10_000_000;

/// Runs the comparison for `seconds` (plus [`SETTLE_S`]) with `bluebridge` (this program) and `snapclient`.
pub fn run(bluebridge: &Path, seconds: f64) -> Result<SnapcastBench, String> {
    for (prog, pkg) in [("snapserver", "snapserver"), ("snapclient", "snapclient")] {
        let ok = Command::new(prog)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(format!(
                "{prog} is not installed or does not run: apt-get install {pkg} (scripts/setup does)"
            ));
        }
    }
    let dir = std::env::temp_dir().join(format!("bluebridge-bench-snapcast-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let mut kids = Children { procs: Vec::new() };
    let total_s = seconds + SETTLE_S + 3.0;
    let (stream_port, control_port) = (free_port()?, free_port()?);
    let source = dir.join("source.fifo");
    let log = |name: &str| std::fs::File::create(dir.join(name)).map_err(|e| format!("log file: {e}"));
    let server = Command::new("snapserver")
        .env("HOME", &dir)
        .arg("-c")
        .arg("/dev/null")
        .arg(format!("--server.datadir={}", dir.display()))
        .arg("--stream.bind_to_address=127.0.0.1")
        .arg(format!("--stream.port={stream_port}"))
        .arg("--tcp.bind_to_address=127.0.0.1")
        .arg(format!("--tcp.port={control_port}"))
        .arg("--http.enabled=false")
        .arg(format!("--stream.buffer={SERVER_BUFFER_MS}"))
        .arg("--logging.sink=stdout")
        .arg(format!(
            "--stream.source=pipe://{}?name=default&sampleformat=48000:16:2&codec=pcm&chunk_ms=20",
            source.display()
        ))
        .stdout(log("snapserver.log")?)
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting snapserver: {e}"))?;
    kids.procs.push(server);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(std::net::TcpStream::connect(("127.0.0.1", control_port)).is_ok() && source.exists()) {
        if Instant::now() > deadline {
            return Err(format!(
                "snapserver did not come up; see {}",
                dir.join("snapserver.log").display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("tcp://127.0.0.1:{stream_port}");

    // The source: the test signal at about real time (the server paces its reads).
    let stop = Arc::new(AtomicBool::new(false));
    {
        let (source, stop) = (source.clone(), stop.clone());
        std::thread::spawn(move || {
            let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&source) else {
                return;
            };
            let sig = TestSignal::standard();
            let mut n = 0u64;
            let mut block = Vec::with_capacity(960 * 4);
            while !stop.load(Ordering::Relaxed) {
                block.clear();
                for _ in 0..960 {
                    let v = ((sig.sample(n) * 32767.0) as i16).to_le_bytes();
                    block.extend_from_slice(&[v[0], v[1], v[0], v[1]]);
                    n += 1;
                }
                if f.write_all(&block).is_err() {
                    return;
                }
            }
        });
    }

    // The truth: our protocol client alone, on a runtime of its own.
    let truth: Arc<Mutex<Vec<LocalTime>>> = Arc::default();
    let server_clock: SharedServerClock = Arc::new(Mutex::new(ServerClock::new()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let (sd_tx, sd_rx) = tokio::sync::watch::channel(false);
    {
        let (truth, server_clock) = (truth.clone(), server_clock.clone());
        let url = url.clone();
        runtime.spawn(async move {
            let (ev_tx, mut events) = tokio::sync::mpsc::channel(256);
            let (_cmd_tx, cmd_rx) = tokio::sync::mpsc::channel(8);
            let cfg = ClientConfig::new(url, "bench-truth");
            tokio::spawn(snapcast::run(
                cfg,
                Arc::new(SystemClock),
                server_clock,
                ev_tx,
                cmd_rx,
                sd_rx,
            ));
            let mut det = ClickDetector::new();
            let (mut frame, mut channels, mut buffer_ns) = (0u64, 2usize, SERVER_BUFFER_MS * 1_000_000);
            let mut starts: Vec<(u64, i64)> = Vec::new(); // (first frame, server time ns) of each chunk
            let mut found = Vec::new();
            while let Some(ev) = events.recv().await {
                match ev {
                    SnapEvent::Format(f) => channels = f.channels.max(1) as usize,
                    SnapEvent::Settings { buffer_ms, .. } => buffer_ns = buffer_ms.max(0) as i64 * 1_000_000,
                    SnapEvent::Audio { start, samples } => {
                        starts.push((frame, start.as_ns()));
                        let n = samples.len() / channels;
                        det.push(frame, samples.chunks_exact(channels).map(|f| f[0]), &mut found);
                        frame += n as u64;
                        for pos in found.drain(..) {
                            let Some(&(f0, t0)) = starts.iter().rev().find(|(f0, _)| (*f0 as f64) <= pos) else {
                                continue;
                            };
                            let t = t0 as f64 + (pos - f0 as f64) * 1e9 / 48_000.0 + buffer_ns as f64;
                            truth
                                .lock()
                                .expect("truth lock")
                                .push(LocalTime::from_ns(t.round() as i64));
                        }
                        if starts.len() > 500 {
                            starts.drain(..250);
                        }
                    }
                    _ => {}
                }
            }
        });
    }

    // The two clients, each into a FIFO read by a timestamping thread.
    let ours = dir.join("bluebridge.pcm");
    let theirs = dir.join("snapclient.pcm");
    mkfifo(&ours)?;
    mkfifo(&theirs)?;
    let cfg = dir.join("bluebridge.toml");
    std::fs::write(
        &cfg,
        format!(
            "[source]\nkind = \"snapcast\"\nurl = \"{url}\"\n\n[service]\ncontrol_socket = \"{}\"\nstate_dir = \"{}\"\n\n[[output]]\nname = \"bench\"\nkind = \"pipe\"\npath = \"{}\"\n",
            dir.join("control.sock").display(),
            dir.join("state").display(),
            ours.display()
        ),
    )
    .map_err(|e| format!("writing {}: {e}", cfg.display()))?;
    let ours_clicks = timed_clicks(ours, total_s, crate::output::player::BLOCK_FRAMES as u64, 0);
    let ref_clicks = timed_clicks(
        theirs.clone(),
        total_s,
        SNAPCLIENT_BLOCK_FRAMES,
        SNAPCLIENT_DAC_DELAY_NS,
    );
    let bb = Command::new(bluebridge)
        .args(["run", "--config"])
        .arg(&cfg)
        .env("BLUEBRIDGE_LOG", "warn")
        .stderr(log("bluebridge.log")?)
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bluebridge.display()))?;
    kids.procs.push(bb);
    let statuses = {
        let (sock, stop) = (dir.join("control.sock"), stop.clone());
        std::thread::spawn(move || {
            let (t0, mut got) = (Instant::now(), Vec::new());
            while !stop.load(Ordering::Relaxed) && t0.elapsed().as_secs_f64() < total_s + 10.0 {
                std::thread::sleep(STATUS_PERIOD);
                if t0.elapsed().as_secs_f64() < SETTLE_S + 2.0 {
                    continue;
                }
                let reply = crate::control::client::call(&sock, &Request::Status, Duration::from_secs(2));
                if let Ok(r) = reply.map(|(v, _)| serde_json::from_value::<StatusReport>(v)) {
                    got.extend(r.ok());
                }
            }
            got
        })
    };
    let sc = reference_snapclient(stream_port, "bench-snapclient", &theirs)
        .spawn()
        .map_err(|e| format!("starting snapclient: {e}"))?;
    kids.procs.push(sc);
    let realtime = realtime_self();
    let ours_clicks = ours_clicks.join().map_err(|_| "the bluebridge reader panicked")?;
    let ref_clicks = ref_clicks.join().map_err(|_| "the snapclient reader panicked")?;
    stop.store(true, Ordering::Relaxed);
    let parts = Parts::of(
        &statuses.join().map_err(|_| "the status reader panicked")?,
        reader_floor(&dir, 2.0),
    );
    let offset = server_clock.lock().ok().and_then(|c| c.offset_ns());
    let _ = sd_tx.send(true);
    drop(kids);
    runtime.shutdown_timeout(Duration::from_secs(2));
    let truth = truth.lock().map(|t| t.clone()).unwrap_or_default();
    let settle = |c: &[LocalTime]| -> Vec<LocalTime> {
        let t0 = c
            .first()
            .copied()
            .unwrap_or(LocalTime::from_ns(0))
            .add_ns((SETTLE_S * 1e9) as i64);
        c.iter().copied().filter(|t| *t > t0).collect()
    };
    let (ours, theirs) = (settle(&ours_clicks), settle(&ref_clicks));
    if truth.is_empty() || ours.is_empty() || theirs.is_empty() {
        return Err(format!(
            "too few clicks: truth {}, bluebridge {}, snapclient {} (logs in {})",
            truth.len(),
            ours.len(),
            theirs.len(),
            dir.display()
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let bluebridge = Deviation::of(&ours, &truth);
    let snapclient = Deviation::of(&theirs, &truth);
    Ok(SnapcastBench {
        seconds,
        realtime,
        truth_clicks: truth.len(),
        server_offset_us: offset.map(|o| o as f64 / 1000.0),
        ratio_p50: bluebridge.p50_us / snapclient.p50_us.max(1e-9),
        ratio_p99: bluebridge.p99_us / snapclient.p99_us.max(1e-9),
        parts,
        bluebridge,
        snapclient,
    })
}
