//! The long-running service behind `bluebridge run`.
//!
//! ```text
//!  main thread                         tokio (one worker)
//!  ───────────                         ──────────────────
//!  Engine::run_controlled  ◄─commands── Controller ◄── control socket (control::server) ◄── `bluebridge status`…
//!   (ticks every 5 ms)     ──snapshot─►  │  ▲  ▲    ◄── metrics endpoint (metrics)
//!   heartbeat ──────────────────────────────────────► notifier: READY, STATUS, WATCHDOG (sd_notify)
//!                                        │  │  └───── SIGHUP: reload the config
//!                                        ▼  └──────── state.json (StateStore): what users change at run time
//!                                  sources, outputs (opened here, handed to the engine)
//! ```
//! The [`Controller`] owns everything that is not real-time: the config, the persisted state, the source
//! wiring, opening and closing outputs. It talks to the engine only through its [`EngineHandle`], so nothing on
//! the real-time path ever waits for it.

use crate::bluez::edge::BluezEdge;
use crate::config::{BluetoothSpec, Config, ConfigError, Loaded, ServiceSpec, SourceSpec};
use crate::control::protocol::{
    DelayReport, EngineReport, ErrorCode, OutputReport, ReloadReport, Request, Response, SourceReport, Speaker,
    SpeakersReport, StateReport, StatusReport,
};
use crate::control::server::{self, Call, Limits};
use crate::engine::{control_channel, Engine, EngineCommand, EngineHandle, EngineReply};
use crate::output::player::{Feed, PlaySettings, Player, PlayerConfig, PlayerStatus};
use crate::output::{OutputContext, OutputError, OutputSettings, OutputSpec};
use crate::source::snapcast::SnapcastIngest;
use crate::source::tone::{TestSignal, ToneSource, CLICK_OFFSET_FRAMES};
use crate::source::wav::WavSource;
use crate::source::{Source, SourceError};
use crate::state::{State, StateStore};
use crate::timeline::buffer::{SharedTimeline, TimelineBuffer};
use crate::timeline::server_clock::{ServerClock, SharedServerClock};
use crate::timeline::{Clock, LocalTime, SystemClock};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// The real-time loop counts as healthy (and the systemd watchdog is fed) while it ticked within this.
pub const HEALTHY_TICK_AGE_NS: i64 = 1_000_000_000;
/// How often the notifier checks the loop and pings the watchdog.
pub const NOTIFY_PERIOD: Duration = Duration::from_secs(1);
/// How often the one-line `STATUS=` summary is refreshed.
pub const STATUS_LINE_PERIOD: Duration = Duration::from_secs(5);
/// Requests queued for the controller before clients wait.
const CALL_QUEUE: usize = 32;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The config file is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The source could not be opened.
    #[error("source: {0}")]
    Source(#[from] SourceError),
    /// An output could not be opened.
    #[error("output {name:?}: {source}")]
    Output {
        /// The output.
        name: String,
        /// Why.
        source: OutputError,
    },
    /// The control socket could not be created.
    #[error("control socket {path}: {source}")]
    ControlSocket {
        /// Its path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The metrics endpoint could not be bound.
    #[error("metrics endpoint {addr}: {source}")]
    Metrics {
        /// Its address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// The player settings an output spec asks for.
pub fn player_config(spec: &OutputSpec) -> PlayerConfig {
    PlayerConfig {
        offset_ns: spec.offset_ns,
        calibration_ns: spec.calibration_ns,
        channels: spec.channel,
        volume_pct: spec.volume_pct,
        ..PlayerConfig::named(&spec.name)
    }
}

fn local_feed(timeline: SharedTimeline, buffer_ns: i64) -> Feed {
    Feed {
        timeline,
        server_clock: Arc::new(Mutex::new(ServerClock::local())),
        settings: Arc::new(Mutex::new(PlaySettings {
            buffer_ns,
            ..PlaySettings::default()
        })),
    }
}

/// Where the players' audio comes from: one feed shared by all (built-in sources), or one Snapcast client per
/// output sharing one server-clock estimate (each output is its own Snapcast client).
enum Wiring {
    Local(Feed),
    Snapcast {
        url: String,
        server_clock: SharedServerClock,
        clients: BTreeMap<String, SnapcastIngest>,
    },
}

impl Wiring {
    /// Starts `source`; built-in sources are returned to be pumped by the engine.
    fn start(source: &SourceSpec, start: LocalTime) -> Result<(Self, Vec<Box<dyn Source>>), SourceError> {
        Ok(match source {
            SourceSpec::Tone { buffer_ns } => {
                let signal = TestSignal::standard();
                // The rig's timing analysis (analyze_timing.py) computes every click's play time from this line.
                tracing::info!(
                    "tone source: frame 0 captured at CLOCK_MONOTONIC {} ns; clicks at frame {CLICK_OFFSET_FRAMES} of \
                     every second",
                    start.as_ns()
                );
                let timeline = TimelineBuffer::shared(signal.format);
                let src: Box<dyn Source> = Box::new(ToneSource::new(signal, timeline.clone(), start));
                (Self::Local(local_feed(timeline, *buffer_ns)), vec![src])
            }
            SourceSpec::File {
                path,
                looped,
                buffer_ns,
            } => {
                let (src, timeline) = WavSource::open(path, *looped, start)?;
                (Self::Local(local_feed(timeline, *buffer_ns)), vec![Box::new(src)])
            }
            SourceSpec::Snapcast { url } => (
                Self::Snapcast {
                    url: url.clone(),
                    server_clock: Arc::new(Mutex::new(ServerClock::new())),
                    clients: BTreeMap::new(),
                },
                vec![],
            ),
        })
    }

    /// The feed for output `name` (for Snapcast, its client is started on first use and kept across rebuilds).
    fn feed(&mut self, name: &str, rt: &tokio::runtime::Handle) -> Feed {
        match self {
            Self::Local(feed) => feed.clone(),
            Self::Snapcast {
                url,
                server_clock,
                clients,
            } => clients
                .entry(name.to_string())
                .or_insert_with(|| {
                    SnapcastIngest::start_sharing(
                        rt,
                        url,
                        &[name.to_string()],
                        Arc::new(SystemClock),
                        server_clock.clone(),
                    )
                })
                .feeds[0]
                .clone(),
        }
    }

    /// Output `name` is gone: stop what only it used.
    fn forget(&mut self, name: &str) {
        if let Self::Snapcast { clients, .. } = self {
            if let Some(c) = clients.remove(name) {
                c.stop();
            }
        }
    }

    fn stop(&mut self) {
        if let Self::Snapcast { clients, .. } = self {
            for (_, c) in std::mem::take(clients) {
                c.stop();
            }
        }
    }
}

/// What a reload does to the outputs, by name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    /// Identical: left alone.
    pub unchanged: Vec<String>,
    /// Only the offset or volume changed: adjusted in place (no re-open, no resync beyond the offset's own).
    pub retuned: Vec<String>,
    /// Anything else changed: closed and opened again.
    pub rebuilt: Vec<String>,
    /// New.
    pub added: Vec<String>,
    /// Gone.
    pub removed: Vec<String>,
}

impl ReloadPlan {
    /// Compares the running outputs with a new config's.
    pub fn new(old: &[OutputSpec], new: &[OutputSpec]) -> Self {
        let mut plan = Self::default();
        for n in new {
            match old.iter().find(|o| o.name == n.name) {
                None => plan.added.push(n.name.clone()),
                Some(o) if o == n => plan.unchanged.push(n.name.clone()),
                Some(o) => {
                    let mut same = n.clone();
                    same.offset_ns = o.offset_ns;
                    same.volume_pct = o.volume_pct;
                    if &same == o {
                        plan.retuned.push(n.name.clone());
                    } else {
                        plan.rebuilt.push(n.name.clone());
                    }
                }
            }
        }
        plan.removed = old
            .iter()
            .filter(|o| !new.iter().any(|n| n.name == o.name))
            .map(|o| o.name.clone())
            .collect();
        plan
    }

    /// One line: what happens.
    pub fn summary(&self) -> String {
        let part = |what: &str, v: &[String]| (!v.is_empty()).then(|| format!("{what} {}", v.join(", ")));
        let parts: Vec<String> = [
            part("added", &self.added),
            part("removed", &self.removed),
            part("rebuilt", &self.rebuilt),
            part("retuned", &self.retuned),
            part("unchanged", &self.unchanged),
        ]
        .into_iter()
        .flatten()
        .collect();
        parts.join("; ")
    }
}

/// Everything that is not real-time; see the module doc.
struct Controller {
    config_path: String,
    started: Instant,
    rt: tokio::runtime::Handle,
    source: SourceSpec,
    specs: Vec<OutputSpec>,
    service: ServiceSpec,
    bluetooth: BluetoothSpec,
    /// One for the whole run: every `a2dp` output shares its hub (endpoints, automatic placement).
    ctx: OutputContext,
    /// The same edge as `ctx`'s, kept to retune it on a reload.
    bluez: Arc<BluezEdge>,
    state: State,
    store: StateStore,
    state_problems: Vec<String>,
    last_save_error: Option<String>,
    /// Outputs of the config that could not be opened (on reload), with why.
    failed: BTreeMap<String, String>,
    reload: Option<ReloadReport>,
    engine: EngineHandle,
    wiring: Wiring,
}

fn ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}

impl Controller {
    fn known(&self) -> String {
        self.specs
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn spec(&self, name: &str) -> Result<&OutputSpec, Response> {
        self.specs.iter().find(|s| s.name == name).ok_or_else(|| {
            Response::err(
                ErrorCode::UnknownOutput,
                format!("no output {name:?}; outputs: {}", self.known()),
            )
        })
    }

    fn open(&mut self, spec: &OutputSpec) -> Result<Player, OutputError> {
        let (eff, enabled) = self.state.overlay(spec);
        let out = crate::output::open(&eff, &self.ctx)?;
        let feed = self.wiring.feed(&spec.name, &self.rt);
        let mut p = Player::new(player_config(&eff), feed, out);
        p.set_enabled(enabled);
        Ok(p)
    }

    fn save(&mut self) -> Vec<String> {
        match self.store.save(&self.state) {
            Ok(()) => {
                self.last_save_error = None;
                vec![]
            }
            Err(e) => {
                tracing::error!("{e}");
                self.last_save_error = Some(e.to_string());
                vec![format!("applied but not persisted: {e}")]
            }
        }
    }

    async fn engine(&self, cmd: EngineCommand) -> Result<(), Response> {
        match self.engine.call(cmd).await {
            Ok(EngineReply::Done) => Ok(()),
            Ok(EngineReply::UnknownOutput { .. }) => Err(Response::err(
                ErrorCode::Failed,
                "that output is configured but not playing (it failed to open; see status)",
            )),
            Ok(other) => Err(Response::err(
                ErrorCode::Failed,
                format!("unexpected engine reply {other:?}"),
            )),
            Err(e) => Err(Response::err(ErrorCode::Failed, e.to_string())),
        }
    }

    async fn handle(&mut self, req: Request) -> Response {
        match req {
            Request::Status => Response::ok(self.status()),
            Request::Speakers => Response::ok(self.speakers()),
            Request::Reload => {
                let r = self.reload().await;
                if r.ok {
                    Response::ok(r)
                } else {
                    Response::err(ErrorCode::Failed, r.message)
                }
            }
            Request::SetOffset { ref name, ms } => {
                self.change(
                    name,
                    |s| s.offset_ms = Some(ms),
                    EngineCommand::SetOffset {
                        name: name.clone(),
                        ns: (ms * 1e6).round() as i64,
                    },
                )
                .await
            }
            Request::SetVolume { ref name, pct } => {
                self.change(
                    name,
                    |s| s.volume_pct = Some(pct),
                    EngineCommand::SetVolume {
                        name: name.clone(),
                        pct,
                    },
                )
                .await
            }
            Request::Enable { ref name } | Request::Disable { ref name } => {
                let on = matches!(req, Request::Enable { .. });
                self.change(
                    name,
                    |s| s.enabled = Some(on),
                    EngineCommand::Enable { name: name.clone(), on },
                )
                .await
            }
        }
    }

    /// Applies a user change: to the engine, then to the persisted state.
    async fn change(
        &mut self,
        name: &str,
        set: impl FnOnce(&mut crate::state::OutputState),
        cmd: EngineCommand,
    ) -> Response {
        if let Err(r) = self.spec(name) {
            return r;
        }
        if let Err(r) = self.engine(cmd).await {
            return r;
        }
        set(self.state.output_mut(name));
        let warnings = self.save();
        let speaker = self.speaker(self.spec(name).expect("checked").clone(), &BTreeMap::new());
        match Response::ok(speaker) {
            Response::Ok { result, .. } => Response::Ok { result, warnings },
            e => e,
        }
    }

    fn snapshot(&self) -> BTreeMap<String, PlayerStatus> {
        self.engine
            .status()
            .players
            .into_iter()
            .map(|p| (p.name.clone(), p))
            .collect()
    }

    fn state_word(&self, name: &str, enabled: bool, p: Option<&PlayerStatus>) -> &'static str {
        match p {
            _ if self.failed.contains_key(name) => "failed",
            None => "starting",
            Some(_) if !enabled => "disabled",
            Some(p) if p.idle => "idle",
            Some(p) if p.synced && p.linked => "playing",
            Some(_) => "waiting",
        }
    }

    fn speaker(&self, spec: OutputSpec, players: &BTreeMap<String, PlayerStatus>) -> Speaker {
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

    fn speakers(&self) -> SpeakersReport {
        let players = self.snapshot();
        SpeakersReport {
            speakers: self.specs.iter().map(|s| self.speaker(s.clone(), &players)).collect(),
        }
    }

    fn status(&self) -> StatusReport {
        let players = self.snapshot();
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
                    resyncs: s.resyncs,
                    write_errors: s.write_errors,
                    delay: DelayReport {
                        snapcast_latency_ms: ms(s.settings.latency_ns),
                        ..DelayReport::from(&s.delay)
                    },
                    sink_delay_assumed: s.sink_delay_assumed,
                    counters: s.counters.iter().cloned().collect(),
                    error,
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
        let load = self.engine.status().load;
        let (kind, detail) = match &self.source {
            SourceSpec::Tone { .. } => ("tone", String::new()),
            SourceSpec::File { path, .. } => ("file", path.clone()),
            SourceSpec::Snapcast { url } => ("snapcast", redact(url)),
        };
        StatusReport {
            version: env!("CARGO_PKG_VERSION").into(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            config: self.config_path.clone(),
            source: SourceReport {
                kind: kind.into(),
                detail,
            },
            outputs,
            skew_us,
            engine: EngineReport {
                ticks: hb.ticks(),
                last_tick_age_ms: age.map(ms),
                healthy: age.is_some_and(|a| a < HEALTHY_TICK_AGE_NS),
                cpu_pct: load.as_ref().map(|l| l.cpu_pct),
                wakeups_per_s: load.as_ref().map(|l| l.wakeups_per_s),
            },
            state: StateReport {
                path: self.store.path().display().to_string(),
                problems: self.state_problems.clone(),
                last_save_error: self.last_save_error.clone(),
            },
            reload: self.reload.clone(),
        }
    }

    /// Re-reads the config and applies the difference; a bad config changes nothing.
    async fn reload(&mut self) -> ReloadReport {
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Reloading]);
        let at_s = self.started.elapsed().as_secs_f64();
        let report = match Config::load_all(&self.config_path) {
            Err(e) => {
                tracing::error!("reload refused, the running config stays: {e}");
                ReloadReport {
                    ok: false,
                    message: format!("{e} (the running config stays)"),
                    at_s,
                }
            }
            Ok(new) => {
                let message = self.apply(new).await;
                tracing::info!("reloaded {}: {message}", self.config_path);
                ReloadReport {
                    ok: true,
                    message,
                    at_s,
                }
            }
        };
        let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
        self.reload = Some(report.clone());
        report
    }

    async fn remove(&mut self, name: &str) {
        self.failed.remove(name);
        if let Ok(EngineReply::Removed(mut p)) = self.engine.call(EngineCommand::Remove { name: name.into() }).await {
            // Closing may flush a file or join a writer thread: off the async worker.
            let _ = tokio::task::spawn_blocking(move || p.close()).await;
        }
    }

    async fn add(&mut self, spec: &OutputSpec, errors: &mut Vec<String>) {
        match self.open(spec) {
            Ok(p) => {
                self.failed.remove(&spec.name);
                if let Ok(EngineReply::AlreadyThere(mut p)) = self.engine.call(EngineCommand::Add(Box::new(p))).await {
                    p.close();
                }
            }
            Err(e) => {
                tracing::error!("output {}: cannot open: {e}", spec.name);
                errors.push(format!("{}: {e}", spec.name));
                self.failed.insert(spec.name.clone(), format!("cannot open: {e}"));
            }
        }
    }

    async fn apply(&mut self, new: Loaded) -> String {
        let mut notes = Vec::new();
        if new.service != self.service {
            notes.push("[service] changed: it takes effect at the next restart".to_string());
        }
        if new.bluetooth != self.bluetooth {
            self.bluez.set_max_a2dp_per_adapter(new.bluetooth.max_a2dp_per_adapter);
            notes.push(format!(
                "[bluetooth] changed: max_a2dp_per_adapter = {} applies to speakers placed from now on",
                new.bluetooth.max_a2dp_per_adapter
            ));
            self.bluetooth = new.bluetooth.clone();
        }
        let mut errors = Vec::new();
        let summary;
        if new.source != self.source {
            // A new source means new timelines for everyone: every output is rebuilt.
            match Wiring::start(&new.source, SystemClock.now()) {
                Err(e) => {
                    return format!("source: {e}; the running source and outputs stay");
                }
                Ok((wiring, sources)) => {
                    let old: Vec<String> = self.specs.iter().map(|s| s.name.clone()).collect();
                    for name in &old {
                        self.remove(name).await;
                    }
                    let mut prev = std::mem::replace(&mut self.wiring, wiring);
                    prev.stop();
                    let _ = self.engine.call(EngineCommand::SetSources(sources)).await;
                    for spec in &new.outputs {
                        self.add(spec, &mut errors).await;
                    }
                    summary = format!(
                        "source changed, every output rebuilt ({})",
                        new.outputs
                            .iter()
                            .map(|o| o.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
            }
        } else {
            let plan = ReloadPlan::new(&self.specs, &new.outputs);
            let find = |n: &str| new.outputs.iter().find(|o| o.name == n).expect("in plan").clone();
            for name in &plan.removed {
                self.remove(name).await;
                self.wiring.forget(name);
            }
            for name in &plan.rebuilt {
                self.remove(name).await;
                self.add(&find(name), &mut errors).await;
            }
            for name in &plan.added {
                self.add(&find(name), &mut errors).await;
            }
            for name in &plan.retuned {
                let (eff, _) = self.state.overlay(&find(name));
                let _ = self
                    .engine
                    .call(EngineCommand::SetOffset {
                        name: name.clone(),
                        ns: eff.offset_ns,
                    })
                    .await;
                let _ = self
                    .engine
                    .call(EngineCommand::SetVolume {
                        name: name.clone(),
                        pct: eff.volume_pct,
                    })
                    .await;
            }
            summary = plan.summary();
        }
        self.source = new.source;
        self.specs = new.outputs;
        let mut msg = summary;
        if !errors.is_empty() {
            msg.push_str(&format!("; failed to open: {}", errors.join("; ")));
        }
        for n in notes {
            msg.push_str(&format!("; {n}"));
        }
        msg
    }

    async fn run(
        mut self,
        mut calls: mpsc::Receiver<Call>,
        mut hup: tokio::signal::unix::Signal,
        mut shutdown: watch::Receiver<bool>,
    ) {
        // No caller left (no control socket and no metrics endpoint, or both stopped) is not a reason to stop:
        // the sources and outputs this task owns keep running until shutdown.
        let mut calls_open = true;
        loop {
            tokio::select! {
                c = calls.recv(), if calls_open => match c {
                    Some((req, reply)) => {
                        let r = self.handle(req).await;
                        let _ = reply.send(r);
                    }
                    None => calls_open = false,
                },
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading {}", self.config_path);
                    self.reload().await;
                }
                () = server::stopped(&mut shutdown) => break,
            }
        }
        self.wiring.stop();
    }
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

/// The watchdog interval systemd asks for, µs: `WATCHDOG_USEC`, if `WATCHDOG_PID` is unset or this process (as
/// `sd_watchdog_enabled(3)` reads them).
fn watchdog_usec(usec: Option<String>, pid: Option<String>) -> Option<u64> {
    let usec = usec?.parse::<u64>().ok().filter(|u| *u > 0)?;
    match pid {
        Some(p) if p.parse::<u32>().ok() != Some(std::process::id()) => None,
        _ => Some(usec),
    }
}

/// Tells systemd: READY=1 after the first tick, STATUS= every few seconds, WATCHDOG=1 only while the loop ticks.
/// Without `NOTIFY_SOCKET` (not under systemd) every call is a no-op.
async fn notifier(engine: EngineHandle, mut shutdown: watch::Receiver<bool>) {
    let watchdog = watchdog_usec(std::env::var("WATCHDOG_USEC").ok(), std::env::var("WATCHDOG_PID").ok()).is_some();
    let mut ready = false;
    let mut last_line: Option<Instant> = None;
    let mut ticker = tokio::time::interval(NOTIFY_PERIOD);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = server::stopped(&mut shutdown) => return,
        }
        let age = engine.heartbeat().age_ns(SystemClock.now());
        let healthy = age.is_some_and(|a| a < HEALTHY_TICK_AGE_NS);
        if !ready && healthy {
            ready = true;
            let line = status_line(&engine.status().players, age);
            let _ = sd_notify::notify(
                false,
                &[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(&line)],
            );
            last_line = Some(Instant::now());
            tracing::info!("ready: {line}");
        }
        if watchdog && healthy {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        } else if watchdog && ready {
            tracing::error!("real-time loop stalled ({age:?} ns since its last tick): not feeding the watchdog");
        }
        if ready && last_line.is_none_or(|t| t.elapsed() >= STATUS_LINE_PERIOD) {
            let line = status_line(&engine.status().players, age);
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(&line)]);
            last_line = Some(Instant::now());
        }
    }
}

