//! The optional Prometheus endpoint: `GET /metrics` in the text exposition format (version 0.0.4).
//!
//! Off unless `[service] metrics = "ADDRESS:PORT"` is set; bind it to localhost (the example config does) unless a
//! scraper on another machine needs it. The page is rendered from the same [`StatusReport`] that
//! `bluebridge status` shows, fetched from the service's controller, so both always agree: each scrape builds a
//! fresh `prometheus-client` registry from it ([`render`]).
//!
//! HTTP is axum's router (where a web interface would add its routes) served by hyper's HTTP/1 connection
//! builder, which holds the bounds: one request per connection, a request head of at most [`MAX_REQUEST_BYTES`]
//! (longer: 431), read within [`REQUEST_TIMEOUT`] and the whole exchange within it too, at most
//! [`MAX_CONNECTIONS`] at once; `GET` (or `HEAD`) of `/metrics` or `/` only.

use crate::control::protocol::{OutputReport, Request, Response, StatusReport};
use crate::control::server::{stopped, Call};
use axum::extract::State;
use axum::http::{header, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

/// Longest request head read, bytes (hyper's smallest read-buffer bound; a longer head is answered 431).
pub const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// A request must arrive, and its answer be taken, within this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 8;

type Labels = Vec<(&'static str, String)>;
type F64Gauge = Gauge<f64, AtomicU64>;

/// The registry of one page, registering families under the names the page always had.
struct Page(Registry);

impl Page {
    /// `help` as the page shows it: the registry appends the full stop.
    fn help(help: &str) -> &str {
        help.strip_suffix('.').unwrap_or(help)
    }

    /// A gauge family with one sample per label set.
    fn gauges(&mut self, name: &str, help: &str, samples: impl IntoIterator<Item = (Labels, f64)>) {
        let family = Family::<Labels, F64Gauge>::default();
        for (labels, v) in samples {
            family.get_or_create(&labels).set(v);
        }
        self.0.register(name, Self::help(help), family);
    }

    /// One unlabelled gauge.
    fn gauge(&mut self, name: &str, help: &str, v: f64) {
        let g = F64Gauge::default();
        g.set(v);
        self.0.register(name, Self::help(help), g);
    }

    /// A counter family; `name` ends in `_total`, which the registry adds back.
    fn counters(&mut self, name: &str, help: &str, samples: impl IntoIterator<Item = (Labels, u64)>) {
        let family = Family::<Labels, Counter>::default();
        for (labels, v) in samples {
            family.get_or_create(&labels).inc_by(v);
        }
        let name = name.strip_suffix("_total").expect("counter names end in _total");
        self.0.register(name, Self::help(help), family);
    }
}

/// The exposition-format page for `s`.
pub fn render(s: &StatusReport) -> String {
    let mut p = Page(Registry::default());
    let b = |v: bool| if v { 1.0 } else { 0.0 };
    p.gauges(
        "bluebridge_info",
        "Build and source of the running service (always 1).",
        [(
            vec![("version", s.version.clone()), ("source", s.source.kind.clone())],
            1.0,
        )],
    );
    p.gauge(
        "bluebridge_uptime_seconds",
        "Seconds since the service started.",
        s.uptime_s,
    );
    p.gauge(
        "bluebridge_engine_healthy",
        "1 while the real-time loop ticks (what feeds the systemd watchdog).",
        b(s.engine.healthy),
    );
    p.counters(
        "bluebridge_engine_ticks_total",
        "Real-time loop ticks.",
        [(vec![], s.engine.ticks)],
    );
    if let Some(a) = s.engine.last_tick_age_ms {
        p.gauge(
            "bluebridge_engine_last_tick_age_seconds",
            "Since the loop's last tick.",
            a / 1e3,
        );
    }
    if let Some(c) = s.engine.cpu_pct {
        p.gauge(
            "bluebridge_engine_cpu_ratio",
            "The real-time loop thread's CPU over the last 10 s, as a fraction of one core.",
            c / 100.0,
        );
    }
    if let Some(k) = s.skew_us {
        p.gauge(
            "bluebridge_skew_seconds",
            "Spread of the sync error across enabled, synced outputs.",
            k / 1e6,
        );
    }
    p.gauge(
        "bluebridge_state_save_failing",
        "1 while the last save of the persisted state failed.",
        b(s.state.last_save_error.is_some()),
    );
    p.gauge(
        "bluebridge_state_problems",
        "Problems found loading the persisted state (a corrupt file kept aside…).",
        s.state.problems.len() as f64,
    );
    if let Some(r) = &s.reload {
        p.gauge(
            "bluebridge_last_reload_ok",
            "1 if the last config reload was applied.",
            b(r.ok),
        );
    }

    let output = |o: &OutputReport| vec![("output", o.name.clone()), ("kind", o.kind.clone())];
    type Get = fn(&OutputReport) -> f64;
    let per_output: &[(&str, &str, Get)] = &[
        ("bluebridge_output_enabled", "1 if the output is enabled.", |o| {
            f64::from(u8::from(o.enabled))
        }),
        (
            "bluebridge_output_synced",
            "1 if the output is locked to the timeline.",
            |o| f64::from(u8::from(o.synced)),
        ),
        ("bluebridge_output_volume_percent", "Local volume.", |o| {
            o.volume_pct as f64
        }),
        (
            "bluebridge_output_group_volume_percent",
            "The group's volume (Snapcast Client.SetVolume).",
            |o| o.group_volume_pct as f64,
        ),
        (
            "bluebridge_output_group_muted",
            "1 if the group muted the output.",
            |o| f64::from(u8::from(o.group_muted)),
        ),
        (
            "bluebridge_output_effective_volume_percent",
            "The volume in force: group x local (0 when muted).",
            |o| o.effective_volume_pct,
        ),
        (
            "bluebridge_output_error_seconds",
            "Last measured sync error of the output (actual - wanted source time; its deviation from play time).",
            |o| o.error_us / 1e6,
        ),
        (
            "bluebridge_output_rate_correction_ppm",
            "Drift correction applied now (resampling ratio), ppm.",
            |o| o.correction_ppm,
        ),
        (
            "bluebridge_output_drift_estimate_ppm",
            "Estimated clock error of the output, ppm.",
            |o| o.drift_estimate_ppm,
        ),
    ];
    for (name, help, get) in per_output {
        p.gauges(name, help, s.outputs.iter().map(|o| (output(o), get(o))));
    }
    type Count = fn(&OutputReport) -> u64;
    let per_output_counts: &[(&str, &str, Count)] = &[
        (
            "bluebridge_output_resyncs_total",
            "Hard resyncs (skip or insert).",
            |o| o.resyncs,
        ),
        (
            "bluebridge_output_write_errors_total",
            "Failed writes to the output.",
            |o| o.write_errors,
        ),
    ];
    for (name, help, get) in per_output_counts {
        p.counters(name, help, s.outputs.iter().map(|o| (output(o), get(o))));
    }
    p.gauges(
        "bluebridge_output_delay_seconds",
        "Each part of the output delay (hand-off to heard) and their total; part snapcast_latency is the latency the \
         server set (the audio plays that much earlier), not in the total.",
        s.outputs.iter().flat_map(|o| {
            let d = &o.delay;
            [
                ("encoder", d.encoder_ms),
                ("queue", d.queue_ms),
                ("transport", d.transport_ms),
                ("sink_reported", d.sink_reported_ms),
                ("offset", d.offset_ms),
                ("calibration", d.calibration_ms),
                ("total", d.total_ms),
                ("snapcast_latency", d.snapcast_latency_ms),
            ]
            .map(|(part, v)| (vec![("output", o.name.clone()), ("part", part.to_string())], v / 1e3))
        }),
    );
    p.counters(
        "bluebridge_output_events_total",
        "The output's own counters (underruns, lost packets, rendered frames, reconnects…).",
        s.outputs.iter().flat_map(|o| {
            o.counters
                .iter()
                .map(|(k, v)| (vec![("output", o.name.clone()), ("counter", k.clone())], *v))
        }),
    );
    let mut page = String::new();
    prometheus_text::encode(&mut page, &p.0).expect("writing to a String cannot fail");
    page
}

/// The endpoint's routes; what is not routed is 404 for `GET`/`HEAD` and 405 for other methods.
fn router(calls: mpsc::Sender<Call>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_page))
        .route("/", get(metrics_page))
        .fallback(|method: Method| async move {
            if method == Method::GET || method == Method::HEAD {
                (StatusCode::NOT_FOUND, "not found; try /metrics\n")
            } else {
                (StatusCode::METHOD_NOT_ALLOWED, "only GET /metrics\n")
            }
        })
        .with_state(calls)
}

