//! The player's unit tests, against a recording output on the local clock.

use super::*;
use crate::output::local_clocked::LocalClocked;
use crate::output::OutputError;
use crate::source::tone::TestSignal;
use crate::timeline::server_clock::ServerClock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

/// An output consumed at the local clock that records what it is given; its sink delay can be changed.
struct Recorder {
    clock: LocalClocked,
    frames: Arc<Mutex<Vec<i16>>>,
    delay_ns: Arc<AtomicI64>,
    /// Some: a device that applies the volume, with the last percentage it was asked for.
    device_pct: Option<Arc<Mutex<Option<u8>>>>,
}

impl Output for Recorder {
    fn kind(&self) -> &'static str {
        "recorder"
    }
    fn status(&mut self, now: LocalTime) -> OutputStatus {
        let mut st = self.clock.status(now);
        st.sink_reported_ns = Some(self.delay_ns.load(Ordering::Relaxed));
        st
    }
    fn write(&mut self, _now: LocalTime, frames: &[i16]) -> Result<(), OutputError> {
        self.clock.wrote(frames);
        self.frames.lock().unwrap().extend_from_slice(frames);
        Ok(())
    }
    fn paced_by_local_clock(&self) -> bool {
        true
    }
    fn device_mut(&mut self) -> Option<&mut dyn crate::output::DeviceControl> {
        Some(self)
    }
}

impl crate::output::DeviceControl for Recorder {
    fn set_volume(&mut self, pct: u8) -> bool {
        match &self.device_pct {
            Some(d) => {
                *d.lock().unwrap() = Some(pct);
                true
            }
            None => false,
        }
    }
    fn volume(&self) -> Option<(u16, u16)> {
        None
    }
    fn idle(&self) -> bool {
        false
    }
}

/// A feed of the standard test signal (5 s) from a source on `clock`, played with a 300 ms buffer.
fn tone_feed(clock: ServerClock) -> Feed {
    Feed {
        timeline: crate::source::tone::standard_timeline(5 * 48_000 / 960, 10_000_000_000),
        server_clock: Arc::new(Mutex::new(clock)),
        settings: Arc::new(Mutex::new(PlaySettings {
            buffer_ns: 300_000_000,
            ..PlaySettings::default()
        })),
    }
}

/// A [`Recorder`] with a 100 ms sink delay, with the frames it records and its delay (to change it).
fn recorder(device_pct: Option<Arc<Mutex<Option<u8>>>>) -> (Recorder, Arc<Mutex<Vec<i16>>>, Arc<AtomicI64>) {
    let frames = Arc::new(Mutex::new(Vec::new()));
    let delay_ns = Arc::new(AtomicI64::new(100_000_000));
    let out = Recorder {
        clock: LocalClocked::new(20_000_000, 0),
        frames: frames.clone(),
        delay_ns: delay_ns.clone(),
        device_pct,
    };
    (out, frames, delay_ns)
}

/// Plays 4 s of the test signal from a source on `clock` to a [`Recorder`]; the sink's delay grows by 30 ms at
/// 2 s. Returns the left channel written and the player's status.
fn play(clock: ServerClock) -> (Vec<i16>, PlayerStatus) {
    play_at(clock, 100, None)
}

/// [`play`] with a local volume, to an output that applies the volume itself when `device_pct` is given.
fn play_at(clock: ServerClock, volume_pct: u8, device_pct: Option<Arc<Mutex<Option<u8>>>>) -> (Vec<i16>, PlayerStatus) {
    let feed = tone_feed(clock);
    let (out, frames, delay_ns) = recorder(device_pct);
    let mut cfg = PlayerConfig::named("r");
    cfg.volume_pct = volume_pct;
    let mut player = Player::new(cfg, feed, Box::new(out));
    for tick in 0..800 {
        if tick == 400 {
            delay_ns.store(130_000_000, Ordering::Relaxed);
        }
        player.tick(LocalTime::from_ns(tick * 5_000_000));
    }
    let left = frames.lock().unwrap().chunks_exact(2).map(|f| f[0]).collect();
    (left, player.status())
}

/// The source frame output frame `j` copies in `out[from..to]`, if one shift fits all of them exactly.
fn exact_shift(out: &[i16], from: usize, to: usize) -> Option<i64> {
    let signal = TestSignal::standard();
    let src = |n: i64| (signal.sample(n as u64) * 32767.0).round() as i16;
    (-48_000i64..48_000).find(|k| (from..to).all(|j| j as i64 + k >= 0 && out[j] == src(j as i64 + k)))
}

#[test]
fn a_source_on_the_local_clock_is_copied_bit_exact_and_follows_a_delay_jump() {
    let (out, st) = play(ServerClock::local());
    // Before the jump (t = 0.5–1.9 s) and after it (2.2–3.9 s): exact copies, shifted by the 30 ms (1440 frames).
    let before = exact_shift(&out, 24_000, 91_000).expect("an exact copy before the delay change");
    let after = exact_shift(&out, 106_000, 187_000).expect("an exact copy after the delay change");
    assert_eq!(after - before, 1_440);
    assert_eq!(st.resyncs, 1, "one resync for the jump: {st:?}");
    assert_eq!(st.correction_ppm, 0.0);
    assert!(!st.resampling);
}