/// Runs the config at `config` until `stop` is set: the engine on this thread, control and notification on a
/// tokio runtime beside it.
pub fn run(config: &str, stop: Arc<AtomicBool>) -> Result<(), ServiceError> {
    run_with_default_socket(config, stop, Path::new(crate::config::DEFAULT_CONTROL_SOCKET))
}

/// [`run`], with `default_socket` in place of [`DEFAULT_CONTROL_SOCKET`](crate::config::DEFAULT_CONTROL_SOCKET)
/// when the config sets no `[service] control_socket` (tests put it in a private directory).
///
/// The control socket: one set in the config must be bound, or the service does not start; the default one is
/// optional (it needs root or the unit's RuntimeDirectory, or another instance holds it): without it the service
/// warns and runs with its sources and outputs as usual, unreachable by the CLI.
pub fn run_with_default_socket(config: &str, stop: Arc<AtomicBool>, default_socket: &Path) -> Result<(), ServiceError> {
    let loaded = Config::load_all(config)?;
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("bluebridge-ctl")
        .enable_all()
        .build()?;
    // SIGHUP's default action is to terminate: take it over before anything else can take time.
    let hup = rt.block_on(async { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) })?;

    let mut store = StateStore::new(PathBuf::from(&loaded.service.state_dir));
    let state = store.load();
    if let Some(p) = &state.problem {
        tracing::error!("state: {p}");
    }
    let (wiring, sources) = Wiring::start(&loaded.source, SystemClock.now())?;
    let (handle, mut ctl) = control_channel();
    let bluez = Arc::new(BluezEdge::new(
        rt.handle().clone(),
        loaded.bluetooth.max_a2dp_per_adapter,
    ));
    let mut controller = Controller {
        config_path: config.to_string(),
        started,
        rt: rt.handle().clone(),
        source: loaded.source.clone(),
        specs: loaded.outputs.clone(),
        service: loaded.service.clone(),
        bluetooth: loaded.bluetooth.clone(),
        ctx: OutputContext::new(bluez.clone()),
        bluez,
        state: state.state,
        store,
        state_problems: state.problem.into_iter().collect(),
        last_save_error: None,
        failed: BTreeMap::new(),
        reload: None,
        engine: handle.clone(),
        wiring,
    };
    let mut engine = Engine {
        sources,
        ..Engine::default()
    };
    for spec in &loaded.outputs {
        let p = controller.open(spec).map_err(|source| ServiceError::Output {
            name: spec.name.clone(),
            source,
        })?;
        engine.players.push(p);
    }

    let default = loaded.service.control_socket == crate::config::DEFAULT_CONTROL_SOCKET;
    let socket = match default {
        true => default_socket.to_path_buf(),
        false => PathBuf::from(&loaded.service.control_socket),
    };
    let listener = {
        let _guard = rt.enter();
        match server::bind(&socket) {
            Ok(l) => Some(l),
            // The default path needs root (or the unit's RuntimeDirectory): a plain `bluebridge run` by a user,
            // or a second ad-hoc instance, plays without a control socket rather than not at all.
            Err(e) if default => {
                tracing::warn!(
                    "no control socket: {}: {e}; the CLI cannot reach this instance (set [service] control_socket)",
                    socket.display()
                );
                None
            }
            Err(source) => {
                return Err(ServiceError::ControlSocket {
                    path: socket.display().to_string(),
                    source,
                })
            }
        }
    };
    let metrics = match loaded.service.metrics {
        Some(addr) => Some(
            rt.block_on(tokio::net::TcpListener::bind(addr))
                .map_err(|source| ServiceError::Metrics { addr, source })?,
        ),
        None => None,
    };
    let owns_socket = listener.is_some();
    let (shutdown_tx, shutdown) = watch::channel(false);
    let (calls_tx, calls) = mpsc::channel::<Call>(CALL_QUEUE);
    rt.spawn(controller.run(calls, hup, shutdown.clone()));
    if let Some(l) = listener {
        rt.spawn(server::serve(l, calls_tx.clone(), Limits::default(), shutdown.clone()));
    }
    if let Some(l) = metrics {
        tracing::info!("metrics on http://{}/metrics", loaded.service.metrics.expect("set"));
        rt.spawn(crate::metrics::serve(l, calls_tx.clone(), shutdown.clone()));
    }
    drop(calls_tx);
    rt.spawn(notifier(handle.clone(), shutdown.clone()));
    let reach = match owns_socket {
        true => format!("; control socket {}", socket.display()),
        false => String::new(),
    };
    tracing::info!("running {} outputs from {config}{reach}", engine.players.len());

    engine.run_controlled(&stop, &mut ctl);

    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    let _ = shutdown_tx.send(true);
    if owns_socket {
        let _ = std::fs::remove_file(&socket);
    }
    // Players added or removed by late commands are handled here: drain what is queued, then close everything.
    engine.serve(&mut ctl, SystemClock.now());
    drop(ctl);
    engine.close();
    rt.shutdown_timeout(Duration::from_millis(500));
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(text: &str) -> Vec<OutputSpec> {
        Config::parse("t.toml", &format!("[source]\nkind = \"tone\"\n{text}"))
            .unwrap()
            .1
    }

    #[test]
    fn a_reload_plan_touches_only_what_changed() {
        let old = specs(
            "[[output]]\nname = \"same\"\nkind = \"sim\"\n\
             [[output]]\nname = \"tuned\"\nkind = \"sim\"\noffset_ms = 1\n\
             [[output]]\nname = \"rebuilt\"\nkind = \"sim\"\n\
             [[output]]\nname = \"gone\"\nkind = \"sim\"\n",
        );
        let new = specs(
            "[[output]]\nname = \"new\"\nkind = \"sim\"\n\
             [[output]]\nname = \"same\"\nkind = \"sim\"\n\
             [[output]]\nname = \"tuned\"\nkind = \"sim\"\noffset_ms = 2\nvolume = 50\n\
             [[output]]\nname = \"rebuilt\"\nkind = \"sim\"\nsim = { ppm = 20 }\n",
        );
        let plan = ReloadPlan::new(&old, &new);
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            plan,
            ReloadPlan {
                unchanged: v(&["same"]),
                retuned: v(&["tuned"]),
                rebuilt: v(&["rebuilt"]),
                added: v(&["new"]),
                removed: v(&["gone"]),
            }
        );
        assert_eq!(
            plan.summary(),
            "added new; removed gone; rebuilt rebuilt; retuned tuned; unchanged same"
        );
        assert_eq!(
            ReloadPlan::new(&old, &old).summary(),
            "unchanged same, tuned, rebuilt, gone"
        );
        // A changed channel map or calibration re-opens (the player takes them at construction).
        let cal = specs("[[output]]\nname = \"same\"\nkind = \"sim\"\ncalibration_ms = 3\n");
        assert_eq!(ReloadPlan::new(&old[..1], &cal).rebuilt, v(&["same"]));
    }

    #[test]
    fn the_status_line_says_stalled_when_the_loop_is() {
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
    fn the_watchdog_is_on_when_systemd_asks_this_process() {
        let me = Some(std::process::id().to_string());
        assert_eq!(watchdog_usec(Some("2000000".into()), None), Some(2_000_000));
        assert_eq!(watchdog_usec(Some("2000000".into()), me), Some(2_000_000));
        assert_eq!(watchdog_usec(Some("2000000".into()), Some("1".into())), None);
        assert_eq!(watchdog_usec(Some("0".into()), None), None);
        assert_eq!(watchdog_usec(Some("x".into()), None), None);
        assert_eq!(watchdog_usec(None, None), None);
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(redact("tcp://me:secret@host:1704"), "tcp://me:***@host:1704");
        assert_eq!(redact("tcp://host:1704"), "tcp://host:1704");
    }
}
