//! The Snapcast client: one TCP connection per output, with time sync, decoding and reconnects.
//!
//! [`run`] keeps one connection to the server alive until shutdown. Per connection:
//! 1. connect, send Hello (identity from [`ClientConfig`], `Auth` from the URL);
//! 2. the server answers with ServerSettings ([`SnapEvent::Settings`], also pushed unsolicited later), a
//!    CodecHeader ([`SnapEvent::Format`], again whenever the group's stream changes) and WireChunks, each decoded
//!    into one [`SnapEvent::Audio`] stamped with the server time of its first frame;
//! 3. meanwhile Time requests (a burst of 50, then 1/s, see [`super::time_sync`]) feed the shared
//!    [`ServerClock`](crate::timeline::server_clock::ServerClock).
//!
//! Anything wrong — a network error, a Time request unanswered for 2 s, malformed or oversized messages, a chunk
//! before any CodecHeader, a codec header that lies, a chunk stamped more than [`MAX_CHUNK_SKEW_NS`] from the
//! server's now — is logged with what was wrong, the connection is dropped and a new one is made after a capped
//! exponential backoff ([`BACKOFF_MIN_MS`] doubling to [`BACKOFF_MAX_MS`], back to the minimum after a connection
//! that stayed up [`HEALTHY_AFTER_MS`]). A 401/403 Error message is logged as an error and waits the maximum.
//!
//! Memory is bounded: a payload is allocated only after its size passed the 1 MB check, at most
//! [`INCOMING_QUEUE`] decoded messages wait between the socket reader and the session, and a chunk decodes to at
//! most [`MAX_CHUNK_MS`](super::decoder::MAX_CHUNK_MS) of audio. Both channels (here and towards the output's
//! glue task) are bounded in entries and make the sender wait, so a server sending faster than real time is
//! slowed by TCP flow control; the timeline buffer at the end is bounded in bytes and drops (counts, logs) the
//! oldest audio beyond its bound, see [`TimelineBuffer`](crate::timeline::buffer::TimelineBuffer).

mod error;
mod reader;
mod session;

pub use error::SessionError;

use super::proto::{self, ClientInfo, Hello};
use super::url::ServerUrl;
use crate::timeline::backoff::Backoff;
use crate::timeline::server_clock::{ServerClock, SharedServerClock};
use crate::timeline::{AudioFormat, Clock, ServerTime};
use session::{End, Session};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Giving up on a TCP connect after this long, in milliseconds.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Giving up on a write after this long, in milliseconds.
pub const WRITE_TIMEOUT_MS: u64 = 2_000;
/// The server must answer Hello with ServerSettings within this time, in milliseconds.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;
/// First reconnect delay, in milliseconds.
pub const BACKOFF_MIN_MS: u64 = 500;
/// Longest reconnect delay, in milliseconds (also the delay after a 401/403).
pub const BACKOFF_MAX_MS: u64 = 10_000;
/// A connection that got ServerSettings and stayed up this long resets the backoff, in milliseconds.
pub const HEALTHY_AFTER_MS: u64 = 5_000;
/// A chunk stamped further than this from the server's current time is nonsense, in nanoseconds.
pub const MAX_CHUNK_SKEW_NS: i64 = 60_000_000_000;
/// Decoded messages that may wait between the socket reader and the session (each ≤ 1 MB).
pub const INCOMING_QUEUE: usize = 4;
/// Exchanges of this connection needed before its own offset estimate is trusted.
pub const MIN_SESSION_SAMPLES: usize = 10;
/// If this connection's offset differs from the shared estimate by more than this, the server's clock jumped
/// (server rebooted, or a different machine answers at that address): the shared estimate is replaced, in ns.
pub const CLOCK_JUMP_NS: i64 = 50_000_000;

/// Who this client is and where it connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// `tcp://[user:password@]host[:port]` (see [`super::url`]).
    pub url: String,
    /// The output's name (for logs).
    pub name: String,
    /// Hello `ID`: the server files this client (its group, volume, latency) under it. Must be stable and unique per
    /// output; [`client_id_for`] derives one from the output name. Empty means derive.
    pub client_id: String,
    /// Hello `HostName`: the server stores it as the client's `host.name`, which Snapweb and the apps show while
    /// the user has not named the client (`config.name`, set by `Client.SetName`, which a Hello never touches).
    pub host_name: String,
}

