//! The optional Prometheus endpoint: `GET /metrics` in the text exposition format (version 0.0.4).
//!
//! Off unless `[service] metrics = "ADDRESS:PORT"` is set; bind it to localhost (the example config does) unless a
//! scraper on another machine needs it. The page is rendered from the same [`StatusReport`] that
//! `bluebridge status` shows, fetched from the service's controller, so both always agree.
//!
//! The HTTP side is deliberately tiny: one request per connection, a request head of at most
//! [`MAX_REQUEST_BYTES`] read within [`REQUEST_TIMEOUT`], at most [`MAX_CONNECTIONS`] at once, `GET` (or `HEAD`)
//! of `/metrics` or `/` only.

use crate::control::protocol::{Request, Response, StatusReport};
use crate::control::server::{stopped, Call};
use std::fmt::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

/// Longest request head read, bytes.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// A request must arrive, and its answer be taken, within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 8;

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

struct Page(String);

impl Page {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", labels.join(","))
        };
        let _ = writeln!(self.0, "{name}{labels} {value}");
    }
}

/// The exposition-format page for `s`.
pub fn render(s: &StatusReport) -> String {
    let mut p = Page(String::new());
    let b = |v: bool| if v { 1.0 } else { 0.0 };
    p.family(
        "bluebridge_info",
        "gauge",
        "Build and source of the running service (always 1).",
    );
    p.sample(
        "bluebridge_info",
        &[("version", &s.version), ("source", &s.source.kind)],
        1.0,
    );
    p.family(
        "bluebridge_uptime_seconds",
        "gauge",
        "Seconds since the service started.",
    );
    p.sample("bluebridge_uptime_seconds", &[], s.uptime_s);
    p.family(
        "bluebridge_engine_healthy",
        "gauge",
        "1 while the real-time loop ticks (what feeds the systemd watchdog).",
    );
    p.sample("bluebridge_engine_healthy", &[], b(s.engine.healthy));
    p.family("bluebridge_engine_ticks_total", "counter", "Real-time loop ticks.");
    p.sample("bluebridge_engine_ticks_total", &[], s.engine.ticks as f64);
    if let Some(a) = s.engine.last_tick_age_ms {
        p.family(
            "bluebridge_engine_last_tick_age_seconds",
            "gauge",
            "Since the loop's last tick.",
        );
        p.sample("bluebridge_engine_last_tick_age_seconds", &[], a / 1e3);
    }
    if let Some(c) = s.engine.cpu_pct {
        p.family(
            "bluebridge_engine_cpu_ratio",
            "gauge",
            "The real-time loop thread's CPU over the last 10 s, as a fraction of one core.",
        );
        p.sample("bluebridge_engine_cpu_ratio", &[], c / 100.0);
    }
    if let Some(k) = s.skew_us {
        p.family(
            "bluebridge_skew_seconds",
            "gauge",
            "Spread of the sync error across enabled, synced outputs.",
        );
        p.sample("bluebridge_skew_seconds", &[], k / 1e6);
    }
    p.family(
        "bluebridge_state_save_failing",
        "gauge",
        "1 while the last save of the persisted state failed.",
    );
    p.sample(
        "bluebridge_state_save_failing",
        &[],
        b(s.state.last_save_error.is_some()),
    );
    p.family(
        "bluebridge_state_problems",
        "gauge",
        "Problems found loading the persisted state (a corrupt file kept aside…).",
    );
    p.sample("bluebridge_state_problems", &[], s.state.problems.len() as f64);
    if let Some(r) = &s.reload {
        p.family(
            "bluebridge_last_reload_ok",
            "gauge",
            "1 if the last config reload was applied.",
        );
        p.sample("bluebridge_last_reload_ok", &[], b(r.ok));
    }

    type Get = fn(&crate::control::protocol::OutputReport) -> f64;
    let per_output: &[(&str, &str, &str, Get)] = &[
        (
            "bluebridge_output_enabled",
            "gauge",
            "1 if the output is enabled.",
            |o| {
                if o.enabled {
                    1.0
                } else {
                    0.0
                }
            },
        ),
        (
            "bluebridge_output_synced",
            "gauge",
            "1 if the output is locked to the timeline.",
            |o| {
                if o.synced {
                    1.0
                } else {
                    0.0
                }
            },
        ),
        ("bluebridge_output_volume_percent", "gauge", "Local volume.", |o| {
            o.volume_pct as f64
        }),
        (
            "bluebridge_output_group_volume_percent",
            "gauge",
            "The group's volume (Snapcast Client.SetVolume).",
            |o| o.group_volume_pct as f64,
        ),
        (
            "bluebridge_output_group_muted",
            "gauge",
            "1 if the group muted the output.",
            |o| if o.group_muted { 1.0 } else { 0.0 },
        ),
        (
            "bluebridge_output_effective_volume_percent",
            "gauge",
            "The volume in force: group x local (0 when muted).",
            |o| o.effective_volume_pct,
        ),
        (
            "bluebridge_output_error_seconds",
            "gauge",
            "Last measured sync error of the output (actual - wanted source time; its deviation from play time).",
            |o| o.error_us / 1e6,
        ),
        (
            "bluebridge_output_rate_correction_ppm",
            "gauge",
            "Drift correction applied now (resampling ratio), ppm.",
            |o| o.correction_ppm,
        ),
        (
            "bluebridge_output_drift_estimate_ppm",
            "gauge",
            "Estimated clock error of the output, ppm.",
            |o| o.drift_estimate_ppm,
        ),
        (
            "bluebridge_output_resyncs_total",
            "counter",
            "Hard resyncs (skip or insert).",
            |o| o.resyncs as f64,
        ),
        (
            "bluebridge_output_write_errors_total",
            "counter",
            "Failed writes to the output.",
            |o| o.write_errors as f64,
        ),
    ];
    for (name, kind, help, get) in per_output {
        p.family(name, kind, help);
        for o in &s.outputs {
            p.sample(name, &[("output", &o.name), ("kind", &o.kind)], get(o));
        }
    }
    p.family(
        "bluebridge_output_delay_seconds",
        "gauge",
        "Each part of the output delay (hand-off to heard) and their total; part snapcast_latency is the latency the \
         server set (the audio plays that much earlier), not in the total.",
    );
    for o in &s.outputs {
        let d = &o.delay;
        for (part, v) in [
            ("encoder", d.encoder_ms),
            ("queue", d.queue_ms),
            ("transport", d.transport_ms),
            ("sink_reported", d.sink_reported_ms),
            ("offset", d.offset_ms),
            ("calibration", d.calibration_ms),
            ("total", d.total_ms),
            ("snapcast_latency", d.snapcast_latency_ms),
        ] {
            p.sample(
                "bluebridge_output_delay_seconds",
                &[("output", &o.name), ("part", part)],
                v / 1e3,
            );
        }
    }
    p.family(
        "bluebridge_output_events_total",
        "counter",
        "The output's own counters (underruns, lost packets, rendered frames, reconnects…).",
    );
    for o in &s.outputs {
        for (k, v) in &o.counters {
            p.sample(
                "bluebridge_output_events_total",
                &[("output", &o.name), ("counter", k)],
                *v as f64,
            );
        }
    }
    p.0
}