async fn metrics_page(State(calls): State<mpsc::Sender<Call>>) -> axum::response::Response {
    match status(&calls).await {
        Some(s) => ([(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)], render(&s)).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "the service is not answering\n").into_response(),
    }
}

/// Serves `listener` until `shutdown`, asking `calls` for the status behind each page.
pub async fn serve(listener: TcpListener, calls: mpsc::Sender<Call>, mut shutdown: watch::Receiver<bool>) {
    let app = router(calls);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(false)
        .max_buf_size(MAX_REQUEST_BYTES)
        .timer(TokioTimer::new())
        .header_read_timeout(REQUEST_TIMEOUT)
        .title_case_headers(true);
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
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, connection).await;
            drop(permit);
        });
    }
}

async fn status(calls: &mpsc::Sender<Call>) -> Option<StatusReport> {
    let (tx, rx) = oneshot::channel();
    calls.send((Request::Status, tx)).await.ok()?;
    match rx.await.ok()? {
        Response::Ok { result, .. } => serde_json::from_value(result).ok(),
        Response::Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::protocol::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// The shared fixture, with the values this file's assertions read (a name that needs escaping, no reload).
    fn report() -> StatusReport {
        let base = crate::control::protocol::fixtures::report();
        let out = base.outputs[0].clone();
        StatusReport {
            uptime_s: 12.0,
            config: "c.toml".into(),
            source: SourceReport {
                kind: "tone".into(),
                detail: String::new(),
                server_offset_us: None,
                counters: Default::default(),
            },
            outputs: vec![OutputReport {
                name: "kit\"chen".into(),
                error_us: 1.5,
                resyncs: 2,
                counters: [("underrun_frames".to_string(), 7)].into_iter().collect(),
                ..out
            }],
            skew_us: Some(3.0),
            engine: EngineReport {
                ticks: 2400,
                last_tick_age_ms: Some(4.0),
                ..base.engine.clone()
            },
            state: StateReport {
                path: "s.json".into(),
                problems: vec![],
                ..base.state.clone()
            },
            reload: None,
            ..base
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

    /// A served endpoint whose controller answers every status call with [`report`].
    async fn endpoint() -> (std::net::SocketAddr, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = mpsc::channel::<Call>(4);
        let (stop, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            while let Some((_, reply)) = rx.recv().await {
                let _ = reply.send(Response::ok(report()));
            }
        });
        tokio::spawn(serve(listener, tx, stop_rx));
        (addr, stop)
    }

    /// Sends `req` and reads the whole answer (the server closes after one).
    async fn exchange(addr: std::net::SocketAddr, req: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn the_endpoint_serves_metrics_and_refuses_the_rest() {
        let (addr, _stop) = endpoint().await;
        let get = |req: &'static str| exchange(addr, req);
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
        assert!(get("DELETE /nope HTTP/1.1\r\n\r\n").await.starts_with("HTTP/1.1 405"));
        // Not HTTP at all: a 400, not a hang.
        assert!(get("hello there\r\n\r\n").await.starts_with("HTTP/1.1 400"));
        // HEAD: the head of the page, no body.
        let h = get("HEAD /metrics HTTP/1.1\r\n\r\n").await;
        assert!(h.starts_with("HTTP/1.1 200") && h.ends_with("\r\n\r\n"), "{h}");
        // Just over the limit and never finished: answered, not waited for.
        let big = format!("GET /metrics HTTP/1.1\r\nX: {}", "a".repeat(8_300));
        assert!(exchange(addr, &big).await.starts_with("HTTP/1.1 431"));
    }

    /// Over [`MAX_CONNECTIONS`] a connection is closed at once; a silent one is closed after [`REQUEST_TIMEOUT`].
    #[tokio::test]
    async fn connections_are_capped_and_timed_out() {
        let (addr, _stop) = endpoint().await;
        let mut idle = Vec::new();
        for _ in 0..MAX_CONNECTIONS {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /metr").await.unwrap();
            idle.push(s);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = std::time::Instant::now();
        let mut extra = TcpStream::connect(addr).await.unwrap();
        let mut out = Vec::new();
        let _ = extra.read_to_end(&mut out).await;
        assert!(out.is_empty() && started.elapsed() < Duration::from_secs(1), "{out:?}");
        let mut first = idle.remove(0);
        let n = tokio::time::timeout(REQUEST_TIMEOUT * 2, first.read_to_end(&mut out))
            .await
            .expect("closed within the timeout");
        let waited = started.elapsed();
        assert!(
            waited >= REQUEST_TIMEOUT - Duration::from_millis(500),
            "{waited:?} {n:?}"
        );
        // Its slot is free again.
        let r = exchange(addr, "GET / HTTP/1.1\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    }
}
