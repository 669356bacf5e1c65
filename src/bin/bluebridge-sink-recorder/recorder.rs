//! A test A2DP **sink** that timestamps what arrives: the rig's proof that bluebridge hands each speaker its audio
//! at play time − the speaker's reported Delay (`bluebridge-sink-recorder`, used by the rig's `a2dp-timing`
//! scenario; not part of the service).
//!
//! It behaves like a speaker's firmware on top of BlueZ:
//! 1. registers an SBC **sink** endpoint (`org.bluez.MediaEndpoint1`, UUID `0000110b-…`, every SBC mode at 48 kHz,
//!    `DelayReporting=true`) on one adapter ([`register_a2dp_sink`]) and answers BlueZ's endpoint calls;
//! 2. when the source starts the configured stream (transport State `pending`) it acquires the transport
//!    (`TryAcquire`), then reports its Delay by writing `MediaTransport1.Delay` (1/10 ms; BlueZ ≥ 5.79 sends it to
//!    the source as an AVDTP DelayReport), and changes it on a schedule if asked ([`packets::DelayChange`]);
//! 3. stamps every packet on CLOCK_MONOTONIC as it arrives: the kernel's receive stamp (`SO_TIMESTAMPNS`, moved
//!    from CLOCK_REALTIME), or the time right after `recvmsg` when the kernel gives none; parses it (RTP + the SBC
//!    media payload header, [`packets::parse`]), decodes it (libsbc) and looks for the test signal's clicks in the
//!    left channel ([`ClickDetector`], sub-frame positions).
//!
//! Output: one JSON object per line (the "journal"):
//! - `{"event":"configured","transport":…,"configuration":"1115022f"}`, `{"event":"acquired",…,"read_mtu":…}`;
//! - `{"event":"delay","t_ns":…,"delay_ms":150.0,"ok":true}` each time a Delay is reported (`t_ns`: when BlueZ
//!   accepted it; on refusal `"ok":false` with BlueZ's error name);
//! - `{"event":"first_audio","t_ns":…}`;
//! - `{"event":"click","arrival_ns":…,"stream_ns":…,"queue_ms":…,"delay_ms":…,"pos_frames":…,"seq":…,…}` per
//!   click: its **arrival time** = the arrival of the packet that carried it + (its decoded position − the packet's
//!   first decoded frame) / 48 kHz, i.e. when a sink playing each packet on arrival would render it; its **stream
//!   time**, the same without the waits of packets in queues on the way ([`packets::Arrivals::stream_time_of`]:
//!   what a speaker playing from a buffer follows; `queue_ms` = arrival − stream time); and the Delay in force
//!   (a real speaker renders the click that much later). Clicks are written a window (1 s) after they are found;
//! - with `--packet-lines`, `{"event":"packet","seq":…,"rtp_ts":…,"first_frame":…,"frames":…,"arrival_ns":…}` per
//!   packet (for a closer look at the arrivals);
//! - `{"event":"end",…}` with the counters of [`Summary`] (packets, sequence gaps, lost packets, …);
//!
//! and, with `--wav`, the decoded audio (lost packets as silence) for `analyze_clicks.py`.
//! `scripts/rig.d/guest/analyze_timing.py` then compares every click's arrival with play time − Delay.
//!
//! The decoded position already includes SBC's whole algorithmic delay ([`SBC_DELAY_FRAMES`]: encoder + decoder),
//! which bluebridge sends ahead of time, so for correct timing the arrival is play time − Delay exactly.

use crate::packets::{self, delay_dms, split_frames, Arrivals, DelayChange, DelayHistory, PacketArrival, SeqTracker};
use crate::sbc_decode::SbcDecode;
use crate::sbc_frame::FrameHeader;
use bluebridge::a2dp::sbc_caps;
use bluebridge::bluez::media::{MediaBus, MediaError};
use bluebridge::bluez::media_endpoint::{register_a2dp_sink, EndpointEvent};
use bluebridge::bluez::media_transport;
use bluebridge::codec::sbc::{Sbc, SbcError, SBC_DELAY_FRAMES};
use bluebridge::report::{ClickDetector, CLICK_THRESHOLD};
use bluebridge::timeline::{Clock, SystemClock};
use serde::Serialize;
use serde_json::json;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The only rate the recorder decodes (bluebridge renders at 48 kHz).
pub const RATE_HZ: u32 = 48_000;
/// How often the control loop looks at the transport, the schedule and the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// How long a blocking receive waits before looking at the stop flag.
const RECV_TIMEOUT: Duration = Duration::from_millis(200);
/// A kernel stamp further than this from the time after `recvmsg` is not believed (the user stamp is used). The
/// rig's guest can leave the recorder unscheduled for a second under load; the kernel stamp is right then too.
const MAX_STAMP_AGE_NS: i64 = 10_000_000_000;
/// Longest stretch of lost audio filled with silence (longer jumps are left out of the WAV).
const MAX_SILENCE_FRAMES: u32 = RATE_HZ;
/// Frames of a quiet packet still fed to the click detector: more than it looks back before a crossing.
const DETECTOR_TAIL: usize = 16;
/// A frame whose [`FrameHeader::peak_estimate`] reaches this may hold a click (half the detector's threshold:
/// the test signal's tone alone estimates ≈ 4100, a click ≥ 16384).
const LOUD_ESTIMATE: u32 = (CLICK_THRESHOLD * 32768.0 * 0.5) as u32;
/// Blocks an SBC decoder must see before its synthesis filter has forgotten what came before (its history is
/// 10 blocks; twice that for margin).
const WARMUP_BLOCKS: usize = 20;

