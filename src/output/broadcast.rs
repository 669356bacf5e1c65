//! The `broadcast` output, real-time side: LC3-encodes each channel of what the player hands over (one encoder
//! and one BIS per channel; mono = one BIS carrying the mix) and sends one SDU per BIS per SDU interval, each at
//! the time its first sample is due (paced by the deadline scheduler through [`LocalClocked`], like the `a2dp`
//! output). The control side (endpoint, `SetConfiguration` per BIS, acquiring every BIS) runs on tokio in
//! [`crate::bluez::broadcast_source`] and hands the BIS sockets over through a [`SharedBig`].
//!
//! Timing: an SDU handed to the controller at `send` is rendered by every receiver at the BIG reference point
//! after it plus the presentation delay, so the delay reported to the player is presentation delay + the
//! maximum transport latency + LC3's algorithmic delay. Without a BIG the output still consumes audio at the
//! local clock (and drops it), so it stays on the timeline and rejoins in sync.
//!
//! Clock: the controller takes one SDU per BIS per ISO interval on *its* clock (±20–50 ppm from ours; 50 ppm is
//! 180 ms an hour). The output follows it ([`super::iso_pacing`]): it watches how many SDUs wait in the kernel
//! for controller buffers ([`super::iso_sink::IsoSocket`], `TIOCOUTQ`), fills the controller's buffer on purpose
//! so that number moves, and a PLL on it sets the rate of its render schedule ([`LocalClocked::set_rate_ppm`])
//! so the backlog stays where it was (one or two SDUs); the loop's integral is the controller's rate. The render
//! schedule is then the controller's: the transport delay reported to the player is measured on it, so the
//! player's drift controller resamples to keep play time, exactly as for a speaker with its own clock, and the
//! output says it is not paced by the local clock. SDUs sent ahead to fill the controller's buffer do not play
//! earlier (a BIS takes SDUs first in first out, one per event), so the send-ahead is not part of the delay. When nothing can
//! be observed (the emulator returns buffers at once, a controller's buffer is too large) the output paces on
//! the local clock as before and says "no signal" in its counters.

use super::iso_pacing::{ControllerRate, IsoPacer, PacerState};
use super::iso_sink::{IsoSocket, SduSink};
use super::local_clocked::LocalClocked;
use super::paced_sender::PacedSender;
use super::{Output, OutputError, OutputStatus, OUTPUT_FORMAT};
use crate::bap::broadcast::{BroadcastConfig, ChannelLayout};
use crate::codec::lc3::Lc3Encoder;
use crate::timeline::LocalTime;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};

/// Audio kept queued ahead of sending: four SDU intervals.
const LEAD_NS: i64 = 40_000_000;
/// An SDU sent this late is still sent (the controller queues a few); later than this the clock restarts (a
/// restart shifts the whole broadcast later, so short stalls are better absorbed).
const LATE_TOLERANCE_NS: i64 = 60_000_000;

/// The acquired BIG handed over by the control side: one socket per BIS, in BIS order (left, right).
#[derive(Debug)]
pub struct BigLink {
    /// ISO sockets, one per BIS (one `send` = one SDU).
    pub fds: Vec<OwnedFd>,
    /// Write MTU per BIS (the configured SDU size).
    pub write_mtu: Vec<usize>,
}

/// What the control side and the real-time side share about one broadcast.
#[derive(Debug, Default)]
pub struct BigState {
    /// The current BIG, if every BIS is acquired.
    pub link: Option<Arc<BigLink>>,
    /// Bumped whenever `link` changes.
    pub generation: u64,
    /// Set by the real-time side when a socket failed: the control side sets the broadcast up again.
    pub failed: bool,
}

/// Shared between a [`BroadcastOutput`] and its control task.
pub type SharedBig = Arc<Mutex<BigState>>;

/// The shared state if nobody holds it now (a poisoned lock is taken as it is: the data stay valid).
fn try_shared(shared: &SharedBig) -> Option<MutexGuard<'_, BigState>> {
    match shared.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// Opens the sinks (one per BIS, in order) of an acquired BIG.
pub type SinkFactory = Box<dyn FnMut(&Arc<BigLink>) -> Vec<Box<dyn SduSink>> + Send>;

fn iso_sockets(link: &Arc<BigLink>) -> Vec<Box<dyn SduSink>> {
    (0..link.fds.len())
        .map(|i| Box::new(IsoSocket::new(link.clone(), i)) as Box<dyn SduSink>)
        .collect()
}

