//! The recorder as a loudspeaker, for the rig's `calibrate` scenario: `--sound-to SOCKET --latency-ms L` sends
//! every decoded packet to the one mixer (`--mixer DEVICE --listen SOCKET`, [`run_mixer`]), which writes it into
//! an `snd-aloop` playback device so that it *sounds* (is captured on the loopback's other side) at a known
//! CLOCK_MONOTONIC time.
//!
//! **The speaker model** ([`Speaker`]): a speaker plays from a buffer on the schedule the source sent on, not at
//! each packet's arrival. Frame `n` of the stream sounds at `base + n / 48 kHz + L`, where `base` is the speaker's
//! [`Schedule`] (the lower envelope of `arrival − first_frame / 48 kHz`, followed to a moved stream after
//! [`schedule::RESUME_AFTER_NS`] of packets all late) and `L` is the hidden latency the scenario drew. bluebridge
//! sends on play time − its Delay report, so this speaker is heard `L − Delay` late. Its buffer is `L` less the mixer's lead ([`MIXER_LEAD_NS`]):
//! a packet later than that behind its place cannot be played there.
//!
//! **The mixer**: [`mixer`].

mod mixer;
mod schedule;

pub use mixer::run_mixer;
use schedule::{frames_ns, Schedule};

use anyhow::{bail, Context, Result};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Frames per second of the stream and of the mixer.
const RATE_HZ: f64 = 48_000.0;
/// Largest datagram: id + stamp + 4096 mono samples.
const MAX_DATAGRAM: usize = 9 + 2 * 4096;
/// How long before a sample's due time the mixer must have it: its device buffer (6 periods of 20 ms) plus the
/// recorder's own time to decode and hand over a packet under load, ns.
pub const MIXER_LEAD_NS: i64 = 150_000_000;
/// A packet this far behind its place is a moved stream whatever the speaker's buffer: bluebridge moves its
/// output's schedule by ≥ 290 ms after a stall (`LATE_TOLERANCE_NS` 250 ms + its 40 ms lead), ns.
pub const MAX_BUFFER_NS: i64 = 200_000_000;
/// The smallest speaker buffer `--latency-ms` may leave (latency − [`MIXER_LEAD_NS`]), ns.
const MIN_BUFFER_NS: i64 = 50_000_000;

/// The sink's sound: sends each decoded packet to the mixer, due at its place on the speaker's schedule.
pub struct Speaker {
    sock: UnixDatagram,
    to: PathBuf,
    id: u8,
    latency_ns: i64,
    schedule: Schedule,
    /// The last packet came over the buffer late: what it held does not sound.
    last_behind: bool,
    buf: Vec<u8>,
    /// Datagrams the mixer did not take (it is not there, or its queue is full).
    pub unsent: u64,
}

impl Speaker {
    /// A speaker `id` heard `latency_ms` after its schedule, sending to the mixer's socket `to`.
    pub fn new(to: &Path, id: u8, latency_ms: f64) -> Result<Self> {
        let min_ms = (MIXER_LEAD_NS + MIN_BUFFER_NS) as f64 / 1e6;
        if !(min_ms..=2000.0).contains(&latency_ms) {
            bail!(
                "--latency-ms must be {min_ms} to 2000, not {latency_ms} (the mixer needs a sample {} ms before it \
                 sounds, and the speaker a buffer of its own)",
                MIXER_LEAD_NS / 1_000_000
            );
        }
        let latency_ns = (latency_ms * 1e6).round() as i64;
        let sock = UnixDatagram::unbound().context("a datagram socket for --sound-to")?;
        sock.set_nonblocking(true)?;
        Ok(Self {
            sock,
            to: to.to_path_buf(),
            id,
            latency_ns,
            schedule: Schedule::new((latency_ns - MIXER_LEAD_NS).min(MAX_BUFFER_NS)),
            last_behind: false,
            buf: Vec::with_capacity(MAX_DATAGRAM),
            unsent: 0,
        })
    }

    /// A new stream.
    pub fn restart(&mut self) {
        self.schedule.restart();
    }

    /// When frame position `pos` of the stream sounds (after the packet holding it was played); None when that
    /// packet came over the buffer late (it does not sound).
    pub fn sound_ns(&self, pos: f64) -> Option<i64> {
        if self.last_behind {
            return None;
        }
        self.schedule.base_ns().map(|b| b + frames_ns(pos) + self.latency_ns)
    }

    /// Plays a decoded packet (`pcm`: `ch` interleaved channels; its left channel is sent) that starts at stream
    /// frame `first_frame` and arrived at `arrival_ns`.
    pub fn play(&mut self, first_frame: u64, arrival_ns: i64, pcm: &[i16], ch: usize) {
        let placed = self.schedule.push(first_frame, arrival_ns);
        self.last_behind = placed.behind;
        if let Some(moved) = placed.resumed_by_ns {
            tracing::warn!(
                "speaker: the stream moved by {:+.1} ms (every packet for {} ms came over the buffer late); \
                 resumed on it at frame {first_frame}, {} times so far",
                moved as f64 / 1e6,
                schedule::RESUME_AFTER_NS / 1_000_000,
                self.schedule.resumes
            );
        }
        if let Some(moved) = placed.restored_by_ns {
            tracing::warn!(
                "speaker: back on the schedule before the resume ({:+.1} ms) at frame {first_frame}: the link was \
                 slow, the stream had not moved; {} times so far",
                moved as f64 / 1e6,
                self.schedule.restores
            );
        }
        if placed.behind {
            // What does not sound is not sent (the mixer would drop most of it as late anyway).
            return;
        }
        for (i, chunk) in pcm.chunks(4096 * ch).enumerate() {
            let frame = first_frame + 4096 * i as u64;
            let due = placed.base_ns + frames_ns(frame as f64) + self.latency_ns;
            self.buf.clear();
            self.buf.push(self.id);
            self.buf.extend_from_slice(&due.to_le_bytes());
            for f in chunk.chunks_exact(ch) {
                self.buf.extend_from_slice(&f[0].to_le_bytes());
            }
            if self.sock.send_to(&self.buf, &self.to).is_err() {
                self.unsent += 1;
                if self.unsent.is_power_of_two() {
                    tracing::warn!(
                        "the mixer at {} took no audio; {} packets so far",
                        self.to.display(),
                        self.unsent
                    );
                }
            }
        }
    }
}
