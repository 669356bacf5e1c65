//! Status assembly: the `status` and `speakers` reports and the one-line summary, from the engine's snapshot.

use super::controller::Controller;
use super::HEALTHY_TICK_AGE_NS;
use crate::config::SourceSpec;
use crate::control::protocol::{
    DelayReport, EngineReport, OutputReport, ReceiverReport, SourceReport, Speaker, SpeakersReport, StateReport,
    StatusReport,
};
use crate::output::player::PlayerStatus;
use crate::output::{OutputSettings, OutputSpec};
use crate::timeline::{Clock, SystemClock};
use std::collections::BTreeMap;

fn ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}
impl Controller {
    pub(super) fn snapshot(&self) -> BTreeMap<String, PlayerStatus> {
        by_name(self.engine.status())
    }

    pub(super) fn state_word(&self, name: &str, enabled: bool, p: Option<&PlayerStatus>) -> &'static str {
        match p {
            _ if self.failed.contains_key(name) => "failed",
            None => "starting",
            Some(_) if !enabled => "disabled",
            Some(p) if p.idle => "idle",
            Some(p) if p.synced && p.linked => "playing",
            Some(_) => "waiting",
        }
    }

    pub(super) fn speaker(&self, spec: OutputSpec, players: &BTreeMap<String, PlayerStatus>) -> Speaker {
        let (eff, enabled) = self.state.overlay(&spec);
        let target = match &eff.settings {
            OutputSettings::File(f) => f.path.clone(),
            OutputSettings::Pipe(p) => p.path.clone(),
            _ => String::new(),
        };
        Speaker {
            state: self.state_word(&eff.name, enabled, players.get(&eff.name)).into(),
            kind: eff.kind().to_string(),
            name: eff.name,
            target,
            channel: format!("{:?}", eff.channel).to_lowercase(),
            enabled,
            volume_pct: eff.volume_pct,
            offset_ms: ms(eff.offset_ns),
            calibration_ms: ms(eff.calibration_ns),
        }
    }

    pub(super) fn speakers(&self) -> SpeakersReport {
        let players = self.snapshot();
        SpeakersReport {
            speakers: self.specs.iter().map(|s| self.speaker(s.clone(), &players)).collect(),
        }
    }

    pub(super) fn status(&self) -> StatusReport {
        // One snapshot for the whole report: players, load and the sources' counters from the same moment.
        let snap = self.engine.status();
        let (load, source_counters) = (snap.load.clone(), snap.source_counters.clone());
        let players = by_name(snap);
        let outputs: Vec<OutputReport> = self
            .specs
            .iter()
            .map(|spec| {
                let (eff, enabled) = self.state.overlay(spec);
                let p = players.get(&spec.name);
                let default = PlayerStatus::default();
                let s = p.unwrap_or(&default);
                let error = match self.failed.get(&spec.name) {
                    Some(e) => Some(e.clone()),
                    None if s.write_errors > 0 => Some(format!("{} failed writes to the output", s.write_errors)),
                    None => None,
                };
                OutputReport {
                    name: spec.name.clone(),
                    kind: spec.kind().to_string(),
                    state: self.state_word(&spec.name, enabled, p).into(),
                    enabled,
                    volume_pct: eff.volume_pct,
                    group_volume_pct: s.settings.volume_pct,
                    group_muted: s.settings.muted,
                    effective_volume_pct: crate::control::protocol::effective_volume_pct(
                        s.settings.volume_pct,
                        s.settings.muted,
                        eff.volume_pct,
                    ),
                    volume_control: if s.device_volume.is_some() {
                        "speaker"
                    } else {
                        "software"
                    }
                    .into(),
                    device_volume: s.device_volume.map(|(level, _)| level),
                    offset_ms: ms(eff.offset_ns),
                    synced: s.synced,
                    error_us: s.error_us,
                    correction_ppm: s.correction_ppm,
                    resampling: s.resampling,
                    drift_estimate_ppm: s.drift_estimate_ppm,
                    clock_ppm: s.clock_ppm,
                    resyncs: s.resyncs,
                    write_errors: s.write_errors,
                    delay: DelayReport {
                        snapcast_latency_ms: ms(s.settings.latency_ns),
                        ..DelayReport::from(&s.delay)
                    },
                    sink_delay_assumed: s.sink_delay_assumed,
                    counters: s.counters.iter().cloned().collect(),
                    error,
                    notes: match &spec.settings {
                        OutputSettings::Broadcast(b) => b
                            .identity_warning(crate::bluez::version::installed())
                            .into_iter()
                            .collect(),
                        _ => Vec::new(),
                    },
                    receivers: crate::bluez::assistant::receivers(&spec.name)
                        .into_iter()
                        .map(|(address, state)| ReceiverReport { address, state })
                        .collect(),
                    handoff_late_us: s.handoff_late,
                    calibrated: self.state.outputs.get(&spec.name).and_then(|o| o.calibrated.clone()),
                }
            })
            .collect();
        let errs: Vec<f64> = outputs
            .iter()
            .filter(|o| o.enabled && o.synced)
            .map(|o| o.error_us)
            .collect();
        let skew_us = (errs.len() >= 2)
            .then(|| errs.iter().cloned().fold(f64::MIN, f64::max) - errs.iter().cloned().fold(f64::MAX, f64::min));
        let hb = self.engine.heartbeat();
        let age = hb.age_ns(SystemClock.now());
        let (kind, detail) = match &self.source {
            SourceSpec::Tone { .. } => ("tone", String::new()),
            SourceSpec::File { path, .. } => ("file", path.clone()),
            SourceSpec::Snapcast { url } => ("snapcast", redact(url)),
            SourceSpec::Sendspin {
                meet: crate::config::SendspinMeet::Url(url),
                ..
            } => ("sendspin", redact(url)),
            SourceSpec::Sendspin { meet, .. } => ("sendspin", meet.to_string()),
            SourceSpec::Capture { capture, .. } => {
                ("capture", capture.device.clone().unwrap_or_else(|| "default".into()))
            }
        };
        StatusReport {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            config: self.config_path.clone(),
            source: SourceReport {
                kind: kind.into(),
                detail,
                server_offset_us: self.wiring.server_offset_ns().map(|o| o as f64 / 1e3),
                counters: source_counters.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            },
            outputs,
            skew_us,
            engine: EngineReport {
                ticks: hb.ticks(),
                last_tick_age_ms: age.map(ms),
                healthy: age.is_some_and(|a| a < HEALTHY_TICK_AGE_NS),
                cpu_pct: load.as_ref().map(|l| l.cpu_pct),
                wakeups_per_s: load.as_ref().map(|l| l.wakeups_per_s),
                wake_late_us: load.as_ref().and_then(|l| l.wake_late),
                realtime: load.as_ref().map(|l| l.realtime),
            },
            state: StateReport {
                path: self.store.path().display().to_string(),
                problems: self.state_problems.clone(),
                last_save_error: self.last_save_error.clone(),
            },
            reload: self.reload.clone(),
        }
    }
}

