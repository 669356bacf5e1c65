//! `--alsa DEVICE`: the recorder on an ALSA capture device instead of a Bluetooth sink (the rig's `local-audio`
//! scenario records the other side of an `snd-aloop` loopback that bluebridge's `local` output plays into).
//!
//! Times come from the kernel, not from this program's wake-ups: timestamps are enabled on the PCM
//! (`tstamp_mode`, CLOCK_MONOTONIC), and after every read `snd_pcm_status` gives the hardware position
//! (frames read + `avail`) together with `htstamp`, the time at which that position was current. A frame `p`
//! frames before that position was captured `(hw − p) / rate` earlier. Each status is an upper bound (the
//! position was reached at or before `htstamp`; `snd-aloop` moves it in timer ticks), so a click's time is the
//! smallest bound over the statuses within a second of it (the lower envelope), which is where a status was
//! taken right at a tick. The least-squares rate of (position, htstamp) over the run is reported too: with the
//! loopback's `PCM Rate Shift` set, it shows the shift.
//!
//! Writes the same JSON lines as the Bluetooth mode's timing events (`delay` with 0 ms once, `first_audio`, a
//! `click` per click with `arrival_ns` = `stream_ns` = its capture time), so `analyze_timing.py` judges both, and
//! an `end` line with the counters and `rate_ppm`.

use alsa::pcm::{Access, Format, HwParams, State, TstampType, PCM};
use alsa::{Direction, ValueOr};
use anyhow::{Context, Result};
use bluebridge::report::ClickDetector;
use serde_json::json;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

const RATE_HZ: u32 = 48_000;
const PERIOD_FRAMES: i64 = 240;
const BUFFER_FRAMES: i64 = 9_600;
/// Statuses this close to a click (in frames) bound its time.
const ENVELOPE_FRAMES: i64 = RATE_HZ as i64;

/// What a run counted.
pub struct AlsaSummary {
    /// Frames read.
    pub frames: u64,
    /// Clicks found.
    pub clicks: u64,
    /// Overruns recovered from.
    pub overruns: u64,
    /// Rate of the device against CLOCK_MONOTONIC, ppm (positive: fast).
    pub rate_ppm: Option<f64>,
}

fn ts_ns(t: libc::timespec) -> i64 {
    t.tv_sec * 1_000_000_000 + t.tv_nsec
}

/// Least-squares slope of (frame, ns) as ppm against the nominal rate.
fn rate_ppm(points: &[(u64, i64)]) -> Option<f64> {
    if points.len() < 10 {
        return None;
    }
    let (f0, t0) = points[0];
    let n = points.len() as f64;
    let xy: Vec<(f64, f64)> = points
        .iter()
        .map(|&(f, t)| ((f - f0) as f64, (t - t0) as f64))
        .collect();
    let mx = xy.iter().map(|p| p.0).sum::<f64>() / n;
    let my = xy.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = xy.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = xy.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let ns_per_frame = sxy / sxx;
    Some((1e9 / RATE_HZ as f64 / ns_per_frame - 1.0) * 1e6)
}

