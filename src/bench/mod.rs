//! `bluebridge bench a2dp`, `bench broadcast`, `bench pipe` and `bench local`: CPU of a whole output pipeline (timeline → player
//! with drift control and resampler → encoder → packets on a socket) against the bare codec encoding the same
//! audio, measured in the same run as thread CPU time, so the figure is a ratio that does not depend on the
//! machine's speed or load. Both parts get the same audio, made before timing starts. For instruction counts
//! instead of CPU time, run one part at a time under `valgrind --tool=callgrind` (`--part bare`, `--part
//! pipeline`).

pub mod sendspin;
pub mod snapcast;

use crate::bap::broadcast::{BroadcastConfig, ChannelLayout};
use crate::bap::presets::Preset;
use crate::codec::lc3::Lc3Encoder;
use crate::codec::sbc::Sbc;
use crate::engine::Engine;
use crate::output::a2dp::{A2dpOptions, A2dpOutput, Link, SharedLink};
use crate::output::broadcast::{BigLink, BroadcastOutput, SharedBig};
use crate::output::player::{Feed, PlaySettings, Player, PlayerConfig};
use crate::output::Output;
use crate::source::tone::TestSignal;
use crate::timeline::buffer::SharedTimeline;
use crate::timeline::server_clock::ServerClock;
use crate::timeline::{LocalTime, ManualClock};
use serde::Serialize;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};

pub use alloc_count::{AllocCounts, CountingAlloc};

/// A counting global allocator for the benchmarks: counts allocations (and their bytes) made on a thread while
/// that thread has counting switched on, so `bench` reports the engine thread's steady-state allocations per
/// second of audio. The `bluebridge` binary installs it; elsewhere the counts stay `None`.
pub mod alloc_count {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::sync::atomic::{AtomicBool, Ordering};

    static INSTALLED: AtomicBool = AtomicBool::new(false);

    thread_local! {
        static COUNTING: Cell<bool> = const { Cell::new(false) };
        static ALLOCS: Cell<u64> = const { Cell::new(0) };
        static BYTES: Cell<u64> = const { Cell::new(0) };
    }

    /// The system allocator, counting on threads that asked for it.
    pub struct CountingAlloc;

    // SAFETY: forwards every call to the system allocator; the counters are const thread-locals without
    // destructors, which never allocate.
    unsafe impl GlobalAlloc for CountingAlloc {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            // SAFETY: the caller's contract is passed on.
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            // SAFETY: the caller's contract is passed on.
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note(new_size);
            // SAFETY: the caller's contract is passed on.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: the caller's contract is passed on.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    fn note(bytes: usize) {
        INSTALLED.store(true, Ordering::Relaxed);
        let _ = COUNTING.try_with(|c| {
            if c.get() {
                let _ = ALLOCS.try_with(|a| a.set(a.get() + 1));
                let _ = BYTES.try_with(|b| b.set(b.get() + bytes as u64));
            }
        });
    }

    /// Allocations counted on one thread.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct AllocCounts {
        /// Calls to alloc, alloc_zeroed and realloc.
        pub allocs: u64,
        /// Bytes they asked for.
        pub bytes: u64,
    }

    /// Runs `f` with counting on for the calling thread; `None` if the counting allocator is not installed.
    pub fn count<T>(f: impl FnOnce() -> T) -> (T, Option<AllocCounts>) {
        ALLOCS.with(|a| a.set(0));
        BYTES.with(|b| b.set(0));
        COUNTING.with(|c| c.set(true));
        let out = f();
        COUNTING.with(|c| c.set(false));
        let counts = AllocCounts {
            allocs: ALLOCS.with(|a| a.get()),
            bytes: BYTES.with(|b| b.get()),
        };
        // Any allocation at all (e.g. the first Vec of the program) has set the flag if we are installed.
        let _probe = Box::new(0u8);
        (out, INSTALLED.load(Ordering::Relaxed).then_some(counts))
    }
}

/// 48 kHz joint stereo, 16 blocks, 8 subbands, loudness, bitpool 51 (BlueZ's HQ).
pub const BENCH_SBC_CONF: [u8; 4] = [0x11, 0x15, 2, 51];

/// The broadcast benchmark's preset (the default one).
pub const BENCH_LC3_PRESET: &str = "48_2_1";