/// What to do.
#[derive(Debug, Clone)]
pub struct RecorderOptions {
    /// Adapter the sink endpoint is registered on, e.g. `hci2`.
    pub adapter: String,
    /// The Delay reported once the transport is acquired, ms.
    pub delay_ms: f64,
    /// Later Delay changes, counted from the first audio packet.
    pub changes: Vec<DelayChange>,
    /// How long to record from the first audio packet, s.
    pub seconds: f64,
    /// Where to write the decoded audio. Without it only the frames around clicks are decoded (see
    /// [`FrameHeader::peak_estimate`]): the same click positions for a fiftieth of the work, which matters under
    /// the rig's emulated CPU.
    pub wav: Option<PathBuf>,
    /// Half the window of a click's stream time ([`packets::Arrivals::stream_time_of`]): waits in queues shorter
    /// than this are told apart from the source's schedule.
    pub stream_window: Duration,
    /// Also write a `packet` line per packet (seq, RTP timestamp, first decoded frame, frames, arrival).
    pub packet_lines: bool,
    /// Sound what arrives through the mixer (`--sound-to`): (its socket, this sink's id, hidden latency ms).
    pub sound: Option<(PathBuf, u8, f64)>,
}

/// Why the recorder could not run.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// The adapter is not there.
    #[error("no adapter {adapter} in BlueZ (it has: {have})")]
    NoAdapter {
        /// The one asked for.
        adapter: String,
        /// The ones BlueZ has.
        have: String,
    },
    /// BlueZ serves no `org.bluez.Media1` on the adapter.
    #[error(
        "BlueZ offers no Media API on /org/bluez/{0} (no org.bluez.Media1: bluetoothd built without the audio \
         profiles, or the adapter has no BR/EDR)"
    )]
    NoMediaApi(String),
    /// Talking to BlueZ failed (the D-Bus error name is in it).
    #[error(transparent)]
    Media(#[from] MediaError),
    /// bluer (adapters) failed.
    #[error("BlueZ adapter access: {0}")]
    Bluer(#[from] bluer::Error),
    /// A file could not be written.
    #[error("{what}: {source}")]
    Io {
        /// What, naming the path.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// BlueZ dropped the endpoint (bluetoothd stopped).
    #[error("BlueZ released the sink endpoint (did bluetoothd stop?)")]
    Released,
}

/// Counters of a run (also the journal's `end` line).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Why the run ended.
    pub reason: String,
    /// Transports acquired.
    pub transports: u64,
    /// Media packets decoded.
    pub packets: u64,
    /// Packets that could not be parsed or decoded.
    pub bad_packets: u64,
    /// Places where the RTP sequence number jumped.
    pub seq_gaps: u64,
    /// Packets missing in those jumps.
    pub lost_packets: u64,
    /// Duplicate or out-of-order packets (dropped).
    pub late_packets: u64,
    /// Decoded audio, s (including silence for lost packets).
    pub decoded_s: f64,
    /// Clicks found.
    pub clicks: u64,
    /// Packets stamped by the kernel (the rest by the recorder after `recvmsg`).
    pub kernel_stamps: u64,
    /// Largest time from the kernel stamp to the recorder's own stamp, µs (how late the recorder woke up).
    pub wake_us_max: f64,
    /// Delay reports BlueZ accepted / refused.
    pub delay_reports: u64,
    /// Delay reports BlueZ refused.
    pub delay_refused: u64,
}

/// The JSON-lines output, shared by the control loop and the receiving thread.
pub struct Journal {
    out: Mutex<Box<dyn Write + Send>>,
}

impl Journal {
    /// Lines go to `out` (flushed after each).
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self { out: Mutex::new(out) }
    }

    fn event(&self, v: serde_json::Value) {
        let mut out = self.out.lock().expect("journal lock");
        if writeln!(out, "{v}").and_then(|_| out.flush()).is_err() {
            tracing::warn!("cannot write the journal");
        }
    }
}

/// What the control loop and the receiving thread share.
struct Shared {
    delays: Mutex<DelayHistory>,
    /// Arrival of the first audio packet, ns (i64::MIN: none yet).
    first_audio_ns: AtomicI64,
    journal: Arc<Journal>,
}

fn mono_ns() -> i64 {
    SystemClock.now().as_ns()
}

fn realtime_ns() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// Whether BlueZ serves `org.bluez.Media1` on the adapter.
async fn has_media_api(bus: &MediaBus, adapter: &str) -> Result<bool, MediaError> {
    let (xml,): (String,) = bus
        .bluez_proxy(format!("/org/bluez/{adapter}"))
        .method_call("org.freedesktop.DBus.Introspectable", "Introspect", ())
        .await
        .map_err(MediaError::dbus(format!("introspecting /org/bluez/{adapter}")))?;
    Ok(xml.contains("\"org.bluez.Media1\""))
}

