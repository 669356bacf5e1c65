//! The long-running service behind `bluebridge run`: loads the config, starts the source and the outputs, runs
//! the real-time engine until asked to stop.

use crate::config::{Config, ConfigError, OutputSpec, SourceSpec};
use crate::engine::Engine;
use crate::output::player::{Feed, PlaySettings, Player, PlayerConfig};
use crate::output::{OutputContext, OutputError};
use crate::source::snapcast::SnapcastIngest;
use crate::source::tone::{TestSignal, ToneSource};
use crate::source::wav::WavSource;
use crate::source::SourceError;
use crate::timeline::buffer::{SharedTimeline, TimelineBuffer};
use crate::timeline::server_clock::ServerClock;
use crate::timeline::{Clock, SystemClock};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

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
        server_clock: Arc::new(Mutex::new(ServerClock::fixed(0))),
        settings: Arc::new(Mutex::new(PlaySettings {
            buffer_ns,
            ..PlaySettings::default()
        })),
    }
}

/// Runs the config at `config` until `stop` is set.
pub fn run(config: &str, stop: Arc<AtomicBool>) -> Result<(), ServiceError> {
    let (source, outputs) = Config::load(config)?;
    let clock = SystemClock;
    let start = clock.now();
    let mut engine = Engine::default();
    // Network sources and D-Bus run on tokio beside the real-time loop.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut feeds: Vec<Feed> = Vec::new();
    let mut snapcast: Option<SnapcastIngest> = None;
    let shared_feed = match &source {
        SourceSpec::Tone { buffer_ns } => {
            let signal = TestSignal::standard();
            let timeline = TimelineBuffer::shared(signal.format);
            engine
                .sources
                .push(Box::new(ToneSource::new(signal, timeline.clone(), start)));
            Some(local_feed(timeline, *buffer_ns))
        }
        SourceSpec::File {
            path,
            looped,
            buffer_ns,
        } => {
            let (src, timeline) = WavSource::open(path, *looped, start)?;
            engine.sources.push(Box::new(src));
            Some(local_feed(timeline, *buffer_ns))
        }
        SourceSpec::Snapcast { url } => {
            let names: Vec<String> = outputs.iter().map(|o| o.name.clone()).collect();
            let ingest = SnapcastIngest::start(rt.handle(), url, &names, Arc::new(SystemClock));
            feeds = ingest.feeds.clone();
            snapcast = Some(ingest);
            None
        }
    };
    let ctx = OutputContext::new(rt.handle().clone());
    for (i, spec) in outputs.iter().enumerate() {
        let out = crate::output::open(spec, &ctx).map_err(|source| ServiceError::Output {
            name: spec.name.clone(),
            source,
        })?;
        let feed = shared_feed.clone().unwrap_or_else(|| feeds[i].clone());
        engine.players.push(Player::new(player_config(spec), feed, out));
    }
    tracing::info!("running {} outputs from {config}", engine.players.len());
    engine.run_realtime(None, &stop, |e, _| {
        for s in e.status() {
            tracing::debug!(
                output = s.name,
                synced = s.synced,
                error_us = s.error_us,
                correction_ppm = s.correction_ppm,
                delay_ms = s.delay.total_ns() as f64 / 1e6,
                resyncs = s.resyncs
            );
        }
    });
    if let Some(s) = &snapcast {
        s.stop();
    }
    engine.close();
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    tracing::info!("stopped");
    Ok(())
}
