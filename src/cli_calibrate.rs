//! `bluebridge calibrate`: the command line of the acoustic calibration. Measuring and playing the sequence run
//! inside the service (a control request); `--from-recording` analyses the file here and sends the service the
//! relative offsets it found.

use anyhow::{bail, Context, Result};
use bluebridge::calibrate::recording::{analyse, decode, RecorderClock, SequenceLayout};
use bluebridge::calibrate::session::SEQUENCE_SPACING_NS;
use bluebridge::calibrate::signal::burst;
use bluebridge::control::client;
use bluebridge::control::protocol::{CalibrateArgs, CalibrateMode, CalibrateReport, Request, SpeakersReport};
use std::path::{Path, PathBuf};

/// A recording larger than this is refused, bytes (10 minutes of 48 kHz stereo 32-bit WAV is 230 MB).
const MAX_RECORDING_BYTES: u64 = 256 << 20;

/// What the command line asked for.
#[derive(clap::Args, Debug)]
pub struct CalibrateCli {
    /// The outputs to measure, in this order (or --all).
    pub names: Vec<String>,
    /// Every configured output.
    #[arg(long)]
    pub all: bool,
    /// The microphone: a capture device (`bluebridge devices` lists them; default: the default device).
    #[arg(long, value_name = "DEVICE")]
    pub mic: Option<String>,
    /// Bursts per output (1 to 10).
    #[arg(long, default_value_t = 3)]
    pub repeat: u8,
    /// Measure and show what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Measure each output's current error; change nothing.
    #[arg(long)]
    pub check: bool,
    /// Take this output as on time (a `local` output sharing a clock with the microphone): absolute errors.
    #[arg(long, value_name = "NAME")]
    pub reference: Option<String>,
    /// The microphone's known capture latency, ms: absolute errors.
    #[arg(long, value_name = "MS")]
    pub mic_latency_ms: Option<f64>,
    /// Play the bursts on every chosen output one after another (for a recording made with a phone).
    #[arg(long)]
    pub play_sequence: bool,
    /// Analyse a recording of the played sequence (WAV, FLAC) and apply the relative offsets it shows.
    #[arg(long, value_name = "FILE")]
    pub from_recording: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Runs the command against the service at `socket`; returns the text to print.
pub fn run(c: CalibrateCli, socket: &Path) -> Result<String> {
    if c.all != c.names.is_empty() {
        bail!("calibrate: name the outputs to measure, or give --all (not both)");
    }
    if c.dry_run && c.check {
        bail!("calibrate: --dry-run and --check exclude each other");
    }
    let mode = match (c.dry_run, c.check) {
        (true, _) => CalibrateMode::DryRun,
        (_, true) => CalibrateMode::Check,
        _ => CalibrateMode::Apply,
    };
    let mut args = CalibrateArgs {
        names: c.names.clone(),
        mic: c.mic.clone(),
        repeats: c.repeat,
        mode,
        reference: c.reference.clone(),
        mic_latency_ms: c.mic_latency_ms,
        play_sequence: c.play_sequence,
        from_recording: None,
    };
    let mut analysis_text = String::new();
    if let Some(path) = &c.from_recording {
        let names = if c.all { speaker_names(socket)? } else { c.names.clone() };
        let reference = c.reference.clone().unwrap_or_else(|| names[0].clone());
        let a = analyse_file(path, &names, &reference)?;
        analysis_text = format!(
            "recording {}: recorder clock {:+.1} ppm; offsets from {reference}: {}\n",
            path.display(),
            a.clock_error_ppm,
            a.speakers
                .iter()
                .map(|s| format!(
                    "{} {:+.2} ms (peak-to-noise {:.0} dB)",
                    s.speaker, s.offset_ms, s.pnr_db
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        args.names = names;
        args.reference = None;
        args.from_recording = Some(a.speakers.iter().map(|s| (s.speaker.clone(), s.offset_ms)).collect());
    }
    let timeout = args.timeout(args.names.len().max(8));
    let (result, warnings) = client::call(socket, &Request::Calibrate(args), timeout)?;
    for w in &warnings {
        eprintln!("bluebridge: warning: {w}");
    }
    if c.json {
        return Ok(format!("{}\n", serde_json::to_string_pretty(&result)?));
    }
    let report: CalibrateReport = serde_json::from_value(result)?;
    Ok(format!("{analysis_text}{}", report.human()))
}

fn speaker_names(socket: &Path) -> Result<Vec<String>> {
    let (result, _) = client::call(socket, &Request::Speakers, client::DEFAULT_TIMEOUT)?;
    let r: SpeakersReport = serde_json::from_value(result)?;
    Ok(r.speakers.into_iter().map(|s| s.name).collect())
}

/// Decodes and analyses a recording of the sequence `--play-sequence` plays for `names` with `reference`.
pub fn analyse_file(
    path: &Path,
    names: &[String],
    reference: &str,
) -> Result<bluebridge::calibrate::recording::RecordingAnalysis> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("--from-recording {}", path.display()))?
        .len();
    if len > MAX_RECORDING_BYTES {
        bail!(
            "--from-recording {}: {} MB, more than the {} MB a recording of the sequence needs",
            path.display(),
            len >> 20,
            MAX_RECORDING_BYTES >> 20
        );
    }
    let bytes = std::fs::read(path).with_context(|| format!("--from-recording {}", path.display()))?;
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_string);
    let (samples, rate) =
        decode(bytes, ext.as_deref()).with_context(|| format!("--from-recording {}", path.display()))?;
    let layout = SequenceLayout {
        speakers: names.to_vec(),
        reference: reference.to_string(),
        spacing_ns: SEQUENCE_SPACING_NS,
    };
    analyse(&samples, rate, &layout, &burst(1), RecorderClock::Measure)
        .with_context(|| format!("--from-recording {}", path.display()))
}
