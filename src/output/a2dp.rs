//! The `a2dp` output, real-time side: SBC-encodes what the player hands over and sends RTP packets on the
//! transport socket at the time of their first frame (paced by the deadline scheduler, never by a blocking
//! socket). The control side (connecting the speaker, acquiring the transport, following its `Delay`) runs on
//! tokio in [`crate::bluez::a2dp_speaker`] and hands links over through a [`SharedLink`].
//!
//! Timing: a packet is sent when its first frame is due, so the frame is heard at `send + Delay`, the sink's
//! delay report (or the configured fallback when it reports none). Without a link the output still consumes
//! audio at the local clock (and drops it), so it stays on the timeline and rejoins in sync.
//!
//! Volume: when the speaker offers AVRCP absolute volume, the control side sets it and the samples go out at full
//! scale ([`DeviceControl::set_volume`]); otherwise the player scales the samples. Silence: after
//! [`A2dpOptions::idle_release_ns`] of digital silence the output marks itself idle and the control side releases
//! the stream (the speaker may sleep); sound coming back takes it again. With [`A2dpOptions::keep_alive`] silence
//! is replaced by an inaudible tone instead, for speakers that switch off when they hear nothing.

use super::iso_sink::SduSink;
use super::local_clocked::LocalClocked;
use super::paced_sender::{send_nonblocking, PacedSender};
use super::{DeviceControl, Output, OutputError, OutputStatus, OUTPUT_FORMAT};
use crate::a2dp::rtp::{frames_per_packet, RtpPacketizer};
use crate::a2dp::sbc_caps;
use crate::codec::sbc::{Sbc, SBC_DELAY_FRAMES};
use crate::timeline::LocalTime;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

/// Audio kept queued ahead of sending: one packet (≈ 19 ms at the usual MTU) plus margin.
const LEAD_NS: i64 = 40_000_000;
/// How late a packet may still be sent rather than skipped. A speaker buffers 100–250 ms (its Delay report), so
/// a stall of ours up to this much is absorbed there; skipping audio (a resync) would instead cut the music. If the
/// whole machine stalled, the speaker's side stalled with it and nothing was lost at all.
const LATE_TOLERANCE_NS: i64 = 250_000_000;

/// The keep-alive tone: a frequency below hearing and below what small speakers reproduce…
pub const KEEP_ALIVE_HZ: u32 = 15;
/// …at −60 dBFS (32 of 32767): enough for a speaker's "no signal" detector, nothing anybody hears.
pub const KEEP_ALIVE_AMPLITUDE: f32 = 32.0;

/// How an `a2dp` output treats volume and silence (from the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct A2dpOptions {
    /// Delay assumed while the sink reports none, ns.
    pub fallback_delay_ns: i64,
    /// Release the stream after this much digital silence (None: never).
    pub idle_release_ns: Option<i64>,
    /// Replace digital silence with an inaudible tone (and never release).
    pub keep_alive: bool,
}

impl A2dpOptions {
    /// Defaults with `fallback_delay_ns`: never released, no keep-alive.
    pub fn with_fallback_delay(fallback_delay_ns: i64) -> Self {
        Self {
            fallback_delay_ns,
            idle_release_ns: None,
            keep_alive: false,
        }
    }
}

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
    /// The volume the output should play at, percent (set by the real-time side; None until the player said).
    pub wanted_volume_pct: Option<u8>,
    /// The speaker applies the volume (AVRCP absolute volume, set to `wanted_volume_pct` by the control side):
    /// the samples go out at full scale.
    pub device_volume: bool,
    /// The speaker's absolute volume as last read, 0…127 (it changes when somebody presses its buttons).
    pub device_level: Option<u16>,
    /// Set by the real-time side after `idle_release_ns` of silence, cleared when sound returns: the control side
    /// releases the stream while it is set and takes it again after.
    pub idle: bool,
    /// Wakes the control side when the real-time side changed `wanted_volume_pct`, `idle` or `failed`.
    pub changed: Arc<tokio::sync::Notify>,
}

