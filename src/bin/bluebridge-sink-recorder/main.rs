//! `bluebridge-sink-recorder`: a test A2DP sink that timestamps what arrives (the rig's timing proof); with
//! `--alsa DEVICE`, the same for an ALSA capture device ([`alsa_capture`]). A binary
//! of its own so that the service's library holds no test tool: the work is in [`recorder`] (BlueZ side) and
//! [`packets`] (pure), the libsbc decoder in [`sbc_decode`]; this file is the command line. Built by
//! `cargo build --release` beside `bluebridge`, carried into the VM by `scripts/rig`, never packaged.

mod alsa_capture;
mod packets;
mod recorder;
mod sbc_decode;
mod sbc_frame;
mod sound;

use anyhow::{bail, Context, Result};
// What sbc_decode's `use super::…` names (it is also a module of the library's tests, under codec::sbc).
use bluebridge::codec::sbc::{Sbc, SbcError, SBC_SYNCWORD};
use clap::Parser;
use packets::{delay_dms, DelayChange, MAX_DELAY_MS, STREAM_WINDOW};
use recorder::{run, Journal, RecorderOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Registers an A2DP SBC sink endpoint through BlueZ on one adapter, reports a Delay (and changes it on a
/// schedule), and writes a JSON line per click of bluebridge's test signal with its arrival time on
/// CLOCK_MONOTONIC and the Delay in force. Stops after --seconds of audio, or on SIGINT/SIGTERM.
#[derive(Parser, Debug)]
#[command(name = "bluebridge-sink-recorder", version)]
struct Args {
    /// Adapter to register the sink endpoint on, e.g. hci2.
    #[arg(long, required_unless_present_any = ["alsa", "mixer"])]
    adapter: Option<String>,
    /// Record this ALSA capture device instead (48 kHz stereo S16, kernel timestamps), e.g. hw:Loopback,1,0.
    #[arg(long, conflicts_with = "adapter")]
    alsa: Option<String>,
    /// Delay to report once the stream starts, ms (sent in 1/10 ms).
    #[arg(long, default_value_t = 150.0)]
    delay_ms: f64,
    /// Change the reported Delay SECS after the first audio to MS, e.g. 12:250; may be repeated.
    #[arg(long = "delay-change", value_name = "SECS:MS")]
    delay_change: Vec<DelayChange>,
    /// Seconds of audio to record, counted from the first packet.
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Where the JSON lines go ("-": stdout).
    #[arg(long, default_value = "-")]
    json: String,
    /// Write the decoded audio to this WAV file (without it only the frames around clicks are decoded).
    #[arg(long)]
    wav: Option<PathBuf>,
    /// Half the window of a click's stream time (the lower envelope of packet arrivals around it), ms.
    #[arg(long, default_value_t = STREAM_WINDOW.as_millis() as u64)]
    stream_window_ms: u64,
    /// Also write a JSON line per packet (sequence number, RTP timestamp, position, arrival).
    #[arg(long)]
    packet_lines: bool,
    /// Sound what arrives: send the decoded audio to the mixer listening on this socket (`--mixer`), due at the
    /// sink's schedule + --latency-ms (the rig's calibration room).
    #[arg(long, requires = "latency_ms")]
    sound_to: Option<PathBuf>,
    /// With --sound-to: the hidden latency, ms after the schedule the source sent on (200 to 2000).
    #[arg(long)]
    latency_ms: Option<f64>,
    /// With --sound-to: this sink's number in the mixer's counters (0 to 3).
    #[arg(long, default_value_t = 0)]
    sink_id: u8,
    /// Be the mixer instead: play what the --sound-to sinks send into this ALSA playback device (48 kHz stereo
    /// S16, e.g. hw:Loopback,0,0), each sample at its due time.
    #[arg(long, conflicts_with_all = ["adapter", "alsa"], requires = "listen")]
    mixer: Option<String>,
    /// With --mixer: the datagram socket to listen on.
    #[arg(long)]
    listen: Option<PathBuf>,
    /// With --mixer: the device period, frames (the device buffer is 6 periods).
    #[arg(long, default_value_t = 480)]
    mixer_period_frames: i64,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BLUEBRIDGE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = main_result(Args::parse()) {
        eprintln!("bluebridge-sink-recorder: {e:#}");
        std::process::exit(1);
    }
}

/// Sets `stop` on SIGINT or SIGTERM (a thread with a small runtime of its own: the ALSA mode blocks in reads).
fn stop_on_signals(stop: Arc<AtomicBool>) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (mut int, mut term) = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        anyhow::Ok((signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?))
    })?;
    std::thread::spawn(move || {
        rt.block_on(async {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        });
        stop.store(true, Ordering::SeqCst);
    });
    Ok(())
}

