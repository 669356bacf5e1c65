//! `bluebridge demo` and `bluebridge bench sync`: the test signal played to simulated speakers with mixed,
//! deliberately awkward profiles, and the resulting sync report.
//!
//! The demo runs in real time; the benchmark runs the very same engine in virtual time (deterministic, much
//! faster than real time).

use crate::engine::Engine;
use crate::output::player::{Feed, PlaySettings, Player, PlayerConfig};
use crate::output::sim::{SimOutput, SimParams};
use crate::report::{self, OutputObservation, SyncReport};
use crate::source::tone::{TestSignal, ToneSource, CLICK_OFFSET_FRAMES};
use crate::timeline::buffer::TimelineBuffer;
use crate::timeline::server_clock::ServerClock;
use crate::timeline::{LocalTime, ServerTime};
use std::sync::{Arc, Mutex};

/// Group buffer used by the demo (play time = capture + this).
pub const DEMO_BUFFER_NS: i64 = 500_000_000;

/// One simulated speaker of the scenario.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Output name.
    pub name: String,
    /// The speaker.
    pub sim: SimParams,
    /// Calibration applied, ms.
    pub calibration_ms: f64,
}

/// The four standard profiles, then more with varied clocks up to ±500 ppm.
pub fn profiles(n: usize) -> Vec<Profile> {
    let base = [
        Profile {
            name: "a2dp-150ms".into(),
            sim: SimParams {
                render_delay_ms: 150.0,
                ppm: 200.0,
                jitter_ms: 3.0,
                buffer_ms: 40.0,
                seed: 11,
                ..SimParams::default()
            },
            calibration_ms: 0.0,
        },
        Profile {
            // Reports 230 ms but really takes 250 ms; an acoustic calibration of +20 ms corrects it.
            name: "a2dp-250ms-miscal".into(),
            sim: SimParams {
                render_delay_ms: 250.0,
                reported_delay_ms: Some(230.0),
                ppm: -150.0,
                jitter_ms: 3.0,
                buffer_ms: 40.0,
                seed: 12,
                ..SimParams::default()
            },
            calibration_ms: 20.0,
        },
        Profile {
            name: "broadcast-40ms".into(),
            sim: SimParams {
                render_delay_ms: 40.0,
                ppm: 35.0,
                jitter_ms: 0.5,
                buffer_ms: 20.0,
                seed: 13,
                ..SimParams::default()
            },
            calibration_ms: 0.0,
        },
        Profile {
            name: "local-10ms".into(),
            sim: SimParams {
                render_delay_ms: 10.0,
                ppm: -20.0,
                buffer_ms: 10.0,
                seed: 14,
                ..SimParams::default()
            },
            calibration_ms: 0.0,
        },
    ];
    (0..n)
        .map(|i| {
            if i < base.len() {
                base[i].clone()
            } else {
                let b = &base[i % base.len()];
                let ppm = [500.0, -500.0, 300.0, -300.0][i % 4];
                Profile {
                    name: format!("{}-{}", b.name, i),
                    sim: SimParams {
                        ppm,
                        seed: 100 + i as u64,
                        ..b.sim.clone()
                    },
                    calibration_ms: b.calibration_ms,
                }
            }
        })
        .collect()
}

/// An engine playing the test signal (captured from `start`) to the given speakers.
pub fn build(profiles: &[Profile], start: LocalTime, drift_control: bool) -> Engine {
    let signal = TestSignal::standard();
    let timeline = TimelineBuffer::shared(signal.format);
    let feed = Feed {
        timeline: timeline.clone(),
        server_clock: Arc::new(Mutex::new(ServerClock::local())),
        settings: Arc::new(Mutex::new(PlaySettings {
            buffer_ns: DEMO_BUFFER_NS,
            ..PlaySettings::default()
        })),
    };
    let mut engine = Engine::default();
    engine.sources.push(Box::new(ToneSource::new(signal, timeline, start)));
    for p in profiles {
        let mut cfg = PlayerConfig::named(&p.name);
        cfg.calibration_ns = (p.calibration_ms * 1e6).round() as i64;
        cfg.drift_control = drift_control;
        engine
            .players
            .push(Player::new(cfg, feed.clone(), Box::new(SimOutput::new(p.sim.clone()))));
    }
    engine
}

