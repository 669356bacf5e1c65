//! Sendspin as a source: one player connection per output (each output is its own Sendspin player, named after
//! it), one server-clock estimator shared by all of them; the player's events feed the output's timeline through
//! the same glue as the Snapcast source ([`super::snapcast::apply`]).

use crate::output::player::{Feed, PlaySettings};
use crate::output::volume::VolumeCurve;
use crate::sendspin::delay::DelayReporter;
use crate::sendspin::PlayerConfig;
use crate::timeline::buffer::TimelineBuffer;
use crate::timeline::server_clock::SharedServerClock;
use crate::timeline::{AudioFormat, Clock};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};

/// Events queued between a player and its glue task (each at most one chunk, ≤ 1 MiB of PCM as bounded by
/// [`MAX_FRAME_BYTES`](crate::sendspin::proto::MAX_FRAME_BYTES)); a full queue stops the socket being read.
const EVENT_QUEUE: usize = 16;

/// A running Sendspin player: its output's feed and a handle to stop it.
pub struct SendspinIngest {
    /// The output's feed.
    pub feed: Feed,
    shutdown: watch::Sender<bool>,
    output_delay_ms: watch::Sender<u32>,
    reporter: DelayReporter,
}

impl SendspinIngest {
    /// Starts the player of output `name` on `rt`, sharing `server_clock` with the other players of this server.
    /// With `identities` (the state directory) it is encrypted, with the output's identity kept there (made on first
    /// start); an identity that cannot be read is logged as an error naming its file, and that output's player stays
    /// off (the file is never replaced). Without, it speaks the server's plain transition mode.
    pub fn start(
        rt: &tokio::runtime::Handle,
        url: &str,
        name: &str,
        identities: Option<&std::path::Path>,
        clock: Arc<dyn Clock>,
        server_clock: SharedServerClock,
    ) -> Self {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let feed = Feed {
            timeline: TimelineBuffer::shared(AudioFormat::STEREO_48K),
            server_clock: server_clock.clone(),
            settings: Arc::new(Mutex::new(PlaySettings {
                buffer_ns: 0,
                volume_curve: VolumeCurve::Sendspin,
                ..PlaySettings::default()
            })),
        };
        let (ev_tx, mut ev_rx) = mpsc::channel(EVENT_QUEUE);
        let (output_delay_ms, delay_rx) = watch::channel(0);
        let player = match identities {
            None => Some(PlayerConfig::new(url, name)),
            Some(dir) => match crate::sendspin::identity::load_or_create(dir, name) {
                Ok((keys, made)) => {
                    let path = crate::sendspin::identity::key_path(dir, name);
                    tracing::info!(
                        output = name,
                        client_id = keys.client_id(),
                        "sendspin: {} identity {}",
                        if made { "made a new" } else { "using the" },
                        path.display()
                    );
                    Some(PlayerConfig::encrypted(url, name, keys))
                }
                Err(e) => {
                    tracing::error!(output = name, "{e}; this output's Sendspin player stays off");
                    None
                }
            },
        };
        if let Some(player) = player {
            rt.spawn(crate::sendspin::run(
                player,
                clock,
                server_clock,
                ev_tx,
                delay_rx,
                shutdown_rx,
            ));
        }
        let glue_feed = feed.clone();
        let glue_name = name.to_string();
        rt.spawn(async move {
            while let Some(ev) = ev_rx.recv().await {
                super::snapcast::apply(&glue_name, &glue_feed, ev);
            }
        });
        Self {
            feed,
            shutdown,
            output_delay_ms,
            reporter: DelayReporter::default(),
        }
    }

    /// One observation of the output's total delay (as status shows it); the player reports it to the server
    /// once it settles (see [`crate::sendspin::delay`]).
    pub fn observe_delay(&mut self, total_ns: i64) {
        if let Some(ms) = self.reporter.observe(total_ns) {
            let _ = self.output_delay_ms.send(ms);
        }
    }

    /// Asks the player to say goodbye and disconnect.
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }
}
