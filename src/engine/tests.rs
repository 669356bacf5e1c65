//! The engine's tests: commands, wake-up times, the load meter, status publication and the command bound.

use super::load::LoadMeter;
use super::*;
use crate::demo;
use crate::timeline::{Clock, ManualClock};
use std::sync::{Arc, Mutex};

fn engine(n: usize, clock: &ManualClock) -> Engine {
    demo::build(&demo::profiles(n), clock.now(), true)
}

/// Runs `ms` of virtual time, serving `ctl` every tick.
fn run(e: &mut Engine, ctl: &mut EngineControl, clock: &ManualClock, ms: i64) {
    for _ in 0..ms * 1_000_000 / TICK_NS {
        clock.advance_ns(TICK_NS);
        let now = clock.now();
        e.tick(now);
        e.serve(ctl, now);
    }
}

#[test]
fn commands_reach_the_named_player_and_unknown_names_list_the_known_ones() {
    let clock = ManualClock::new(LocalTime::from_ns(1_000_000_000));
    let mut e = engine(2, &clock);
    let (handle, mut ctl) = control_channel();
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let name = e.players[1].name().to_string();
    let (a, b) = (handle.clone(), name.clone());
    let pending = std::thread::spawn(move || {
        rt.block_on(async {
            let r1 = a
                .call(EngineCommand::SetOffset {
                    name: b.clone(),
                    ns: 7_000_000,
                })
                .await
                .unwrap();
            let r2 = a
                .call(EngineCommand::Enable {
                    name: "nope".into(),
                    on: false,
                })
                .await
                .unwrap();
            (r1, r2)
        })
    });
    // The asker blocks until the loop serves it: keep ticking until both replies are in.
    while !pending.is_finished() {
        run(&mut e, &mut ctl, &clock, 5);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let (r1, r2) = pending.join().unwrap();
    assert!(matches!(r1, EngineReply::Done), "{r1:?}");
    assert_eq!(e.players[1].offset_ns(), 7_000_000);
    assert_eq!(e.players[0].offset_ns(), 0);
    match r2 {
        EngineReply::UnknownOutput { known } => assert_eq!(known, vec![e.players[0].name(), name.as_str()]),
        other => panic!("{other:?}"),
    }
}

/// An output that asks to be woken at a set time.
struct WakesAt(Option<LocalTime>);

impl crate::output::Output for WakesAt {
    fn kind(&self) -> &'static str {
        "wakes-at"
    }
    fn status(&mut self, _now: LocalTime) -> crate::output::OutputStatus {
        crate::output::OutputStatus::default()
    }
    fn write(&mut self, _now: LocalTime, _frames: &[i16]) -> Result<(), crate::output::OutputError> {
        Ok(())
    }
    fn wake_at(&self, _now: LocalTime) -> Option<LocalTime> {
        self.0
    }
}

fn wakes_at(name: &str, t: Option<LocalTime>) -> Player {
    use crate::output::player::{Feed, PlayerConfig};
    let feed = Feed {
        timeline: crate::timeline::buffer::SharedTimeline::with_capacity_ns(
            crate::output::OUTPUT_FORMAT,
            1_000_000_000,
        ),
        server_clock: Arc::new(Mutex::new(crate::timeline::server_clock::ServerClock::local())),
        settings: Arc::default(),
    };
    Player::new(PlayerConfig::named(name), feed, Box::new(WakesAt(t)))
}

#[test]
fn the_loop_sleeps_until_the_earliest_output_asks_within_bounds() {
    let now = LocalTime::from_ns(1_000_000_000);
    let grid = now.add_ns(TICK_NS);
    let at = |ms: i64| Some(now.add_ns(ms * 1_000_000));
    let mut e = Engine::default();
    assert_eq!(
        e.next_wake(now, grid),
        now.add_ns(MAX_SLEEP_NS),
        "nothing to play: the longest sleep"
    );
    e.players.push(wakes_at("a2dp-a", at(17)));
    assert_eq!(
        e.next_wake(now, grid),
        now.add_ns(17_000_000),
        "one paced output: its packet time"
    );
    e.players.push(wakes_at("a2dp-b", at(9)));
    assert_eq!(e.next_wake(now, grid), now.add_ns(9_000_000), "the earliest of two");
    e.players.push(wakes_at("far", at(500)));
    assert_eq!(
        e.next_wake(now, grid),
        now.add_ns(9_000_000),
        "a far wish changes nothing"
    );
    e.players.push(wakes_at("pipe", None));
    assert_eq!(
        e.next_wake(now, grid),
        grid,
        "an output without a wish keeps the fixed tick"
    );
    let mut e = Engine::default();
    e.players.push(wakes_at("far", at(500)));
    assert_eq!(
        e.next_wake(now, grid),
        now.add_ns(MAX_SLEEP_NS),
        "never longer than the longest sleep"
    );
    e.players.push(wakes_at("past", at(-3)));
    assert_eq!(
        e.next_wake(now, grid),
        now.add_ns(MIN_SLEEP_NS),
        "a time already past cannot spin the loop"
    );
}