/// Records `device` (48 kHz stereo S16) for `seconds` from the first audio, or until `stop`.
pub fn run(device: &str, seconds: f64, mut out: Box<dyn Write + Send>, stop: &AtomicBool) -> Result<AlsaSummary> {
    let pcm = PCM::new(device, Direction::Capture, false).with_context(|| format!("opening {device} for capture"))?;
    {
        let hwp = HwParams::any(&pcm)?;
        hwp.set_channels(2).context("2 channels")?;
        hwp.set_rate(RATE_HZ, ValueOr::Nearest).context("48 kHz")?;
        hwp.set_format(Format::s16()).context("S16")?;
        hwp.set_access(Access::RWInterleaved)?;
        hwp.set_period_size_near(PERIOD_FRAMES, ValueOr::Nearest)?;
        hwp.set_buffer_size_near(BUFFER_FRAMES)?;
        pcm.hw_params(&hwp).context("hardware parameters")?;
    }
    {
        let swp = pcm.sw_params_current()?;
        swp.set_tstamp_mode(true)?;
        swp.set_tstamp_type(TstampType::Monotonic)?;
        pcm.sw_params(&swp).context("timestamps")?;
    }
    let mut emit = |v: serde_json::Value| -> Result<()> {
        writeln!(out, "{v}")?;
        out.flush()?;
        Ok(())
    };
    pcm.start()?;
    let io = pcm.io_i16()?;
    let mut buf = vec![0i16; PERIOD_FRAMES as usize * 2];
    let mut detector = ClickDetector::new();
    let mut found = Vec::new();
    let mut pending: VecDeque<f64> = VecDeque::new();
    let mut stamps: VecDeque<(u64, i64)> = VecDeque::new();
    let mut all_stamps: Vec<(u64, i64)> = Vec::new();
    let mut read: u64 = 0;
    let mut first_audio: Option<(u64, i64)> = None;
    let mut summary = AlsaSummary {
        frames: 0,
        clicks: 0,
        overruns: 0,
        rate_ppm: None,
    };
    while !stop.load(Ordering::Relaxed) {
        let n = match io.readi(&mut buf) {
            Ok(n) => n,
            Err(e) if pcm.state() == State::XRun || e.errno() == libc::EPIPE => {
                summary.overruns += 1;
                pcm.prepare()?;
                pcm.start()?;
                // Positions restart: what came before no longer lines up with what follows.
                stamps.clear();
                continue;
            }
            Err(e) => return Err(e).context("reading"),
        };
        let status = pcm.status()?;
        let hw = read + n as u64 + status.get_avail().max(0) as u64;
        let t = ts_ns(status.get_htstamp());
        if t > 0 {
            stamps.push_back((hw, t));
            if all_stamps.len() < 1_000_000 {
                all_stamps.push((hw, t));
            }
        }
        let samples = &buf[..n * 2];
        if first_audio.is_none() && samples.iter().any(|&s| s != 0) {
            let at = stamps
                .back()
                .map_or(0, |&(h, t)| t - (h - read) as i64 * 1_000_000_000 / RATE_HZ as i64);
            first_audio = Some((read, at));
            emit(json!({"event": "delay", "t_ns": at, "delay_ms": 0.0, "ok": true}))?;
            emit(json!({"event": "first_audio", "t_ns": at}))?;
        }
        detector.push(read, samples.chunks_exact(2).map(|f| f[0] as f32 / 32768.0), &mut found);
        pending.extend(found.drain(..));
        read += n as u64;
        summary.frames = read;
        // A click is timed once the statuses up to a second after it are in.
        while let Some(&p) = pending.front() {
            if (read as f64) < p + ENVELOPE_FRAMES as f64 && !stop.load(Ordering::Relaxed) {
                break;
            }
            pending.pop_front();
            let at = stamps
                .iter()
                .filter(|&&(h, _)| (h as f64 - p).abs() <= ENVELOPE_FRAMES as f64 && h as f64 >= p)
                .map(|&(h, t)| t as f64 - (h as f64 - p) * 1e9 / RATE_HZ as f64)
                .fold(f64::INFINITY, f64::min);
            if at.is_finite() {
                summary.clicks += 1;
                let at = at.round() as i64;
                emit(
                    json!({"event": "click", "arrival_ns": at, "stream_ns": at, "delay_ms": 0.0,
                            "pos_frames": p}),
                )?;
            }
        }
        while stamps
            .front()
            .is_some_and(|&(h, _)| h + 2 * (ENVELOPE_FRAMES as u64) < read)
        {
            stamps.pop_front();
        }
        if let Some((f, _)) = first_audio {
            if (read - f) as f64 >= seconds * RATE_HZ as f64 {
                break;
            }
        }
    }
    summary.rate_ppm = rate_ppm(&all_stamps);
    emit(
        json!({"event": "end", "frames": summary.frames, "clicks": summary.clicks,
                "overruns": summary.overruns, "rate_ppm": summary.rate_ppm}),
    )?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_fit_reads_a_shift_in_ppm() {
        // 48 kHz at +300 ppm: 48014.4 frames per second.
        let pts: Vec<(u64, i64)> = (0..100)
            .map(|i| ((i as f64 * 4801.44) as u64, i * 100_000_000))
            .collect();
        let ppm = rate_ppm(&pts).unwrap();
        assert!((ppm - 300.0).abs() < 1.0, "{ppm}");
        assert_eq!(rate_ppm(&pts[..5]), None);
    }
}
