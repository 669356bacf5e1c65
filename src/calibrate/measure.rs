//! One speaker's measurement: each repeat's recording checked and turned into an error (heard − should have
//! been heard), the repeats combined into a figure with its spread and a confidence, and that figure into the
//! output's new `calibration_ms`. Every refusal is a [`CalibrateError`].

use super::detect::{cross_correlate, first_arrival, Arrival};
use super::signal::RATE_HZ;
use super::CalibrateError;
use serde::Serialize;

/// Below this peak-to-noise ratio nothing was heard: noise alone reaches about 14 dB over a few seconds.
pub const HEARD_PNR_DB: f64 = 17.0;
/// The least peak-to-noise ratio a figure is taken from.
pub const MIN_PNR_DB: f64 = 25.0;
/// A sample at or above this magnitude counts as clipped.
pub const CLIP_LEVEL: f32 = 0.999;
/// Clipped samples tolerated in one recording (a stray full-scale sample is not distortion).
pub const MAX_CLIPPED_SAMPLES: usize = 8;
/// A recording whose RMS is below this is no input at all, dBFS.
pub const NO_INPUT_DBFS: f64 = -100.0;
/// The most the repeats of one speaker may spread (max − min), ms.
pub const MAX_SPREAD_MS: f64 = 1.0;
/// Repeats per speaker unless told otherwise.
pub const DEFAULT_REPEATS: usize = 3;
/// Peak-to-noise ratio at and above which the confidence is not limited by noise, dB.
const FULL_CONFIDENCE_PNR_DB: f64 = 45.0;

/// One repeat's recording, timed on the local clock.
#[derive(Debug, Clone, Copy)]
pub struct Capture<'a> {
    /// Mono samples at [`RATE_HZ`].
    pub samples: &'a [f32],
    /// Local time of the first sample as the capture stamps it (capture timestamp), ns.
    pub first_sample_ns: i64,
    /// Local time the burst's first sample was scheduled to be heard, ns.
    pub scheduled_ns: i64,
}

/// One repeat's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Repeat {
    /// Heard (capture time of the direct sound) − scheduled, ns; includes the microphone's capture latency.
    pub error_ns: i64,
    /// Peak-to-noise ratio of the correlation, dB.
    pub pnr_db: f64,
    /// Gain of the direct sound relative to the loudest arrival (≤ 1; < 1 when a reflection is louder).
    pub direct_to_max: f64,
}

/// Checks one repeat's recording and finds the burst in it.
pub fn measure_repeat(speaker: &str, capture: Capture<'_>, burst: &[f32]) -> Result<Repeat, CalibrateError> {
    let x = capture.samples;
    let rms = (x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / x.len().max(1) as f64).sqrt();
    let level_dbfs = 20.0 * rms.max(1e-12).log10();
    if level_dbfs < NO_INPUT_DBFS {
        return Err(CalibrateError::NoInput {
            speaker: speaker.into(),
            level_dbfs,
        });
    }
    let clipped_samples = x.iter().filter(|v| v.abs() >= CLIP_LEVEL).count();
    if clipped_samples > MAX_CLIPPED_SAMPLES {
        return Err(CalibrateError::Clipped {
            speaker: speaker.into(),
            clipped_samples,
            max_samples: MAX_CLIPPED_SAMPLES,
        });
    }
    let corr = cross_correlate(x, burst);
    let a: Arrival = first_arrival(&corr, 0..corr.len()).ok_or_else(|| CalibrateError::SpeakerSilent {
        speaker: speaker.into(),
        pnr_db: 0.0,
        heard_db: HEARD_PNR_DB,
    })?;
    check_pnr(speaker, a.pnr_db)?;
    let at_ns = capture.first_sample_ns as f64 + a.position_samples * 1e9 / RATE_HZ as f64;
    Ok(Repeat {
        error_ns: (at_ns - capture.scheduled_ns as f64).round() as i64,
        pnr_db: a.pnr_db,
        direct_to_max: (a.direct_gain.abs() / a.max_gain) as f64,
    })
}

/// Refuses a peak-to-noise ratio that is silence or too weak.
pub fn check_pnr(speaker: &str, pnr_db: f64) -> Result<(), CalibrateError> {
    if pnr_db < HEARD_PNR_DB {
        return Err(CalibrateError::SpeakerSilent {
            speaker: speaker.into(),
            pnr_db,
            heard_db: HEARD_PNR_DB,
        });
    }
    if pnr_db < MIN_PNR_DB {
        return Err(CalibrateError::TooWeak {
            speaker: speaker.into(),
            pnr_db,
            min_db: MIN_PNR_DB,
        });
    }
    Ok(())
}

