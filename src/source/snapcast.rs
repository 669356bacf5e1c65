//! Snapcast as a source: one client connection per output (each output is its own Snapcast client, so users
//! group, mute and set latency per speaker), one server-clock estimator shared by all of them, and the glue that
//! turns client events into each output's timeline and play settings.

use crate::output::player::{Feed, PlaySettings};
use crate::snapcast::{ClientCommand, ClientConfig, SnapEvent};
use crate::timeline::buffer::{Chunk, TimelineBuffer, DEFAULT_CAPACITY_NS};
use crate::timeline::server_clock::{ServerClock, SharedServerClock};
use crate::timeline::{AudioFormat, Clock};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};

/// Audio kept beyond the server's buffer, so a frame is still there at its play time.
const CAPACITY_MARGIN_NS: i64 = 2_000_000_000;
/// Events queued between a client and its glue task. Bounded in entries, each at most
/// [`MAX_CHUNK_MS`](crate::snapcast::decoder::MAX_CHUNK_MS) of audio; a full queue makes the client wait, so it
/// stops reading its socket and TCP slows the server down (nothing is dropped here; the timeline buffer behind it
/// is bounded in bytes, see [`TimelineBuffer::max_bytes`]).
const EVENT_QUEUE: usize = 16;

/// A running Snapcast ingest: the feeds for the players, and handles to stop it.
pub struct SnapcastIngest {
    /// One feed per output, in the order the names were given.
    pub feeds: Vec<Feed>,
    /// Volume reports towards the server, per output.
    pub commands: Vec<mpsc::Sender<ClientCommand>>,
    /// The shared server clock.
    pub server_clock: SharedServerClock,
    shutdown: watch::Sender<bool>,
}

impl SnapcastIngest {
    /// Starts one client per output name on `rt`.
    pub fn start(rt: &tokio::runtime::Handle, url: &str, names: &[String], clock: Arc<dyn Clock>) -> Self {
        Self::start_sharing(rt, url, names, clock, Arc::new(Mutex::new(ServerClock::new())))
    }

    /// Like [`SnapcastIngest::start`], with an existing server-clock estimate for the same server (so outputs
    /// added later, each with its own ingest that can be stopped alone, share one estimator).
    pub fn start_sharing(
        rt: &tokio::runtime::Handle,
        url: &str,
        names: &[String],
        clock: Arc<dyn Clock>,
        server_clock: SharedServerClock,
    ) -> Self {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut feeds = Vec::new();
        let mut commands = Vec::new();
        for name in names {
            let feed = Feed {
                timeline: TimelineBuffer::shared(AudioFormat::STEREO_48K),
                server_clock: server_clock.clone(),
                settings: Arc::new(Mutex::new(PlaySettings::default())),
            };
            let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
            let (cmd_tx, cmd_rx) = mpsc::channel(4);
            let cfg = ClientConfig::new(url, name.clone());
            rt.spawn(crate::snapcast::run(
                cfg,
                clock.clone(),
                server_clock.clone(),
                ev_tx,
                cmd_rx,
                shutdown_rx.clone(),
            ));
            rt.spawn(glue(name.clone(), feed.clone(), ev_rx));
            feeds.push(feed);
            commands.push(cmd_tx);
        }
        Self {
            feeds,
            commands,
            server_clock,
            shutdown,
        }
    }

    /// Asks every client to disconnect.
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }
}

/// Applies one client's events to its output's feed.
async fn glue(name: String, feed: Feed, mut events: mpsc::Receiver<SnapEvent>) {
    while let Some(ev) = events.recv().await {
        apply(&name, &feed, ev);
    }
}

