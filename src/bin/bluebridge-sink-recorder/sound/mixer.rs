//! The rig room's mixer (`--mixer DEVICE --listen SOCKET`): one process owns the `snd-aloop` playback side (two
//! sinks cannot both open it) and writes into it what every [`super::Speaker`] sends, each sample at its due time.
//!
//! Frame `f` it writes sounds at `t0 + f / 48 kHz`; `t0` is taken once, after the prefill, as
//! `now + delay / rate − written / rate` (snd-aloop plays on the system timer, so the mapping holds without drift;
//! after an underrun, which it counts, it skips to the frame that sounds at `now + delay`). A constant error in `t0`
//! is common to every sink and cancels in a relative calibration. The mixer runs SCHED_FIFO where allowed, and a
//! status whose delay read was not bracketed tightly by two clock reads is not believed (under load such statuses
//! looked like jumps, and following them moved the room by ±10–20 ms). Datagrams:
//! `[sink id u8][due_ns i64 LE][mono i16 LE …]`; a sample due before the frame being written (late) or more than
//! the ring ahead is dropped and counted.

use super::{MAX_DATAGRAM, RATE_HZ};
use anyhow::{Context, Result};
use std::collections::VecDeque;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// The mixer's device buffer, periods (with 20 ms periods, 120 ms: 40 ms underran under TCG).
pub const BUFFER_PERIODS: i64 = 6;
/// The mixer takes its mapping once this much has been written (the first statuses after the start are off).
const SETTLE_FRAMES: i64 = 48_000;
/// The mapping is the lower envelope of the last [`ENVELOPE_STATUSES`] clean statuses (one per period: 0.5 s with
/// 20 ms periods). snd-aloop counts its position in jiffies, which in a starved TCG guest lag CLOCK_MONOTONIC by
/// 10–20 ms for a few hundred ms at a time (the delay then reads long, the anchor late, never early); the room
/// itself stays exact in card frames, since the capture side copies each frame at the same jiffy.
const ENVELOPE_STATUSES: usize = 25;
/// An envelope this far off t0 (ms) is a jump of the device's delay (seen: +120 ms, the whole buffer, when the
/// capture side opened), not the jiffies' lag.
const JUMP_MS: f64 = 40.0;
/// A status whose delay read took longer than this (between two clock reads) is not used for the mapping, ns.
const CLEAN_STATUS_NS: i64 = 1_000_000;

/// What the mixer counted.
pub struct MixerSummary {
    pub written_s: f64,
    pub received: [u64; 4],
    pub late: u64,
    pub ahead: u64,
    pub underruns: u64,
    /// Jumps of the device's delay followed.
    pub jumps: u64,
    /// The largest |now + delay/rate − written/rate − t0| seen, ms (how well the mapping held).
    pub wander_ms_max: f64,
}

fn mono_ns() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// The mix ring: frame `f` (absolute) at `f % len`, summed from every sink.
struct Ring {
    acc: Vec<i32>,
}

impl Ring {
    fn add(
        &mut self,
        from_frame: i64,
        samples: impl Iterator<Item = i16>,
        written: i64,
        late: &mut u64,
        ahead: &mut u64,
    ) {
        let len = self.acc.len() as i64;
        for (j, s) in samples.enumerate() {
            let f = from_frame + j as i64;
            if f < written {
                *late += 1;
            } else if f >= written + len {
                *ahead += 1;
            } else {
                self.acc[(f % len) as usize] += s as i32;
            }
        }
    }
}

