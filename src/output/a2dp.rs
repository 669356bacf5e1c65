//! The `a2dp` output, real-time side: SBC-encodes what the player hands over and sends RTP packets on the
//! transport socket at the time of their first frame (paced by the deadline scheduler, never by a blocking
//! socket). The control side (connecting the speaker, acquiring the transport, following its `Delay`) runs on
//! tokio in [`crate::bluez::a2dp_speaker`] and hands links over through a [`SharedLink`].
//!
//! Timing: a packet is sent when its first frame is due, so the frame is heard at `send + Delay`, the sink's
//! delay report (or the configured fallback when it reports none). Without a link the output still consumes
//! audio at the local clock (and drops it), so it stays on the timeline and rejoins in sync.

use super::local_clocked::LocalClocked;
use super::{Output, OutputError, OutputStatus};
use crate::bluez::a2dp::rtp::{frames_per_packet, RtpPacketizer};
use crate::bluez::a2dp::sbc_caps;
use crate::codec::sbc::{Sbc, SBC_DELAY_FRAMES};
use crate::timeline::LocalTime;
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

/// Audio kept queued ahead of sending: one packet (≈ 19 ms at the usual MTU) plus margin.
const LEAD_NS: i64 = 40_000_000;
/// How late a packet may still be sent rather than skipped. A speaker buffers 100–250 ms (its Delay report), so
/// a stall of ours up to this much is absorbed there; skipping audio (a resync) would instead cut the music. If the
/// whole machine stalled, the speaker's side stalled with it and nothing was lost at all.
const LATE_TOLERANCE_NS: i64 = 250_000_000;

/// A transport handed over by the control side.
#[derive(Debug)]
pub struct Link {
    /// The transport socket (one write = one packet).
    pub fd: OwnedFd,
    /// Largest packet.
    pub write_mtu: usize,
    /// The negotiated SBC configuration.
    pub configuration: [u8; 4],
}

/// What the control side and the real-time side share about one speaker.
#[derive(Debug, Default)]
pub struct LinkState {
    /// The current transport, if acquired.
    pub link: Option<Arc<Link>>,
    /// Bumped whenever `link` changes.
    pub generation: u64,
    /// The sink's delay report, ns (None: it reports none; the fallback is used).
    pub reported_delay_ns: Option<i64>,
    /// Set by the real-time side when the socket failed: the control side re-acquires.
    pub failed: bool,
}

/// Shared between an [`A2dpOutput`] and its speaker task.
pub type SharedLink = Arc<Mutex<LinkState>>;

struct Active {
    generation: u64,
    link: Arc<Link>,
    sbc: Sbc,
    channels: usize,
    rtp: RtpPacketizer,
    frames_per_packet: usize,
    pcm: Vec<u8>,
    encoded: Vec<u8>,
    n_frames: usize,
    /// Output frame index of the first PCM frame in `pcm`/`encoded` not yet packetised.
    next_frame: u64,
    packet_first_frame: u64,
    queue: VecDeque<(u64, Vec<u8>)>,
}

/// An A2DP speaker as an output.
pub struct A2dpOutput {
    name: String,
    shared: SharedLink,
    fallback_delay_ns: i64,
    clock: LocalClocked,
    active: Option<Active>,
    seen_generation: u64,
    packets: u64,
    dropped: u64,
    write_errors: u64,
}

impl A2dpOutput {
    /// An output named `name` fed links through `shared`; `fallback_delay_ns` is used while the sink reports no
    /// delay.
    pub fn new(name: &str, shared: SharedLink, fallback_delay_ns: i64) -> Self {
        Self {
            name: name.to_string(),
            shared,
            fallback_delay_ns,
            clock: LocalClocked::with_late_tolerance(LEAD_NS, fallback_delay_ns, LATE_TOLERANCE_NS),
            active: None,
            seen_generation: 0,
            packets: 0,
            dropped: 0,
            write_errors: 0,
        }
    }