/// Runs the recorder until `opts.seconds` of audio were recorded or `stop` is set; writes the journal to
/// `journal`. Errors only for what prevents recording at all (no adapter, no Media API, no bus).
pub async fn run(
    opts: RecorderOptions,
    journal: Arc<Journal>,
    stop: Arc<AtomicBool>,
) -> Result<Summary, RecorderError> {
    let session = bluer::Session::new().await?;
    let names = session.adapter_names().await?;
    if !names.contains(&opts.adapter) {
        return Err(RecorderError::NoAdapter {
            adapter: opts.adapter.clone(),
            have: if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            },
        });
    }
    let adapter = session.adapter(&opts.adapter)?;
    if !adapter.is_powered().await? {
        adapter.set_powered(true).await?;
    }
    let bus = MediaBus::connect()?;
    if !has_media_api(&bus, &opts.adapter).await? {
        return Err(RecorderError::NoMediaApi(opts.adapter.clone()));
    }
    let mut endpoint = register_a2dp_sink(&bus, &opts.adapter).await?;
    tracing::info!(
        "sink recorder on {}: waiting for a source; will report Delay {} ms, then {:?}, and record {} s",
        opts.adapter,
        opts.delay_ms,
        opts.changes
            .iter()
            .map(|c| (c.after.as_secs_f64(), c.delay_ms))
            .collect::<Vec<_>>(),
        opts.seconds
    );
    let shared = Arc::new(Shared {
        delays: Mutex::new(DelayHistory::default()),
        first_audio_ns: AtomicI64::new(i64::MIN),
        journal: journal.clone(),
    });
    let mut changes = opts.changes.clone();
    changes.sort_by_key(|c| c.after);
    let mut next_change = 0;
    let mut recording = Some(Recording::new(opts.wav.clone(), opts.stream_window));
    if let Some(r) = &mut recording {
        r.packet_lines = opts.packet_lines;
        if let Some((to, id, latency_ms)) = &opts.sound {
            r.speaker = Some(
                crate::sound::Speaker::new(to, *id, *latency_ms).map_err(|e| RecorderError::Io {
                    what: "--sound-to".into(),
                    source: std::io::Error::other(e.to_string()),
                })?,
            );
            r.decode_all = true;
        }
    }
    let mut configured: Option<(String, [u8; 4])> = None;
    let mut receiver: Option<Receiver> = None;
    let mut summary = Summary::default();
    let mut tick = tokio::time::interval(POLL);
    let ended: Result<String, RecorderError> = loop {
        tokio::select! {
            ev = endpoint.events.recv() => match ev {
                Some(EndpointEvent::SetConfiguration { transport, configuration, delay, .. }) => {
                    shared.journal.event(json!({"event": "configured", "transport": transport,
                        "configuration": hex(&configuration), "delay_dms": delay}));
                    match <[u8; 4]>::try_from(configuration.as_slice()) {
                        Ok(c) => configured = Some((transport, c)),
                        Err(_) => tracing::error!("configuration {configuration:02x?} is not 4 bytes"),
                    }
                }
                Some(EndpointEvent::ClearConfiguration { transport }) => {
                    tracing::info!("BlueZ cleared {transport}");
                    shared.journal.event(json!({"event": "cleared", "transport": transport}));
                    if configured.as_ref().is_some_and(|c| c.0 == transport) {
                        configured = None;
                    }
                }
                Some(EndpointEvent::Released) | None => break Err(RecorderError::Released),
            },
            _ = tick.tick() => {
                if stop.load(Ordering::SeqCst) {
                    break Ok("stopped by a signal".into());
                }
                let now = mono_ns();
                let first = shared.first_audio_ns.load(Ordering::SeqCst);
                if first != i64::MIN && now >= first + (opts.seconds * 1e9) as i64 {
                    break Ok(format!("recorded {} s", opts.seconds));
                }
                if receiver.as_ref().is_some_and(|r| r.thread.is_finished()) {
                    let r = receiver.take().expect("checked");
                    let (rec, why) = r.thread.join().expect("receiver thread panicked");
                    tracing::warn!("stream on {} ended: {why}", r.transport);
                    shared.journal.event(json!({"event": "stream_end", "transport": r.transport, "reason": why}));
                    recording = Some(rec);
                }
                if receiver.is_none() {
                    if let Some((transport, conf)) = configured.clone() {
                        if media_transport::state(&bus, &transport).await.as_deref() == Some("pending") {
                            match start_receiving(&bus, &transport, conf, &mut recording, &shared).await {
                                Ok(r) => {
                                    summary.transports += 1;
                                    receiver = Some(r);
                                    report_delay(&bus, &transport, opts.delay_ms, &shared, &mut summary).await;
                                }
                                Err(e) => tracing::warn!("cannot acquire {transport}: {e}"),
                            }
                        }
                    }
                }
                if let (Some(r), true) = (&receiver, first != i64::MIN) {
                    while next_change < changes.len()
                        && now >= first + changes[next_change].after.as_nanos() as i64
                    {
                        let c = changes[next_change];
                        next_change += 1;
                        report_delay(&bus, &r.transport, c.delay_ms, &shared, &mut summary).await;
                    }
                }
            }
        }
    };
    let active = receiver.as_ref().map(|r| r.transport.clone());
    if let Some(r) = receiver.take() {
        r.stop.store(true, Ordering::SeqCst);
        let (rec, _) = tokio::task::spawn_blocking(move || r.thread.join().expect("receiver thread panicked"))
            .await
            .expect("join task");
        recording = Some(rec);
    }
    let rec = recording.expect("the recording is back from its thread");
    let reason = match &ended {
        Ok(r) => r.clone(),
        Err(e) => e.to_string(),
    };
    let summary = rec.finish(summary, reason)?;
    shared.journal.event(json!(dict_of(&summary, "end")));
    if let Some(t) = active {
        if let Err(e) = media_transport::release(&bus, &t).await {
            tracing::debug!("{e}");
        }
    }
    drop(endpoint);
    ended.map(|_| summary)
}