/// The snapshot's players by name.
fn by_name(snap: crate::engine::StatusSnapshot) -> BTreeMap<String, PlayerStatus> {
    snap.players.into_iter().map(|p| (p.name.clone(), p)).collect()
}

/// A URL without its password, for display.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The one-line summary for `systemctl status` (`STATUS=`).
pub fn status_line(players: &[PlayerStatus], tick_age_ns: Option<i64>) -> String {
    match tick_age_ns {
        None => return "starting".into(),
        Some(a) if a >= HEALTHY_TICK_AGE_NS => {
            return format!("STALLED: the real-time loop last ticked {:.1} s ago", a as f64 / 1e9)
        }
        _ => {}
    }
    let synced: Vec<&PlayerStatus> = players.iter().filter(|p| p.synced && p.linked).collect();
    let resyncs: u64 = players.iter().map(|p| p.resyncs).sum();
    let worst = synced.iter().map(|p| p.error_us.abs()).fold(0.0, f64::max);
    format!(
        "playing: {} of {} outputs in sync, worst error {worst:.0} µs, {resyncs} resyncs",
        synced.len(),
        players.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn the_status_line_says_stalled_when_the_loop_is() {
        let p = |synced, error_us| PlayerStatus {
            synced,
            linked: true,
            error_us,
            resyncs: 1,
            ..PlayerStatus::default()
        };
        assert_eq!(status_line(&[], None), "starting");
        assert_eq!(
            status_line(&[p(true, -12.4), p(false, 0.0)], Some(5_000_000)),
            "playing: 1 of 2 outputs in sync, worst error 12 µs, 2 resyncs"
        );
        let unlinked = PlayerStatus {
            linked: false,
            ..p(true, -900.0)
        };
        assert_eq!(
            status_line(&[p(true, -12.4), unlinked], Some(5_000_000)),
            "playing: 1 of 2 outputs in sync, worst error 12 µs, 2 resyncs",
            "a speaker not connected (its audio dropped) is not in sync, whatever its timeline says"
        );
        assert!(status_line(&[p(true, 0.0)], Some(2_500_000_000)).starts_with("STALLED"));
    }

    #[test]
    pub(super) fn passwords_are_not_shown() {
        assert_eq!(redact("tcp://me:secret@host:1704"), "tcp://me:***@host:1704");
        assert_eq!(redact("tcp://host:1704"), "tcp://host:1704");
    }
}
