//! `bluebridge check-config`, `devices` and `doctor`: what this machine and its config file offer, before running.

use anyhow::{Context, Result};
use bluebridge::config::Config;

pub fn check_config(file: &str) -> Result<()> {
    let (source, outputs) = Config::load(file)?;
    print!("{}", bluebridge::config::describe(file, &source, &outputs));
    Ok(())
}

pub fn devices(json: bool) -> Result<()> {
    let list = bluebridge::output::local::device::list_devices().context("cannot list sound devices")?;
    if json {
        println!("{}", serde_json::json!({ "devices": list }));
    } else {
        for d in &list {
            let dir = match (d.output, d.capture) {
                (true, true) => "output+capture",
                (true, false) => "output",
                (false, true) => "capture",
                (false, false) => "-",
            };
            println!("{}\t{dir}\t{}", d.name, d.description);
        }
    }
    Ok(())
}

pub fn doctor(config: &str, json: bool) -> Result<()> {
    use bluebridge::doctor;
    let loaded = Config::load_all(config)?;
    let findings = doctor::check(&doctor::Needs::of(&loaded.outputs), &doctor::gather());
    if json {
        println!(
            "{}",
            serde_json::json!({ "config": config, "ok": !doctor::failed(&findings), "findings": findings })
        );
    } else {
        print!("{}", doctor::render(&findings));
    }
    if doctor::failed(&findings) {
        std::process::exit(1);
    }
    Ok(())
}