fn dict_of(s: &Summary, event: &str) -> serde_json::Value {
    let mut v = serde_json::to_value(s).expect("a summary serialises");
    v["event"] = json!(event);
    v
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Reports `ms` as the transport's Delay and records when it took effect (or why BlueZ refused it).
async fn report_delay(bus: &MediaBus, transport: &str, ms: f64, shared: &Shared, summary: &mut Summary) {
    let dms = delay_dms(ms).expect("validated when parsed");
    match media_transport::set_delay(bus, transport, dms).await {
        Ok(()) => {
            let t = mono_ns();
            let ms = dms as f64 / 10.0;
            shared.delays.lock().expect("delays lock").set(t, ms);
            summary.delay_reports += 1;
            tracing::info!("reported Delay {ms} ms ({dms} × 1/10 ms) on {transport}");
            shared
                .journal
                .event(json!({"event": "delay", "t_ns": t, "delay_ms": ms, "ok": true}));
        }
        Err(e) => {
            let t = mono_ns();
            summary.delay_refused += 1;
            let name = e.name().unwrap_or("(no D-Bus error name)").to_string();
            tracing::error!("BlueZ refused the Delay report: {name}: {e}");
            // What BlueZ has now is what the source sees.
            let now_dms = media_transport::delay(bus, transport).await;
            if let Some(d) = now_dms {
                shared.delays.lock().expect("delays lock").set(t, d as f64 / 10.0);
            }
            shared.journal.event(
                json!({"event": "delay", "t_ns": t, "delay_ms": now_dms.map(|d| d as f64 / 10.0),
                "requested_ms": ms, "ok": false, "error": name, "message": e.to_string()}),
            );
        }
    }
}

struct Receiver {
    transport: String,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Recording, String)>,
}

