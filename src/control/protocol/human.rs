//! The human form of the reports, as `bluebridge status` and `bluebridge speakers` print them.

use super::reports::*;
use std::fmt::Write;

impl StatusReport {
    /// The human form `bluebridge status` prints.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let detail = if self.source.detail.is_empty() {
            String::new()
        } else {
            format!(" {}", self.source.detail)
        };
        let _ = writeln!(
            s,
            "bluebridge {}, up {}, config {}",
            self.version,
            duration(self.uptime_s),
            self.config
        );
        let _ = writeln!(s, "source: {}{detail}", self.source.kind);
        if !self.source.counters.is_empty() {
            let c: Vec<String> = self.source.counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
            let _ = writeln!(s, "  counters: {}", c.join(", "));
        }
        let mut tick = match self.engine.last_tick_age_ms {
            Some(a) => format!("last tick {a:.0} ms ago"),
            None => "not ticking yet".into(),
        };
        if let (Some(cpu), Some(w)) = (self.engine.cpu_pct, self.engine.wakeups_per_s) {
            let _ = write!(tick, ", {cpu:.1} % of a core, {w:.0} wake-ups/s");
        }
        if let Some(l) = self.engine.wake_late_us {
            let _ = write!(
                tick,
                ", woke late by {:.0} µs (p50) / {:.0} µs (p99)",
                l.p50_us, l.p99_us
            );
        }
        if self.engine.realtime == Some(false) {
            tick.push_str(", not real-time");
        }
        let _ = writeln!(
            s,
            "engine: {} ({tick}){}",
            if self.engine.healthy { "healthy" } else { "STALLED" },
            match self.skew_us {
                Some(k) => format!(", skew {k:.1} µs"),
                None => String::new(),
            }
        );
        for o in &self.outputs {
            let _ = writeln!(
                s,
                "\n{} ({}): {}, volume {} % = group {} %{} × local {} % ({}), offset {:+.1} ms",
                o.name,
                o.kind,
                o.state,
                o.effective_volume_pct,
                o.group_volume_pct,
                if o.group_muted { " muted" } else { "" },
                o.volume_pct,
                match o.device_volume {
                    Some(level) => format!("on the speaker: AVRCP {level}/127"),
                    None => o.volume_control.clone(),
                },
                o.offset_ms
            );
            let d = &o.delay;
            let _ = writeln!(
                s,
                "  delay {:.2} ms = encoder {:.2} + queue {:.2} + transport {:.2} + sink {:.2}{} + offset {:+.2} + calibration {:+.2}",
                d.total_ms,
                d.encoder_ms,
                d.queue_ms,
                d.transport_ms,
                d.sink_reported_ms,
                if o.sink_delay_assumed { " (assumed)" } else { "" },
                d.offset_ms,
                d.calibration_ms
            );
            if let Some(c) = &o.calibrated {
                let conf = c
                    .confidence
                    .map(|c| format!(", confidence {:.0} %", c * 100.0))
                    .unwrap_or_default();
                let spread = c.spread_ms.map(|s| format!(", spread {s:.2} ms")).unwrap_or_default();
                let _ = writeln!(
                    s,
                    "  calibrated {} by {}: corrected {:+.2} ms{spread}{conf}; {}",
                    unix_time(c.at_unix_s),
                    c.source,
                    c.error_ms,
                    c.reference
                );
            }
            if d.snapcast_latency_ms != 0.0 {
                let _ = writeln!(
                    s,
                    "  snapcast latency {:+.2} ms (set by the server: plays that much earlier)",
                    d.snapcast_latency_ms
                );
            }
            let _ = writeln!(
                s,
                "  sync error {:+.1} µs, {}, resyncs {}, write errors {}",
                o.error_us,
                if o.resampling {
                    format!(
                        "correction {:+.1} ppm, drift {:+.1} ppm",
                        o.correction_ppm, o.drift_estimate_ppm
                    )
                } else {
                    "exact copy (source on the local clock: nothing to correct)".to_string()
                },
                o.resyncs,
                o.write_errors
            );
            if !o.counters.is_empty() {
                let c: Vec<String> = o.counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
                let _ = writeln!(s, "  {}", c.join(", "));
            }
            if let Some(e) = &o.error {
                let _ = writeln!(s, "  error: {e}");
            }
            for n in &o.notes {
                let _ = writeln!(s, "  note: {n}");
            }
            for r in &o.receivers {
                let _ = writeln!(s, "  receiver {}: {}", r.address, r.state);
            }
        }
        let _ = writeln!(s, "\nstate: {}", self.state.path);
        for p in &self.state.problems {
            let _ = writeln!(s, "  problem: {p}");
        }
        if let Some(e) = &self.state.last_save_error {
            let _ = writeln!(s, "  last save FAILED: {e}");
        }
        if let Some(r) = &self.reload {
            let _ = writeln!(
                s,
                "last reload ({} after start): {}: {}",
                duration(r.at_s),
                if r.ok { "applied" } else { "REFUSED" },
                r.message
            );
        }
        s
    }
}