fn main_result(args: Args) -> Result<()> {
    if delay_dms(args.delay_ms).is_none() {
        bail!("--delay-ms must be 0 to {MAX_DELAY_MS}, not {}", args.delay_ms);
    }
    if !(1..=10_000).contains(&args.stream_window_ms) {
        bail!("--stream-window-ms must be 1 to 10000, not {}", args.stream_window_ms);
    }
    if !(args.seconds > 0.0 && args.seconds <= 86_400.0) {
        bail!("--seconds must be between 0 and 86400, not {}", args.seconds);
    }
    let out: Box<dyn std::io::Write + Send> = if args.json == "-" {
        Box::new(std::io::stdout())
    } else {
        Box::new(std::fs::File::create(&args.json).with_context(|| format!("creating {}", args.json))?)
    };
    if let Some(device) = &args.mixer {
        if !(64..=4800).contains(&args.mixer_period_frames) {
            bail!(
                "--mixer-period-frames must be 64 to 4800, not {}",
                args.mixer_period_frames
            );
        }
        let stop = Arc::new(AtomicBool::new(false));
        stop_on_signals(stop.clone())?;
        let listen = args.listen.as_deref().expect("clap: --listen with --mixer");
        let s = sound::run_mixer(device, listen, args.mixer_period_frames, &stop)?;
        eprintln!(
            "bluebridge-sink-recorder: mixer {device}: {:.1} s written, datagrams per sink {:?}, {} samples late, {} ahead, {} underruns, {} delay jumps, mapping wandered {:.3} ms at most",
            s.written_s, s.received, s.late, s.ahead, s.underruns, s.jumps, s.wander_ms_max
        );
        return Ok(());
    }
    if args.sink_id > 3 {
        bail!("--sink-id must be 0 to 3, not {}", args.sink_id);
    }
    if let Some(device) = &args.alsa {
        let stop = Arc::new(AtomicBool::new(false));
        stop_on_signals(stop.clone())?;
        let s = alsa_capture::run(device, args.seconds, out, &stop)?;
        eprintln!(
            "bluebridge-sink-recorder: {device}: {:.1} s read, {} clicks, {} overruns, rate {}",
            s.frames as f64 / 48_000.0,
            s.clicks,
            s.overruns,
            s.rate_ppm.map_or("unknown".into(), |p| format!("{p:+.1} ppm"))
        );
        return Ok(());
    }
    let journal = Arc::new(Journal::new(out));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    rt.block_on(async {
        for kind in [
            tokio::signal::unix::SignalKind::interrupt(),
            tokio::signal::unix::SignalKind::terminate(),
        ] {
            let mut s = tokio::signal::unix::signal(kind)?;
            let stop = stop.clone();
            tokio::spawn(async move {
                s.recv().await;
                stop.store(true, Ordering::SeqCst);
            });
        }
        let opts = RecorderOptions {
            adapter: args.adapter.clone().expect("clap: --adapter or --alsa"),
            delay_ms: args.delay_ms,
            changes: args.delay_change,
            seconds: args.seconds,
            wav: args.wav,
            stream_window: Duration::from_millis(args.stream_window_ms),
            packet_lines: args.packet_lines,
            sound: args
                .sound_to
                .clone()
                .map(|p| (p, args.sink_id, args.latency_ms.unwrap_or(0.0))),
        };
        let summary = run(opts, journal, stop).await?;
        eprintln!(
            "bluebridge-sink-recorder: {}: {} packets, {:.1} s decoded, {} clicks, {} sequence gaps ({} lost), {} bad",
            summary.reason,
            summary.packets,
            summary.decoded_s,
            summary.clicks,
            summary.seq_gaps,
            summary.lost_packets,
            summary.bad_packets
        );
        anyhow::Ok(())
    })
}