struct Active {
    generation: u64,
    /// Follows the controller's clock for this BIG.
    pacer: IsoPacer,
    interval_ns: i64,
    /// While following, the backlog is sampled once per interval at a random phase (sampled at our own send
    /// times, phase-locked to the controller, its quantisation would not average out); this is the next one.
    next_sample: LocalTime,
    rng: fastrand::Rng,
    encoders: Vec<Lc3Encoder>,
    /// Per-channel PCM not yet encoded (S16, one channel each).
    pcm: Vec<Vec<i16>>,
    /// Output frame index of the first sample in `pcm`.
    next_frame: u64,
}

/// An LE Audio broadcast (one BIG) as an output.
pub struct BroadcastOutput {
    name: String,
    config: BroadcastConfig,
    shared: SharedBig,
    clock: LocalClocked,
    active: Option<Active>,
    /// Sends one SDU per BIS per interval when due (one buffer per BIS socket).
    sender: PacedSender,
    seen_generation: u64,
    /// A BIS socket of this link generation failed, not yet told to the control task (its lock was held).
    failed_pending: Option<u64>,
    /// Ticks at which the shared state was held by the control task (the hand-over waited a tick).
    handoff_deferred: u64,
    open_sinks: SinkFactory,
    /// When `status` was last called (the counters' "now").
    last_status: Option<LocalTime>,
    /// Follow the controller's clock (off: pace on the local clock, for comparison).
    follow_controller: bool,
    encode_errors: u64,
}

impl BroadcastOutput {
    /// An output named `name` broadcasting `config`, fed BIGs through `shared`.
    pub fn new(name: &str, config: BroadcastConfig, shared: SharedBig) -> Self {
        let delay = Self::delay_ns(&config);
        let sender = PacedSender::new(name, "SDUs", "setting the broadcast up again", config.bis_count());
        Self {
            name: name.to_string(),
            config,
            shared,
            clock: LocalClocked::with_late_tolerance(LEAD_NS, delay, LATE_TOLERANCE_NS),
            active: None,
            sender,
            seen_generation: 0,
            failed_pending: None,
            handoff_deferred: 0,
            open_sinks: Box::new(iso_sockets),
            last_status: None,
            follow_controller: true,
            encode_errors: 0,
        }
    }

    /// Sends through `open` instead of the BIG's sockets (a simulated controller in tests).
    pub fn with_sinks(mut self, open: SinkFactory) -> Self {
        self.open_sinks = open;
        self
    }

    /// Paces on the local clock only, never following the controller's (the output as it was before; for
    /// comparison).
    pub fn without_clock_following(mut self) -> Self {
        self.follow_controller = false;
        self
    }

    /// When output frame `n` renders on the send schedule (for the simulation tests).
    #[cfg(test)]
    pub(crate) fn render_time(&self, n: u64) -> Option<LocalTime> {
        self.clock.render_time(n)
    }

    /// From sending an SDU until its first sample is heard: presentation delay + maximum transport latency +
    /// LC3's algorithmic delay.
    pub fn delay_ns(config: &BroadcastConfig) -> i64 {
        let p = config.preset;
        let lc3 = Self::encoder(config).map(|e| e.delay().as_nanos() as i64).unwrap_or(0);
        config.presentation_delay_us as i64 * 1_000 + p.max_transport_latency_ms as i64 * 1_000_000 + lc3
    }

    /// An encoder for one channel: the preset's stream (rate, frame duration) from the player's 48 kHz PCM, so
    /// frames and delay count 48 kHz samples whatever the preset's rate (the config checker refuses 44.1 kHz).
    fn encoder(config: &BroadcastConfig) -> Result<Lc3Encoder, crate::codec::lc3::Lc3Error> {
        let p = config.preset;
        Lc3Encoder::with_pcm_rate(p.frame_duration, p.sample_rate_hz, OUTPUT_FORMAT.rate_hz)
    }

