//! Tests of the `local` output: its config keys, a device that vanishes and returns, and a simulated card on a
//! clock of its own (off by ppm, at 44.1 kHz, with and without drift control) read through the ring.

use super::*;
use crate::output::player::{Feed, PlaySettings, Player, PlayerConfig, PlayerStatus};
use crate::report::ClickDetector;
use crate::source::tone::CLICK_OFFSET_FRAMES;
use crate::timeline::server_clock::ServerClock;
use std::sync::Mutex;

const BUFFER_NS: i64 = 300_000_000;
/// Jitter of the simulated card's stamps (either way) around the true playback time.
const JITTER_NS: i64 = 1_000_000;

struct Run {
    /// Acoustic time − play time of every click after the first `settle_s`, ns.
    deviations_ns: Vec<f64>,
    status: PlayerStatus,
    /// The status when the settling time was over.
    settled: PlayerStatus,
    counters: Vec<(String, u64)>,
}

/// Plays the test signal through a `local` output into a simulated card at `rate_hz` whose clock runs
/// `card_ppm` off the local one: it calls back for a period when two periods remain queued, stamps each
/// callback's playback time up to [`JITTER_NS`] late (never early: the device's position is read after a
/// hardware step, so the delay it gives is too long, never too short), and plays what the ring gives it. Clicks are timed
/// on the card's true clock.
fn run(card_ppm: f64, rate_hz: u32, drift_control: bool, secs: u64, settle_s: u64) -> Run {
    let timeline = crate::source::tone::standard_timeline((secs + 1) * 48_000 / 960, (secs as i64 + 2) * 1_000_000_000);
    let feed = Feed {
        timeline,
        server_clock: Arc::new(Mutex::new(ServerClock::local())),
        settings: Arc::new(Mutex::new(PlaySettings {
            buffer_ns: BUFFER_NS,
            ..PlaySettings::default()
        })),
    };
    let spec = LocalSpec::default();
    let period = spec.period_frames(rate_hz) as u64;
    let format = DeviceFormat::stereo(rate_hz, cpal::SampleFormat::F32, period as u32);
    let (writer, mut reader) = ring::ring(rate_hz as usize, 2);
    let out = LocalOutput::on_link("card", &spec, writer, format);
    let mut cfg = PlayerConfig::named("card");
    cfg.drift_control = drift_control;
    let mut player = Player::new(cfg, feed, Box::new(out));

    let card_rate = rate_hz as f64 * (1.0 + card_ppm * 1e-6);
    let t0 = 50_000_000.0; // card frame 0 plays at 50 ms
    let play_ns = |frame: f64| t0 + frame * 1e9 / card_rate;
    let mut rng = fastrand::Rng::with_seed(7);
    let mut detector = ClickDetector::new();
    let mut found = vec![];
    let mut buf = vec![0.0f32; period as usize * 2];
    let mut k = 0u64; // next callback
    let mut settled = player.status();
    for tick in 0..(secs * 200) as i64 {
        let now = tick * 5_000_000;
        // Callback k runs when the card starts playing frame (k − 2)·period.
        while play_ns(k.saturating_sub(2) as f64 * period as f64) <= now as f64 {
            let first = k * period;
            let playback = play_ns(first as f64) as i64;
            let stamp = playback + rng.i64(0..=JITTER_NS);
            reader.fill(&mut buf, 0.0, |s| s, stamp, stamp - now);
            detector.push(first, buf.chunks_exact(2).map(|f| f[0]), &mut found);
            k += 1;
        }
        player.tick(LocalTime::from_ns(now));
        if now == settle_s as i64 * 1_000_000_000 {
            settled = player.status();
        }
    }
    let deviations_ns = found
        .iter()
        .map(|&pos| play_ns(pos))
        .filter(|&t| t > settle_s as f64 * 1e9)
        .map(|t| {
            // The click nearest this time: click n is source frame n·48000 + 4800, played at its time + buffer.
            let src_ns = t - BUFFER_NS as f64;
            let n = ((src_ns - CLICK_OFFSET_FRAMES as f64 * 1e9 / 48_000.0) / 1e9).round();
            t - (n * 1e9 + CLICK_OFFSET_FRAMES as f64 * 1e9 / 48_000.0 + BUFFER_NS as f64)
        })
        .collect();
    Run {
        settled,
        deviations_ns,
        status: player.status(),
        counters: player.status().counters,
    }
}

fn parse(output: &str) -> Result<Option<LocalSpec>, String> {
    let text = format!("[source]\nkind = \"tone\"\n[[output]]\nname = \"x\"\n{output}\n");
    crate::config::Config::parse("t.toml", &text)
        .map(|(_, o)| match &o[0].settings {
            crate::output::OutputSettings::Local(l) => Some(l.clone()),
            _ => None,
        })
        .map_err(|e| e.to_string())
}

#[test]
fn the_config_takes_device_period_and_buffer_for_local_outputs_only() {
    assert_eq!(parse("kind = \"local\""), Ok(Some(LocalSpec::default())));
    let spec = parse("kind = \"local\"\ndevice = \"hw:CARD=Headphones\"\nperiod_ms = 5\nbuffer_ms = 40")
        .unwrap()
        .unwrap();
    assert_eq!(
        spec.device_name(),
        Ok(DeviceName::Pcm("hw:CARD=Headphones,DEV=0".into()))
    );
    assert_eq!((spec.period_ms, spec.buffer_ms), (5.0, 40.0));
    let e = parse("kind = \"local\"\nperiod_ms = 500").unwrap_err();
    assert!(
        e.contains("t.toml:6") && e.contains("period_ms must be between 1 and 100"),
        "{e}"
    );
    let e = parse("kind = \"local\"\ndevice = \"\"").unwrap_err();
    assert!(e.contains("output.device: the device name is empty"), "{e}");
    let e = parse("kind = \"sim\"\ndevice = \"hw:0\"").unwrap_err();
    assert!(e.contains("output.device does not apply to kind \"sim\""), "{e}");
    assert_eq!(parse("kind = \"sim\""), Ok(None));
}