/// Mixes what the speakers send into `device` (48 kHz stereo S16) until `stop`.
pub fn run_mixer(device: &str, listen: &Path, period_frames: i64, stop: &AtomicBool) -> Result<MixerSummary> {
    use alsa::pcm::{Access, Format, HwParams, PCM};
    use alsa::{Direction, ValueOr};
    let _ = std::fs::remove_file(listen);
    let sock = UnixDatagram::bind(listen).with_context(|| format!("binding {}", listen.display()))?;
    sock.set_nonblocking(true)?;
    let pcm = PCM::new(device, Direction::Playback, false).with_context(|| format!("opening {device} for playback"))?;
    {
        let hwp = HwParams::any(&pcm)?;
        hwp.set_channels(2).context("2 channels")?;
        hwp.set_rate(48_000, ValueOr::Nearest).context("48 kHz")?;
        hwp.set_format(Format::s16()).context("S16")?;
        hwp.set_access(Access::RWInterleaved)?;
        hwp.set_period_size_near(period_frames, ValueOr::Nearest)?;
        hwp.set_buffer_size_near(period_frames * BUFFER_PERIODS)?;
        pcm.hw_params(&hwp).context("hardware parameters")?;
    }
    let period = pcm.hw_params_current()?.get_period_size()?;
    let io = pcm.io_i16()?;
    let mut ring = Ring {
        acc: vec![0; 48_000 * 2],
    };
    let mut out = vec![0i16; period as usize * 2];
    let mut dgram = vec![0u8; MAX_DATAGRAM];
    let mut s = MixerSummary {
        written_s: 0.0,
        received: [0; 4],
        late: 0,
        ahead: 0,
        underruns: 0,
        jumps: 0,
        wander_ms_max: 0.0,
    };
    let mut written: i64 = 0;
    let mut t0: Option<f64> = None;
    let mut last_log = mono_ns();
    let mut anchors: VecDeque<f64> = VecDeque::with_capacity(ENVELOPE_STATUSES + 1);
    tracing::info!(
        "mixer: {device}, period {period} frames, listening on {}",
        listen.display()
    );
    // Real time where allowed (root in the guest): a starved mixer underruns, and every underrun moves the room.
    match bluebridge::timeline::SystemClock::realtime_priority(bluebridge::timeline::clock::REALTIME_PRIORITY) {
        Ok(()) => tracing::info!("mixer: SCHED_FIFO"),
        Err(e) => tracing::warn!("mixer: SCHED_FIFO refused ({e}); a busy guest will make it underrun"),
    }
    let mut unclean = 0u64;
    while !stop.load(Ordering::Relaxed) {
        // Where the next frame to write sounds, by the device's own account: the delay read between two clock
        // reads, and only believed when they are close (a thread preempted in between reads a delay that is
        // already older than its `now`, which looked like a jump of the device's delay under load).
        let before = mono_ns();
        let delay = pcm.delay().unwrap_or(0) as f64;
        let after = mono_ns();
        let clean = after - before <= CLEAN_STATUS_NS;
        if !clean {
            unclean += 1;
        }
        let now = before as f64;
        let t_next = now + delay * 1e9 / RATE_HZ;
        let anchor = t_next - written as f64 * 1e9 / RATE_HZ;
        if clean {
            anchors.push_back(anchor);
            if anchors.len() > ENVELOPE_STATUSES {
                anchors.pop_front();
            }
        }
        let env = anchors.iter().cloned().fold(f64::INFINITY, f64::min);
        match t0 {
            _ if !clean => {}
            None if written >= SETTLE_FRAMES && anchors.len() >= ENVELOPE_STATUSES => {
                t0 = Some(env);
                tracing::info!("mixer: t0 = {env:.0} ns (frame 0 sounds then)");
            }
            Some(t) => {
                let w = (env - t).abs() / 1e6;
                s.wander_ms_max = s.wander_ms_max.max((anchor - t).abs() / 1e6);
                // The device's delay jumped: keep the time mapping and move the write position to the frame
                // that sounds next.
                if w > JUMP_MS {
                    let next = written + ((env - t) * RATE_HZ / 1e9).round() as i64;
                    let len = ring.acc.len() as i64;
                    for f in written..next.min(written + len) {
                        ring.acc[(f % len) as usize] = 0;
                    }
                    tracing::warn!(
                        "mixer: the device's delay moved by {:+.1} ms; {} frames skipped",
                        (env - t) / 1e6,
                        next - written
                    );
                    s.jumps += 1;
                    written = next;
                    anchors.clear();
                }
                if now as i64 - last_log > 10_000_000_000 {
                    last_log = now as i64;
                    tracing::info!(
                        "mixer: mapping off by {:+.3} ms (this status {:+.3} ms), {} late, {} ahead, {} statuses \
                         not clean",
                        (env - t) / 1e6,
                        (anchor - t) / 1e6,
                        s.late,
                        s.ahead,
                        unclean
                    );
                }
            }
            None => {}
        }
        while let Ok(n) = sock.recv(&mut dgram) {
            if n < 9 {
                continue;
            }
            let id = dgram[0] as usize;
            s.received[id.min(3)] += 1;
            let due = i64::from_le_bytes(dgram[1..9].try_into().expect("8 bytes"));
            let Some(t) = t0 else { continue };
            let from = ((due as f64 - t) * RATE_HZ / 1e9).round() as i64;
            let samples = dgram[9..n].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]]));
            ring.add(from, samples, written, &mut s.late, &mut s.ahead);
        }
        let len = ring.acc.len() as i64;
        for j in 0..period {
            let k = ((written + j) % len) as usize;
            let v = ring.acc[k].clamp(i16::MIN as i32, i16::MAX as i32) as i16;
            ring.acc[k] = 0;
            out[2 * j as usize] = v;
            out[2 * j as usize + 1] = v;
        }
        match io.writei(&out) {
            Ok(n) => written += n as i64,
            Err(e) => {
                s.underruns += 1;
                anchors.clear();
                if let Err(r) = pcm.try_recover(e, true) {
                    // Seen in a starved guest: writei failed with EIO (its wait timed out), which try_recover
                    // does not take, and the stream still running (prepare alone then fails with EBUSY): stop
                    // it and prepare again, a few times before giving up.
                    tracing::warn!("mixer: recovering from an underrun failed ({r}); stopping and preparing again");
                    let mut tries = 0;
                    while let Err(p) = pcm.drop().and_then(|()| pcm.prepare()) {
                        tries += 1;
                        if tries >= 20 {
                            return Err(p).context("preparing the device after a failed recovery (20 tries)");
                        }
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                }
                // The mapping stays: what is written next sounds now + delay, so skip to that frame (the frames
                // in between are lost, their slots cleared).
                if let Some(t) = t0 {
                    let delay = pcm.delay().unwrap_or(0) as f64;
                    let at = mono_ns() as f64 + delay * 1e9 / RATE_HZ;
                    let next = ((at - t) * RATE_HZ / 1e9).round() as i64;
                    for f in written..next.min(written + len) {
                        ring.acc[(f % len) as usize] = 0;
                    }
                    tracing::warn!("mixer: underrun ({e}); {} frames skipped", next - written);
                    written = written.max(next);
                } else {
                    tracing::warn!("mixer: underrun ({e}) before the mapping was taken");
                }
            }
        }
    }
    s.written_s = written as f64 / RATE_HZ;
    let _ = std::fs::remove_file(listen);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_places_samples_at_their_frame_and_counts_late_ones() {
        let mut r = Ring { acc: vec![0; 100] };
        let (mut late, mut ahead) = (0, 0);
        r.add(8, [1i16, 2, 3, 4].into_iter(), 10, &mut late, &mut ahead);
        assert_eq!((late, ahead), (2, 0));
        assert_eq!(&r.acc[10..12], &[3, 4]);
        r.add(108, [5i16, 6, 7].into_iter(), 10, &mut late, &mut ahead);
        assert_eq!((late, ahead), (2, 1));
        assert_eq!(r.acc[9], 6); // frame 109 at 9 (frame 9 itself was written already)
    }
}