    /// Tells the control task of a failed socket and takes up a new BIG, if the shared state is free; otherwise
    /// both wait for the next tick (the real-time side never waits for the control task's lock).
    fn sync_link(&mut self) {
        let Some(mut st) = try_shared(&self.shared) else {
            self.handoff_deferred += 1;
            return;
        };
        if let Some(g) = self.failed_pending.take() {
            if st.generation == g {
                st.failed = true;
            }
        }
        if st.generation == self.seen_generation {
            return;
        }
        self.seen_generation = st.generation;
        self.active = None;
        self.sender.detach();
        let Some(link) = st.link.clone() else { return };
        let p = self.config.preset;
        let n = self.config.bis_count();
        if link.fds.len() != n {
            tracing::error!(output = self.name, "BIG has {} BISes, want {n}", link.fds.len());
            return;
        }
        let encoders: Result<Vec<_>, _> = (0..n).map(|_| Self::encoder(&self.config)).collect();
        match encoders {
            Ok(encoders) => {
                tracing::info!(
                    output = self.name,
                    "broadcasting: preset {}, {n} BIS, {} Hz LC3 from {} Hz PCM (downsampling: {:?}), {} bytes per SDU \
                     every {} µs",
                    p.name,
                    p.sample_rate_hz,
                    OUTPUT_FORMAT.rate_hz,
                    encoders[0].downsampling(),
                    p.octets_per_frame,
                    p.sdu_interval_us
                );
                let interval_ns = p.sdu_interval_us as i64 * 1_000;
                let pacer = if self.follow_controller {
                    IsoPacer::new(interval_ns, n as u32)
                } else {
                    IsoPacer::off(interval_ns, n as u32)
                };
                self.sender
                    .attach((self.open_sinks)(&link), usize::from(p.octets_per_frame));
                let fs = encoders[0].frame_samples();
                self.active = Some(Active {
                    generation: st.generation,
                    pacer,
                    interval_ns,
                    next_sample: LocalTime::from_ns(i64::MIN),
                    rng: fastrand::Rng::with_seed(st.generation),
                    encoders,
                    pcm: vec![Vec::with_capacity(fs * 16); n],
                    next_frame: self.clock.written_frames(),
                });
            }
            Err(e) => tracing::error!(output = self.name, "cannot set up LC3: {e}"),
        }
    }

    /// Samples the kernel backlog and moves the schedule where the pacer says.
    fn pace(&mut self, now: LocalTime) {
        let (ahead_ns, ppm) = match &mut self.active {
            Some(a) => {
                if !a.pacer.following() || now >= a.next_sample {
                    let mut backlog = Some(0u32);
                    for s in self.sender.sinks_mut() {
                        backlog = backlog.zip(s.backlog_sdus()).map(|(x, y)| x + y);
                    }
                    a.pacer.sample(now, backlog);
                    let jitter = (a.rng.f64() * a.interval_ns as f64) as i64;
                    a.next_sample = now.add_ns(a.interval_ns / 2 + jitter);
                }
                // In steps of 0.01 ppm: the schedule re-anchors only when the rate really changes.
                (a.pacer.ahead_ns(), (a.pacer.pacing_ppm() * 100.0).round() / 100.0)
            }
            None => (0, 0.0),
        };
        self.clock.set_send_ahead_ns(ahead_ns);
        self.clock.set_rate_ppm(ppm);
    }

    fn flush_due(&mut self, now: LocalTime) {
        let Some(a) = &self.active else { return };
        let generation = a.generation;
        if self.sender.flush_due(&self.clock, now).is_err() {
            self.active = None;
            match try_shared(&self.shared) {
                Some(mut st) if st.generation == generation => st.failed = true,
                Some(_) => {}
                None => {
                    self.failed_pending = Some(generation);
                    self.handoff_deferred += 1;
                }
            }
        }
    }
}

