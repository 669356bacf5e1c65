//! The command line: every subcommand and its arguments (clap). `main` dispatches them to the `cli_*` modules.

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "bluebridge",
    version,
    about = "Plays a multi-room group stream on Bluetooth speakers, in sync"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
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
    Assist(crate::cli_assist::AssistArgs),
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
        args: crate::cli_calibrate::CalibrateCli,
        #[command(flatten)]
        socket: SocketArg,
    },
}

/// Where the running service listens.
#[derive(clap::Args, Debug)]
pub struct SocketArg {
    /// The control socket (the config's [service] control_socket).
    #[arg(long, value_name = "PATH", default_value = bluebridge::config::DEFAULT_CONTROL_SOCKET)]
    pub socket: std::path::PathBuf,
}

#[derive(Subcommand, Debug)]
pub enum Bench {
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
    /// bluebridge and aiosendspin's reference player side by side on the reference Sendspin server (loopback, one
    /// run), each against the play times the server stamped: p50/p99/max deviation of each and their ratio.
    Sendspin {
        /// Seconds measured (after 3 s of settling).
        #[arg(long, default_value_t = 30.0)]
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