async fn start_receiving(
    bus: &MediaBus,
    transport: &str,
    conf: [u8; 4],
    recording: &mut Option<Recording>,
    shared: &Arc<Shared>,
) -> Result<Receiver, RecorderError> {
    sbc_caps::check(&conf).map_err(|e| MediaError::Protocol(format!("configuration {conf:02x?}: {e}")))?;
    let acquired = media_transport::acquire(bus, transport).await?;
    tracing::info!("acquired {transport} (read MTU {}, SBC {conf:02x?})", acquired.read_mtu);
    shared
        .journal
        .event(json!({"event": "acquired", "transport": transport, "t_ns": mono_ns(),
        "read_mtu": acquired.read_mtu, "configuration": hex(&conf)}));
    let mut rec = recording.take().expect("no receiver is running");
    if let Err(e) = rec.open(sbc_caps::channels(&conf)) {
        *recording = Some(rec);
        return Err(e);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (stop2, shared2) = (stop.clone(), shared.clone());
    let mtu = acquired.read_mtu as usize;
    let thread = std::thread::Builder::new()
        .name("sink recv".into())
        .spawn(move || receive(acquired.fd, mtu, conf, rec, &shared2, &stop2))
        .map_err(|source| RecorderError::Io {
            what: "starting the receiving thread".into(),
            source,
        })?;
    Ok(Receiver {
        transport: transport.to_string(),
        stop,
        thread,
    })
}

/// The audio side of a run, kept across transports.
struct Recording {
    wav_path: Option<PathBuf>,
    wav: Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>,
    /// Channels of the recording (of the first stream).
    channels: usize,
    /// Channels of the current stream.
    stream_channels: usize,
    detector: ClickDetector,
    /// The last packet had a sample near the click threshold (a click may continue into this one).
    was_loud: bool,
    /// Decode every frame (a WAV is written); else only the frames around loud ones.
    decode_all: bool,
    /// Clicks found whose stream time waits for the packets after them: (position, its packet, its arrival).
    pending_clicks: Vec<(f64, PacketArrival, i64, Option<i64>)>,
    /// `--sound-to`: the sink as a loudspeaker into the mixer.
    speaker: Option<crate::sound::Speaker>,
    /// Sparse decoding: the decoder's state is continuous up to the last frame (it was decoded).
    warm: bool,
    /// Sparse decoding: the last frame was loud, so the next one is decoded too (a click's tail).
    tail: bool,
    /// Sparse decoding: the last frames not decoded (first decoded frame, bytes), to warm the decoder up and give
    /// the detector its look-back when a loud frame comes.
    kept: std::collections::VecDeque<(u64, Vec<u8>)>,
    /// Scratch for decoded bytes.
    bytes: Vec<u8>,
    /// Write a journal line per packet.
    packet_lines: bool,
    found: Vec<f64>,
    arrivals: Arrivals,
    seq: SeqTracker,
    /// RTP timestamp the next packet should carry.
    next_timestamp: Option<u32>,
    decoded_frames: u64,
    pcm: Vec<i16>,
    packets: u64,
    bad_packets: u64,
    clicks: u64,
    kernel_stamps: u64,
    wake_ns_max: i64,
    error: Option<RecorderError>,
}

impl Recording {
    fn new(wav_path: Option<PathBuf>, stream_window: Duration) -> Self {
        Self {
            decode_all: wav_path.is_some(),
            wav_path,
            wav: None,
            channels: 0,
            stream_channels: 1,
            detector: ClickDetector::new(),
            was_loud: false,
            pending_clicks: vec![],
            speaker: None,
            warm: false,
            tail: false,
            kept: Default::default(),
            bytes: vec![],
            packet_lines: false,
            found: vec![],
            arrivals: Arrivals::new(RATE_HZ, stream_window),
            seq: SeqTracker::default(),
            next_timestamp: None,
            decoded_frames: 0,
            pcm: vec![],
            packets: 0,
            bad_packets: 0,
            clicks: 0,
            kernel_stamps: 0,
            wake_ns_max: 0,
            error: None,
        }
    }

    /// Prepares for a transport of `channels` channels (the WAV file is created by the first one).
    fn open(&mut self, channels: usize) -> Result<(), RecorderError> {
        if self.channels != 0 && self.channels != channels {
            tracing::warn!(
                "this stream has {channels} channels, the recording {}; its audio is mapped",
                self.channels
            );
        }
        if self.channels == 0 {
            self.channels = channels;
        }
        self.stream_channels = channels;
        if let (Some(path), None) = (&self.wav_path, &self.wav) {
            let spec = hound::WavSpec {
                channels: self.channels as u16,
                sample_rate: RATE_HZ,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            self.wav = Some(hound::WavWriter::create(path, spec).map_err(|e| RecorderError::Io {
                what: format!("creating {}", path.display()),
                source: std::io::Error::other(e),
            })?);
        }
        self.seq.restart();
        if let Some(sp) = &mut self.speaker {
            sp.restart();
        }
        self.next_timestamp = None;
        self.forget_decoder_state();
        Ok(())
    }

    fn write_wav(&mut self, frames: &[i16], from_channels: usize) {
        let Some(w) = &mut self.wav else { return };
        let mut ok = true;
        for f in frames.chunks_exact(from_channels) {
            for c in 0..self.channels {
                ok &= w.write_sample(f[c.min(from_channels - 1)]).is_ok();
            }
        }
        if !ok && self.error.is_none() {
            self.error = Some(RecorderError::Io {
                what: "writing the WAV file".into(),
                source: std::io::Error::other("write failed"),
            });
        }
    }

    /// Silence for `frames` lost frames: keeps the WAV and the positions on the sink's timeline.
    fn silence(&mut self, frames: u32) {
        let zeros = vec![0i16; frames as usize * self.channels];
        self.write_wav(&zeros, self.channels);
        let fed = if self.was_loud {
            frames as usize
        } else {
            (frames as usize).min(DETECTOR_TAIL)
        };
        self.was_loud = false;
        self.forget_decoder_state();
        self.detector.push(
            self.decoded_frames + (frames as usize - fed) as u64,
            std::iter::repeat_n(0.0, fed),
            &mut self.found,
        );
        self.decoded_frames += frames as u64;
    }

    /// One packet received at `arrival_ns` (`user_ns`: the recorder's own stamp, `kernel`: whether the arrival
    /// is the kernel's).
    fn packet(&mut self, data: &[u8], arrival_ns: i64, user_ns: i64, kernel: bool, sbc: &mut Sbc, shared: &Shared) {
        let m = match packets::parse(data) {
            Ok(m) => m,
            Err(e) => {
                self.bad_packets += 1;
                if self.bad_packets.is_power_of_two() {
                    tracing::warn!("bad packet ({e}); {} so far", self.bad_packets);
                }
                return;
            }
        };
        let Some(missing) = self.seq.push(m.seq) else {
            return;
        };
        if missing > 0 {
            let gap = self.next_timestamp.map(|t| m.timestamp.wrapping_sub(t)).unwrap_or(0);
            tracing::warn!("{missing} packets lost before seq {} ({gap} frames)", m.seq);
            if gap <= MAX_SILENCE_FRAMES {
                self.silence(gap);
            }
        }
        let Some(frames_of) = split_frames(m.sbc, m.frames as usize) else {
            self.bad_packets += 1;
            if self.bad_packets.is_power_of_two() {
                tracing::warn!(
                    "packet seq {} does not hold {} SBC frames; {} so far",
                    m.seq,
                    m.frames,
                    self.bad_packets
                );
            }
            return;
        };
        let frames: u32 = frames_of.iter().map(|(h, _)| h.pcm_frames() as u32).sum();
        self.next_timestamp = Some(m.timestamp.wrapping_add(frames));
        if shared
            .first_audio_ns
            .compare_exchange(i64::MIN, arrival_ns, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            shared
                .journal
                .event(json!({"event": "first_audio", "t_ns": arrival_ns, "seq": m.seq}));
        }
        self.arrivals.push(PacketArrival {
            index: self.packets,
            seq: m.seq,
            first_frame: self.decoded_frames,
            frames,
            arrival_ns,
            kernel_stamp: kernel,
            wake_ns: user_ns - arrival_ns,
        });
        if self.packet_lines {
            shared.journal.event(
                json!({"event": "packet", "seq": m.seq, "rtp_ts": m.timestamp, "frames": frames,
                "first_frame": self.decoded_frames, "arrival_ns": arrival_ns, "kernel": kernel}),
            );
        }
        self.packets += 1;
        if kernel {
            self.kernel_stamps += 1;
            self.wake_ns_max = self.wake_ns_max.max(user_ns - arrival_ns);
        }
        let ok = if self.decode_all {
            self.decode_every_frame(m.sbc, m.frames as usize, frames, sbc)
        } else {
            self.decode_loud_frames(&frames_of, sbc)
        };
        if let Err(e) = ok {
            self.forget_decoder_state();
            self.bad_packets += 1;
            if self.bad_packets.is_power_of_two() {
                tracing::warn!("undecodable packet seq {} ({e}); {} so far", m.seq, self.bad_packets);
            }
        }
        if let Some(sp) = &mut self.speaker {
            sp.play(self.decoded_frames, arrival_ns, &self.pcm, self.stream_channels);
        }
        self.decoded_frames += frames as u64;
        for pos in std::mem::take(&mut self.found) {
            let sound = self.speaker.as_ref().and_then(|sp| sp.sound_ns(pos));
            match self.arrivals.time_of(pos) {
                Some((p, t)) => self.pending_clicks.push((pos, p, t, sound)),
                None => tracing::debug!("click at frame {pos:.2} fell in lost audio"),
            }
        }
        self.flush_clicks(shared, false);
    }

    /// Writes the clicks whose stream-time window (the packets up to its half width after them) has arrived, or
    /// all of them (`all`: the stream ended).
    fn flush_clicks(&mut self, shared: &Shared, all: bool) {
        let newest = self.arrivals.newest_frame().unwrap_or(0) as f64;
        while let Some(&(pos, p, t, sound)) = self.pending_clicks.first() {
            if !all && newest < pos + self.arrivals.window_frames() as f64 {
                break;
            }
            self.pending_clicks.remove(0);
            self.clicks += 1;
            let delay = shared.delays.lock().expect("delays lock").at(t);
            let stream = self.arrivals.stream_time_of(pos).unwrap_or(t);
            shared
                .journal
                .event(json!({"event": "click", "k": self.clicks - 1, "arrival_ns": t,
                "stream_ns": stream, "queue_ms": (t - stream) as f64 / 1e6, "delay_ms": delay,
                "pos_frames": pos, "seq": p.seq, "packet": p.index, "packet_arrival_ns": p.arrival_ns,
                "packet_first_frame": p.first_frame, "stamp": if p.kernel_stamp { "kernel" } else { "user" },
                "wake_us": p.wake_ns as f64 / 1e3, "codec_delay_frames": SBC_DELAY_FRAMES, "sound_ns": sound}));
        }
    }

    /// Decodes the whole payload (`frames` PCM frames) into the WAV file and the click detector.
    fn decode_every_frame(&mut self, payload: &[u8], count: usize, frames: u32, sbc: &mut Sbc) -> Result<(), SbcError> {
        let mut pcm = std::mem::take(&mut self.pcm);
        pcm.clear();
        let ok = sbc.decode_frames(payload, count, &mut pcm);
        let ch = self.stream_channels;
        // Lost or broken audio stays silence of the right length, so later positions keep their place.
        pcm.resize(frames as usize * ch, 0);
        self.write_wav(&pcm, ch);
        // Under the rig's emulated CPU floating point is slow: a packet with no sample near the click threshold
        // (and no click begun in the previous one) only feeds the detector's look-back.
        let loud = pcm
            .chunks_exact(ch)
            .any(|f| f[0].unsigned_abs() as f32 > CLICK_THRESHOLD * 32768.0 * 0.9);
        let skip = if loud || self.was_loud {
            0
        } else {
            (frames as usize).saturating_sub(DETECTOR_TAIL)
        };
        self.was_loud = loud;
        self.detector.push(
            self.decoded_frames + skip as u64,
            pcm.chunks_exact(ch).skip(skip).map(|f| f[0] as f32 / 32768.0),
            &mut self.found,
        );
        self.pcm = pcm;
        ok.map(|_| ())
    }

    /// Decodes only the frames that may hold a click ([`FrameHeader::peak_estimate`] ≥ [`LOUD_ESTIMATE`]), the
    /// frame after each (its tail) and the one before (the detector's look-back), after warming the decoder up on
    /// the frames before that: positions come out exactly as with [`decode_every_frame`](Self::decode_every_frame).
    fn decode_loud_frames(&mut self, frames_of: &[(FrameHeader, &[u8])], sbc: &mut Sbc) -> Result<(), SbcError> {
        let mut first = self.decoded_frames;
        for (h, frame) in frames_of {
            let loud = h.peak_estimate(frame).is_some_and(|p| p >= LOUD_ESTIMATE);
            if loud || self.tail {
                if !self.warm {
                    let kept = std::mem::take(&mut self.kept);
                    for (i, (at, bytes)) in kept.iter().enumerate() {
                        // All but the last only warm the decoder up; the last is the look-back.
                        self.decode_into_detector(bytes, (i + 1 == kept.len()).then_some(*at), sbc)?;
                    }
                }
                self.decode_into_detector(frame, Some(first), sbc)?;
                self.warm = true;
                self.tail = loud;
            } else {
                self.warm = false;
                self.tail = false;
                self.kept.push_back((first, frame.to_vec()));
                if self.kept.len() > WARMUP_BLOCKS.div_ceil(h.blocks) + 1 {
                    self.kept.pop_front();
                }
            }
            if self.warm {
                self.kept.clear();
            }
            first += h.pcm_frames() as u64;
        }
        Ok(())
    }

    /// Decodes one frame; feeds its left channel to the detector as frames `at…` (None: decode only).
    fn decode_into_detector(&mut self, frame: &[u8], at: Option<u64>, sbc: &mut Sbc) -> Result<(), SbcError> {
        self.bytes.clear();
        sbc.decode_frame(frame, &mut self.bytes)?;
        if let Some(at) = at {
            let step = 2 * self.stream_channels;
            self.detector.push(
                at,
                self.bytes
                    .chunks_exact(step)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0),
                &mut self.found,
            );
        }
        Ok(())
    }

    /// The decoder's past is unknown from here on (a new stream, lost audio).
    fn forget_decoder_state(&mut self) {
        self.warm = false;
        self.tail = false;
        self.kept.clear();
    }

    fn finish(mut self, mut s: Summary, reason: String) -> Result<Summary, RecorderError> {
        if let Some(w) = self.wav.take() {
            w.finalize().map_err(|e| RecorderError::Io {
                what: "finishing the WAV file".into(),
                source: std::io::Error::other(e),
            })?;
        }
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        s.reason = reason;
        s.packets = self.packets;
        s.bad_packets = self.bad_packets;
        s.seq_gaps = self.seq.gaps;
        s.lost_packets = self.seq.lost;
        s.late_packets = self.seq.late;
        s.decoded_s = self.decoded_frames as f64 / RATE_HZ as f64;
        s.clicks = self.clicks;
        s.kernel_stamps = self.kernel_stamps;
        s.wake_us_max = self.wake_ns_max as f64 / 1e3;
        Ok(s)
    }
}

/// Sets an integer socket option; false if the kernel refused.
fn setsockopt_int(fd: &OwnedFd, level: i32, name: i32, value: i32) -> bool {
    // SAFETY: a valid fd and a pointer to an int of the size passed.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        ) == 0
    }
}

