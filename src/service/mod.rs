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
//!
//! The parts: `wiring` (the source and the feed each output reads), `reload` (what a new config changes),
//! `controller` (control calls, reloads, opening outputs), `status` (the reports and the one-line summary),
//! `notify` (sd_notify). This file holds the errors and [`run`], which starts them all.

mod calibrate;
mod controller;
mod notify;
mod reload;
mod status;
mod wiring;

use crate::bluez::edge::BluezEdge;
use crate::config::{Config, ConfigError};
use crate::control::server::{self, Call, Limits};
use crate::engine::{control_channel, Engine};
use crate::output::{OutputContext, OutputError};
use crate::source::SourceError;
use crate::state::StateStore;
use crate::timeline::{Clock, SystemClock};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

use controller::Controller;
use notify::notifier;
pub use reload::ReloadPlan;
pub use status::status_line;
pub use wiring::player_config;
use wiring::Wiring;

/// The real-time loop counts as healthy (and the systemd watchdog is fed) while it ticked within this.
pub const HEALTHY_TICK_AGE_NS: i64 = 1_000_000_000;
/// How often the notifier checks the loop and pings the watchdog.
pub const NOTIFY_PERIOD: Duration = Duration::from_secs(1);
/// How often the one-line `STATUS=` summary is refreshed.
pub const STATUS_LINE_PERIOD: Duration = Duration::from_secs(5);
/// How often each Sendspin player is given its output's delay to report (see [`crate::sendspin::delay`]).
pub const DELAY_OBSERVE_PERIOD: Duration = Duration::from_secs(1);
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
    Source(SourceError),
    /// An output could not be opened.
    #[error("output {name:?}: {error}")]
    Output {
        /// The output.
        name: String,
        /// Why.
        error: OutputError,
    },
    /// The control socket could not be created.
    #[error("control socket {path}: {error}")]
    ControlSocket {
        /// Its path.
        path: String,
        /// Why.
        error: std::io::Error,
    },
    /// The metrics endpoint could not be bound.
    #[error("metrics endpoint {addr}: {error}")]
    Metrics {
        /// Its address.
        addr: std::net::SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The async runtime could not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
}

// The variants say their cause in their own text, so none is also an error `source` (with one, the cause would
// print twice in `bluebridge: {e:#}`, "X: X"); hence the From impls by hand instead of `#[from]`.
impl From<SourceError> for ServiceError {
    fn from(e: SourceError) -> Self {
        Self::Source(e)
    }
}

impl From<std::io::Error> for ServiceError {
    fn from(e: std::io::Error) -> Self {
        Self::Runtime(e)
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
    let (wiring, sources) = Wiring::start(
        &loaded.source,
        SystemClock.now(),
        std::path::Path::new(&loaded.service.state_dir),
    )?;
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
        let p = controller.open(spec).map_err(|error| ServiceError::Output {
            name: spec.name.clone(),
            error,
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
            Err(error) => {
                return Err(ServiceError::ControlSocket {
                    path: socket.display().to_string(),
                    error,
                })
            }
        }
    };
    let metrics = match loaded.service.metrics {
        Some(addr) => Some(
            rt.block_on(tokio::net::TcpListener::bind(addr))
                .map_err(|error| ServiceError::Metrics { addr, error })?,
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

    /// `bluebridge: {e:#}` prints the error and its chain of sources: a cause that is both in a variant's text and
    /// its `source` would print twice ("X: X", seen for every output that failed to open).
    #[test]
    fn an_error_chain_says_each_cause_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::NotFound, "no such fifo");
        let errors = [
            ServiceError::Output {
                name: "kitchen".into(),
                error: OutputError::Io {
                    what: "opening /run/x".into(),
                    error: io(),
                },
            },
            ServiceError::ControlSocket {
                path: "/run/c.sock".into(),
                error: io(),
            },
            ServiceError::from(SourceError::File {
                path: "a.wav".into(),
                reason: "no such fifo".into(),
            }),
            ServiceError::from(io()),
        ];
        for e in errors {
            let text = format!("{:#}", anyhow::Error::from(e));
            assert_eq!(text.matches("no such fifo").count(), 1, "{text}");
        }
    }
}