impl ClientConfig {
    /// A config for output `name` with the derived id, and the output's name as `HostName` so each speaker is
    /// listed under its own name (a machine host name would list every output of this machine the same).
    pub fn new(url: impl Into<String>, name: impl Into<String>) -> Self {
        let name = name.into();
        Self {
            url: url.into(),
            client_id: client_id_for(&name),
            host_name: name.clone(),
            name,
        }
    }

    /// The Hello this client sends: its identity, and `auth` (from the URL's credentials).
    pub fn hello(&self, auth: Option<proto::Auth>) -> Hello {
        Hello {
            mac: "00:00:00:00:00:00".into(),
            host_name: self.host_name.clone(),
            version: env!("CARGO_PKG_VERSION").into(),
            client_name: "bluebridge".into(),
            os: std::env::consts::OS.into(),
            arch: std::env::consts::ARCH.into(),
            instance: 1,
            id: if self.client_id.is_empty() {
                client_id_for(&self.name)
            } else {
                self.client_id.clone()
            },
            protocol_version: 2,
            auth,
        }
    }
}

/// The stable client id of an output: `bluebridge-<name>`, lower-cased, with anything but `a-z 0-9 - _ .` turned
/// into `-` (runs collapsed).
pub fn client_id_for(output_name: &str) -> String {
    let mut id = String::from("bluebridge-");
    let mut last_dash = true;
    for c in output_name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
            id.push(c);
            last_dash = false;
        } else if !last_dash {
            id.push('-');
            last_dash = true;
        }
    }
    while id.ends_with('-') && id.len() > "bluebridge-".len() {
        id.pop();
    }
    if id.len() == "bluebridge-".len() {
        id.push_str("output");
    }
    id
}

/// What the client tells its owner.
#[derive(Debug, Clone, PartialEq)]
pub enum SnapEvent {
    /// A TCP connection is up and Hello was sent.
    Connected {
        /// `host:port`.
        server: String,
    },
    /// The connection was lost or dropped; a reconnect follows.
    Disconnected {
        /// What went wrong.
        reason: String,
    },
    /// A new CodecHeader was decoded; the audio that follows is in this format (also after a stream switch: the
    /// audio before and after do not join up).
    Format(AudioFormat),
    /// Decoded audio of one chunk.
    Audio {
        /// Server time of the first frame.
        start: ServerTime,
        /// Interleaved samples in `[-1, 1)`, in the last announced format.
        samples: Vec<f32>,
    },
    /// Settings for this client (on connect, and whenever a controller changes them).
    Settings {
        /// Server buffer: audio captured at `T` plays at `T + buffer_ms − latency_ms`.
        buffer_ms: i32,
        /// This client's latency, set by the user; positive plays earlier.
        latency_ms: i32,
        /// Volume, percent.
        volume_pct: u8,
        /// Muted (the server then sends no audio).
        muted: bool,
    },
}

/// What the owner can ask of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCommand {
    /// Tell the server that the volume or mute changed locally (ClientInfo). Sent at once if connected, else on
    /// the next connect (only the latest report is kept).
    ReportVolume {
        /// Volume, percent (values over 100 are sent as 100).
        volume_pct: u8,
        /// Muted.
        muted: bool,
    },
}

/// Runs the client until `shutdown` turns true (or its sender is dropped), or until nobody listens to `events`.
/// Network and protocol errors never end it: it reconnects. A URL that does not parse is logged once and the
/// client then idles until shutdown (validate URLs with [`ServerUrl::parse`] when loading the config).
pub async fn run(
    cfg: ClientConfig,
    clock: Arc<dyn Clock>,
    server_clock: SharedServerClock,
    events: mpsc::Sender<SnapEvent>,
    mut commands: mpsc::Receiver<ClientCommand>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name = cfg.name.as_str();
    let url = match ServerUrl::parse(&cfg.url) {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(output = name, "{e}; this output will not connect");
            let _ = events.send(SnapEvent::Disconnected { reason: e.to_string() }).await;
            while !shutdown_requested(&mut shutdown).await {}
            return;
        }
    };
    let hello = cfg.hello(url.auth());
    let mut backoff = Backoff::new(BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    let mut link = Link {
        commands_open: true,
        pending_report: None,
    };
    loop {
        if *shutdown.borrow() {
            return;
        }
        let started = Instant::now();
        let mut session = Session {
            name,
            clock: clock.clone(),
            server_clock: server_clock.clone(),
            own_clock: ServerClock::new(),
            events: &events,
            writer: None,
            next_id: 1,
            decoder: None,
            settings_seen: false,
        };
        let result = session
            .serve(&url, &hello, &mut link, &mut commands, &mut shutdown)
            .await;
        let reason = match result {
            Ok(End::Shutdown) | Ok(End::EventsClosed) => return,
            Err(e) => e,
        };
        let auth_refused = reason.is_auth_refusal();
        let healthy = session.settings_seen && started.elapsed() >= Duration::from_millis(HEALTHY_AFTER_MS);
        let delay_ms = backoff.next_delay_ms(healthy, auth_refused);
        let reason = reason.to_string();
        if auth_refused {
            tracing::error!(output = name, server = %url.address(), "{reason}; retrying in {delay_ms} ms");
        } else {
            tracing::warn!(output = name, server = %url.address(), "{reason}; reconnecting in {delay_ms} ms");
        }
        if session.writer.is_some() && events.send(SnapEvent::Disconnected { reason }).await.is_err() {
            return;
        }
        drop(session);
        // Wait out the backoff, keeping the latest volume report for the next connection.
        let sleep = tokio::time::sleep(Duration::from_millis(delay_ms));
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                stop = shutdown_requested(&mut shutdown) => if stop { return },
                cmd = commands.recv(), if link.commands_open => link.command(cmd),
            }
        }
    }
}