/// Serves `listener` until `shutdown`, asking `calls` for the status behind each page.
pub async fn serve(listener: TcpListener, calls: mpsc::Sender<Call>, mut shutdown: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = stopped(&mut shutdown) => return,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        // Over the cap the connection is just closed: a scraper retries at its next interval.
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue;
        };
        let calls = calls.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, connection(stream, calls)).await;
            drop(permit);
        });
    }
}

async fn connection(mut stream: TcpStream, calls: mpsc::Sender<Call>) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > MAX_REQUEST_BYTES {
            let _ = stream
                .write_all(&reply(431, "text/plain", "request header too large\n", false))
                .await;
            return;
        }
    }
    let first = String::from_utf8_lossy(head.split(|&b| b == b'\n').next().unwrap_or_default()).into_owned();
    let mut parts = first.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let head_only = method == "HEAD";
    let answer = match (method, path) {
        ("GET" | "HEAD", "/metrics" | "/") => match status(&calls).await {
            Some(s) => reply(200, "text/plain; version=0.0.4; charset=utf-8", &render(&s), head_only),
            None => reply(503, "text/plain", "the service is not answering\n", head_only),
        },
        ("GET" | "HEAD", _) => reply(404, "text/plain", "not found; try /metrics\n", head_only),
        _ => reply(405, "text/plain", "only GET /metrics\n", false),
    };
    let _ = stream.write_all(&answer).await;
    let _ = stream.shutdown().await;
}

async fn status(calls: &mpsc::Sender<Call>) -> Option<StatusReport> {
    let (tx, rx) = oneshot::channel();
    calls.send((Request::Status, tx)).await.ok()?;
    match rx.await.ok()? {
        Response::Ok { result, .. } => serde_json::from_value(result).ok(),
        Response::Err(_) => None,
    }
}