/// CPU time of the calling thread, in seconds (benchmarks compare two parts measured this way in one run).
pub fn thread_cpu_s() -> f64 {
    crate::timeline::clock::SystemClock::thread_cpu_ns() as f64 * 1e-9
}

/// Bare conversion of `seconds` of the test signal to the pipe's S16LE bytes, block by block (the pipe's only
/// work besides the pipeline).
pub fn bare_s16le(seconds: f64) -> f64 {
    let pcm = test_pcm(seconds);
    let block = crate::output::player::BLOCK_FRAMES * 2;
    let mut bytes = Vec::with_capacity(block * 2);
    let t = thread_cpu_s();
    for chunk in pcm.chunks(block) {
        bytes.clear();
        for s in chunk {
            bytes.extend_from_slice(&s.to_le_bytes());
        }
        std::hint::black_box(&bytes);
    }
    thread_cpu_s() - t
}

/// Bare copy of `seconds` of the test signal into a card's `f32` buffer, block by block (what a `local` output
/// must do at least: take the player's S16 blocks and hand the card float samples).
pub fn bare_f32_copy(seconds: f64) -> f64 {
    let pcm = test_pcm(seconds);
    let block = crate::output::player::BLOCK_FRAMES * 2;
    let mut out = vec![0.0f32; block];
    let t = thread_cpu_s();
    for chunk in pcm.chunks(block) {
        for (o, s) in out.iter_mut().zip(chunk) {
            *o = *s as f32 / 32768.0;
        }
        std::hint::black_box(&out);
    }
    thread_cpu_s() - t
}

/// The result of one benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineBench {
    /// What was measured (`a2dp` or `broadcast`).
    pub pipeline: &'static str,
    /// The pipeline resampled (a network source) or copied (a source on the local clock).
    pub resampling: bool,
    /// Seconds of audio processed by each part.
    pub audio_s: f64,
    /// CPU seconds of the bare codec encoding the same audio (None if not run).
    pub bare_codec_cpu_s: Option<f64>,
    /// CPU seconds of the whole pipeline (None if not run).
    pub pipeline_cpu_s: Option<f64>,
    /// pipeline / bare.
    pub ratio: Option<f64>,
    /// Share of one core the pipeline needs in real time (pipeline CPU / audio seconds), percent.
    pub pipeline_core_pct: Option<f64>,
    /// Packets (A2DP) or SDUs (all BIS) the pipeline sent.
    pub packets: u64,
    /// Steady-state allocations per second of audio on the engine thread, after [`WARMUP_S`] of warm-up (None
    /// without the counting allocator or the pipeline part).
    pub engine_allocs_per_audio_s: Option<f64>,
    /// Bytes those allocations asked for, per second of audio.
    pub engine_alloc_bytes_per_audio_s: Option<f64>,
}

/// Seconds of audio the pipeline runs before allocations are counted (buffers growing to their size, first
/// packets, the drift controller settling).
pub const WARMUP_S: f64 = 2.0;

/// What one pipeline run measured.
#[derive(Debug, Clone, Copy)]
pub struct PipelineRun {
    /// CPU seconds of the whole run.
    pub cpu_s: f64,
    /// Packets or SDUs sent.
    pub packets: u64,
    /// Allocations on the engine thread after the warm-up.
    pub steady_allocs: Option<AllocCounts>,
}

/// Which parts of a benchmark to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parts {
    /// Both, and their ratio (the pipeline resampling, as for a network source).
    Both,
    /// Only the bare codec.
    Bare,
    /// Only the pipeline, resampling.
    Pipeline,
    /// Only the pipeline, fed by a source on the local clock: the player copies instead of resampling.
    PipelineLocal,
}

impl Parts {
    fn bare(self) -> bool {
        matches!(self, Parts::Both | Parts::Bare)
    }
    fn pipeline(self) -> bool {
        self != Parts::Bare
    }
    fn clock(self) -> ServerClock {
        if self == Parts::PipelineLocal {
            ServerClock::local()
        } else {
            // A measured clock (not the local one), as for a network source: the pipeline resamples.
            ServerClock::fixed(0)
        }
    }
}