/// One speaker's combined figure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeakerResult {
    /// The output.
    pub speaker: String,
    /// Median over the repeats of heard − scheduled, ms, less the capture latency if it is known: positive
    /// means the speaker sounds late at the microphone.
    pub error_ms: f64,
    /// Each repeat's error, ms (same reference as `error_ms`).
    pub repeats_ms: Vec<f64>,
    /// max − min over the repeats, ms.
    pub spread_ms: f64,
    /// The worst repeat's peak-to-noise ratio, dB.
    pub pnr_db: f64,
    /// 0…1: 1 when the repeats agree exactly and the signal is ≥ 45 dB over the noise; falls linearly to 0 as
    /// the spread reaches [`MAX_SPREAD_MS`] or the ratio falls to [`MIN_PNR_DB`].
    pub confidence: f64,
}

/// Combines one speaker's repeats. `capture_latency_ns` is the microphone's own latency if known (then the
/// error is absolute, against the group's timeline); without it the error carries that latency, the same for
/// every speaker, so only differences between speakers are exact.
pub fn combine(
    speaker: &str,
    repeats: &[Repeat],
    capture_latency_ns: Option<i64>,
) -> Result<SpeakerResult, CalibrateError> {
    if repeats.is_empty() {
        return Err(CalibrateError::NoRepeats {
            speaker: speaker.into(),
        });
    }
    let lat = capture_latency_ns.unwrap_or(0);
    let ms: Vec<f64> = repeats.iter().map(|r| (r.error_ns - lat) as f64 / 1e6).collect();
    let max = ms.iter().cloned().fold(f64::MIN, f64::max);
    let min = ms.iter().cloned().fold(f64::MAX, f64::min);
    let spread_ms = max - min;
    if spread_ms > MAX_SPREAD_MS {
        return Err(CalibrateError::RepeatsDisagree {
            speaker: speaker.into(),
            spread_ms,
            max_ms: MAX_SPREAD_MS,
            repeats: ms.len(),
            errors: ms.iter().map(|m| format!("{m:.2}")).collect::<Vec<_>>().join(", "),
        });
    }
    let mut sorted = ms.clone();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let error_ms = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    };
    let pnr_db = repeats.iter().map(|r| r.pnr_db).fold(f64::INFINITY, f64::min);
    let by_spread = 1.0 - spread_ms / MAX_SPREAD_MS;
    let by_noise = ((pnr_db - MIN_PNR_DB) / (FULL_CONFIDENCE_PNR_DB - MIN_PNR_DB)).clamp(0.0, 1.0);
    Ok(SpeakerResult {
        speaker: speaker.into(),
        error_ms,
        repeats_ms: ms,
        spread_ms,
        pnr_db,
        confidence: by_spread.min(by_noise).clamp(0.0, 1.0),
    })
}

/// The errors the calibration corrects: each result's error as it is when the capture latency was known
/// (`absolute`), else relative to the mean of the measured speakers (the speakers are moved to each other, the
/// group as a whole is not moved by the unknown microphone latency).
pub fn corrections_ms(results: &[SpeakerResult], absolute: bool) -> Vec<f64> {
    let mean = if absolute || results.is_empty() {
        0.0
    } else {
        results.iter().map(|r| r.error_ms).sum::<f64>() / results.len() as f64
    };
    results.iter().map(|r| r.error_ms - mean).collect()
}