#[test]
fn the_load_meter_sums_each_part_over_its_window() {
    let t0 = LocalTime::from_ns(5_000_000_000);
    let mut m = LoadMeter::new(t0);
    for _ in 0..1000 {
        m.sources_ns += 100_000;
        m.add_player("a", 1_000_000);
        m.add_player("b", 500_000);
        m.wakeups += 1;
    }
    assert_eq!(m.finish(t0.add_ns(LOAD_WINDOW_NS - 1)), None, "the window is not over");
    let load = m.finish(t0.add_ns(LOAD_WINDOW_NS)).expect("a window");
    assert!((load.sources_pct - 1.0).abs() < 1e-9, "{load:?}");
    assert_eq!(load.players_pct, vec![("a".to_string(), 10.0), ("b".to_string(), 5.0)]);
    assert!((load.wakeups_per_s - 100.0).abs() < 1e-9);
    assert!(load.cpu_pct >= 0.0);
    assert_eq!(
        (m.wakeups, m.sources_ns, m.players_ns.len()),
        (0, 0, 0),
        "a new window begins"
    );
}

#[test]
fn add_refuses_duplicates_and_remove_hands_the_player_back() {
    let clock = ManualClock::new(LocalTime::from_ns(1_000_000_000));
    let mut e = engine(2, &clock);
    let mut other = engine(2, &clock);
    let dup = other.players.remove(0);
    let name = dup.name().to_string();
    assert!(matches!(
        e.apply(EngineCommand::Add(Box::new(dup))),
        EngineReply::AlreadyThere(_)
    ));
    let back = match e.apply(EngineCommand::Remove { name: name.clone() }) {
        EngineReply::Removed(p) => p,
        other => panic!("{other:?}"),
    };
    assert_eq!(back.name(), name);
    assert_eq!(e.players.len(), 1);
    assert!(matches!(e.apply(EngineCommand::Add(back)), EngineReply::Done));
    assert_eq!(e.players.len(), 2);
    assert!(matches!(
        e.apply(EngineCommand::Remove { name: "ghost".into() }),
        EngineReply::UnknownOutput { .. }
    ));
    match e.apply(EngineCommand::SetSources(vec![])) {
        EngineReply::OldSources(old) => assert_eq!(old.len(), 1),
        other => panic!("{other:?}"),
    }
    assert!(e.sources.is_empty());
}

#[test]
fn the_loop_publishes_status_about_once_a_second_and_beats_every_tick() {
    let clock = ManualClock::new(LocalTime::from_ns(1_000_000_000));
    let mut e = engine(2, &clock);
    let (handle, mut ctl) = control_channel();
    assert!(handle.heartbeat().age_ns(clock.now()).is_none());
    run(&mut e, &mut ctl, &clock, 5);
    let first = handle.status();
    assert_eq!(first.players.len(), 2);
    let t0 = first.taken_at.unwrap();
    run(&mut e, &mut ctl, &clock, 500);
    assert_eq!(
        handle.status().taken_at,
        Some(t0),
        "published again before a second passed"
    );
    run(&mut e, &mut ctl, &clock, 600);
    let later = handle.status();
    assert!(later.taken_at.unwrap().ns_since(t0) >= STATUS_PERIOD_NS);
    assert!(later.players.iter().all(|p| p.synced), "{:?}", later.players);
    assert_eq!(handle.heartbeat().age_ns(clock.now()), Some(0));
    assert_eq!(handle.heartbeat().ticks(), 221);
    clock.advance_ns(3_000_000_000);
    assert_eq!(handle.heartbeat().age_ns(clock.now()), Some(3_000_000_000));
}

#[test]
fn a_held_snapshot_lock_never_stalls_the_loop() {
    let clock = ManualClock::new(LocalTime::from_ns(1_000_000_000));
    let mut e = engine(1, &clock);
    let (handle, mut ctl) = control_channel();
    let guard = handle.status.lock().unwrap();
    run(&mut e, &mut ctl, &clock, 2_000);
    assert_eq!(guard.taken_at, None);
    drop(guard);
    run(&mut e, &mut ctl, &clock, 5);
    assert!(handle.status().taken_at.is_some());
}

#[test]
fn a_flood_of_commands_is_spread_over_ticks() {
    let clock = ManualClock::new(LocalTime::from_ns(1_000_000_000));
    let mut e = engine(1, &clock);
    let (handle, mut ctl) = control_channel();
    let name = e.players[0].name().to_string();
    for i in 0..(MAX_COMMANDS_PER_TICK as i64 + 10) {
        handle
            .send(EngineCommand::SetOffset {
                name: name.clone(),
                ns: i,
            })
            .unwrap();
    }
    run(&mut e, &mut ctl, &clock, 5);
    assert_eq!(e.players[0].offset_ns(), MAX_COMMANDS_PER_TICK as i64 - 1);
    run(&mut e, &mut ctl, &clock, 5);
    assert_eq!(e.players[0].offset_ns(), MAX_COMMANDS_PER_TICK as i64 + 9);
}