/// `seconds` of the test signal as interleaved stereo S16.
fn test_pcm(seconds: f64) -> Vec<i16> {
    let signal = TestSignal::standard();
    let frames = (seconds * 48_000.0) as u64;
    (0..frames)
        .flat_map(|n| {
            let v = (signal.sample(n) * 32767.0) as i16;
            [v, v]
        })
        .collect()
}

/// Bare libsbc: encode `seconds` of the test signal frame by frame.
pub fn bare_sbc(seconds: f64) -> f64 {
    let mut sbc = Sbc::new_a2dp(&BENCH_SBC_CONF).expect("valid configuration");
    let per = sbc.frames_per_sbc_frame(2);
    // Prepare the PCM first: only encoding is timed.
    let pcm: Vec<u8> = test_pcm(seconds).iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut out = Vec::with_capacity(sbc.frame_length());
    let t = thread_cpu_s();
    for chunk in pcm.chunks_exact(per * 4) {
        out.clear();
        sbc.encode_frame(chunk, &mut out).expect("encodes");
        std::hint::black_box(&out);
    }
    thread_cpu_s() - t
}

/// Bare liblc3: one encoder per channel of [`BENCH_LC3_PRESET`], strided over the interleaved test signal.
pub fn bare_lc3(seconds: f64) -> f64 {
    let preset = Preset::by_name(BENCH_LC3_PRESET).expect("known preset");
    let pcm = test_pcm(seconds);
    let mut enc = [
        Lc3Encoder::new(preset.frame_duration, preset.sample_rate_hz).expect("valid preset"),
        Lc3Encoder::new(preset.frame_duration, preset.sample_rate_hz).expect("valid preset"),
    ];
    let frame = enc[0].frame_samples() * 2;
    let mut out = vec![0u8; usize::from(preset.octets_per_frame)];
    let t = thread_cpu_s();
    for chunk in pcm.chunks_exact(frame) {
        for (ch, e) in enc.iter_mut().enumerate() {
            e.encode_strided(&chunk[ch..], 2, &mut out).expect("encodes");
            std::hint::black_box(&out);
        }
    }
    thread_cpu_s() - t
}

/// Runs `output` behind a player in virtual time for `seconds` of the test signal (made before timing), calling
/// `drain` after every tick to empty the sockets the output sends on. Returns the pipeline's CPU seconds.
fn run_pipeline(
    seconds: f64,
    clock: ServerClock,
    output: Box<dyn Output>,
    mut drain: impl FnMut(),
) -> (f64, Option<AllocCounts>) {
    let start = LocalTime::from_ns(1_000_000_000_000);
    let manual = ManualClock::new(start);
    let signal = TestSignal::standard();
    // The source's audio is made before timing: the benchmark measures what happens after it enters.
    let timeline = SharedTimeline::with_capacity_ns(signal.format, (seconds * 1e9) as i64 + 2_000_000_000);
    {
        let tl = &timeline;
        let chunk = 960u64;
        let total = (seconds * 48_000.0) as u64;
        let mut n = 0;
        while n < total {
            let mut samples = vec![0.0f32; chunk as usize * 2];
            signal.fill(n, &mut samples);
            let start = crate::timeline::ServerTime::from_ns(start.as_ns() + signal.format.frames_to_ns(n as i64));
            let _ = tl.push(crate::timeline::buffer::Chunk { start, samples });
            n += chunk;
        }
        // Everything queued goes into the buffer now, not in the timed part.
        drop(tl.lock());
    }
    let feed = Feed {
        timeline: timeline.clone(),
        server_clock: Arc::new(Mutex::new(clock)),
        settings: Arc::new(Mutex::new(PlaySettings {
            buffer_ns: 200_000_000,
            ..PlaySettings::default()
        })),
    };
    let mut engine = Engine::default();
    engine
        .players
        .push(Player::new(PlayerConfig::named("bench"), feed, output));
    let total_ns = (seconds * 1e9) as i64;
    let warmup_ns = ((WARMUP_S * 1e9) as i64).min(total_ns / 2);
    let t = thread_cpu_s();
    engine.run_virtual(&manual, warmup_ns, 0, 1, |_, _| drain());
    manual.advance_ns(crate::engine::TICK_NS);
    let ((), counts) = alloc_count::count(|| {
        engine.run_virtual(&manual, total_ns - warmup_ns, 0, 2, |_, _| drain());
    });
    (thread_cpu_s() - t, counts)
}