/// Issue 18: a calibration burst scheduled to be heard at T sits where the music of T's source time would
/// have been, sample for sample (the same path: the player's mapping, its delay, the output), and a disabled
/// output plays the burst but none of the music.
#[test]
fn a_calibration_burst_takes_the_place_of_the_music_heard_at_its_time() {
    let (music, _) = play(ServerClock::local());
    let k = exact_shift(&music, 24_000, 91_000).expect("exact copy");
    let feed = tone_feed(ServerClock::local());
    let (out, frames, _) = recorder(None);
    let mut player = Player::new(PlayerConfig::named("r"), feed, Box::new(out));
    player.set_enabled(false);
    let burst: Vec<f32> = (0..4_800).map(|i| if i % 7 < 3 { 0.25 } else { -0.25 }).collect();
    // Heard at 1.5 s: source time 1.5 − 0.3 (buffer) = 1.2 s, source frame 57 600.
    let at = player
        .schedule_burst(LocalTime::from_ns(1_500_000_000), Arc::new(burst.clone()))
        .unwrap();
    assert_eq!(at, 1_200_000_000);
    for tick in 0..400 {
        player.tick(LocalTime::from_ns(tick * 5_000_000));
    }
    let left: Vec<i16> = frames.lock().unwrap().chunks_exact(2).map(|f| f[0]).collect();
    let j0 = (57_600 - k) as usize;
    for (i, v) in burst.iter().enumerate() {
        assert_eq!(
            left[j0 + i],
            (v * 32767.0).round() as i16,
            "burst sample {i} at output frame {}",
            j0 + i
        );
    }
    assert!(left[..j0].iter().all(|v| *v == 0), "disabled: no music before");
    assert!(left[j0 + burst.len()..].iter().all(|v| *v == 0), "nor after");
    assert!(player.overlay.is_none(), "the burst removed itself once played");
}

#[test]
fn a_device_that_applies_the_volume_gets_full_scale_samples_and_the_percentage() {
    let peak = |out: &[i16]| out[24_000..91_000].iter().map(|v| v.unsigned_abs()).max().unwrap() as f32;
    let (full, _) = play_at(ServerClock::local(), 100, None);
    // Software volume: 50 % scales the samples by Snapcast's curve.
    let (soft, _) = play_at(ServerClock::local(), 50, None);
    let ratio = peak(&soft) / peak(&full);
    assert!((ratio - volume_gain(50)).abs() < 0.01, "software 50 %: ratio {ratio}");
    // A device that applies it: the samples stay exact copies at full scale, and it is told 50 % (group 100 %).
    let asked = Arc::new(Mutex::new(None));
    let (dev, _) = play_at(ServerClock::local(), 50, Some(asked.clone()));
    assert!(exact_shift(&dev, 24_000, 91_000).is_some(), "full-scale exact copy");
    assert_eq!(*asked.lock().unwrap(), Some(50));
}

/// Issue 17: the player never waits for what a source holds. With the settings, the server clock and the
/// source's end of the timeline all held by "the source", ticks go on (on a thread, with a deadline) with the
/// values read before, and audio keeps coming.
#[test]
fn a_tick_does_not_wait_for_the_source() {
    let feed = tone_feed(ServerClock::local());
    let timeline = feed.timeline.clone();
    let (out, frames, _) = recorder(None);
    let mut player = Player::new(PlayerConfig::named("r"), feed.clone(), Box::new(out));
    for tick in 0..100 {
        player.tick(LocalTime::from_ns(tick * 5_000_000));
    }
    let settings = feed.settings.lock().unwrap();
    let clock = feed.server_clock.lock().unwrap();
    let sending = timeline.hold_source_end_for_test();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for tick in 100..400 {
            player.tick(LocalTime::from_ns(tick * 5_000_000));
        }
        tx.send(()).unwrap();
    });
    rx.recv_timeout(std::time::Duration::from_secs(10))
        .expect("the player's ticks waited for a lock the source held");
    drop((settings, clock, sending));
    let out = frames.lock().unwrap();
    let audible = out[out.len() - 48_000..].iter().filter(|v| **v != 0).count();
    assert!(
        audible > 40_000,
        "the last second played the signal ({audible} non-zero samples)"
    );
}

#[test]
fn device_volume_is_the_product_of_group_and_local_volume() {
    for (group, local, want) in [
        (100, 100, 100),
        (100, 50, 50),
        (50, 50, 25),
        (0, 100, 0),
        (33, 33, 11),
        (200, 100, 100),
    ] {
        assert_eq!(device_volume_pct(group, local), want, "group {group} local {local}");
    }
}

#[test]
fn a_measured_clock_goes_through_the_resampler() {
    // The same audio from a clock that is measured (a network source's) is resampled (bit-exact too here, as
    // the estimate never moves and the polynomial passes through the samples at a ratio of exactly 1).
    let (out, st) = play(ServerClock::fixed(0));
    assert!(st.synced && st.resampling, "{st:?}");
    assert!(exact_shift(&out, 106_000, 107_000).is_some());
}
