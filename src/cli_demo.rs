//! `bluebridge demo` and `bluebridge bench`: the simulated-speaker demo, its calibration variant, and the
//! benchmarks (sync in virtual time, the Snapcast comparison, each output kind's pipeline CPU).

use anyhow::{bail, Context, Result};
use bluebridge::demo;
use bluebridge::output::player::PlayerStatus;
use bluebridge::report;
use bluebridge::timeline::{Clock, SystemClock};

pub fn status_line(s: &PlayerStatus) -> String {
    format!(
        "{:<20} {:<5} {:>9.1} µs  {:>+8.1} ppm (drift {:>+7.1})  delay {:>7.2} ms  resyncs {}",
        s.name,
        if s.synced { "sync" } else { "wait" },
        s.error_us,
        s.correction_ppm,
        s.drift_estimate_ppm,
        s.delay.total_ns() as f64 / 1e6,
        s.resyncs
    )
}

pub fn demo_calibrate(seed: u64, json: bool) -> Result<()> {
    let d = demo::calibration::run(seed)?;
    if json {
        println!("{}", serde_json::to_string(&d)?);
    } else {
        print!("{}", d.table());
    }
    Ok(())
}

pub fn run_demo(seconds: f64, n: usize, json: bool) -> Result<()> {
    if n == 0 || n > 64 {
        bail!("--outputs must be between 1 and 64, not {n}");
    }
    if !(seconds > 0.0 && seconds <= 86_400.0) {
        bail!("--seconds must be between 0 and 86400, not {seconds}");
    }
    let stop = crate::stop_flag()?;
    let clock = SystemClock;
    let start = clock.now();
    let mut engine = demo::build(&demo::profiles(n), start, true);
    let mut obs = demo::observations(&engine);
    let until = start.add_ns((seconds * 1e9) as i64 + demo::DEMO_BUFFER_NS + 500_000_000);
    if !json {
        eprintln!("bluebridge demo: the test signal to {n} simulated speakers for {seconds} s (Ctrl-C stops)");
    }
    engine.run_realtime(Some(until), &stop, |e, now| {
        demo::collect(e, &mut obs);
        if !json {
            eprintln!("--- t = {:.0} s", now.ns_since(start) as f64 / 1e9);
            for s in e.status() {
                eprintln!("{}", status_line(&s));
            }
        }
    });
    demo::collect(&mut engine, &mut obs);
    engine.close();
    let end = clock.now();
    let plays = demo::click_play_times(start, end.add_ns(-300_000_000));
    let r = report::build(&plays, &obs, start, false);
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        print!("{}", r.table());
    }
    Ok(())
}

pub fn bench_sync(seconds: f64, n: usize, drift_control: bool, json: bool) -> Result<()> {
    if n == 0 || n > 64 {
        bail!("--outputs must be between 1 and 64, not {n}");
    }
    if !(1.0..=86_400.0).contains(&seconds) {
        bail!("--seconds must be between 1 and 86400, not {seconds}");
    }
    let t = std::time::Instant::now();
    let r = demo::bench_sync(n, seconds, drift_control);
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        print!("{}", r.table());
        eprintln!("({seconds} s of audio simulated in {:.1} s)", t.elapsed().as_secs_f64());
    }
    Ok(())
}

pub fn bench_snapcast(seconds: f64, json: bool) -> Result<()> {
    if !(5.0..=3_600.0).contains(&seconds) {
        bail!("--seconds must be between 5 and 3600, not {seconds}");
    }
    let exe = std::env::current_exe().context("finding this program's path (to run it as the client)")?;
    let r = bluebridge::bench::snapcast::run(&exe, seconds).map_err(anyhow::Error::msg)?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        print!("{}", r.table());
    }
    Ok(())
}

pub fn bench_sendspin(seconds: f64, json: bool) -> Result<()> {
    if !(5.0..=3_600.0).contains(&seconds) {
        bail!("--seconds must be between 5 and 3600, not {seconds}");
    }
    let exe = std::env::current_exe().context("finding this program's path (to run it as the player)")?;
    let r = bluebridge::bench::sendspin::run(&exe, seconds).map_err(anyhow::Error::msg)?;
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        print!("{}", r.table());
    }
    Ok(())
}

pub fn bench_pipeline(
    bench: fn(f64, bluebridge::bench::Parts) -> bluebridge::bench::PipelineBench,
    seconds: f64,
    part: Option<&str>,
) -> Result<()> {
    if !(1.0..=3_600.0).contains(&seconds) {
        bail!("--seconds must be between 1 and 3600, not {seconds}");
    }
    let parts = match part {
        None => bluebridge::bench::Parts::Both,
        Some("bare") => bluebridge::bench::Parts::Bare,
        Some("pipeline") => bluebridge::bench::Parts::Pipeline,
        Some("pipeline-local") => bluebridge::bench::Parts::PipelineLocal,
        Some(other) => bail!("--part must be bare, pipeline or pipeline-local, not {other:?}"),
    };
    let r = bench(seconds, parts);
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}