fn drain_socket(s: &UnixDatagram, buf: &mut [u8]) -> u64 {
    let mut n = 0;
    while s.recv(buf).is_ok() {
        n += 1;
    }
    n
}

/// The whole A2DP pipeline in virtual time for `seconds`, packets drained from a socket pair.
pub fn a2dp_pipeline(seconds: f64, clock: ServerClock) -> PipelineRun {
    let (ours, theirs) = UnixDatagram::pair().expect("socketpair");
    theirs.set_nonblocking(true).expect("nonblocking");
    let shared: SharedLink = Arc::default();
    {
        let mut st = shared.lock().expect("lock");
        st.link = Some(Arc::new(Link {
            fd: OwnedFd::from(ours),
            write_mtu: 895,
            configuration: BENCH_SBC_CONF,
        }));
        st.generation = 1;
        st.reported_delay_ns = Some(150_000_000);
    }
    let mut buf = [0u8; 2048];
    let mut packets = 0u64;
    let output = Box::new(A2dpOutput::new(
        "bench",
        shared,
        A2dpOptions::with_fallback_delay(150_000_000),
    ));
    let (cpu_s, steady_allocs) = run_pipeline(seconds, clock, output, || packets += drain_socket(&theirs, &mut buf));
    PipelineRun {
        cpu_s,
        packets,
        steady_allocs,
    }
}

/// The whole broadcast pipeline (stereo, two BIS) in virtual time for `seconds`, SDUs drained from socket pairs.
pub fn broadcast_pipeline(seconds: f64, clock: ServerClock) -> PipelineRun {
    let preset = Preset::by_name(BENCH_LC3_PRESET).expect("known preset");
    let shared: SharedBig = Arc::default();
    let mut peers = Vec::new();
    let mut fds = Vec::new();
    for _ in 0..2 {
        let (ours, theirs) = UnixDatagram::pair().expect("socketpair");
        theirs.set_nonblocking(true).expect("nonblocking");
        fds.push(OwnedFd::from(ours));
        peers.push(theirs);
    }
    {
        let mut st = shared.lock().expect("lock");
        st.link = Some(Arc::new(BigLink {
            fds,
            write_mtu: vec![usize::from(preset.octets_per_frame); 2],
        }));
        st.generation = 1;
    }
    let config = BroadcastConfig::new(preset, ChannelLayout::Stereo);
    let output = Box::new(BroadcastOutput::new("bench", config, shared));
    let mut buf = [0u8; 1024];
    let mut sdus = 0u64;
    let (cpu_s, steady_allocs) = run_pipeline(seconds, clock, output, || {
        for p in &peers {
            sdus += drain_socket(p, &mut buf);
        }
    });
    PipelineRun {
        cpu_s,
        packets: sdus,
        steady_allocs,
    }
}

/// The whole pipe pipeline in virtual time for `seconds`, to `/dev/null` (its writer thread writes each block
/// at once: the virtual clock's times are long past on the system clock). Packets: none are counted.
pub fn pipe_pipeline(seconds: f64, clock: ServerClock) -> PipelineRun {
    let output = Box::new(crate::output::pipe::PipeOutput::open("/dev/null", 0).expect("/dev/null opens"));
    let (cpu_s, steady_allocs) = run_pipeline(seconds, clock, output, || {});
    PipelineRun {
        cpu_s,
        packets: 0,
        steady_allocs,
    }
}

/// The whole `local` pipeline in virtual time for `seconds`: player, device converter, the lock-free ring, and a
/// simulated 48 kHz stereo F32 card that takes one 5 ms period per tick through the callback's code (ring →
/// device samples, a playback stamp), on the same thread.
pub fn local_pipeline(seconds: f64, clock: ServerClock) -> PipelineRun {
    use crate::output::local::{device::DeviceFormat, ring, LocalOutput, LocalSpec};
    let spec = LocalSpec::default();
    let format = DeviceFormat::stereo(48_000, cpal::SampleFormat::F32, 240);
    let (writer, mut reader) = ring::ring(48_000, 2);
    let output = Box::new(LocalOutput::on_link("bench", &spec, writer, format));
    let mut card = vec![0.0f32; 240 * 2];
    let mut periods = 0i64;
    let start_ns = 1_000_000_000_000i64;
    let (cpu_s, steady_allocs) = run_pipeline(seconds, clock, output, || {
        periods += 1;
        let playback = start_ns + periods * 5_000_000 + 20_000_000;
        reader.fill(
            &mut card,
            0.0,
            crate::output::local::convert::to_device::<f32>,
            playback,
            20_000_000,
        );
        std::hint::black_box(&card);
    });
    PipelineRun {
        cpu_s,
        packets: periods as u64,
        steady_allocs,
    }
}