impl Output for BroadcastOutput {
    fn kind(&self) -> &'static str {
        "broadcast"
    }

    fn poll(&mut self, now: LocalTime) {
        self.sync_link();
        self.last_status = Some(now);
        self.pace(now);
        self.flush_due(now);
    }

    fn status(&mut self, now: LocalTime) -> OutputStatus {
        self.clock.status(now)
    }

    fn write(&mut self, now: LocalTime, frames: &[i16]) -> Result<(), OutputError> {
        if let Some(a) = &mut self.active {
            let mono = self.config.layout == ChannelLayout::Mono;
            for f in frames.chunks_exact(2) {
                if mono {
                    a.pcm[0].push(((f[0] as i32 + f[1] as i32) / 2) as i16);
                } else {
                    a.pcm[0].push(f[0]);
                    a.pcm[1].push(f[1]);
                }
            }
            let fs = a.encoders[0].frame_samples();
            let octets = self.config.preset.octets_per_frame as usize;
            let mut off = 0;
            while a.pcm[0].len() - off >= fs {
                let n = a.encoders.len();
                let mut sdus = self.sender.take_buffers();
                debug_assert_eq!(sdus.len(), n);
                for ((enc, pcm), out) in a.encoders.iter_mut().zip(&a.pcm).zip(&mut sdus) {
                    out.resize(octets, 0);
                    if enc.encode(&pcm[off..off + fs], out).is_err() {
                        out.fill(0);
                        self.encode_errors += 1;
                    }
                }
                self.sender.queue(a.next_frame, sdus);
                a.next_frame += fs as u64;
                off += fs;
            }
            for pcm in &mut a.pcm {
                pcm.drain(..off);
            }
        }
        self.clock.wrote(frames);
        self.flush_due(now);
        Ok(())
    }

    fn paced_by_local_clock(&self) -> bool {
        !self.active.as_ref().is_some_and(|a| a.pacer.following())
    }

    fn take_markers(&mut self) -> Vec<LocalTime> {
        self.clock.take_markers()
    }

    fn linked(&self) -> bool {
        self.active.is_some()
    }

    fn wake_at(&self, now: LocalTime) -> Option<LocalTime> {
        let send = self.sender.wake_at(&self.clock, now);
        Some(match &self.active {
            Some(a) if a.pacer.following() => send.min(a.next_sample),
            _ => send,
        })
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let now = self.last_status.unwrap_or_default();
        let sent = self.sender.counts();
        let mut c = vec![
            ("sdus", sent.sent),
            ("dropped_sdus", sent.dropped),
            ("write_errors", sent.write_errors),
            ("encode_errors", self.encode_errors),
            ("streaming", self.active.is_some() as u64),
            ("handoff_deferred", self.handoff_deferred),
        ];
        // The controller's clock (see the module doc): SDUs waiting in the kernel (all BISes), SDUs per BIS sent
        // ahead, whether it is followed or cannot be observed, and its rate against ours in ppb (one of the two
        // is 0; counters are unsigned).
        let (state, backlog, ahead, rate) = match &self.active {
            Some(a) => (
                a.pacer.state(),
                a.pacer.last_backlog(),
                a.pacer.ahead_sdus(),
                a.pacer.controller_rate(now),
            ),
            None => (PacerState::Probing, None, 0, ControllerRate::NoSignal),
        };
        let ppb = match rate {
            ControllerRate::Ppm(p) => (p * 1000.0).round() as i64,
            ControllerRate::NoSignal => 0,
        };
        c.extend([
            ("iso_backlog_sdus", backlog.unwrap_or(0) as u64),
            ("iso_send_ahead_sdus", ahead as u64),
            ("controller_following", (state == PacerState::Following) as u64),
            ("controller_no_signal", (state == PacerState::NoSignal) as u64),
            ("controller_fast_ppb", ppb.max(0) as u64),
            ("controller_slow_ppb", (-ppb).max(0) as u64),
        ]);
        c
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
    use crate::bap::presets::Preset;
    use crate::codec::lc3::{Decoded, Lc3Decoder};
    use std::os::unix::net::UnixDatagram;

    fn big(n: usize) -> (SharedBig, Vec<UnixDatagram>) {
        let shared: SharedBig = Arc::default();
        let mut fds = Vec::new();
        let mut peers = Vec::new();
        for _ in 0..n {
            let (a, b) = UnixDatagram::pair().unwrap();
            b.set_nonblocking(true).unwrap();
            fds.push(OwnedFd::from(a));
            peers.push(b);
        }
        {
            let mut st = shared.lock().unwrap();
            st.link = Some(Arc::new(BigLink {
                fds,
                write_mtu: vec![100; n],
            }));
            st.generation = 1;
        }
        (shared, peers)
    }

    fn drain(s: &UnixDatagram) -> Vec<Vec<u8>> {
        let mut buf = [0u8; 512];
        let mut v = Vec::new();
        while let Ok(n) = s.recv(&mut buf) {
            v.push(buf[..n].to_vec());
        }
        v
    }

    /// Issue 17: while the control task holds the shared state, the real-time side's ticks go on (on a thread with
    /// a deadline: before, `poll` blocked on the held lock) and it takes up the BIG at the first tick after.
    #[test]
    fn the_real_time_side_goes_on_while_the_control_task_holds_the_lock() {
        let cfg = BroadcastConfig::new(Preset::by_name("48_2_1").unwrap(), ChannelLayout::Stereo);
        let (shared, peers) = big(2);
        let out = BroadcastOutput::new("b", cfg, shared.clone());
        let held = shared.lock().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            let mut out = out;
            for i in 0..10 {
                let now = LocalTime::from_ns(i * 10_000_000);
                poll_status(&mut out, now);
                out.write(now, &[0; 960]).unwrap();
            }
            tx.send(()).unwrap();
            out
        });
        rx.recv_timeout(std::time::Duration::from_secs(5))
            .expect("the output's ticks waited for the held lock");
        drop(held);
        let mut out = worker.join().unwrap();
        assert!(
            !out.linked() && out.handoff_deferred == 10,
            "not linked while the state was held"
        );
        poll_status(&mut out, LocalTime::from_ns(100_000_000));
        assert!(out.linked(), "the BIG is taken up at the first free tick");
        drop(peers);
    }

    #[test]
    fn stereo_sends_one_lc3_frame_per_bis_per_interval_when_due() {
        let cfg = BroadcastConfig::new(Preset::by_name("48_2_1").unwrap(), ChannelLayout::Stereo);
        let (shared, peers) = big(2);
        let mut out = BroadcastOutput::new("b", cfg.clone(), shared.clone());
        let st = poll_status(&mut out, LocalTime::from_ns(0));
        // 40 ms presentation delay + 20 ms max transport latency + 2.5 ms LC3 delay.
        assert_eq!(st.sink_reported_ns, Some(62_500_000));
        // Left: a 1 kHz tone; right: silence. 100 ms at once.
        let frames: Vec<i16> = (0..4800)
            .flat_map(|i| {
                let l = (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 48_000.0).sin()) as i16;
                [l, 0]
            })
            .collect();
        out.write(LocalTime::from_ns(0), &frames).unwrap();
        assert!(drain(&peers[0]).is_empty(), "nothing is due before the lead has passed");
        // Lead 40 ms: by 65 ms the SDUs starting at 0, 10, 20 ms are due.
        poll_status(&mut out, LocalTime::from_ns(65_000_000));
        let left = drain(&peers[0]);
        let right = drain(&peers[1]);
        assert_eq!((left.len(), right.len()), (3, 3));
        assert!(left.iter().chain(&right).all(|s| s.len() == 100));
        // The left BIS decodes to the tone, the right one to (near) silence.
        poll_status(&mut out, LocalTime::from_ns(200_000_000));
        let left: Vec<_> = left.into_iter().chain(drain(&peers[0])).collect();
        let right: Vec<_> = right.into_iter().chain(drain(&peers[1])).collect();
        assert_eq!(left.len(), 10);
        let energy = |sdus: &[Vec<u8>]| {
            let mut d = Lc3Decoder::new(cfg.preset.frame_duration, 48_000).unwrap();
            let mut pcm = vec![0i16; 480];
            let mut e = 0f64;
            for s in &sdus[2..] {
                d.decode(Some(s), &mut pcm).unwrap();
                e += pcm.iter().map(|&x| (x as f64).powi(2)).sum::<f64>();
            }
            (e / (480.0 * (sdus.len() - 2) as f64)).sqrt()
        };
        let (l, r) = (energy(&left), energy(&right));
        assert!(l > 4000.0 && r < 50.0, "left rms {l}, right rms {r}");
        assert_eq!(out.counters()[0], ("sdus", 20));
        drop(peers);
        out.write(LocalTime::from_ns(200_000_000), &frames).unwrap();
        poll_status(&mut out, LocalTime::from_ns(400_000_000));
        assert!(
            shared.lock().unwrap().failed,
            "a dead socket is reported to the control side"
        );
    }

    /// The stream of every codec rate bluebridge broadcasts, from its 48 kHz PCM: SDUs of the preset's size, one per
    /// BIS per frame of 48 kHz PCM, that a receiver's plain decoder at the preset's rate (as it reads the BASE)
    /// decodes to the tone that went in; the delay counts LC3's delay in time (2.5 / 4 ms) whatever the rate.
    #[test]
    fn lower_rate_presets_encode_the_48k_pcm_into_their_own_rate() {
        // (preset, SDUs from 240 ms of audio, delay ns = 40 ms presentation + latency + LC3); with liblc3 < 1.1.0
        // the encoder resamples by itself: its filter's delay more (see codec::lc3).
        let resampling = !crate::codec::lc3::library_downsampling_is_sound();
        let table = [
            ("8_1_1", 32, 40_000_000 + 8_000_000 + 4_000_000),
            ("16_2_1", 24, 40_000_000 + 10_000_000 + 2_500_000),
            ("24_1_1", 32, 40_000_000 + 8_000_000 + 4_000_000),
            ("24_2_1", 24, 40_000_000 + 10_000_000 + 2_500_000),
            ("32_2_2", 24, 40_000_000 + 60_000_000 + 2_500_000),
        ];
        for (name, want_sdus, want_delay) in table {
            // 16 samples at the codec rate, counted in whole 48 kHz samples.
            let rate = i64::from(Preset::by_name(name).unwrap().sample_rate_hz);
            let filter_ns = 16 * 48_000 / rate * 1_000_000_000 / 48_000;
            let want_delay = want_delay + if resampling { filter_ns } else { 0 };
            let preset = Preset::by_name(name).unwrap();
            let cfg = BroadcastConfig::new(preset, ChannelLayout::Stereo);
            let (shared, peers) = big(2);
            let mut out = BroadcastOutput::new("b", cfg, shared);
            let st = poll_status(&mut out, LocalTime::from_ns(0));
            assert_eq!(st.sink_reported_ns, Some(want_delay), "{name}");
            // Left: 1 kHz at -12 dBFS; right: silence. 240 ms = 11 520 frames of 48 kHz stereo.
            let frames: Vec<i16> = (0..11_520)
                .flat_map(|i| {
                    let l = 8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 48_000.0).sin();
                    [l as i16, 0]
                })
                .collect();
            out.write(LocalTime::from_ns(0), &frames).unwrap();
            poll_status(&mut out, LocalTime::from_ns(1_000_000_000));
            let (left, right) = (drain(&peers[0]), drain(&peers[1]));
            assert_eq!((left.len(), right.len()), (want_sdus, want_sdus), "{name}");
            let octets = usize::from(preset.octets_per_frame);
            assert!(left.iter().chain(&right).all(|s| s.len() == octets), "{name}");
            // A receiver decodes at the stream's rate: 1 kHz comes back, at the stream's rate.
            let decode = |sdus: &[Vec<u8>]| {
                let mut d = Lc3Decoder::new(preset.frame_duration, preset.sample_rate_hz).unwrap();
                let mut pcm = vec![0i16; d.frame_samples()];
                let mut all = Vec::new();
                for s in sdus {
                    assert_eq!(d.decode(Some(s), &mut pcm).unwrap(), Decoded::Frame, "{name}");
                    all.extend_from_slice(&pcm);
                }
                all
            };
            let (l, r) = (decode(&left), decode(&right));
            let frame = preset.frame_samples();
            assert_eq!(l.len(), want_sdus * frame, "{name}");
            let steady = &l[4 * frame..];
            let rms = |x: &[i16]| (x.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>() / x.len() as f64).sqrt();
            let rising = steady.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
            let hz = rising as f64 * f64::from(preset.sample_rate_hz) / steady.len() as f64;
            assert!((990.0..=1010.0).contains(&hz), "{name}: decoded {hz:.1} Hz, want 1 kHz");
            // 8000 peak = 5657 rms.
            assert!(
                (5000.0..6300.0).contains(&rms(steady)),
                "{name}: left rms {}",
                rms(steady)
            );
            assert!(rms(&r[4 * frame..]) < 50.0, "{name}: right rms {}", rms(&r));
        }
    }

    #[test]
    fn mono_mixes_into_one_bis() {
        let cfg = BroadcastConfig::new(Preset::by_name("48_1_1").unwrap(), ChannelLayout::Mono);
        let (shared, peers) = big(1);
        let mut out = BroadcastOutput::new("m", cfg, shared);
        poll_status(&mut out, LocalTime::from_ns(0));
        out.write(LocalTime::from_ns(0), &vec![1000i16; 3600 * 2]).unwrap();
        poll_status(&mut out, LocalTime::from_ns(200_000_000));
        let sdus = drain(&peers[0]);
        // 75 ms of 7.5 ms frames of 75 bytes.
        assert_eq!(sdus.len(), 10);
        assert!(sdus.iter().all(|s| s.len() == 75));
    }

    #[test]
    fn without_a_big_audio_is_consumed_and_dropped() {
        let cfg = BroadcastConfig::new(Preset::default_preset(), ChannelLayout::Stereo);
        let mut out = BroadcastOutput::new("x", cfg, Arc::default());
        let st = poll_status(&mut out, LocalTime::from_ns(0));
        assert_eq!(st.transport_ns, LEAD_NS);
        out.write(LocalTime::from_ns(0), &[0; 960]).unwrap();
        assert_eq!(out.counters()[4], ("streaming", 0));
    }
}
