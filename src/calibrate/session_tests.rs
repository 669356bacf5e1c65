//! Tests of a calibration run in the simulated room: a simulated stage and microphone sharing one room.

use super::*;
use crate::calibrate::signal::burst;
use crate::calibrate::sim_room::{SimRoom, SimSpeaker};
use std::cell::RefCell;
use std::rc::Rc;

/// The room, its speakers' calibrations, and what the stage did.
struct World {
    room: SimRoom,
    calibration_ms: Vec<f64>,
    now_ns: i64,
    solo: Option<String>,
    /// (output, heard at) of the last burst scheduled and not yet recorded.
    pending: Option<(usize, i64)>,
    solo_calls: Vec<Option<String>>,
    plays: Vec<(String, i64)>,
}

struct SimStage(Rc<RefCell<World>>);
struct SimMic(Rc<RefCell<World>>);

impl World {
    fn index(&self, name: &str) -> usize {
        self.room.speakers.iter().position(|s| s.name == name).expect("known")
    }
}

impl Stage for SimStage {
    fn now_ns(&self) -> i64 {
        self.0.borrow().now_ns
    }
    fn mute(&mut self, except: Option<&str>) -> Result<(), CalibrateError> {
        let mut w = self.0.borrow_mut();
        w.solo = except.map(str::to_string);
        let s = w.solo.clone();
        w.solo_calls.push(s);
        Ok(())
    }
    fn restore(&mut self) -> Result<(), CalibrateError> {
        let mut w = self.0.borrow_mut();
        w.solo = None;
        w.solo_calls.push(Some("(restored)".into()));
        Ok(())
    }
    fn wait_until(&mut self, at_ns: i64) {
        let mut w = self.0.borrow_mut();
        w.now_ns = w.now_ns.max(at_ns);
    }
    fn play(&mut self, output: &str, at_ns: i64, _burst: Arc<Vec<f32>>) -> Result<(), CalibrateError> {
        let mut w = self.0.borrow_mut();
        assert!(
            w.solo.is_none() || w.solo.as_deref() == Some(output),
            "only the measured output plays (or none, in a sequence)"
        );
        w.plays.push((output.to_string(), at_ns));
        assert!(at_ns >= w.now_ns + 500_000_000, "scheduled with its lead");
        let i = w.index(output);
        w.pending = Some((i, at_ns));
        Ok(())
    }
    fn lead_ns(&self, _output: &str) -> i64 {
        500_000_000
    }
}

impl Microphone for SimMic {
    fn record(&mut self, from_ns: i64, until_ns: i64) -> Result<MicRecording, CalibrateError> {
        let mut w = self.0.borrow_mut();
        let (i, at) = w.pending.take().expect("a burst was scheduled");
        let cal = w.calibration_ms[i];
        let b = burst(1);
        let (samples, first_sample_ns) = w.room.capture(i, cal, &b, at);
        assert_eq!(first_sample_ns, from_ns, "the window asked for");
        assert!(first_sample_ns + samples.len() as i64 * 1_000_000_000 / 48_000 >= until_ns - 1_000);
        w.now_ns = until_ns + 50_000_000;
        Ok(MicRecording {
            samples,
            first_sample_ns,
        })
    }
}

fn world(seed: u64) -> Rc<RefCell<World>> {
    // Reported delays wrong by −55, +40, +12 and −30 ms; distances 1.5…3.5 m.
    let speakers = vec![
        SimSpeaker::new("kitchen", 150.0, 95.0, 2.0, seed),
        SimSpeaker::new("hall", 120.0, 160.0, 3.5, seed + 1),
        SimSpeaker::new("attic", 200.0, 212.0, 1.5, seed + 2),
        SimSpeaker::new("porch", 90.0, 60.0, 2.5, seed + 3),
    ];
    let n = speakers.len();
    Rc::new(RefCell::new(World {
        room: SimRoom::new(speakers, seed),
        calibration_ms: vec![0.0; n],
        now_ns: 1_000_000_000,
        solo: None,
        pending: None,
        solo_calls: vec![],
        plays: vec![],
    }))
}

fn names(w: &Rc<RefCell<World>>) -> Vec<String> {
    w.borrow().room.speakers.iter().map(|s| s.name.clone()).collect()
}

fn run(w: &Rc<RefCell<World>>, reference: &Reference) -> Vec<Outcome> {
    let outputs = names(w);
    let opts = RunOptions {
        repeats: 3,
        burst: Arc::new(burst(1)),
    };
    let results = measure_all(&mut SimStage(w.clone()), &mut SimMic(w.clone()), &outputs, &opts);
    let current = w.borrow().calibration_ms.clone();
    plan(&outputs, &current, &results, reference)
}

/// Worst difference between two speakers' arrival at the microphone, ms.
fn skew_ms(w: &Rc<RefCell<World>>) -> f64 {
    let w = w.borrow();
    let late: Vec<f64> = w
        .room
        .speakers
        .iter()
        .zip(&w.calibration_ms)
        .map(|(s, c)| s.late_at_listener_ms(*c))
        .collect();
    late.iter().cloned().fold(f64::MIN, f64::max) - late.iter().cloned().fold(f64::MAX, f64::min)
}