fn result(
    pipeline: &'static str,
    seconds: f64,
    parts: Parts,
    bare: fn(f64) -> f64,
    pipe: fn(f64, ServerClock) -> PipelineRun,
) -> PipelineBench {
    let bare_codec_cpu_s = parts.bare().then(|| bare(seconds));
    let run = parts.pipeline().then(|| pipe(seconds, parts.clock()));
    let pipeline_cpu_s = run.map(|r| r.cpu_s);
    let packets = run.map_or(0, |r| r.packets);
    let steady = run.and_then(|r| r.steady_allocs);
    let measured_s = seconds - WARMUP_S.min(seconds / 2.0);
    let ratio = match (bare_codec_cpu_s, pipeline_cpu_s) {
        (Some(b), Some(p)) if b > 0.0 => Some(p / b),
        _ => None,
    };
    PipelineBench {
        pipeline,
        resampling: parts != Parts::PipelineLocal,
        audio_s: seconds,
        bare_codec_cpu_s,
        pipeline_cpu_s,
        ratio,
        pipeline_core_pct: pipeline_cpu_s.map(|p| p / seconds * 100.0),
        packets,
        engine_allocs_per_audio_s: steady.map(|c| c.allocs as f64 / measured_s),
        engine_alloc_bytes_per_audio_s: steady.map(|c| c.bytes as f64 / measured_s),
    }
}

/// `bench a2dp`: the A2DP pipeline against bare libsbc.
pub fn a2dp(seconds: f64, parts: Parts) -> PipelineBench {
    result("a2dp", seconds, parts, bare_sbc, a2dp_pipeline)
}

/// `bench pipe`: the pipe pipeline (to /dev/null) against bare S16LE conversion.
pub fn pipe(seconds: f64, parts: Parts) -> PipelineBench {
    result("pipe", seconds, parts, bare_s16le, pipe_pipeline)
}

/// `bench local`: the `local` (sound card) pipeline against a bare S16 → f32 copy of the same audio.
pub fn local(seconds: f64, parts: Parts) -> PipelineBench {
    result("local", seconds, parts, bare_f32_copy, local_pipeline)
}

/// `bench broadcast`: the broadcast pipeline (stereo [`BENCH_LC3_PRESET`]) against bare liblc3.
pub fn broadcast(seconds: f64, parts: Parts) -> PipelineBench {
    result("broadcast", seconds, parts, bare_lc3, broadcast_pipeline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_a2dp_pipeline_sends_every_packet_of_the_audio() {
        let r = a2dp(3.0, Parts::Pipeline);
        // Silence before the first audio is sent too: 3 s minus the 40 ms lead, in packets of 7 × 128 frames.
        let expect = (3.0 - 0.04) * 48_000.0 / (7.0 * 128.0);
        assert!(
            (r.packets as f64 - expect).abs() < 2.0,
            "{} packets, expected about {expect}",
            r.packets
        );
    }

    #[test]
    fn the_local_pipeline_hands_the_card_the_test_signal() {
        let r = local(3.0, Parts::Both);
        // One 5 ms period per tick.
        assert!((r.packets as f64 - 600.0).abs() <= 2.0, "{r:?}");
        assert!(r.ratio.is_some_and(|x| x > 0.0), "{r:?}");
    }

    #[test]
    fn the_broadcast_pipeline_sends_every_sdu_of_the_audio() {
        let r = broadcast(3.0, Parts::Both);
        // One 10 ms SDU per BIS, two BIS, minus the 40 ms lead still queued at the end.
        let expect = (3.0 - 0.04) * 100.0 * 2.0;
        assert!(
            (r.packets as f64 - expect).abs() <= 4.0,
            "{} SDUs, expected about {expect}",
            r.packets
        );
        assert!(r.ratio.is_some_and(|x| x > 0.0), "{r:?}");
    }
}