/// One `recvmsg`: the packet's length and the kernel's CLOCK_REALTIME receive stamp if it gave one; None on a
/// receive timeout.
fn recv_stamped(fd: &OwnedFd, buf: &mut [u8]) -> std::io::Result<Option<(usize, Option<i64>)>> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut control = [0u64; 16]; // aligned room for one timespec control message
                                  // SAFETY: zeroed msghdr is a valid initial value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points at buffers valid for their lengths for the duration of the call.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, 0) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        };
    }
    let mut stamp = None;
    // SAFETY: walking the control messages the kernel wrote into `control`, with the libc macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                let ns = ts.tv_sec * 1_000_000_000 + ts.tv_nsec;
                if ns > 0 {
                    stamp = Some(ns);
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(Some((n as usize, stamp)))
}

/// The receiving thread: packets from `fd` into `rec` until the stream ends or `stop` is set.
fn receive(
    fd: OwnedFd,
    read_mtu: usize,
    conf: [u8; 4],
    mut rec: Recording,
    shared: &Shared,
    stop: &AtomicBool,
) -> (Recording, String) {
    let mut sbc = match Sbc::new_a2dp(&conf) {
        Ok(s) => s,
        Err(e) => return (rec, format!("cannot decode {conf:02x?}: {e}")),
    };
    if !setsockopt_int(&fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1) {
        tracing::warn!("no kernel receive stamps (SO_TIMESTAMPNS refused); stamping after recvmsg");
    }
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: RECV_TIMEOUT.as_micros() as libc::suseconds_t,
    };
    // SAFETY: a valid fd and timeval.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
    }
    let mut buf = vec![0u8; read_mtu.clamp(1024, 65_535)];
    let mut clocks = packets::ClockOffset::default();
    let why = loop {
        if stop.load(Ordering::SeqCst) {
            break "stopped".to_string();
        }
        match recv_stamped(&fd, &mut buf) {
            Ok(None) => continue,
            Ok(Some((0, _))) => break "the transport socket closed".into(),
            Ok(Some((n, stamp))) => {
                let (real_before, mono, real_after) = (realtime_ns(), mono_ns(), realtime_ns());
                clocks.update(real_before, mono, real_after);
                let kernel = stamp
                    .and_then(|s| clocks.to_monotonic(s))
                    .filter(|k| (0..MAX_STAMP_AGE_NS).contains(&(mono - k)));
                rec.packet(
                    &buf[..n],
                    kernel.unwrap_or(mono),
                    mono,
                    kernel.is_some(),
                    &mut sbc,
                    shared,
                );
            }
            Err(e) => break format!("receive failed: {e}"),
        }
    };
    rec.flush_clicks(shared, true);
    (rec, why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bluebridge::a2dp::rtp::RtpPacketizer;
    use bluebridge::source::tone::{TestSignal, CLICK_OFFSET_FRAMES};

    const CONF: [u8; 4] = [0x11, 0x15, 2, 51];

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn shared(out: &Buf, delay_ms: f64) -> Shared {
        let s = Shared {
            delays: Mutex::new(DelayHistory::default()),
            first_audio_ns: AtomicI64::new(i64::MIN),
            journal: Arc::new(Journal::new(Box::new(out.clone()))),
        };
        s.delays.lock().unwrap().set(0, delay_ms);
        s
    }

    /// The test signal from source frame `start` on, as A2DP packets of `per_packet` SBC frames (seq from 65530):
    /// (packet, its first source frame).
    fn packets(start: u64, n_packets: usize, per_packet: usize) -> Vec<(Vec<u8>, u64)> {
        let signal = TestSignal::standard();
        let mut enc = Sbc::new_a2dp(&CONF).unwrap();
        let mut rtp = RtpPacketizer::new(65_530, 0, 1);
        (0..n_packets)
            .map(|p| {
                let first = start + (p * per_packet * 128) as u64;
                let mut frames = vec![];
                for f in 0..per_packet as u64 {
                    let pcm: Vec<u8> = (first + f * 128..first + f * 128 + 128)
                        .flat_map(|n| {
                            let v = ((signal.sample(n) * 32767.0).round() as i16).to_le_bytes();
                            [v, v].concat()
                        })
                        .collect();
                    enc.encode_frame(&pcm, &mut frames).unwrap();
                }
                let mut pkt = vec![];
                rtp.packet(&frames, per_packet, 128, &mut pkt);
                (pkt, first)
            })
            .collect()
    }

    fn clicks(out: &Buf) -> Vec<serde_json::Value> {
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|v| v["event"] == "click")
            .collect()
    }

    /// bluebridge's timing, end to end through the recorder's arithmetic: a source sends each packet when its
    /// first frame is due, i.e. at play time − (Delay + SBC codec delay); the recorder, decoding and timing each
    /// click from its packet's arrival, must see every click arrive at play time − Delay (the decoder adds back
    /// the codec delay the source sent ahead), here to within 0.05 ms, also after a lost packet; with a WAV
    /// (every frame decoded) and without (only the frames around clicks).
    #[test]
    fn clicks_arrive_at_play_time_minus_the_delay() {
        let (buffer_ns, delay_ms, transit_ns) = (300_000_000i64, 150.0, 1_000_000i64);
        let origin = 5_000_000_000i64; // CLOCK_MONOTONIC of source frame 0
        let play = |n: f64| origin + buffer_ns + (n * 1e9 / 48_000.0).round() as i64;
        let codec_ns = packets::frames_to_ns(SBC_DELAY_FRAMES as f64, RATE_HZ);
        let pkts = packets(0, 3 * 48_000 / 896, 7);
        let wav = std::env::temp_dir().join(format!("bluebridge-recorder-test-{}.wav", std::process::id()));
        for path in [None, Some(wav.clone())] {
            let out = Buf::default();
            let shared = shared(&out, delay_ms);
            let mut rec = Recording::new(path.clone(), packets::STREAM_WINDOW);
            rec.open(2).unwrap();
            let mut dec = Sbc::new_a2dp(&CONF).unwrap();
            for (i, (pkt, first)) in pkts.iter().enumerate() {
                if i == 100 {
                    continue; // lost on the way (frames 89600..90496, no click in it)
                }
                let sent = play(*first as f64) - (delay_ms * 1e6) as i64 - codec_ns;
                rec.packet(
                    pkt,
                    sent + transit_ns,
                    sent + transit_ns + 50_000,
                    true,
                    &mut dec,
                    &shared,
                );
            }
            rec.flush_clicks(&shared, true);
            let clicks = clicks(&out);
            assert_eq!(clicks.len(), 3, "wav {path:?}");
            for (k, c) in clicks.iter().enumerate() {
                let want =
                    play((k as u64 * 48_000 + CLICK_OFFSET_FRAMES) as f64) - (delay_ms * 1e6) as i64 + transit_ns;
                let got = c["arrival_ns"].as_i64().unwrap();
                assert!((got - want).abs() < 50_000, "click {k}: {} µs off", (got - want) / 1000);
                assert_eq!(
                    (c["delay_ms"].as_f64(), c["stamp"].as_str()),
                    (Some(150.0), Some("kernel"))
                );
                assert_eq!(c["wake_us"], 50.0);
                assert!(c["queue_ms"].as_f64().unwrap().abs() < 0.05, "no packet waited: {c}");
            }
            // The lost packet is counted and its audio became silence, so the timeline kept its length.
            assert_eq!(
                (rec.packets, rec.seq.gaps, rec.seq.lost, rec.bad_packets),
                (159, 1, 1, 0)
            );
            assert_eq!(rec.decoded_frames, 160 * 896);
            rec.packet(&pkts[159].0, 0, 0, false, &mut dec, &shared); // a duplicate: dropped
            assert_eq!((rec.seq.late, rec.packets), (1, 159));
            let summary = rec.finish(Summary::default(), "test".into()).unwrap();
            assert_eq!(summary.clicks, 3);
        }
        let wav_len = hound::WavReader::open(&wav).unwrap().duration();
        assert_eq!(
            wav_len,
            160 * 896,
            "the WAV holds every frame, the lost packet as silence"
        );
        let _ = std::fs::remove_file(&wav);
    }

    /// Decoding only the frames around loud ones finds the same clicks at the same positions as decoding
    /// everything, also when a click sits on an SBC frame or packet boundary.
    #[test]
    fn decoding_only_loud_frames_finds_the_same_clicks() {
        // Start so that the first decoded click (SBC_DELAY_FRAMES after the source's) is centred on a packet
        // boundary (8 frames = 1024 per packet); the next ones then fall on frame boundaries inside packets
        // (48000 mod 1024 = 7 × 128).
        let start = 48_000 + CLICK_OFFSET_FRAMES + SBC_DELAY_FRAMES as u64 - 5 * 1024;
        let pkts = packets(start, 4 * 48_000 / 1024, 8);
        let mut positions = vec![];
        for path in [
            None,
            Some(std::env::temp_dir().join(format!("bb-rec-sparse-{}.wav", std::process::id()))),
        ] {
            let out = Buf::default();
            let shared = shared(&out, 100.0);
            let mut rec = Recording::new(path.clone(), packets::STREAM_WINDOW);
            rec.open(2).unwrap();
            let mut dec = Sbc::new_a2dp(&CONF).unwrap();
            for (pkt, _) in &pkts {
                rec.packet(pkt, 0, 0, true, &mut dec, &shared);
            }
            rec.flush_clicks(&shared, true);
            positions.push(
                clicks(&out)
                    .iter()
                    .map(|c| c["pos_frames"].as_f64().unwrap())
                    .collect::<Vec<_>>(),
            );
            if let Some(p) = path {
                let _ = std::fs::remove_file(p);
            }
        }
        assert_eq!(positions[0].len(), 4, "{positions:?}");
        assert_eq!(positions[0], positions[1]);
        for (k, pos) in positions[0].iter().enumerate() {
            let want = (5 * 1024 + k * 48_000) as f64;
            assert!((pos - want).abs() < 0.25, "click {k} at {pos}, want {want}");
        }
    }
}