#[test]
fn a_run_aligns_four_misreporting_speakers_and_a_check_then_reads_zero() {
    let w = world(11);
    let before = skew_ms(&w);
    let out = run(&w, &Reference::Mean);
    for o in &out {
        assert!(o.refused.is_none(), "{o:?}");
        assert_eq!(o.repeats_ms.len(), 3);
    }
    // Apply, as the service does unless --dry-run/--check.
    w.borrow_mut().calibration_ms = out.iter().map(|o| o.new_calibration_ms).collect();
    let after = skew_ms(&w);
    eprintln!("skew before {before:.2} ms, after {after:.3} ms");
    assert!(before > 50.0 && after <= 0.5, "before {before}, after {after}");
    // Every output was soloed in turn and all were put back at the end.
    let calls = w.borrow().solo_calls.clone();
    assert_eq!(calls.len(), 5);
    assert_eq!(calls.last(), Some(&Some("(restored)".to_string())));
    // A check (measure again, change nothing) reads each speaker's error as ~0.
    let check = run(&w, &Reference::Mean);
    for o in &check {
        assert!(o.error_ms.unwrap().abs() < 0.3, "{o:?}");
    }
}

#[test]
fn a_reference_output_is_taken_as_on_time_and_the_others_are_absolute_against_it() {
    let w = world(12);
    let out = run(&w, &Reference::Output { name: "attic".into() });
    assert!(out[2].error_ms.unwrap().abs() < 1e-9, "{:?}", out[2]);
    let room = w.borrow().room.clone();
    let truth = |i: usize| room.speakers[i].late_at_listener_ms(0.0) - room.speakers[2].late_at_listener_ms(0.0);
    for (i, o) in out.iter().enumerate() {
        assert!((o.error_ms.unwrap() - truth(i)).abs() < 0.1, "{o:?} want {}", truth(i));
    }
    // A known microphone latency: measured − latency.
    let out = run(&w, &Reference::MicLatency { ms: 7.3 });
    let want = room.speakers[0].late_at_listener_ms(0.0);
    assert!(
        (out[0].error_ms.unwrap() - want).abs() < 0.1,
        "{:?} want {want}",
        out[0]
    );
}

#[test]
fn a_silent_speaker_is_refused_by_name_and_the_others_are_still_calibrated() {
    let w = world(13);
    w.borrow_mut().room.speakers[1].plays = false;
    let out = run(&w, &Reference::Mean);
    let r = out[1].refused.as_deref().expect("refused");
    assert!(r.starts_with("hall: not heard at all"), "{r}");
    assert_eq!(out[1].new_calibration_ms, 0.0, "a refused output keeps its calibration");
    assert!(out.iter().enumerate().all(|(i, o)| i == 1 || o.error_ms.is_some()));
    // The refused reference leaves nothing to correct against.
    let out = run(&w, &Reference::Output { name: "hall".into() });
    assert!(
        out.iter().all(|o| o.refused.is_some() && o.error_ms.is_none()),
        "{out:?}"
    );
    assert!(out[0]
        .refused
        .as_deref()
        .unwrap()
        .contains("reference output could not be measured"));
}

#[test]
fn a_played_sequence_puts_each_burst_one_spacing_after_the_last_and_all_outputs_back() {
    let w = world(14);
    let order = vec!["kitchen".to_string(), "hall".to_string(), "attic".to_string()];
    let t0 = play_sequence(&mut SimStage(w.clone()), "kitchen", &order, Arc::new(burst(1))).unwrap();
    let w = w.borrow();
    let want: Vec<(String, i64)> = [
        ("kitchen", 0),
        ("kitchen", 1),
        ("hall", 2),
        ("attic", 3),
        ("kitchen", 4),
    ]
    .iter()
    .map(|(n, k)| (n.to_string(), t0 + k * SEQUENCE_SPACING_NS))
    .collect();
    assert_eq!(w.plays, want);
    assert_eq!(
        w.solo_calls,
        vec![None, Some("(restored)".to_string())],
        "all muted, then put back"
    );
    assert!(
        w.now_ns > t0 + 4 * SEQUENCE_SPACING_NS,
        "returns once the last burst has played"
    );
}

#[test]
fn offsets_from_a_recording_are_corrected_relative_to_their_mean() {
    let names = vec!["a".to_string(), "b".to_string(), "c".to_string()];
    let out = plan_from_recording(&names, &[1.0, 0.0, -2.0], &[0.0, 3.0, -1.5]);
    let errors: Vec<f64> = out.iter().map(|o| o.error_ms.unwrap()).collect();
    assert_eq!(errors, vec![-0.5, 2.5, -2.0]);
    let new: Vec<f64> = out.iter().map(|o| o.new_calibration_ms).collect();
    assert_eq!(new, vec![0.5, 2.5, -4.0], "late b gets more delay");
}