/// Applies one event (pure apart from the locks; unit-tested).
pub fn apply(name: &str, feed: &Feed, ev: SnapEvent) {
    match ev {
        SnapEvent::Connected { server } => tracing::info!(output = name, "connected to {server}"),
        SnapEvent::Disconnected { reason } => {
            tracing::warn!(
                output = name,
                "disconnected: {reason}; playing silence until it is back"
            )
        }
        SnapEvent::Format(f) => {
            tracing::info!(output = name, "stream format {f}");
            feed.timeline.reset(f);
        }
        SnapEvent::Audio { start, samples } => {
            if let Err(e) = feed.timeline.push(Chunk { start, samples }) {
                tracing::warn!(output = name, "chunk dropped: {e}");
            }
        }
        SnapEvent::Settings {
            buffer_ms,
            latency_ms,
            volume_pct,
            muted,
        } => {
            let buffer_ns = buffer_ms.max(0) as i64 * 1_000_000;
            let mut settings = feed.settings.lock().expect("settings lock");
            // The curve is the source's (set when the feed is made), not the server's to change.
            *settings = PlaySettings {
                buffer_ns,
                latency_ns: latency_ms as i64 * 1_000_000,
                volume_pct,
                muted,
                volume_curve: settings.volume_curve,
            };
            drop(settings);
            feed.timeline
                .set_capacity_ns((buffer_ns + CAPACITY_MARGIN_NS).max(DEFAULT_CAPACITY_NS));
            tracing::info!(
                output = name,
                buffer_ms,
                latency_ms,
                volume_pct,
                muted,
                "server settings"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::ServerTime;

    /// An empty feed at stereo 48 kHz with default settings.
    fn stereo_feed() -> Feed {
        Feed {
            timeline: TimelineBuffer::shared(AudioFormat::STEREO_48K),
            server_clock: Arc::new(Mutex::new(ServerClock::new())),
            settings: Arc::new(Mutex::new(PlaySettings::default())),
        }
    }

    #[test]
    fn events_become_timeline_audio_and_play_settings() {
        let feed = stereo_feed();
        apply(
            "o",
            &feed,
            SnapEvent::Settings {
                buffer_ms: 800,
                latency_ms: 30,
                volume_pct: 40,
                muted: true,
            },
        );
        let s = *feed.settings.lock().unwrap();
        assert_eq!(
            (s.buffer_ns, s.latency_ns, s.volume_pct, s.muted),
            (800_000_000, 30_000_000, 40, true)
        );
        apply(
            "o",
            &feed,
            SnapEvent::Format(AudioFormat {
                rate_hz: 44_100,
                channels: 2,
            }),
        );
        apply(
            "o",
            &feed,
            SnapEvent::Audio {
                start: ServerTime::from_ns(5),
                samples: vec![0.5; 4],
            },
        );
        let tl = feed.timeline.lock();
        assert_eq!(tl.format().rate_hz, 44_100);
        assert_eq!(tl.generation(), 1);
        assert_eq!(tl.start(), Some(ServerTime::from_ns(5)));
        drop(tl);
        // A chunk that is not whole frames is refused, not fatal.
        apply(
            "o",
            &feed,
            SnapEvent::Audio {
                start: ServerTime::from_ns(100_000),
                samples: vec![0.5; 3],
            },
        );
    }

    /// Issue 17: a server asking for a huge buffer and then flooding audio faster than real time must not grow
    /// memory. The timeline's capacity is clamped to `MAX_CAPACITY_NS` (30 s) and its bytes stay under
    /// 30 s × 48000 Hz × 2 ch × 4 B × 2 + 64 KiB (≈ 23 MB); before, 100 one-second chunks held 38 MB.
    #[test]
    fn a_flood_under_a_huge_buffer_setting_stays_bounded() {
        use crate::timeline::buffer::MAX_CAPACITY_NS;
        let feed = stereo_feed();
        apply(
            "o",
            &feed,
            SnapEvent::Settings {
                buffer_ms: i32::MAX,
                latency_ms: 0,
                volume_pct: 100,
                muted: false,
            },
        );
        let bound = (MAX_CAPACITY_NS as usize / 1_000_000) * 48 * 2 * 4 * 2 + 64 * 1024;
        for i in 0..100i64 {
            apply(
                "o",
                &feed,
                SnapEvent::Audio {
                    start: ServerTime::from_ns(i * 1_000_000_000),
                    samples: vec![0.1; 96_000],
                },
            );
            let tl = feed.timeline.lock();
            assert!(
                tl.held_bytes() <= bound,
                "held {} bytes, bound {bound}",
                tl.held_bytes()
            );
        }
        let tl = feed.timeline.lock();
        assert_eq!(tl.max_bytes(), bound);
        assert_eq!(tl.end(), Some(ServerTime::from_ns(100_000_000_000)));
    }
}
