//! `bluebridge bench a2dp`: CPU of the whole A2DP pipeline (timeline → player with drift control and resampler →
//! SBC encoder → RTP packets on a socket) against bare libsbc encoding of the same audio, measured in the same
//! run as thread CPU time, so the figure is a ratio that does not depend on the machine's speed or load. Both parts
//! get the same audio, made before timing starts. For instruction counts instead of CPU time, run one part at a
//! time under `valgrind --tool=callgrind` (`--part bare`, `--part pipeline`).

use crate::codec::sbc::Sbc;
use crate::engine::Engine;
use crate::output::a2dp::{A2dpOutput, Link, SharedLink};
use crate::output::player::{Feed, PlaySettings, Player, PlayerConfig};
use crate::source::tone::TestSignal;
use crate::timeline::buffer::TimelineBuffer;
use crate::timeline::server_clock::ServerClock;
use crate::timeline::{LocalTime, ManualClock};
use serde::Serialize;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

/// 48 kHz joint stereo, 16 blocks, 8 subbands, loudness, bitpool 51 (BlueZ's HQ).
pub const BENCH_SBC_CONF: [u8; 4] = [0x11, 0x15, 2, 51];

/// CPU time of the calling thread, in seconds (benchmarks compare two parts measured this way in one run).
pub fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid timespec pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// The result.
#[derive(Debug, Clone, Serialize)]
pub struct A2dpBench {
    /// Seconds of audio processed by each part.
    pub audio_s: f64,
    /// CPU seconds of bare SBC encoding (None if not run).
    pub bare_sbc_cpu_s: Option<f64>,
    /// CPU seconds of the whole pipeline (None if not run).
    pub pipeline_cpu_s: Option<f64>,
    /// pipeline / bare.
    pub ratio: Option<f64>,
    /// Packets the pipeline sent.
    pub packets: u64,
}

/// Bare libsbc: encode `seconds` of the test signal frame by frame.
pub fn bare_sbc(seconds: f64) -> f64 {
    let signal = TestSignal::standard();
    let mut sbc = Sbc::new_a2dp(&BENCH_SBC_CONF).expect("valid configuration");
    let frames = (seconds * 48_000.0) as u64;
    let per = sbc.frames_per_sbc_frame(2) as u64;
    // Prepare the PCM first: only encoding is timed.
    let pcm: Vec<u8> = (0..frames)
        .flat_map(|n| {
            let v = (signal.sample(n) * 32767.0) as i16;
            let b = v.to_le_bytes();
            [b[0], b[1], b[0], b[1]]
        })
        .collect();
    let mut out = Vec::with_capacity(sbc.frame_length());
    let t = thread_cpu_s();
    for chunk in pcm.chunks_exact((per * 4) as usize) {
        out.clear();
        sbc.encode_frame(chunk, &mut out).expect("encodes");
        std::hint::black_box(&out);
    }
    thread_cpu_s() - t
}

/// The whole pipeline in virtual time for `seconds`, packets drained from a socket pair.
pub fn pipeline(seconds: f64) -> (f64, u64) {
    let (ours, theirs) = std::os::unix::net::UnixDatagram::pair().expect("socketpair");
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
    let start = LocalTime::from_ns(1_000_000_000_000);
    let clock = ManualClock::new(start);
    let signal = TestSignal::standard();
    // The source's audio is made before timing: the benchmark measures what happens after it enters.
    let timeline = Arc::new(Mutex::new(TimelineBuffer::new(
        signal.format,
        (seconds * 1e9) as i64 + 2_000_000_000,
    )));
    {
        let mut tl = timeline.lock().expect("lock");
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
    }
    let feed = Feed {
        timeline: timeline.clone(),
        server_clock: Arc::new(Mutex::new(ServerClock::fixed(0))),
        settings: Arc::new(Mutex::new(PlaySettings {
            buffer_ns: 200_000_000,
            ..PlaySettings::default()
        })),
    };
    let mut engine = Engine::default();
    engine.players.push(Player::new(
        PlayerConfig::named("bench"),
        feed,
        Box::new(A2dpOutput::new("bench", shared, 150_000_000)),
    ));
    let mut buf = [0u8; 2048];
    let mut packets = 0u64;
    let t = thread_cpu_s();
    engine.run_virtual(&clock, (seconds * 1e9) as i64, 0, 1, |_, _| {
        while theirs.recv(&mut buf).is_ok() {
            packets += 1;
        }
    });
    (thread_cpu_s() - t, packets)
}

/// Runs the parts asked for.
pub fn a2dp(seconds: f64, bare: bool, pipe: bool) -> A2dpBench {
    let bare_sbc_cpu_s = bare.then(|| bare_sbc(seconds));
    let (pipeline_cpu_s, packets) = if pipe {
        let (c, p) = pipeline(seconds);
        (Some(c), p)
    } else {
        (None, 0)
    };
    let ratio = match (bare_sbc_cpu_s, pipeline_cpu_s) {
        (Some(b), Some(p)) if b > 0.0 => Some(p / b),
        _ => None,
    };
    A2dpBench {
        audio_s: seconds,
        bare_sbc_cpu_s,
        pipeline_cpu_s,
        ratio,
        packets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pipeline_sends_every_packet_of_the_audio() {
        let r = a2dp(3.0, false, true);
        // Silence before the first audio is sent too: 3 s minus the 40 ms lead, in packets of 7 × 128 frames.
        let expect = (3.0 - 0.04) * 48_000.0 / (7.0 * 128.0);
        assert!(
            (r.packets as f64 - expect).abs() < 2.0,
            "{} packets, expected about {expect}",
            r.packets
        );
    }
}