    fn sync_link(&mut self) -> i64 {
        let st = self.shared.lock().expect("link lock");
        let delay = st.reported_delay_ns.unwrap_or(self.fallback_delay_ns);
        if st.generation != self.seen_generation {
            self.seen_generation = st.generation;
            self.active = None;
            if let Some(link) = st.link.clone() {
                match Sbc::new_a2dp(&link.configuration) {
                    Ok(sbc) => {
                        let channels = sbc_caps::channels(&link.configuration);
                        let fpp = frames_per_packet(link.write_mtu, sbc.frame_length()).max(1);
                        tracing::info!(
                            output = self.name,
                            "streaming: SBC {:02x?}, {} bytes/frame, {fpp} frames per {}-byte packet",
                            link.configuration,
                            sbc.frame_length(),
                            link.write_mtu
                        );
                        let next = self.clock.written_frames();
                        self.active = Some(Active {
                            generation: st.generation,
                            link,
                            channels,
                            rtp: RtpPacketizer::new(fastrand::u16(..), fastrand::u32(..), 1),
                            frames_per_packet: fpp,
                            pcm: Vec::new(),
                            encoded: Vec::new(),
                            n_frames: 0,
                            next_frame: next,
                            packet_first_frame: next,
                            queue: VecDeque::new(),
                            sbc,
                        });
                    }
                    Err(e) => tracing::error!(output = self.name, "cannot encode for this speaker: {e}"),
                }
            }
        }
        delay
    }

