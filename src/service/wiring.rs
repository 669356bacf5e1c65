//! Where the players' audio comes from: the source started from the config and the feed each output reads.

use crate::config::SourceSpec;
use crate::output::player::{Feed, PlaySettings, PlayerConfig};
use crate::output::OutputSpec;
use crate::source::capture::CaptureSource;
use crate::source::sendspin::SendspinIngest;
use crate::source::snapcast::SnapcastIngest;
use crate::source::tone::{TestSignal, ToneSource, CLICK_OFFSET_FRAMES};
use crate::source::wav::WavSource;
use crate::source::{Source, SourceError};
use crate::timeline::buffer::{SharedTimeline, TimelineBuffer};
use crate::timeline::server_clock::{ServerClock, SharedServerClock};
use crate::timeline::{LocalTime, SystemClock};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The player settings an output spec asks for.
pub fn player_config(spec: &OutputSpec) -> PlayerConfig {
    PlayerConfig {
        offset_ns: spec.offset_ns,
        calibration_ns: spec.calibration_ns,
        channels: spec.channel,
        volume_pct: spec.volume_pct,
        drift_control: spec.drift_control,
        ..PlayerConfig::named(&spec.name)
    }
}

pub(super) fn local_feed(timeline: SharedTimeline, buffer_ns: i64) -> Feed {
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
pub(super) enum Wiring {
    Local(Feed),
    Snapcast {
        url: String,
        server_clock: SharedServerClock,
        clients: BTreeMap<String, SnapcastIngest>,
    },
    /// One Sendspin player per output, sharing one server-clock estimate.
    Sendspin {
        meeting: crate::source::sendspin::Meeting,
        /// Where each player's identity is kept; `None`: the plain transition mode (no identity).
        identities: Option<std::path::PathBuf>,
        server_clock: SharedServerClock,
        players: BTreeMap<String, SendspinIngest>,
    },
}

impl Wiring {
    /// Starts `source`; built-in sources are returned to be pumped by the engine.
    pub(super) fn start(
        source: &SourceSpec,
        start: LocalTime,
        state_dir: &std::path::Path,
    ) -> Result<(Self, Vec<Box<dyn Source>>), SourceError> {
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
            SourceSpec::Capture { capture, buffer_ns } => {
                let timeline = TimelineBuffer::shared(crate::timeline::AudioFormat::STEREO_48K);
                let server_clock: SharedServerClock = Arc::new(Mutex::new(ServerClock::new()));
                let src = CaptureSource::open(capture, timeline.clone(), server_clock.clone())?;
                let mut feed = local_feed(timeline, *buffer_ns);
                feed.server_clock = server_clock;
                (Self::Local(feed), vec![Box::new(src)])
            }
            SourceSpec::Snapcast { url } => (
                Self::Snapcast {
                    url: url.clone(),
                    server_clock: Arc::new(Mutex::new(ServerClock::new())),
                    clients: BTreeMap::new(),
                },
                vec![],
            ),
            SourceSpec::Sendspin { meet, encryption } => (
                Self::Sendspin {
                    meeting: crate::source::sendspin::Meeting::new(meet.clone()),
                    identities: encryption.then(|| state_dir.to_path_buf()),
                    server_clock: Arc::new(Mutex::new(ServerClock::new())),
                    players: BTreeMap::new(),
                },
                vec![],
            ),
        })
    }

    /// The feed for output `name` (for Snapcast, its client is started on first use and kept across rebuilds).
    pub(super) fn feed(&mut self, name: &str, rt: &tokio::runtime::Handle) -> Feed {
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
            Self::Sendspin {
                meeting,
                identities,
                server_clock,
                players,
            } => players
                .entry(name.to_string())
                .or_insert_with(|| {
                    SendspinIngest::start(
                        rt,
                        meeting,
                        name,
                        identities.as_deref(),
                        Arc::new(SystemClock),
                        server_clock.clone(),
                    )
                })
                .feed
                .clone(),
        }
    }

    /// The Snapcast server-clock estimate `server − local`, ns, once measured (None for the other sources).
    pub(super) fn server_offset_ns(&self) -> Option<i64> {
        match self {
            Self::Snapcast { server_clock, .. } | Self::Sendspin { server_clock, .. } => {
                server_clock.lock().ok().and_then(|c| c.offset_ns())
            }
            Self::Local(_) => None,
        }
    }

    /// Hands each Sendspin player its output's current total delay (from the engine's status), which it reports
    /// to the server as `output_delay_ms` once it settles; nothing for the other sources.
    pub(super) fn observe_delays(&mut self, players: &[crate::output::player::PlayerStatus]) {
        if let Self::Sendspin { players: ingests, .. } = self {
            for p in players {
                if let Some(i) = ingests.get_mut(&p.name) {
                    i.observe_delay(p.delay.total_ns());
                }
            }
        }
    }

    /// Output `name` is gone: stop what only it used.
    pub(super) fn forget(&mut self, name: &str) {
        if let Self::Snapcast { clients, .. } = self {
            if let Some(c) = clients.remove(name) {
                c.stop();
            }
        }
        if let Self::Sendspin { players, .. } = self {
            if let Some(p) = players.remove(name) {
                p.stop();
            }
        }
    }

    pub(super) fn stop(&mut self) {
        if let Self::Snapcast { clients, .. } = self {
            for (_, c) in std::mem::take(clients) {
                c.stop();
            }
        }
        if let Self::Sendspin { players, .. } = self {
            for (_, p) in std::mem::take(players) {
                p.stop();
            }
        }
    }
}