/// Intended local play times of the test signal's clicks captured from `start`, up to `until`.
pub fn click_play_times(start: LocalTime, until: LocalTime) -> Vec<LocalTime> {
    let signal = TestSignal::standard();
    (0..)
        .map(|k: u64| {
            let frame = k * signal.click_period_frames + CLICK_OFFSET_FRAMES;
            let t = ServerTime::from_ns(start.as_ns() + signal.format.frames_to_ns(frame as i64));
            LocalTime::from_ns(t.as_ns() + DEMO_BUFFER_NS)
        })
        .take_while(|t| *t <= until)
        .collect()
}

/// Collects every player's markers.
pub fn collect(engine: &mut Engine, into: &mut [OutputObservation]) {
    for (p, o) in engine.players.iter_mut().zip(into.iter_mut()) {
        o.acoustic.extend(p.take_markers());
    }
}

/// Empty observations for the engine's players.
pub fn observations(engine: &Engine) -> Vec<OutputObservation> {
    engine
        .players
        .iter()
        .map(|p| OutputObservation {
            name: p.name().to_string(),
            kind: p.kind().to_string(),
            offset_ns: p.offset_ns(),
            acoustic: vec![],
        })
        .collect()
}

/// Runs the benchmark scenario for `seconds` of audio in virtual time and reports.
pub fn bench_sync(n_outputs: usize, seconds: f64, drift_control: bool) -> SyncReport {
    let start = LocalTime::from_ns(1_000_000_000_000);
    let clock = crate::timeline::ManualClock::new(start);
    let mut engine = build(&profiles(n_outputs), start, drift_control);
    let mut obs = observations(&engine);
    let duration_ns = (seconds * 1e9) as i64 + DEMO_BUFFER_NS + 1_000_000_000;
    engine.run_virtual(&clock, duration_ns, 1_000_000, 42, |e, _| collect(e, &mut obs));
    let end = start.add_ns((seconds * 1e9) as i64 + DEMO_BUFFER_NS);
    let plays = click_play_times(start, end);
    report::build(&plays, &obs, start, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_mixed_speakers_converge_and_stay_within_50_us() {
        let r = bench_sync(4, 40.0, true);
        let conv = r.converged_after_s.unwrap();
        assert!(conv <= 10.0, "converged after {conv} s\n{}", r.table());
        for o in &r.outputs {
            assert!(o.clicks >= 25, "{}", r.table());
            assert!(o.deviation_us.p99 <= 50.0, "{}", r.table());
        }
        assert!(r.skew_us.p99 <= 50.0, "{}", r.table());
    }

    #[test]
    fn without_drift_control_the_same_scenario_fails() {
        let r = bench_sync(4, 40.0, false);
        let worst = r.outputs.iter().map(|o| o.deviation_us.max).fold(0.0, f64::max);
        let conv = r.converged_after_s.unwrap();
        assert!(
            conv > 10.0 || worst > 50.0,
            "drift control off yet in sync:\n{}",
            r.table()
        );
    }
}

/// `demo --calibrate`: four simulated speakers whose reported delays are wrong by hidden amounts (−60…+60 ms,
/// drawn from a seed) in a reverberant, noisy simulated room, each measured with the microphone at the
/// listening place (3 repeats), calibrated, then measured again.
pub mod calibration {
    use crate::calibrate::measure::{corrections_ms, new_calibration_ms, SpeakerResult, DEFAULT_REPEATS};
    use crate::calibrate::signal::burst;
    use crate::calibrate::sim_room::{SimRoom, SimSpeaker};
    use crate::calibrate::CalibrateError;
    use serde::Serialize;

    /// Local time of the first measurement's play time, ns (any value: the room is simulated).
    const FIRST_PLAY_NS: i64 = 100_000_000_000;
    /// Each speaker's latency varies by up to ± this from one play to the next, ms.
    const PLAY_JITTER_MS: f64 = 0.15;
    /// The room's noise at the microphone, full scale RMS (−40 dBFS: a quiet living room, a cheap microphone).
    const ROOM_NOISE_RMS: f32 = 0.01;
    /// Seed of the measurement burst.
    const BURST_SEED: u64 = 1;

    /// One speaker, before and after.
    #[derive(Debug, Clone, Serialize)]
    pub struct CalibratedSpeaker {
        /// Output name.
        pub name: String,
        /// The delay it reports, ms.
        pub reported_delay_ms: f64,
        /// What its report hides (true − reported), ms: known to the simulation only.
        pub hidden_error_ms: f64,
        /// Its distance from the listening place, m.
        pub distance_m: f64,
        /// The measurement: error at the microphone (includes flight time and the unknown capture latency).
        pub measured: SpeakerResult,
        /// The calibration set, ms (relative: the capture latency is not known).
        pub calibration_ms: f64,
        /// Its sound at the listener relative to the play time before calibration, ms (simulation's truth).
        pub late_before_ms: f64,
        /// …and after, ms.
        pub late_after_ms: f64,
        /// After: its distance from the speakers' mean at the listener, ms (simulation's truth).
        pub relative_error_ms: f64,
        /// The re-measurement with the calibration in place (error relative to the other speakers), ms.
        pub check_relative_ms: f64,
    }

    /// The demo's figures.
    #[derive(Debug, Clone, Serialize)]
    pub struct CalibrationDemo {
        /// Seed the hidden errors were drawn from.
        pub seed: u64,
        /// The microphone's capture latency, ms: the calibration does not know it, only relative alignment is
        /// claimed.
        pub capture_latency_ms: f64,
        /// Repeats per speaker.
        pub repeats: usize,
        /// The speakers.
        pub speakers: Vec<CalibratedSpeaker>,
        /// Spread (max − min) of the speakers' arrivals at the listener before calibration, ms.
        pub skew_before_ms: f64,
        /// …after, ms (simulation's truth).
        pub skew_after_ms: f64,
        /// …after, as the re-measurement sees it, ms.
        pub skew_after_measured_ms: f64,
        /// The worst speaker's relative error after, ms.
        pub max_relative_error_ms: f64,
    }

    fn spread(v: impl Iterator<Item = f64> + Clone) -> f64 {
        v.clone().fold(f64::MIN, f64::max) - v.fold(f64::MAX, f64::min)
    }

    /// The room of the demo: the four standard speakers' reports, hidden errors from `seed`.
    pub fn room(seed: u64) -> SimRoom {
        let mut rng = fastrand::Rng::with_seed(seed);
        let specs = [
            ("a2dp-150ms", 150.0, 2.0),
            ("a2dp-230ms", 230.0, 3.5),
            ("broadcast-40ms", 40.0, 1.2),
            ("local-10ms", 10.0, 4.0),
        ];
        let speakers = specs
            .iter()
            .enumerate()
            .map(|(k, &(name, reported, distance_m))| {
                let hidden_ms = ((-60.0 + 120.0 * rng.f64()) * 10.0).round() / 10.0;
                let mut s = SimSpeaker::new(
                    name,
                    reported,
                    reported + hidden_ms,
                    distance_m,
                    seed.wrapping_mul(31) + k as u64,
                );
                // Real links wobble a little from one play to the next.
                s.jitter_ms = PLAY_JITTER_MS;
                s
            })
            .collect();
        let mut r = SimRoom::new(speakers, seed);
        r.noise_rms = ROOM_NOISE_RMS;
        r
    }

    /// Runs the demo.
    pub fn run(seed: u64) -> Result<CalibrationDemo, CalibrateError> {
        let mut room = room(seed);
        let b = burst(BURST_SEED);
        let n = room.speakers.len();
        let measured: Vec<SpeakerResult> = (0..n)
            .map(|i| room.measure(i, 0.0, DEFAULT_REPEATS, &b, FIRST_PLAY_NS))
            .collect::<Result<_, _>>()?;
        let cal: Vec<f64> = corrections_ms(&measured, false)
            .iter()
            .map(|c| new_calibration_ms(0.0, *c))
            .collect();
        let check: Vec<SpeakerResult> = (0..n)
            .map(|i| room.measure(i, cal[i], DEFAULT_REPEATS, &b, FIRST_PLAY_NS + 60_000_000_000))
            .collect::<Result<_, _>>()?;
        let check_rel = corrections_ms(&check, false);
        let before: Vec<f64> = room.speakers.iter().map(|s| s.late_at_listener_ms(0.0)).collect();
        let after: Vec<f64> = room
            .speakers
            .iter()
            .zip(&cal)
            .map(|(s, c)| s.late_at_listener_ms(*c))
            .collect();
        let mean_after = after.iter().sum::<f64>() / n as f64;
        let speakers: Vec<CalibratedSpeaker> = (0..n)
            .map(|i| {
                let s = &room.speakers[i];
                CalibratedSpeaker {
                    name: s.name.clone(),
                    reported_delay_ms: s.reported_delay_ms,
                    hidden_error_ms: s.hidden_error_ms(),
                    distance_m: s.distance_m,
                    measured: measured[i].clone(),
                    calibration_ms: cal[i],
                    late_before_ms: before[i],
                    late_after_ms: after[i],
                    relative_error_ms: after[i] - mean_after,
                    check_relative_ms: check_rel[i],
                }
            })
            .collect();
        Ok(CalibrationDemo {
            seed,
            capture_latency_ms: room.capture_latency_ms,
            repeats: DEFAULT_REPEATS,
            skew_before_ms: spread(before.iter().cloned()),
            skew_after_ms: spread(after.iter().cloned()),
            skew_after_measured_ms: spread(check.iter().map(|r| r.error_ms)),
            max_relative_error_ms: speakers.iter().map(|s| s.relative_error_ms.abs()).fold(0.0, f64::max),
            speakers,
        })
    }

    impl CalibrationDemo {
        /// The report as a table.
        pub fn table(&self) -> String {
            let mut s = format!(
                "calibration in a simulated room (seed {}; microphone at the listening place, its {:.1} ms capture latency unknown to the calibration; {} repeats)\n",
                self.seed, self.capture_latency_ms, self.repeats
            );
            s += &format!(
                "{:<16} {:>9} {:>9} {:>6} {:>10} {:>8} {:>7} {:>5} {:>10} {:>9} {:>9}\n",
                "speaker",
                "reported",
                "hidden",
                "dist",
                "measured",
                "spread",
                "pnr",
                "conf",
                "calibr.",
                "rel.after",
                "recheck"
            );
            for p in &self.speakers {
                s += &format!(
                    "{:<16} {:>6.1} ms {:>+6.1} ms {:>4.1} m {:>+7.3} ms {:>5.3} ms {:>4.0} dB {:>5.2} {:>+7.3} ms {:>+6.3} ms {:>+6.3} ms\n",
                    p.name,
                    p.reported_delay_ms,
                    p.hidden_error_ms,
                    p.distance_m,
                    p.measured.error_ms,
                    p.measured.spread_ms,
                    p.measured.pnr_db,
                    p.measured.confidence,
                    p.calibration_ms,
                    p.relative_error_ms,
                    p.check_relative_ms
                );
            }
            s += &format!(
                "skew between speakers at the listener: before {:.3} ms, after {:.3} ms (re-measured {:.3} ms); worst relative error after {:.3} ms\n",
                self.skew_before_ms, self.skew_after_ms, self.skew_after_measured_ms, self.max_relative_error_ms
            );
            s
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn the_demo_aligns_four_speakers_within_half_a_millisecond_and_the_recheck_agrees() {
            for seed in [7, 42] {
                let d = super::run(seed).unwrap();
                eprint!("{}", d.table());
                assert!(d.skew_before_ms > 5.0, "{}", d.table());
                assert!(d.max_relative_error_ms <= 0.5, "{}", d.table());
                assert!(d.skew_after_measured_ms <= 0.5, "{}", d.table());
                assert!(d.speakers.iter().all(|s| (-60.0..=60.0).contains(&s.hidden_error_ms)));
            }
        }
    }
}