/// Shared between an [`A2dpOutput`] and its speaker task.
pub type SharedLink = Arc<Mutex<LinkState>>;

/// The transport socket as the paced sender's sink (one write = one RTP packet; no backlog to report).
struct Transport(Arc<Link>);

impl SduSink for Transport {
    fn send(&mut self, packet: &[u8]) -> std::io::Result<()> {
        send_nonblocking(self.0.fd.as_raw_fd(), packet)
    }
    fn backlog_sdus(&mut self) -> Option<u32> {
        None
    }
}

struct Active {
    generation: u64,
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
}

/// An A2DP speaker as an output.
pub struct A2dpOutput {
    name: String,
    shared: SharedLink,
    options: A2dpOptions,
    clock: LocalClocked,
    active: Option<Active>,
    /// Sends the RTP packets when due (one buffer per packet, on the transport socket).
    sender: PacedSender,
    seen_generation: u64,
    /// The last volume told to the control side.
    wanted_volume_pct: Option<u8>,
    /// Copied from the shared state at each tick.
    device_volume: Option<u16>,
    /// The sink's delay (reported, else the fallback), ns, copied from the shared state at each poll.
    sink_delay_ns: i64,
    /// Consecutive frames of digital silence written.
    silent_frames: u64,
    idle: bool,
    /// One period of the keep-alive tone (empty without keep-alive) and where in it the next frame is.
    keep_alive: Vec<i16>,
    keep_alive_pos: usize,
    /// What the real-time side has to tell the control side, handed over at the next tick the shared state is
    /// free: the real-time side never waits for the lock a tokio task holds.
    pending: ToControl,
    /// Ticks at which the shared state was held by the control side (the hand-over waited a tick).
    handoff_deferred: u64,
}

/// The shared state if nobody holds it now (a poisoned lock is taken as it is: the data stay valid).
fn try_shared(shared: &SharedLink) -> Option<MutexGuard<'_, LinkState>> {
    match shared.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// What the real-time side tells the control side: set, then handed over at once if the shared state is free,
/// else at the next tick ([`A2dpOutput::sync_link`]).
#[derive(Debug, Default)]
struct ToControl {
    idle: Option<bool>,
    /// The socket of this link generation failed.
    failed_generation: Option<u64>,
    volume_pct: Option<u8>,
}

impl ToControl {
    /// Writes what is pending into the shared state and wakes the control side if anything was.
    fn hand_over(&mut self, st: &mut LinkState) {
        let mut tell = false;
        if let Some(idle) = self.idle.take() {
            st.idle = idle;
            tell = true;
        }
        if let Some(g) = self.failed_generation.take() {
            if st.generation == g {
                st.failed = true;
                tell = true;
            }
        }
        if let Some(pct) = self.volume_pct.take() {
            st.wanted_volume_pct = Some(pct);
            tell = true;
        }
        if tell {
            st.changed.notify_one();
        }
    }
}

