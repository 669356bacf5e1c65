//! Test fixtures shared by the control protocol's tests and the metrics endpoint's tests.

use super::reports::*;
use crate::timeline::lateness::LatenessSummary;

/// A full `status` report, every field set: the fixture the protocol and metrics tests share.
pub(crate) fn report() -> StatusReport {
    StatusReport {
        version: "0.1.0".into(),
        uptime_s: 7325.0,
        config: "/etc/bluebridge/bluebridge.toml".into(),
        source: SourceReport {
            kind: "snapcast".into(),
            detail: "tcp://host:1704".into(),
            server_offset_us: Some(-12.5),
            counters: [("xruns".to_string(), 2)].into_iter().collect(),
        },
        outputs: vec![OutputReport {
            name: "kitchen".into(),
            kind: "sim".into(),
            state: "playing".into(),
            enabled: true,
            volume_pct: 40,
            group_volume_pct: 37,
            group_muted: false,
            effective_volume_pct: 14.8,
            volume_control: "software".into(),
            device_volume: None,
            offset_ms: -2.5,
            synced: true,
            error_us: 1.25,
            correction_ppm: 199.0,
            resampling: true,
            drift_estimate_ppm: 200.0,
            clock_ppm: None,
            resyncs: 1,
            write_errors: 0,
            delay: DelayReport {
                transport_ms: 40.0,
                sink_reported_ms: 150.0,
                offset_ms: -2.5,
                total_ms: 187.5,
                snapcast_latency_ms: 25.0,
                ..DelayReport::default()
            },
            sink_delay_assumed: false,
            counters: [("underrun_frames".to_string(), 3)].into_iter().collect(),
            error: None,
            notes: vec!["not advertised: Broadcast Name (BlueZ 5.82 cannot)".into()],
            receivers: vec![ReceiverReport {
                address: "00:11:22:33:44:55".into(),
                state: "bis-synced 0x1".into(),
            }],
            handoff_late_us: Some(LatenessSummary {
                count: 200,
                min_us: 1.0,
                p01_us: 2.0,
                mean_us: 6.0,
                p50_us: 5.0,
                p99_us: 30.0,
                max_us: 41.0,
            }),
            calibrated: Some(crate::calibrate::session::CalibrationRecord {
                at_unix_s: 1_796_644_800,
                error_ms: 12.25,
                spread_ms: Some(0.12),
                confidence: Some(0.88),
                reference: "relative: microphone latency unknown, the speakers are aligned to each other".into(),
                source: "microphone".into(),
            }),
        }],
        skew_us: Some(0.5),
        engine: EngineReport {
            ticks: 1000,
            last_tick_age_ms: Some(2.0),
            healthy: true,
            cpu_pct: Some(2.5),
            wakeups_per_s: Some(107.0),
            wake_late_us: Some(LatenessSummary {
                count: 2000,
                min_us: 0.5,
                p01_us: 1.0,
                mean_us: 4.2,
                p50_us: 3.0,
                p99_us: 21.0,
                max_us: 80.5,
            }),
            realtime: Some(true),
        },
        state: StateReport {
            path: "/var/lib/bluebridge/state.json".into(),
            problems: vec!["was corrupt; kept as X".into()],
            last_save_error: Some("disk full".into()),
        },
        reload: Some(ReloadReport {
            ok: false,
            message: "t.toml:3:1: bad".into(),
            at_s: 60.0,
        }),
    }
}
