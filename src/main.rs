//! The `bluebridge` binary: command line, wiring, signals. The only place that knows every module.

use anyhow::{bail, Context, Result};
use bluebridge::config::Config;
use bluebridge::control::protocol::{ReloadReport, Request, Speaker, SpeakersReport, StatusReport};
use bluebridge::demo;
use bluebridge::output::player::PlayerStatus;
use bluebridge::report;
use bluebridge::timeline::{Clock, SystemClock};
use clap::{Parser, Subcommand};

mod cli_assist;
mod cli_calibrate;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Counts allocations on threads that ask for it (only `bench` does); otherwise the system allocator plus one
/// thread-local check.
#[global_allocator]
static ALLOC: bluebridge::bench::CountingAlloc = bluebridge::bench::CountingAlloc;

#[derive(Parser, Debug)]
#[command(
    name = "bluebridge",
    version,
    about = "Plays a multi-room group stream on Bluetooth speakers, in sync"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run what the config file describes until SIGINT/SIGTERM.
    Run {
        /// The TOML config file.
        #[arg(long, short, default_value = "/etc/bluebridge/bluebridge.toml")]
        config: String,
    },
    /// Validate a config file; exit status 1 and a message naming the line and key if it is wrong.
    CheckConfig {
        /// The TOML config file.
        file: String,
    },
    /// Play the test signal to simulated speakers with mixed profiles, in real time, and report sync.
    Demo {
        /// How long to play, in seconds.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Number of simulated speakers (the first four are the standard profiles).
        #[arg(long, default_value_t = 4)]
        outputs: usize,
        /// Print the report as one JSON object instead of a table (and no live status).
        #[arg(long)]
        json: bool,
        /// Instead: acoustic calibration of 4 simulated speakers whose reported delays are wrong by hidden
        /// amounts (−60…+60 ms, from --seed), skew between them before and after.
        #[arg(long)]
        calibrate: bool,
        /// The seed the hidden errors are drawn from (with --calibrate).
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Benchmarks.
    #[command(subcommand)]
    Bench(Bench),
    /// List the Bluetooth adapters BlueZ knows (needs bluetoothd on the system bus).
    Adapters {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// List the sound devices ALSA knows, with the names a `local` output's `device` accepts.
    Devices {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Check this machine for what the config's outputs need; exit status 1 if something is missing.
    Doctor {
        /// The TOML config file.
        #[arg(long, short, default_value = "/etc/bluebridge/bluebridge.toml")]
        config: String,
        /// Print one JSON object instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Look for Bluetooth devices nearby (put the speaker in pairing mode first).
    Scan {
        /// Adapter to scan with (default: the first).
        #[arg(long)]
        adapter: Option<String>,
        /// How long to scan.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Pair with a speaker, trust it and connect it (headless: no PIN or confirmation).
    Pair {
        /// The speaker's address, e.g. 00:11:22:33:44:55.
        address: String,
        /// Adapter to pair from (default: the first); use the adapter the speaker will play on.
        #[arg(long)]
        adapter: Option<String>,
        /// How long to look for it if BlueZ does not know it yet.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// Tell an LE Audio receiver (over its BASS, as a Broadcast Assistant) to play a configured broadcast, once.
    Assist(cli_assist::AssistArgs),
    /// Show the running service: source, each output's state, delay components, drift, errors, resyncs.
    Status {
        #[command(flatten)]
        socket: SocketArg,
        /// Print the status as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// List the configured speakers with what users set: enabled, volume, offset, calibration.
    Speakers {
        #[command(flatten)]
        socket: SocketArg,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Set an output's manual offset in milliseconds (positive plays later); kept across restarts.
    SetOffset {
        /// The output's name.
        name: String,
        /// Offset, ms (-5000 to 5000).
        #[arg(allow_hyphen_values = true)]
        ms: f64,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Set an output's local volume in percent; kept across restarts.
    SetVolume {
        /// The output's name.
        name: String,
        /// Volume, percent (0 to 100).
        pct: u8,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Play an output again; kept across restarts.
    Enable {
        /// The output's name.
        name: String,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Mute an output (it stays in sync, so enabling it is instant; an A2DP speaker disabled for longer than its
    /// idle_release_s is released and rejoins within about a second); kept across restarts.
    Disable {
        /// The output's name.
        name: String,
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Make the running service re-read its config (like SIGHUP); prints what changed.
    Reload {
        #[command(flatten)]
        socket: SocketArg,
    },
    /// Measure with a microphone when each speaker is really heard and set its calibration (docs/calibration.md);
    /// put the microphone where people listen.
    Calibrate {
        #[command(flatten)]
        args: cli_calibrate::CalibrateCli,
        #[command(flatten)]
        socket: SocketArg,
    },
}

/// Where the running service listens.
#[derive(clap::Args, Debug)]
struct SocketArg {
    /// The control socket (the config's [service] control_socket).
    #[arg(long, value_name = "PATH", default_value = bluebridge::config::DEFAULT_CONTROL_SOCKET)]
    socket: std::path::PathBuf,
}

#[derive(Subcommand, Debug)]
enum Bench {
    /// CPU of the whole A2DP pipeline vs bare libsbc encoding of the same audio (thread CPU time, same run).
    A2dp {
        /// Seconds of audio.
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// Only one part (for instruction counts under `valgrind --tool=callgrind`): bare | pipeline |
        /// pipeline-local (a source on the local clock: copied, not resampled).
        #[arg(long)]
        part: Option<String>,
    },
    /// CPU of the whole broadcast pipeline (stereo 48_2_1) vs bare liblc3 encoding of the same audio.
    Broadcast {
        /// Seconds of audio.
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// Only one part (for instruction counts under `valgrind --tool=callgrind`): bare | pipeline |
        /// pipeline-local (a source on the local clock: copied, not resampled).
        #[arg(long)]
        part: Option<String>,
    },
    /// CPU and allocations of the whole pipe pipeline (to /dev/null) vs bare S16LE conversion of the same audio.
    Pipe {
        /// Seconds of audio.
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// Only one part: bare | pipeline | pipeline-local.
        #[arg(long)]
        part: Option<String>,
    },
    /// CPU and allocations of the whole `local` (sound card) pipeline, a simulated card taking the ring through
    /// the callback's code, vs a bare S16 → f32 copy of the same audio.
    Local {
        /// Seconds of audio.
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// Only one part: bare | pipeline | pipeline-local.
        #[arg(long)]
        part: Option<String>,
    },
    /// bluebridge and snapclient side by side on a real snapserver on loopback (both installed), each against
    /// the truth (the chunks' timestamps + the server's buffer): p50/p99/max deviation of each and their ratio.
    Snapcast {
        /// Seconds measured (after 5 s of settling).
        #[arg(long, default_value_t = 60.0)]
        seconds: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The sync benchmark: the demo's scenario in virtual time (deterministic).
    Sync {
        /// Seconds of audio.
        #[arg(long, default_value_t = 600.0)]
        seconds: f64,
        /// Number of simulated speakers.
        #[arg(long, default_value_t = 4)]
        outputs: usize,
        /// Turn rate control off (to see what it is for).
        #[arg(long)]
        no_drift_control: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    // Logging never blocks the caller: lines go through a bounded queue to a writer thread (dropped, not waited
    // for, if the queue is full). A log line from the real-time thread must not wait for a slow journal or disk:
    // in the rig, writes to a log file on a slow share stalled the engine for 250-400 ms at a time.
    let (log_writer, log_guard) = tracing_appender::non_blocking(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BLUEBRIDGE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(log_writer)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => stop_flag().and_then(|stop| Ok(bluebridge::service::run(&config, stop)?)),
        Command::CheckConfig { file } => check_config(&file),
        Command::Demo {
            calibrate: true,
            seed,
            json,
            ..
        } => demo_calibrate(seed, json),
        Command::Demo {
            seconds, outputs, json, ..
        } => run_demo(seconds, outputs, json),
        Command::Bench(Bench::Sync {
            seconds,
            outputs,
            no_drift_control,
            json,
        }) => bench_sync(seconds, outputs, !no_drift_control, json),
        Command::Bench(Bench::A2dp { seconds, part }) => {
            bench_pipeline(bluebridge::bench::a2dp, seconds, part.as_deref())
        }
        Command::Bench(Bench::Broadcast { seconds, part }) => {
            bench_pipeline(bluebridge::bench::broadcast, seconds, part.as_deref())
        }
        Command::Bench(Bench::Pipe { seconds, part }) => {
            bench_pipeline(bluebridge::bench::pipe, seconds, part.as_deref())
        }
        Command::Bench(Bench::Snapcast { seconds, json }) => bench_snapcast(seconds, json),
        Command::Bench(Bench::Local { seconds, part }) => {
            bench_pipeline(bluebridge::bench::local, seconds, part.as_deref())
        }
        Command::Adapters { json } => adapters(json),
        Command::Devices { json } => devices(json),
        Command::Doctor { config, json } => doctor(&config, json),
        Command::Status { socket, json } => control(&socket, Request::Status, json),
        Command::Speakers { socket, json } => control(&socket, Request::Speakers, json),
        Command::SetOffset { name, ms, socket } => control(&socket, Request::SetOffset { name, ms }, false),
        Command::SetVolume { name, pct, socket } => control(&socket, Request::SetVolume { name, pct }, false),
        Command::Enable { name, socket } => control(&socket, Request::Enable { name }, false),
        Command::Disable { name, socket } => control(&socket, Request::Disable { name }, false),
        Command::Reload { socket } => control(&socket, Request::Reload, false),
        Command::Calibrate { args, socket } => cli_calibrate::run(args, &socket.socket).and_then(|t| out(&t)),
        Command::Scan { adapter, seconds, json } => scan(adapter.as_deref(), seconds, json),
        Command::Pair {
            address,
            adapter,
            seconds,
        } => pair(&address, adapter.as_deref(), seconds),
        Command::Assist(args) => cli_assist::run(args),
    };
    // Flush the log queue before exiting.
    drop(log_guard);
    if let Err(e) = result {
        eprintln!("bluebridge: {e:#}");
        std::process::exit(1);
    }
}

fn check_config(file: &str) -> Result<()> {
    let (source, outputs) = Config::load(file)?;
    print!("{}", bluebridge::config::describe(file, &source, &outputs));
    Ok(())
}

fn stop_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // Sets the flag; the engine loop checks it every tick.
        signal_flag(sig, stop.clone())?;
    }
    Ok(stop)
}

/// Sets `flag` when `sig` arrives (a tokio signal listener on a small runtime thread).
fn signal_flag(sig: i32, flag: Arc<AtomicBool>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut stream =
        rt.block_on(async { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(sig)) })?;
    std::thread::Builder::new()
        .name(format!("signal {sig}"))
        .spawn(move || {
            rt.block_on(async {
                stream.recv().await;
            });
            flag.store(true, Ordering::SeqCst);
        })?;
    Ok(())
}

fn status_line(s: &PlayerStatus) -> String {
    format!(
        "{:<20} {:<5} {:>9.1} µs  {:>+8.1} ppm (drift {:>+7.1})  delay {:>7.2} ms  resyncs {}",
        s.name,
        if s.synced { "sync" } else { "wait" },
        s.error_us,
        s.correction_ppm,
        s.drift_estimate_ppm,
        s.delay.total_ns() as f64 / 1e6,
        s.resyncs
    )
}

fn demo_calibrate(seed: u64, json: bool) -> Result<()> {
    let d = demo::calibration::run(seed)?;
    if json {
        println!("{}", serde_json::to_string(&d)?);
    } else {
        print!("{}", d.table());
    }
    Ok(())
}

fn run_demo(seconds: f64, n: usize, json: bool) -> Result<()> {
    if n == 0 || n > 64 {
        bail!("--outputs must be between 1 and 64, not {n}");
    }
    if !(seconds > 0.0 && seconds <= 86_400.0) {
        bail!("--seconds must be between 0 and 86400, not {seconds}");
    }
    let stop = stop_flag()?;
    let clock = SystemClock;
    let start = clock.now();
    let mut engine = demo::build(&demo::profiles(n), start, true);
    let mut obs = demo::observations(&engine);
    let until = start.add_ns((seconds * 1e9) as i64 + demo::DEMO_BUFFER_NS + 500_000_000);
    if !json {
        eprintln!("bluebridge demo: the test signal to {n} simulated speakers for {seconds} s (Ctrl-C stops)");
    }
    engine.run_realtime(Some(until), &stop, |e, now| {
        demo::collect(e, &mut obs);
        if !json {
            eprintln!("--- t = {:.0} s", now.ns_since(start) as f64 / 1e9);
            for s in e.status() {
                eprintln!("{}", status_line(&s));
            }
        }
    });
    demo::collect(&mut engine, &mut obs);
    engine.close();
    let end = clock.now();
    let plays = demo::click_play_times(start, end.add_ns(-300_000_000));
    let r = report::build(&plays, &obs, start, false);
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        print!("{}", r.table());
    }
    Ok(())
}

fn bench_sync(seconds: f64, n: usize, drift_control: bool, json: bool) -> Result<()> {
    if n == 0 || n > 64 {
        bail!("--outputs must be between 1 and 64, not {n}");
    }
    if !(1.0..=86_400.0).contains(&seconds) {
        bail!("--seconds must be between 1 and 86400, not {seconds}");
    }
    let t = std::time::Instant::now();
    let r = demo::bench_sync(n, seconds, drift_control);
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        print!("{}", r.table());
        eprintln!("({seconds} s of audio simulated in {:.1} s)", t.elapsed().as_secs_f64());
    }
    Ok(())
}

fn bench_snapcast(seconds: f64, json: bool) -> Result<()> {
    if !(5.0..=3_600.0).contains(&seconds) {
        bail!("--seconds must be between 5 and 3600, not {seconds}");
    }
    let exe = std::env::current_exe().context("finding this program's path (to run it as the client)")?;
    let r = bluebridge::bench::snapcast::run(&exe, seconds).map_err(anyhow::Error::msg)?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        print!("{}", r.table());
    }
    Ok(())
}

fn adapters(json: bool) -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let list = rt
        .block_on(bluebridge::bluez::adapters::list())
        .context("cannot list adapters through BlueZ (is bluetoothd running on the system bus?)")?;
    if json {
        println!("{}", serde_json::json!({ "adapters": list }));
    } else {
        for a in &list {
            println!(
                "{}\t{}\t{}\t{}",
                a.name,
                a.address,
                if a.powered { "powered" } else { "off" },
                a.alias
            );
        }
    }
    Ok(())
}

fn devices(json: bool) -> Result<()> {
    let list = bluebridge::output::local::device::list_devices().context("cannot list sound devices")?;
    if json {
        println!("{}", serde_json::json!({ "devices": list }));
    } else {
        for d in &list {
            let dir = match (d.output, d.capture) {
                (true, true) => "output+capture",
                (true, false) => "output",
                (false, true) => "capture",
                (false, false) => "-",
            };
            println!("{}\t{dir}\t{}", d.name, d.description);
        }
    }
    Ok(())
}

fn doctor(config: &str, json: bool) -> Result<()> {
    use bluebridge::doctor;
    let loaded = Config::load_all(config)?;
    let findings = doctor::check(&doctor::Needs::of(&loaded.outputs), &doctor::gather());
    if json {
        println!(
            "{}",
            serde_json::json!({ "config": config, "ok": !doctor::failed(&findings), "findings": findings })
        );
    } else {
        print!("{}", doctor::render(&findings));
    }
    if doctor::failed(&findings) {
        std::process::exit(1);
    }
    Ok(())
}

#[allow(dead_code)]
fn known_kinds() -> String {
    bluebridge::output::KINDS
        .iter()
        .map(|k| format!("{}: {}", k.name, k.help))
        .collect::<Vec<_>>()
        .join("\n")
}

fn scan(adapter: Option<&str>, seconds: u64, json: bool) -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let seen = rt
        .block_on(bluebridge::bluez::pairing::scan(adapter, seconds))
        .context("cannot scan through BlueZ (is bluetoothd running? is the adapter there?)")?;
    if json {
        println!("{}", serde_json::json!({ "devices": seen }));
    } else {
        for d in &seen {
            let kind = if d.a2dp_sink { "A2DP speaker" } else { "" };
            let paired = if d.paired { "paired" } else { "" };
            println!("{}\t{}\t{kind}\t{paired}", d.address, d.name);
        }
    }
    Ok(())
}

fn pair(address: &str, adapter: Option<&str>, seconds: u64) -> Result<()> {
    let addr: bluer::Address = address
        .parse()
        .map_err(|_| anyhow::anyhow!("{address:?} is not a Bluetooth address like 00:11:22:33:44:55"))?;
    let rt = tokio::runtime::Runtime::new()?;
    let msg = rt
        .block_on(bluebridge::bluez::pairing::pair(addr, adapter, seconds))
        .with_context(|| format!("pairing with {address} failed"))?;
    println!("{msg}");
    Ok(())
}

/// Writes to stdout; a closed pipe (`bluebridge status | head`) is not an error.
fn out(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// One request to the running service over its control socket, its answer printed.
fn control(socket: &SocketArg, req: Request, json: bool) -> Result<()> {
    let (result, warnings) =
        bluebridge::control::client::call(&socket.socket, &req, bluebridge::control::client::DEFAULT_TIMEOUT)?;
    for w in &warnings {
        eprintln!("bluebridge: warning: {w}");
    }
    if json {
        return out(&format!("{}\n", serde_json::to_string_pretty(&result)?));
    }
    let text = match req {
        Request::Status => serde_json::from_value::<StatusReport>(result)?.human(),
        Request::Speakers => serde_json::from_value::<SpeakersReport>(result)?.human(),
        Request::Reload => format!(
            "reloaded: {}\n",
            serde_json::from_value::<ReloadReport>(result)?.message
        ),
        _ => format!("{}\n", serde_json::from_value::<Speaker>(result)?.human()),
    };
    out(&text)
}

fn bench_pipeline(
    bench: fn(f64, bluebridge::bench::Parts) -> bluebridge::bench::PipelineBench,
    seconds: f64,
    part: Option<&str>,
) -> Result<()> {
    if !(1.0..=3_600.0).contains(&seconds) {
        bail!("--seconds must be between 1 and 3600, not {seconds}");
    }
    let parts = match part {
        None => bluebridge::bench::Parts::Both,
        Some("bare") => bluebridge::bench::Parts::Bare,
        Some("pipeline") => bluebridge::bench::Parts::Pipeline,
        Some("pipeline-local") => bluebridge::bench::Parts::PipelineLocal,
        Some(other) => bail!("--part must be bare, pipeline or pipeline-local, not {other:?}"),
    };
    let r = bench(seconds, parts);
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}