#[test]
fn a_vanished_device_makes_the_output_wait_and_a_reopened_one_plays_on() {
    let spec = LocalSpec::default();
    let format = DeviceFormat::stereo(48_000, cpal::SampleFormat::I16, 480);
    let (writer, mut reader) = ring::ring(48_000, 2);
    let (mut out, supervisor) = LocalOutput::on_link_with_supervisor("card", &spec, writer, format);
    let mut buf = [0i16; 960];
    let block = [1000i16; 480]; // 240 frames: 5 ms
                                // Playing: a callback stamped, the output linked and asking for audio.
    reader.fill(&mut buf, 0, convert::to_device::<i16>, 20_000_000, 20_000_000);
    let st = out.status(LocalTime::from_ns(0));
    assert!(out.linked() && st.want_frames > 0, "{st:?}");
    out.write(LocalTime::from_ns(0), &block).unwrap();
    // The device vanishes (the stream's error callback): waiting, still consuming at the local clock.
    reader.fail();
    let st = out.status(LocalTime::from_ns(5_000_000));
    assert!(!out.linked(), "waiting");
    assert_eq!(st.sink_reported_ns, Some(0));
    let lead = LocalOutput::lead_ns(&spec);
    assert_eq!(st.transport_ns, lead, "the local clock's schedule starts");
    out.write(LocalTime::from_ns(5_000_000), &block).unwrap();
    assert_eq!(out.status(LocalTime::from_ns(5_000_000)).transport_ns, lead + 5_000_000);
    // It comes back: the supervisor hands over a new link; once it calls back the output plays again.
    let (w2, mut r2) = ring::ring(48_000, 2);
    supervisor.send(Link::new(w2, format)).unwrap();
    out.status(LocalTime::from_ns(10_000_000));
    assert!(!out.linked(), "not before its first callback");
    r2.fill(&mut buf, 0, convert::to_device::<i16>, 40_000_000, 20_000_000);
    let st = out.status(LocalTime::from_ns(15_000_000));
    assert!(out.linked(), "{st:?}");
    let reopens = out.counters().into_iter().find(|(k, _)| *k == "reopens").unwrap().1;
    assert_eq!(reopens, 1);
    // The old link's callbacks still count.
    let callbacks = out.counters().into_iter().find(|(k, _)| *k == "callbacks").unwrap().1;
    assert_eq!(callbacks, 2);
}

fn p95_abs(v: &[f64]) -> f64 {
    let mut a: Vec<f64> = v.iter().map(|d| d.abs()).collect();
    a.sort_by(f64::total_cmp);
    a[(a.len() * 95 / 100).min(a.len() - 1)]
}

fn counter(r: &Run, name: &str) -> u64 {
    r.counters.iter().find(|(k, _)| k == name).map_or(0, |(_, v)| *v)
}

#[test]
fn a_card_300_ppm_off_either_way_stays_on_the_timeline_and_its_rate_is_measured() {
    for ppm in [300.0, -300.0, 0.0] {
        let r = run(ppm, 48_000, true, 40, 10);
        assert!(
            r.deviations_ns.len() >= 28,
            "{ppm} ppm: {} clicks",
            r.deviations_ns.len()
        );
        let p95 = p95_abs(&r.deviations_ns);
        assert!(
            p95 < 200_000.0,
            "{ppm} ppm: p95 deviation {p95} ns: {:?}",
            r.deviations_ns
        );
        assert!(
            (r.status.drift_estimate_ppm - ppm).abs() < 20.0,
            "{ppm} ppm: drift estimate {}",
            r.status.drift_estimate_ppm
        );
        // Once settled (the start resynchronises when the first stamps replace the nominal delay): no jump,
        // no underrun.
        assert_eq!(r.status.resyncs, r.settled.resyncs, "{ppm} ppm: {:?}", r.status);
        let underruns = |s: &PlayerStatus| s.counters.iter().find(|(k, _)| k == "underruns").map(|c| c.1);
        assert_eq!(underruns(&r.status), underruns(&r.settled), "{ppm} ppm: {:?}", r.status);
        assert!(r.status.synced && r.status.resampling);
    }
}

#[test]
fn a_44_1_khz_card_is_resampled_and_stays_on_the_timeline() {
    let r = run(150.0, 44_100, true, 30, 10);
    let p95 = p95_abs(&r.deviations_ns);
    assert!(
        r.deviations_ns.len() >= 18 && p95 < 200_000.0,
        "p95 {p95} ns: {:?}",
        r.deviations_ns
    );
    assert!(
        (r.status.drift_estimate_ppm - 150.0).abs() < 20.0,
        "{}",
        r.status.drift_estimate_ppm
    );
    assert_eq!(counter(&r, "device_rate_hz"), 44_100);
}

#[test]
fn without_drift_control_a_300_ppm_card_walks_off() {
    // The negative control of the test above: the same card with rate control off drifts by 0.3 ms a second
    // until the player jumps back (past 5 ms).
    let r = run(300.0, 48_000, false, 40, 10);
    let worst = r.deviations_ns.iter().fold(0.0f64, |m, d| m.max(d.abs()));
    assert!(
        p95_abs(&r.deviations_ns) > 2_000_000.0 || worst > 4_000_000.0,
        "{:?}",
        r.deviations_ns
    );
    assert!(r.status.resyncs >= 1, "{:?}", r.status);
}