    fn flush_due(&mut self, now: LocalTime) {
        let Some(a) = &mut self.active else { return };
        while let Some((first, _)) = a.queue.front() {
            if !self.clock.is_due(*first, now) {
                break;
            }
            let (_, pkt) = a.queue.pop_front().expect("front exists");
            // SAFETY: send(2) on a socket we hold open; the buffer is valid for its length.
            let rc = unsafe {
                libc::send(
                    a.link.fd.as_raw_fd(),
                    pkt.as_ptr().cast(),
                    pkt.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if rc >= 0 {
                self.packets += 1;
                continue;
            }
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::WouldBlock {
                // The link is congested: drop this packet rather than fall behind.
                self.dropped += 1;
                if self.dropped.is_power_of_two() {
                    tracing::warn!(
                        output = self.name,
                        "link congested: {} packets dropped so far",
                        self.dropped
                    );
                }
                continue;
            }
            self.write_errors += 1;
            tracing::warn!(
                output = self.name,
                "transport write failed ({err}); the speaker task will reconnect"
            );
            let generation = a.generation;
            self.active = None;
            let mut st = self.shared.lock().expect("link lock");
            if st.generation == generation {
                st.failed = true;
            }
            return;
        }
    }
}

impl Output for A2dpOutput {
    fn kind(&self) -> &'static str {
        "a2dp"
    }

    fn status(&mut self, now: LocalTime) -> OutputStatus {
        let delay = self.sync_link();
        self.flush_due(now);
        let mut st = self.clock.status(now);
        // The encoder's algorithmic delay is part of what the sink hears late.
        let encoder_ns = if self.active.is_some() {
            SBC_DELAY_FRAMES as i64 * 1_000_000_000 / 48_000
        } else {
            0
        };
        st.sink_reported_ns = Some(delay + encoder_ns);
        st
    }

    fn write(&mut self, now: LocalTime, frames: &[i16]) -> Result<(), OutputError> {
        if let Some(a) = &mut self.active {
            for f in frames.chunks_exact(2) {
                if a.channels == 1 {
                    let m = ((f[0] as i32 + f[1] as i32) / 2) as i16;
                    a.pcm.extend_from_slice(&m.to_le_bytes());
                } else {
                    a.pcm.extend_from_slice(&f[0].to_le_bytes());
                    a.pcm.extend_from_slice(&f[1].to_le_bytes());
                }
            }
            let per_frame = a.sbc.frames_per_sbc_frame(a.channels) as u64;
            let codesize = a.sbc.codesize();
            let mut off = 0;
            while a.pcm.len() - off >= codesize {
                if a.n_frames == 0 {
                    a.packet_first_frame = a.next_frame;
                }
                if let Err(e) = a.sbc.encode_frame(&a.pcm[off..off + codesize], &mut a.encoded) {
                    tracing::error!(output = self.name, "{e}");
                }
                off += codesize;
                a.next_frame += per_frame;
                a.n_frames += 1;
                if a.n_frames == a.frames_per_packet {
                    let mut pkt = Vec::with_capacity(13 + a.encoded.len());
                    a.rtp.packet(&a.encoded, a.n_frames, per_frame as usize, &mut pkt);
                    a.queue.push_back((a.packet_first_frame, pkt));
                    a.encoded.clear();
                    a.n_frames = 0;
                }
            }
            a.pcm.drain(..off);
        }
        self.clock.wrote(frames);
        self.flush_due(now);
        Ok(())
    }

    fn paced_by_local_clock(&self) -> bool {
        true
    }

    fn take_markers(&mut self) -> Vec<LocalTime> {
        self.clock.take_markers()
    }

    fn linked(&self) -> bool {
        self.active.is_some()
    }

    fn wake_at(&self, now: LocalTime) -> Option<LocalTime> {
        let first = self.active.as_ref().and_then(|a| a.queue.front()).map(|(n, _)| *n);
        Some(self.clock.wake_at(first, now))
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("packets", self.packets),
            ("dropped_packets", self.dropped),
            ("write_errors", self.write_errors),
            ("streaming", self.active.is_some() as u64),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_rtp_sbc_packets_when_due_and_reports_failure() {
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let shared: SharedLink = Arc::default();
        {
            let mut st = shared.lock().unwrap();
            st.link = Some(Arc::new(Link {
                fd: OwnedFd::from(a),
                write_mtu: 895,
                configuration: [0x11, 0x15, 2, 51],
            }));
            st.generation = 1;
            st.reported_delay_ns = Some(150_000_000);
        }
        let mut out = A2dpOutput::new("s", shared.clone(), 200_000_000);
        let st = out.status(LocalTime::from_ns(0));
        assert_eq!(st.sink_reported_ns, Some(150_000_000 + 73 * 1_000_000_000 / 48_000));
        // 100 ms of audio handed over at once; packets go out as their first frame comes due.
        out.write(LocalTime::from_ns(0), &vec![0i16; 4800 * 2]).unwrap();
        b.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 2048];
        assert!(b.recv(&mut buf).is_err(), "nothing is due before the lead has passed");
        assert_eq!(
            out.wake_at(LocalTime::from_ns(0)),
            Some(LocalTime::from_ns(40_000_000)),
            "the loop is asked back when the first packet is due (after the lead)"
        );
        out.status(LocalTime::from_ns(80_000_000));
        let n = b.recv(&mut buf).unwrap();
        // 7 frames of 115 bytes + 13 header bytes; 7 × 128 frames per packet.
        assert_eq!(n, 13 + 7 * 115);
        assert_eq!(buf[12], 7);
        let mut count = 1;
        while b.recv(&mut buf).is_ok() {
            count += 1;
        }
        // Frames 0..3584 (40 ms lead, due by 80 ms: frames < 1920 start their packets) — 3 packets (0, 896, 1792).
        assert_eq!(count, 3);
        assert_eq!(
            out.wake_at(LocalTime::from_ns(80_000_000)),
            Some(LocalTime::from_ns(40_000_000 + 2688 * 1_000_000_000 / 48_000)),
            "next: the packet starting at frame 2688"
        );
        drop(b);
        out.status(LocalTime::from_ns(200_000_000));
        assert!(
            shared.lock().unwrap().failed,
            "a dead socket is reported to the control side"
        );
    }
}
