//! The controller: owns the config, the persisted state and the outputs; answers control calls and reloads.

use super::reload::ReloadPlan;
use super::wiring::{player_config, Wiring};
use crate::bluez::edge::BluezEdge;
use crate::config::{BluetoothSpec, Config, Loaded, ServiceSpec, SourceSpec};
use crate::control::protocol::{ErrorCode, ReloadReport, Request, Response};
use crate::control::server::{self, Call};
use crate::engine::{EngineCommand, EngineHandle, EngineReply};
use crate::output::player::Player;
use crate::output::{OutputContext, OutputError, OutputSpec};
use crate::state::{State, StateStore};
use crate::timeline::{Clock, SystemClock};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, watch};

/// Everything that is not real-time; see the module doc.
pub(super) struct Controller {
    pub(super) config_path: String,
    pub(super) started: Instant,
    pub(super) rt: tokio::runtime::Handle,
    pub(super) source: SourceSpec,
    pub(super) specs: Vec<OutputSpec>,
    pub(super) service: ServiceSpec,
    pub(super) bluetooth: BluetoothSpec,
    /// One for the whole run: every `a2dp` output shares its hub (endpoints, automatic placement).
    pub(super) ctx: OutputContext,
    /// The same edge as `ctx`'s, kept to retune it on a reload.
    pub(super) bluez: Arc<BluezEdge>,
    pub(super) state: State,
    pub(super) store: StateStore,
    pub(super) state_problems: Vec<String>,
    pub(super) last_save_error: Option<String>,
    /// Outputs of the config that could not be opened (on reload), with why.
    pub(super) failed: BTreeMap<String, String>,
    pub(super) reload: Option<ReloadReport>,
    pub(super) engine: EngineHandle,
    pub(super) wiring: Wiring,
}

impl Controller {
    pub(super) fn known(&self) -> String {
        self.specs
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(super) fn spec(&self, name: &str) -> Result<&OutputSpec, Response> {
        self.specs.iter().find(|s| s.name == name).ok_or_else(|| {
            Response::err(
                ErrorCode::UnknownOutput,
                format!("no output {name:?}; outputs: {}", self.known()),
            )
        })
    }

    pub(super) fn open(&mut self, spec: &OutputSpec) -> Result<Player, OutputError> {
        let (eff, enabled) = self.state.overlay(spec);
        let out = crate::output::open(&eff, &self.ctx)?;
        let feed = self.wiring.feed(&spec.name, &self.rt);
        let mut p = Player::new(player_config(&eff), feed, out);
        p.set_enabled(enabled);
        Ok(p)
    }

    pub(super) fn save(&mut self) -> Vec<String> {
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

    pub(super) async fn engine(&self, cmd: EngineCommand) -> Result<(), Response> {
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

    pub(super) async fn handle(&mut self, req: Request) -> Response {
        match req {
            Request::Status => Response::ok(self.status()),
            Request::Calibrate(a) => self.calibrate(a).await,
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
    pub(super) async fn change(
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

    /// Re-reads the config and applies the difference; a bad config changes nothing.
    pub(super) async fn reload(&mut self) -> ReloadReport {
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

    pub(super) async fn remove(&mut self, name: &str) {
        self.failed.remove(name);
        if let Ok(EngineReply::Removed(mut p)) = self.engine.call(EngineCommand::Remove { name: name.into() }).await {
            // Closing may flush a file or join a writer thread: off the async worker.
            let _ = tokio::task::spawn_blocking(move || p.close()).await;
        }
    }

    pub(super) async fn add(&mut self, spec: &OutputSpec, errors: &mut Vec<String>) {
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

    pub(super) async fn apply(&mut self, new: Loaded) -> String {
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
            match Wiring::start(
                &new.source,
                SystemClock.now(),
                std::path::Path::new(&self.service.state_dir),
            ) {
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

    pub(super) async fn run(
        mut self,
        mut calls: mpsc::Receiver<Call>,
        mut hup: tokio::signal::unix::Signal,
        mut shutdown: watch::Receiver<bool>,
    ) {
        // No caller left (no control socket and no metrics endpoint, or both stopped) is not a reason to stop:
        // the sources and outputs this task owns keep running until shutdown.
        let mut calls_open = true;
        let mut delays = tokio::time::interval(super::DELAY_OBSERVE_PERIOD);
        delays.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = delays.tick() => {
                    let status = self.engine.status();
                    if status.taken_at.is_some() {
                        self.wiring.observe_delays(&status.players);
                    }
                }
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
