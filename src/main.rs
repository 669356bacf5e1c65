//! The `bluebridge` binary: parses the command line (`cli_args`), sets up logging and signals, and dispatches each
//! command to its `cli_*` module. The only place that knows every module.

use anyhow::Result;
use bluebridge::control::protocol::Request;
use clap::Parser;
use cli_args::{Bench, Cli, Command};
use cli_bluetooth::{adapters, pair, scan};
use cli_control::{control, out};
use cli_demo::{bench_pipeline, bench_sendspin, bench_snapcast, bench_sync, demo_calibrate, run_demo};
use cli_inspect::{check_config, devices, doctor};

mod cli_args;
mod cli_assist;
mod cli_bluetooth;
mod cli_calibrate;
mod cli_control;
mod cli_demo;
mod cli_inspect;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Counts allocations on threads that ask for it (only `bench` does); otherwise the system allocator plus one
/// thread-local check.
#[global_allocator]
static ALLOC: bluebridge::bench::CountingAlloc = bluebridge::bench::CountingAlloc;

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
        Command::Bench(Bench::Sendspin { seconds, json }) => bench_sendspin(seconds, json),
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

#[allow(dead_code)]
fn known_kinds() -> String {
    bluebridge::output::KINDS
        .iter()
        .map(|k| format!("{}: {}", k.name, k.help))
        .collect::<Vec<_>>()
        .join("\n")
}