/// The output's new `calibration_ms` after a measurement made with `current_ms` in place: a speaker heard
/// `correction_ms` late needs that much more delay accounted, so that it is handed its frames earlier.
pub fn new_calibration_ms(current_ms: f64, correction_ms: f64) -> f64 {
    current_ms + correction_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rep(error_ns: i64, pnr_db: f64) -> Repeat {
        Repeat {
            error_ns,
            pnr_db,
            direct_to_max: 1.0,
        }
    }

    #[test]
    fn combine_takes_the_median_and_the_spread_and_subtracts_a_known_capture_latency() {
        let r = combine(
            "kitchen",
            &[rep(12_100_000, 50.0), rep(12_300_000, 40.0), rep(12_000_000, 60.0)],
            Some(2_000_000),
        )
        .unwrap();
        assert!((r.error_ms - 10.1).abs() < 1e-9, "{r:?}");
        assert!((r.spread_ms - 0.3).abs() < 1e-9, "{r:?}");
        assert_eq!(r.pnr_db, 40.0);
        assert!((r.confidence - 0.7).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn disagreeing_repeats_are_refused_naming_the_speaker_and_the_spread() {
        let e = combine("hall", &[rep(0, 50.0), rep(1_500_000, 50.0), rep(200_000, 50.0)], None).unwrap_err();
        assert!(matches!(e, CalibrateError::RepeatsDisagree { spread_ms, .. } if (spread_ms - 1.5).abs() < 1e-9));
        let msg = e.to_string();
        assert!(
            msg.starts_with("hall: the repeats disagree: spread 1.50 ms over 3 repeats"),
            "{msg}"
        );
        assert!(matches!(
            combine("hall", &[], None),
            Err(CalibrateError::NoRepeats { .. })
        ));
    }

    #[test]
    fn a_late_speaker_gets_more_delay_so_it_is_played_earlier() {
        use crate::timeline::delay::OutputDelay;
        // Heard 20 ms late with no calibration: the new calibration is +20 ms, and the total delay (what the
        // player subtracts from the play time to hand the frame over) grows by 20 ms: it is handed over earlier.
        let cal = new_calibration_ms(0.0, 20.0);
        assert_eq!(cal, 20.0);
        let before = OutputDelay {
            sink_reported_ns: 230_000_000,
            ..Default::default()
        };
        let after = OutputDelay {
            calibration_ns: (cal * 1e6) as i64,
            ..before
        };
        let play_ns = 10_000_000_000i64;
        assert_eq!((play_ns - before.total_ns()) - (play_ns - after.total_ns()), 20_000_000);
        // A second measurement with it in place finds the remaining error and adds it.
        assert_eq!(new_calibration_ms(20.0, -0.5), 19.5);
    }

    #[test]
    fn relative_corrections_move_speakers_to_each_other_not_the_group() {
        let mk = |e: f64| SpeakerResult {
            speaker: "x".into(),
            error_ms: e,
            repeats_ms: vec![e],
            spread_ms: 0.0,
            pnr_db: 50.0,
            confidence: 1.0,
        };
        let rs = [mk(10.0), mk(20.0), mk(30.0)];
        assert_eq!(corrections_ms(&rs, false), vec![-10.0, 0.0, 10.0]);
        assert_eq!(corrections_ms(&rs, true), vec![10.0, 20.0, 30.0]);
    }

    use crate::calibrate::signal::burst;
    use crate::calibrate::sim_room::{SimRoom, SimSpeaker};

    const PLAY_NS: i64 = 100_000_000_000;

    /// Four speakers whose reports are wrong by hidden amounts between −60 and +60 ms, drawn from `seed`, at
    /// different distances in a reverberant, noisy room.
    fn room(seed: u64) -> SimRoom {
        let mut rng = fastrand::Rng::with_seed(seed);
        let specs = [
            ("kitchen", 150.0, 2.0),
            ("hall", 230.0, 3.5),
            ("porch", 40.0, 1.2),
            ("den", 10.0, 4.0),
        ];
        let speakers = specs
            .iter()
            .enumerate()
            .map(|(k, &(name, reported, d))| {
                let hidden = -60.0 + 120.0 * rng.f64();
                SimSpeaker::new(name, reported, reported + hidden, d, seed * 10 + k as u64)
            })
            .collect();
        SimRoom::new(speakers, seed)
    }

    /// Calibrates every speaker of `room` once and returns the worst relative error after, ms: how far each
    /// speaker's arrival at the microphone is from the speakers' mean, with the new calibrations in place.
    fn calibrate_all(room: &mut SimRoom) -> (f64, f64) {
        let b = burst(1);
        let results: Vec<SpeakerResult> = (0..room.speakers.len())
            .map(|i| room.measure(i, 0.0, DEFAULT_REPEATS, &b, PLAY_NS).unwrap())
            .collect();
        let cal: Vec<f64> = corrections_ms(&results, false)
            .iter()
            .map(|c| new_calibration_ms(0.0, *c))
            .collect();
        let late = |cals: &[f64]| -> Vec<f64> {
            room.speakers
                .iter()
                .zip(cals)
                .map(|(s, c)| s.late_at_listener_ms(*c))
                .collect()
        };
        let rel = |v: Vec<f64>| {
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            v.iter().map(|x| (x - mean).abs()).fold(0.0, f64::max)
        };
        (rel(late(&[0.0; 4])), rel(late(&cal)))
    }

    #[test]
    fn four_speakers_wrong_by_up_to_60_ms_end_within_half_a_millisecond_of_each_other() {
        for seed in [1, 2, 3] {
            let mut r = room(seed);
            let hidden: Vec<f64> = r.speakers.iter().map(|s| s.hidden_error_ms()).collect();
            assert!(hidden.iter().all(|h| (-60.0..=60.0).contains(h)));
            let (before, after) = calibrate_all(&mut r);
            eprintln!(
                "seed {seed}: hidden {hidden:.1?} ms; worst relative error before {before:.3} ms, after {after:.4} ms"
            );
            assert!(before > 5.0, "the scenario must start out of step: {before}");
            assert!(after <= 0.5, "seed {seed}: {after} ms");
        }
    }

    #[test]
    fn the_measured_error_is_hidden_error_plus_flight_plus_capture_latency() {
        let mut r = room(4);
        let b = burst(1);
        let res = r.measure(1, 0.0, 3, &b, PLAY_NS).unwrap();
        let s = &r.speakers[1];
        let want = s.hidden_error_ms() + s.flight_ms() + r.capture_latency_ms;
        assert!((res.error_ms - want).abs() < 0.05, "{res:?} want {want}");
        assert!(res.spread_ms < 0.05 && res.confidence > 0.9, "{res:?}");
        // With a calibration in place, what is left is measured.
        let res2 = r.measure(1, res.error_ms, 3, &b, PLAY_NS).unwrap();
        assert!(res2.error_ms.abs() < 0.05, "{res2:?}");
    }

    #[test]
    fn refusals_in_the_room_no_signal_clipping_disagreeing_repeats_silent_speaker() {
        let b = burst(1);
        // Buried in the noise: heard, but too weak to trust.
        let mut r = room(5);
        r.speakers[0].gain = 0.0012;
        r.noise_rms = 0.02;
        let e = r.measure(0, 0.0, 3, &b, PLAY_NS).unwrap_err();
        assert!(matches!(e, CalibrateError::TooWeak { .. }), "{e}");
        assert!(e.to_string().starts_with("kitchen: signal too weak"), "{e}");
        // Clipping: the microphone's gain far too high.
        let mut r = room(5);
        r.mic_gain = 8.0;
        let e = r.measure(1, 0.0, 3, &b, PLAY_NS).unwrap_err();
        assert!(matches!(e, CalibrateError::Clipped { .. }), "{e}");
        assert!(e.to_string().starts_with("hall: the microphone input clipped"), "{e}");
        // Disagreeing repeats: a latency that wanders by ±10 ms between plays.
        let mut r = room(5);
        r.speakers[2].jitter_ms = 10.0;
        let e = r.measure(2, 0.0, 3, &b, PLAY_NS).unwrap_err();
        assert!(matches!(e, CalibrateError::RepeatsDisagree { .. }), "{e}");
        assert!(e.to_string().starts_with("porch: the repeats disagree"), "{e}");
        // A speaker that does not play: only noise and the other speakers' silence.
        let mut r = room(5);
        r.speakers[3].plays = false;
        let e = r.measure(3, 0.0, 3, &b, PLAY_NS).unwrap_err();
        assert!(matches!(e, CalibrateError::SpeakerSilent { .. }), "{e}");
        assert!(e.to_string().starts_with("den: not heard at all"), "{e}");
        // A microphone that delivers nothing.
        let mut r = room(5);
        r.speakers[3].plays = false;
        r.noise_rms = 0.0;
        let e = r.measure(3, 0.0, 3, &b, PLAY_NS).unwrap_err();
        assert!(matches!(e, CalibrateError::NoInput { .. }), "{e}");
        // The same room without the faults measures fine (the refusals above come from the faults).
        let mut r = room(5);
        assert!((0..4).all(|i| r.measure(i, 0.0, 3, &b, PLAY_NS).is_ok()));
    }

    #[test]
    fn peak_to_noise_thresholds_name_silence_and_weakness() {
        assert!(matches!(
            check_pnr("a", 12.0),
            Err(CalibrateError::SpeakerSilent { .. })
        ));
        let e = check_pnr("a", 20.0).unwrap_err();
        assert!(matches!(e, CalibrateError::TooWeak { .. }));
        assert!(e
            .to_string()
            .contains("a: signal too weak or room too noisy: peak-to-noise 20.0 dB, needs 25 dB"));
        assert!(check_pnr("a", 30.0).is_ok());
    }
}