fn reply(code: u16, content_type: &str, body: &str, head_only: bool) -> Vec<u8> {
    let reason = match code {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let mut r = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        r.extend_from_slice(body.as_bytes());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::*;

    fn report() -> StatusReport {
        StatusReport {
            version: "0.1.0".into(),
            uptime_s: 12.0,
            config: "c.toml".into(),
            source: SourceReport {
                kind: "tone".into(),
                detail: String::new(),
            },
            outputs: vec![OutputReport {
                name: "kit\"chen".into(),
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
                error_us: 1.5,
                correction_ppm: 199.0,
                resampling: true,
                drift_estimate_ppm: 200.0,
                resyncs: 2,
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
                counters: [("underrun_frames".to_string(), 7)].into_iter().collect(),
                error: None,
            }],
            skew_us: Some(3.0),
            engine: EngineReport {
                ticks: 2400,
                last_tick_age_ms: Some(4.0),
                healthy: true,
                cpu_pct: Some(2.5),
                wakeups_per_s: Some(107.0),
            },
            state: StateReport {
                path: "s.json".into(),
                problems: vec![],
                last_save_error: Some("disk full".into()),
            },
            reload: None,
        }
    }

    /// Checks the text format line by line: comments are HELP/TYPE, samples are `name{labels} number`, every
    /// sample's family was declared, and returns the samples as (name{labels}, value).
    fn parse(page: &str) -> Vec<(String, f64)> {
        let mut declared = std::collections::HashSet::new();
        let mut out = vec![];
        for line in page.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.split(' ');
                declared.insert(it.next().unwrap().to_string());
                assert!(matches!(it.next(), Some("gauge" | "counter")), "{line}");
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line:?}"));
            let name = series.split('{').next().unwrap();
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{line}");
            assert!(declared.contains(name), "undeclared family in {line}");
            out.push((
                series.to_string(),
                value.parse::<f64>().unwrap_or_else(|_| panic!("{line}")),
            ));
        }
        out
    }

    #[test]
    fn the_page_is_valid_exposition_format_with_every_figure() {
        let page = render(&report());
        let samples = parse(&page);
        let get = |s: &str| {
            samples
                .iter()
                .find(|(k, _)| k == s)
                .unwrap_or_else(|| panic!("no {s} in\n{page}"))
                .1
        };
        let o = r#"output="kit\"chen""#;
        assert_eq!(
            get(&format!("bluebridge_output_error_seconds{{{o},kind=\"sim\"}}")),
            1.5e-6
        );
        assert_eq!(
            get(&format!("bluebridge_output_rate_correction_ppm{{{o},kind=\"sim\"}}")),
            199.0
        );
        assert_eq!(
            get(&format!("bluebridge_output_resyncs_total{{{o},kind=\"sim\"}}")),
            2.0
        );
        assert_eq!(
            get(&format!(
                "bluebridge_output_delay_seconds{{{o},part=\"sink_reported\"}}"
            )),
            0.15
        );
        assert_eq!(
            get(&format!("bluebridge_output_delay_seconds{{{o},part=\"total\"}}")),
            0.1875
        );
        assert_eq!(
            get(&format!(
                "bluebridge_output_delay_seconds{{{o},part=\"snapcast_latency\"}}"
            )),
            0.025
        );
        assert_eq!(
            get(&format!("bluebridge_output_group_volume_percent{{{o},kind=\"sim\"}}")),
            37.0
        );
        assert_eq!(get(&format!("bluebridge_output_group_muted{{{o},kind=\"sim\"}}")), 0.0);
        assert_eq!(
            get(&format!(
                "bluebridge_output_effective_volume_percent{{{o},kind=\"sim\"}}"
            )),
            14.8
        );
        assert_eq!(
            get(&format!(
                "bluebridge_output_events_total{{{o},counter=\"underrun_frames\"}}"
            )),
            7.0
        );
        assert_eq!(get("bluebridge_skew_seconds"), 3e-6);
        assert_eq!(get("bluebridge_state_save_failing"), 1.0);
        assert_eq!(get("bluebridge_engine_healthy"), 1.0);
        assert_eq!(get("bluebridge_engine_ticks_total"), 2400.0);
    }

    #[tokio::test]
    async fn the_endpoint_serves_metrics_and_refuses_the_rest() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel::<Call>(4);
        let (_stop, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            while let Some((_, reply)) = rx.recv().await {
                let _ = reply.send(Response::ok(report()));
            }
        });
        tokio::spawn(serve(listener, tx, stop_rx));
        let get = |req: &'static str| async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let r = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Type: text/plain; version=0.0.4"), "{r}");
        let body = r.split("\r\n\r\n").nth(1).unwrap();
        assert_eq!(parse(body).len(), parse(&render(&report())).len());
        let declared: usize = r.lines().find(|l| l.starts_with("Content-Length: ")).unwrap()[16..]
            .parse()
            .unwrap();
        assert_eq!(declared, body.len());
        assert!(get("GET /nope HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 404"));
        assert!(get("POST /metrics HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 405"));
        // Just over the limit and never finished: answered, not waited for (all of it is read, so no reset).
        let big: &'static str =
            Box::leak(format!("GET /metrics HTTP/1.1\r\nX: {}", "a".repeat(8_300)).into_boxed_str());
        assert!(get(big).await.starts_with("HTTP/1.1 431"));
    }
}