impl SpeakersReport {
    /// The table `bluebridge speakers` prints.
    pub fn human(&self) -> String {
        let mut s = format!(
            "{:<20} {:<6} {:<9} {:>6} {:>10} {:>10}  {:<8} {}\n",
            "NAME", "KIND", "STATE", "VOLUME", "OFFSET", "CALIB", "CHANNEL", "TARGET"
        );
        for k in &self.speakers {
            let _ = writeln!(
                s,
                "{:<20} {:<6} {:<9} {:>5}% {:>+7.1} ms {:>+7.1} ms  {:<8} {}",
                k.name, k.kind, k.state, k.volume_pct, k.offset_ms, k.calibration_ms, k.channel, k.target
            );
        }
        s
    }
}

impl Speaker {
    /// One line for the CLI after a change.
    pub fn human(&self) -> String {
        format!(
            "{}: {}, volume {} %, offset {:+.1} ms",
            self.name,
            if self.enabled { "enabled" } else { "disabled" },
            self.volume_pct,
            self.offset_ms
        )
    }
}

fn duration(s: f64) -> String {
    let s = s.max(0.0) as u64;
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, s / 60 % 60),
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM UTC`.
fn unix_time(s: u64) -> String {
    let days = (s / 86_400) as i64;
    let (h, m) = ((s % 86_400) / 3_600, (s % 3_600) / 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02} UTC")
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::report;
    use super::*;

    #[test]
    fn status_reads_well_for_humans_and_round_trips_as_json() {
        let r = report();
        let back: StatusReport = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let h = r.human();
        for want in [
            "up 2 h 2 min",
            "source: snapcast tcp://host:1704",
            "engine: healthy",
            "skew 0.5 µs",
            "kitchen (sim): playing, volume 14.8 % = group 37 % × local 40 % (software), offset -2.5 ms",
            "snapcast latency +25.00 ms (set by the server: plays that much earlier)",
            "delay 187.50 ms = encoder 0.00 + queue 0.00 + transport 40.00 + sink 150.00 + offset -2.50",
            "sync error +1.2 µs, correction +199.0 ppm, drift +200.0 ppm, resyncs 1",
            "underrun_frames 3",
            "note: not advertised: Broadcast Name (BlueZ 5.82 cannot)",
            "problem: was corrupt; kept as X",
            "last save FAILED: disk full",
            "REFUSED: t.toml:3:1: bad",
            "calibrated 2026-12-07 12:00 UTC by microphone: corrected +12.25 ms, spread 0.12 ms, confidence 88 %; \
             relative: microphone latency unknown",
        ] {
            assert!(h.contains(want), "missing {want:?} in\n{h}");
        }
    }

    #[test]
    fn status_shows_the_group_volume_mute_and_latency_in_force() {
        assert_eq!(effective_volume_pct(37, false, 100), 37.0);
        assert_eq!(effective_volume_pct(50, false, 50), 25.0);
        assert_eq!(effective_volume_pct(37, true, 100), 0.0);
        let mut r = report();
        let v = serde_json::to_value(&r).unwrap();
        let o = &v["outputs"][0];
        assert_eq!(o["group_volume_pct"], 37);
        assert_eq!(o["group_muted"], false);
        assert_eq!(o["volume_pct"], 40);
        assert_eq!(o["effective_volume_pct"], 14.8);
        assert_eq!(o["delay"]["snapcast_latency_ms"], 25.0);
        r.outputs[0].group_muted = true;
        r.outputs[0].effective_volume_pct = 0.0;
        assert!(
            r.human().contains("volume 0 % = group 37 % muted × local 40 %"),
            "{}",
            r.human()
        );
        // A status from an older service (no such fields) still reads: full group volume, no latency.
        let mut old = serde_json::to_value(report()).unwrap();
        let out = old["outputs"][0].as_object_mut().unwrap();
        for k in ["group_volume_pct", "group_muted", "effective_volume_pct"] {
            out.remove(k);
        }
        out["delay"].as_object_mut().unwrap().remove("snapcast_latency_ms");
        let back: StatusReport = serde_json::from_value(old).unwrap();
        let o = &back.outputs[0];
        assert_eq!(
            (o.group_volume_pct, o.group_muted, o.effective_volume_pct),
            (100, false, 100.0)
        );
        assert_eq!(o.delay.snapcast_latency_ms, 0.0);
        assert!(!back.human().contains("snapcast latency"));
    }

    #[test]
    fn speakers_table_has_a_row_per_speaker() {
        let r = SpeakersReport {
            speakers: vec![Speaker {
                name: "kitchen".into(),
                kind: "file".into(),
                target: "k.wav".into(),
                channel: "left".into(),
                enabled: false,
                volume_pct: 7,
                offset_ms: 12.0,
                calibration_ms: 0.0,
                state: "disabled".into(),
            }],
        };
        let h = r.human();
        assert_eq!(h.lines().count(), 2);
        let row = h.lines().nth(1).unwrap();
        for want in ["kitchen", "file", "disabled", "7%", "+12.0 ms", "left", "k.wav"] {
            assert!(row.contains(want), "{row}");
        }
        assert_eq!(r.speakers[0].human(), "kitchen: disabled, volume 7 %, offset +12.0 ms");
    }
}