/// Waits for a change of the shutdown flag; true if the client should stop.
pub(super) async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) -> bool {
    match shutdown.changed().await {
        Ok(()) => *shutdown.borrow(),
        Err(_) => true,
    }
}

/// State that outlives one connection.
pub(super) struct Link {
    pub(super) commands_open: bool,
    pub(super) pending_report: Option<ClientInfo>,
}

impl Link {
    pub(super) fn command(&mut self, cmd: Option<ClientCommand>) {
        match cmd {
            None => self.commands_open = false,
            Some(ClientCommand::ReportVolume { volume_pct, muted }) => {
                self.pending_report = Some(ClientInfo {
                    volume_pct: volume_pct.min(100).into(),
                    muted,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_stable_and_sanitized() {
        assert_eq!(client_id_for("Kitchen"), "bluebridge-kitchen");
        assert_eq!(
            client_id_for("Living Room / JBL  Flip 5!"),
            "bluebridge-living-room-jbl-flip-5"
        );
        assert_eq!(client_id_for("bath_1.left"), "bluebridge-bath_1.left");
        assert_eq!(client_id_for("  "), "bluebridge-output");
        assert_eq!(client_id_for("Ä"), "bluebridge-output");
        assert_eq!(ClientConfig::new("tcp://h", "Desk").client_id, "bluebridge-desk");
    }

    #[test]
    fn hello_names_the_output_so_the_server_lists_each_speaker_by_its_name() {
        let cfg = ClientConfig::new("tcp://h", "Kitchen");
        let h = cfg.hello(None);
        assert_eq!(h.host_name, "Kitchen");
        assert_eq!(h.id, "bluebridge-kitchen");
        assert_eq!(h.client_name, "bluebridge");
        assert_eq!((h.instance, h.protocol_version, h.auth.is_none()), (1, 2, true));
        assert_eq!(h.unique_id(), "bluebridge-kitchen");
        // Two outputs of one machine: two ids and two names.
        let hall = ClientConfig::new("tcp://h", "hall").hello(None);
        assert_ne!(
            (hall.host_name.as_str(), hall.id.as_str()),
            (h.host_name.as_str(), h.id.as_str())
        );
        // An empty id is derived from the name.
        let cfg = ClientConfig {
            client_id: String::new(),
            ..cfg
        };
        assert_eq!(cfg.hello(None).id, "bluebridge-kitchen");
    }

    #[test]
    fn run_is_a_send_future() {
        fn assert_send<T: Send>(_: &T) {}
        let (ev_tx, _ev_rx) = mpsc::channel(1);
        let (_cmd_tx, cmd_rx) = mpsc::channel(1);
        let (_sd_tx, sd_rx) = watch::channel(false);
        let clock: Arc<dyn Clock> = Arc::new(crate::timeline::SystemClock);
        let fut = run(
            ClientConfig::new("tcp://h", "x"),
            clock,
            Default::default(),
            ev_tx,
            cmd_rx,
            sd_rx,
        );
        assert_send(&fut);
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::new(BACKOFF_MIN_MS, BACKOFF_MAX_MS);
        let delays: Vec<u64> = (0..7).map(|_| b.next_delay_ms(false, false)).collect();
        assert_eq!(delays, [500, 1000, 2000, 4000, 8000, 10_000, 10_000]);
        assert_eq!(b.next_delay_ms(true, false), 500);
        assert_eq!(b.next_delay_ms(false, true), BACKOFF_MAX_MS);
    }
}