impl A2dpOutput {
    /// An output named `name` fed links through `shared`.
    pub fn new(name: &str, shared: SharedLink, options: A2dpOptions) -> Self {
        let keep_alive = if options.keep_alive {
            let period = (OUTPUT_FORMAT.rate_hz / KEEP_ALIVE_HZ) as usize;
            (0..period)
                .map(|i| {
                    let phase = std::f32::consts::TAU * i as f32 / period as f32;
                    (KEEP_ALIVE_AMPLITUDE * phase.sin()).round() as i16
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            name: name.to_string(),
            shared,
            options,
            clock: LocalClocked::with_late_tolerance(LEAD_NS, options.fallback_delay_ns, LATE_TOLERANCE_NS),
            active: None,
            sender: PacedSender::new(name, "packets", "the speaker task will reconnect", 1),
            seen_generation: 0,
            wanted_volume_pct: None,
            device_volume: None,
            sink_delay_ns: options.fallback_delay_ns,
            silent_frames: 0,
            idle: false,
            keep_alive,
            keep_alive_pos: 0,
            pending: ToControl::default(),
            handoff_deferred: 0,
        }
    }

    /// Counts silence and flips `idle` (telling the control side) when it starts or ends.
    fn follow_silence(&mut self, frames: &[i16], silent: bool) {
        let n = (frames.len() / 2) as u64;
        self.silent_frames = if silent { self.silent_frames + n } else { 0 };
        let Some(limit_ns) = self.options.idle_release_ns.filter(|_| !self.options.keep_alive) else {
            return;
        };
        let idle = self.silent_frames as f64 >= OUTPUT_FORMAT.ns_to_frames_f64(limit_ns);
        if idle != self.idle {
            self.idle = idle;
            if idle {
                tracing::info!(
                    output = self.name,
                    "{:.0} s of silence: releasing the speaker until sound returns",
                    limit_ns as f64 / 1e9
                );
            } else {
                tracing::info!(output = self.name, "sound again: taking the speaker back");
            }
            self.pending.idle = Some(idle);
            self.hand_over();
        }
    }

    /// Hands over what is pending now if the shared state is free (else [`Self::sync_link`] does at a later tick).
    fn hand_over(&mut self) {
        match try_shared(&self.shared) {
            Some(mut st) => self.pending.hand_over(&mut st),
            None => self.handoff_deferred += 1,
        }
    }

    /// Hands over what is pending and copies the control side's news (link, delay, device volume), if the shared
    /// state is free; otherwise leaves both for the next tick. Returns the sink's delay, ns.
    fn sync_link(&mut self) -> i64 {
        let Some(mut st) = try_shared(&self.shared) else {
            self.handoff_deferred += 1;
            return self.sink_delay_ns;
        };
        self.pending.hand_over(&mut st);
        let delay = st.reported_delay_ns.unwrap_or(self.options.fallback_delay_ns);
        self.device_volume = if st.device_volume { st.device_level } else { None };
        if st.generation != self.seen_generation {
            self.seen_generation = st.generation;
            self.active = None;
            self.sender.detach();
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
                        let packet_bytes = link.write_mtu.max(13 + fpp * sbc.frame_length());
                        self.sender.attach(vec![Box::new(Transport(link))], packet_bytes);
                        self.active = Some(Active {
                            generation: st.generation,
                            channels,
                            rtp: RtpPacketizer::new(fastrand::u16(..), fastrand::u32(..), 1),
                            frames_per_packet: fpp,
                            pcm: Vec::with_capacity(sbc.codesize() * 16),
                            encoded: Vec::with_capacity(fpp * sbc.frame_length()),
                            n_frames: 0,
                            next_frame: next,
                            packet_first_frame: next,
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
        let Some(a) = &self.active else { return };
        let generation = a.generation;
        if self.sender.flush_due(&self.clock, now).is_err() {
            self.active = None;
            self.pending.failed_generation = Some(generation);
            self.hand_over();
        }
    }
}

impl Output for A2dpOutput {
    fn kind(&self) -> &'static str {
        "a2dp"
    }

    fn poll(&mut self, now: LocalTime) {
        self.sink_delay_ns = self.sync_link();
        self.flush_due(now);
    }

    fn status(&mut self, now: LocalTime) -> OutputStatus {
        let mut st = self.clock.status(now);
        st.sink_reported_ns = Some(self.sink_delay_ns);
        // The encoder's algorithmic delay: its own part, apart from the sink's.
        st.encoder_ns = if self.active.is_some() {
            SBC_DELAY_FRAMES as i64 * 1_000_000_000 / OUTPUT_FORMAT.rate_hz as i64
        } else {
            0
        };
        st
    }

    fn write(&mut self, now: LocalTime, frames: &[i16]) -> Result<(), OutputError> {
        let silent = frames.iter().all(|&v| v == 0);
        self.follow_silence(frames, silent);
        if let Some(a) = &mut self.active {
            for f in frames.chunks_exact(2) {
                let (l, r) = if silent && !self.keep_alive.is_empty() {
                    let v = self.keep_alive[self.keep_alive_pos];
                    self.keep_alive_pos = (self.keep_alive_pos + 1) % self.keep_alive.len();
                    (v, v)
                } else {
                    (f[0], f[1])
                };
                if a.channels == 1 {
                    let m = ((l as i32 + r as i32) / 2) as i16;
                    a.pcm.extend_from_slice(&m.to_le_bytes());
                } else {
                    a.pcm.extend_from_slice(&l.to_le_bytes());
                    a.pcm.extend_from_slice(&r.to_le_bytes());
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
                    let mut pkt = self.sender.take_buffers();
                    a.rtp.packet(&a.encoded, a.n_frames, per_frame as usize, &mut pkt[0]);
                    self.sender.queue(a.packet_first_frame, pkt);
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

    fn device(&self) -> Option<&dyn DeviceControl> {
        Some(self)
    }

    fn device_mut(&mut self) -> Option<&mut dyn DeviceControl> {
        Some(self)
    }

    fn wake_at(&self, now: LocalTime) -> Option<LocalTime> {
        Some(self.sender.wake_at(&self.clock, now))
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let c = self.sender.counts();
        vec![
            ("packets", c.sent),
            ("dropped_packets", c.dropped),
            ("write_errors", c.write_errors),
            ("streaming", self.active.is_some() as u64),
            ("handoff_deferred", self.handoff_deferred),
        ]
    }
}

impl DeviceControl for A2dpOutput {
    fn set_volume(&mut self, pct: u8) -> bool {
        if self.wanted_volume_pct != Some(pct) {
            self.wanted_volume_pct = Some(pct);
            self.pending.volume_pct = Some(pct);
            self.hand_over();
        }
        self.active.is_some() && self.device_volume.is_some()
    }

    fn volume(&self) -> Option<(u16, u16)> {
        self.device_volume
            .filter(|_| self.active.is_some())
            .map(|level| (level, crate::a2dp::A2DP_VOLUME_MAX))
    }

    fn idle(&self) -> bool {
        self.idle
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One player tick's calls: what is due, then the state.
    fn poll_status(out: &mut dyn Output, now: LocalTime) -> OutputStatus {
        out.poll(now);
        out.status(now)
    }

    #[test]
    fn sends_rtp_sbc_packets_when_due_and_reports_failure() {
        let (mut out, shared, b) = linked_output(A2dpOptions::with_fallback_delay(200_000_000));
        shared.lock().unwrap().reported_delay_ns = Some(150_000_000);
        let st = poll_status(&mut out, LocalTime::from_ns(0));
        assert_eq!(
            st.sink_reported_ns,
            Some(150_000_000),
            "the speaker's own delay, as it reports it"
        );
        assert_eq!(st.encoder_ns, 73 * 1_000_000_000 / 48_000, "SBC's delay, kept apart");
        // 100 ms of audio handed over at once; packets go out as their first frame comes due.
        out.write(LocalTime::from_ns(0), &vec![0i16; 4800 * 2]).unwrap();
        let mut buf = [0u8; 2048];
        assert!(b.recv(&mut buf).is_err(), "nothing is due before the lead has passed");
        assert_eq!(
            out.wake_at(LocalTime::from_ns(0)),
            Some(LocalTime::from_ns(40_000_000)),
            "the loop is asked back when the first packet is due (after the lead)"
        );
        poll_status(&mut out, LocalTime::from_ns(80_000_000));
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
        poll_status(&mut out, LocalTime::from_ns(200_000_000));
        assert!(
            shared.lock().unwrap().failed,
            "a dead socket is reported to the control side"
        );
    }
    /// An output on a socket pair (the speaker's end returned), SBC joint stereo 48 kHz bitpool 51.
    fn linked_output(options: A2dpOptions) -> (A2dpOutput, SharedLink, std::os::unix::net::UnixDatagram) {
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let shared: SharedLink = Arc::default();
        {
            let mut st = shared.lock().unwrap();
            st.link = Some(Arc::new(Link {
                fd: OwnedFd::from(a),
                write_mtu: 895,
                configuration: [0x11, 0x15, 2, 51],
            }));
            st.generation = 1;
        }
        let out = A2dpOutput::new("s", shared.clone(), options);
        (out, shared, b)
    }

    /// Issue 17: the real-time side never waits for the lock the control side (a tokio task) holds. While the shared
    /// state is held elsewhere, ticks, writes and a volume change all go on; what the real-time side had to say
    /// (the volume, the silence) arrives at the first tick after the lock is free. Run on a thread with a deadline:
    /// before the hand-over, `poll` blocked on the held lock.
    #[test]
    fn the_real_time_side_goes_on_while_the_control_side_holds_the_lock() {
        let (out, shared, _peer) = linked_output(A2dpOptions {
            idle_release_ns: Some(20_000_000),
            ..A2dpOptions::with_fallback_delay(0)
        });
        let held = shared.lock().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            let mut out = out;
            let mut t = 0i64;
            feed(&mut out, &mut t, 10, 0); // 50 ms of silence: idle after 20 ms
            out.set_volume(30);
            tx.send(()).unwrap();
            (out, t)
        });
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("the output's ticks waited for the held lock");
        drop(held);
        let (mut out, mut t) = worker.join().unwrap();
        assert!(
            out.handoff_deferred > 0,
            "the hand-over was deferred while the lock was held"
        );
        {
            let st = shared.lock().unwrap();
            assert!(
                !st.idle && st.wanted_volume_pct.is_none(),
                "nothing handed over yet: {st:?}"
            );
        }
        feed(&mut out, &mut t, 1, 0);
        let st = shared.lock().unwrap();
        assert!(st.idle, "the silence is handed over at the next tick");
        assert_eq!(st.wanted_volume_pct, Some(30));
    }

    /// Writes `blocks` blocks of 5 ms (`value` in every sample), one per 5 ms tick from `*t`.
    fn feed(out: &mut A2dpOutput, t: &mut i64, blocks: usize, value: i16) {
        for _ in 0..blocks {
            poll_status(out, LocalTime::from_ns(*t));
            out.write(LocalTime::from_ns(*t), &[value; 480]).unwrap();
            *t += 5_000_000;
        }
    }

    #[test]
    fn silence_makes_the_output_idle_after_the_configured_time_and_sound_ends_it() {
        let mut opts = A2dpOptions::with_fallback_delay(150_000_000);
        opts.idle_release_ns = Some(1_000_000_000);
        let (mut out, shared, _b) = linked_output(opts);
        let notified = shared.lock().unwrap().changed.clone();
        let mut t = 0;
        feed(&mut out, &mut t, 100, 1000); // 0.5 s of sound
        feed(&mut out, &mut t, 199, 0); // 0.995 s of silence: not yet
        assert!(!out.idle() && !shared.lock().unwrap().idle);
        feed(&mut out, &mut t, 1, 0); // 1 s
        assert!(out.idle() && shared.lock().unwrap().idle, "idle after 1 s of silence");
        assert!(futures_lite_ready(notified.notified()), "the control side is woken");
        feed(&mut out, &mut t, 1, 3);
        assert!(
            !out.idle() && !shared.lock().unwrap().idle,
            "the first non-zero sample ends it"
        );
        // Without idle_release (and with keep-alive) silence never makes it idle.
        for opts in [
            A2dpOptions::with_fallback_delay(0),
            A2dpOptions {
                idle_release_ns: Some(1),
                keep_alive: true,
                ..A2dpOptions::with_fallback_delay(0)
            },
        ] {
            let (mut out, shared, _b) = linked_output(opts);
            feed(&mut out, &mut t, 400, 0);
            assert!(!out.idle() && !shared.lock().unwrap().idle, "{opts:?}");
        }
    }

    /// Whether a future is ready at its first poll.
    fn futures_lite_ready<F: std::future::Future>(f: F) -> bool {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        std::pin::pin!(f).poll(&mut cx).is_ready()
    }

    /// Decodes every packet waiting on `b` (RTP header 12 bytes + SBC media header 1 byte) to left samples.
    fn received_left(b: &std::os::unix::net::UnixDatagram) -> Vec<i16> {
        let mut sbc = Sbc::new_a2dp(&[0x11, 0x15, 2, 51]).unwrap();
        let mut buf = [0u8; 2048];
        let mut pcm = Vec::new();
        while let Ok(n) = b.recv(&mut buf) {
            sbc.decode_frames(&buf[13..n], buf[12] as usize & 0x0f, &mut pcm)
                .unwrap();
        }
        pcm.chunks_exact(2).map(|f| f[0]).collect()
    }

    #[test]
    fn keep_alive_replaces_silence_with_an_inaudible_tone() {
        for keep_alive in [false, true] {
            let opts = A2dpOptions {
                keep_alive,
                ..A2dpOptions::with_fallback_delay(150_000_000)
            };
            let (mut out, _shared, b) = linked_output(opts);
            let mut t = 0;
            feed(&mut out, &mut t, 200, 0); // 1 s of digital silence
            let left = received_left(&b);
            assert!(left.len() >= 40_000, "{} samples received", left.len());
            let steady = &left[2_000..];
            let peak = steady.iter().map(|v| v.unsigned_abs()).max().unwrap();
            let rms = (steady.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / steady.len() as f64).sqrt();
            if keep_alive {
                // −60 dBFS (amplitude 32): RMS 22.6 for a sine; SBC keeps it within a few LSB.
                assert!(
                    (15.0..30.0).contains(&rms) && peak <= 40,
                    "keep-alive rms {rms:.1}, peak {peak}"
                );
                // 15 Hz: a rising zero crossing every 3200 samples.
                // Rising crossings with hysteresis (±16), as the tone lingers near 0 for many samples.
                let (mut armed, mut rising) = (false, Vec::new());
                for (i, &v) in steady.iter().enumerate() {
                    if v < -16 {
                        armed = true;
                    } else if v > 16 && armed {
                        armed = false;
                        rising.push(i);
                    }
                }
                let periods: Vec<usize> = rising.windows(2).map(|w| w[1] - w[0]).collect();
                assert!(
                    !periods.is_empty() && periods.iter().all(|&p| (3100..3300).contains(&p)),
                    "{periods:?}"
                );
            } else {
                assert_eq!(peak, 0, "silence stays digital silence without keep-alive");
            }
        }
        // Sound is never touched.
        let opts = A2dpOptions {
            keep_alive: true,
            ..A2dpOptions::with_fallback_delay(150_000_000)
        };
        let (mut out, _shared, b) = linked_output(opts);
        let mut t = 0;
        feed(&mut out, &mut t, 200, 1000);
        let left = received_left(&b);
        assert!(
            left[2_000..].iter().all(|&v| (v - 1000).abs() <= 8),
            "DC 1000 passes unchanged"
        );
    }

    #[test]
    fn volume_goes_to_the_speaker_only_once_it_applies_it() {
        let (mut out, shared, _b) = linked_output(A2dpOptions::with_fallback_delay(0));
        let notified = shared.lock().unwrap().changed.clone();
        poll_status(&mut out, LocalTime::from_ns(0));
        assert!(!out.set_volume(40), "software volume until the speaker is at our level");
        assert_eq!(shared.lock().unwrap().wanted_volume_pct, Some(40));
        assert!(futures_lite_ready(notified.notified()), "the control side is told");
        assert_eq!(out.volume(), None);
        {
            let mut st = shared.lock().unwrap();
            st.device_volume = true;
            st.device_level = Some(51);
        }
        poll_status(&mut out, LocalTime::from_ns(5_000_000));
        assert!(out.set_volume(40));
        assert_eq!(out.volume(), Some((51, 127)));
        // The link goes: software volume again (nothing is sent anyway, but status must not claim the speaker).
        {
            let mut st = shared.lock().unwrap();
            st.link = None;
            st.generation += 1;
        }
        poll_status(&mut out, LocalTime::from_ns(10_000_000));
        assert!(!out.set_volume(40));
        assert_eq!(out.volume(), None);
    }
}
