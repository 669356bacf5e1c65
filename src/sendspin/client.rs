//! One Sendspin player connection: connects to the server's WebSocket URL, runs the Noise handshake and the hello
//! exchange ([`super::link`]; or, in the server's transition mode, a plain `client/hello`), syncs its clock into the shared [`ServerClock`] estimate, reports `client/state` (available once
//! the clock is synced, then after every volume or mute change), decodes chunks (PCM, FLAC or Opus,
//! [`super::playback`]) into timeline audio stamped with their server play times, and reconnects with exponential backoff ([`BACKOFF_MIN_MS`] doubling to
//! [`BACKOFF_MAX_MS`], back to the minimum after a connection that was activated and lasted [`HEALTHY_AFTER_MS`]; a
//! player the server does not trust yet waits [`link::UNTRUSTED_WAIT_MS`] connected, then backs off likewise).
//!
//! It emits the same events as the Snapcast client ([`SnapEvent`]), so the source glue that feeds an output's
//! timeline is shared. A Sendspin chunk's timestamp is already its play time at the output, so the settings it
//! reports carry no buffer and no latency.
//!
//! [`ServerClock`]: crate::timeline::server_clock::ServerClock

use super::error::{quoted, ConnectionError};
use super::link::{Incoming, Security};
use super::meet::Meet;
use super::playback::{ChunkError, Stream, MAX_BAD_CHUNKS};
use super::proto::audio::decode_frame;
use super::proto::hello::player_formats;
use super::proto::state::{ClientState, Command, PlayerState, SUPPORTED_COMMANDS};
use super::proto::time::ClientTime;
use super::proto::{decode_server_text, ServerMessage};
use crate::snapcast::SnapEvent;
use crate::timeline::backoff::Backoff;
use crate::timeline::log_throttle::LogThrottle;
use crate::timeline::server_clock::SharedServerClock;
use crate::timeline::{AudioFormat, Clock, ServerTime};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

pub use super::link::{CONNECT_TIMEOUT_MS, HANDSHAKE_TIMEOUT_MS, WRITE_TIMEOUT_MS};
/// A connection that hears nothing for this long is dead (the server answers a `client/time` every second), ms.
pub const SILENCE_TIMEOUT_MS: u64 = 10_000;
/// First reconnect delay, ms.
pub const BACKOFF_MIN_MS: u64 = 500;
/// Longest reconnect delay, ms.
pub const BACKOFF_MAX_MS: u64 = 10_000;
/// A connection that was activated and stayed up this long resets the backoff, ms.
pub const HEALTHY_AFTER_MS: u64 = 5_000;
/// Clock requests right after connecting, and their spacing (a fast start), ms.
pub const SYNC_BURST: usize = 10;
/// Spacing of the burst's requests, ms.
pub const SYNC_BURST_INTERVAL_MS: u64 = 50;
/// Spacing of clock requests after the burst, ms.
pub const SYNC_INTERVAL_MS: u64 = 1_000;
/// Exchanges needed before the player says it is available (the server sends no audio before).
pub const MIN_SYNC_SAMPLES: usize = 5;
/// A chunk stamped further than this from the server's current time is nonsense, ns.
pub const MAX_CHUNK_SKEW_NS: i64 = 60_000_000_000;
/// Audio the player tells the server it can hold ahead of the play position, ms: `buffer_capacity` is this much
/// of its fastest format, which fits in the timeline's
/// [`DEFAULT_CAPACITY_NS`](crate::timeline::buffer::DEFAULT_CAPACITY_NS) (4 s) with a second to spare.
pub const BUFFER_AHEAD_MS: u32 = 3_000;
/// `group/update`s are logged at most once per this interval (the rest at debug, counted in the next line), ms: a
/// server flooding them gets a line a second, not one per message.
pub const GROUP_LOG_INTERVAL_MS: u64 = 1_000;
/// Startup lead the player asks for, ms.
pub const REQUIRED_LEAD_TIME_MS: u32 = 250;
/// Ongoing buffer the player asks the server to keep, ms.
pub const MIN_BUFFER_MS: u32 = 500;

/// Who this player is and where it connects.
#[derive(Debug, Clone)]
pub struct PlayerConfig {
    /// Where its connections come from: a `ws://host:port/path` URL, mDNS, or the server dialling it.
    pub meet: Meet,
    /// The output's name (the name the server lists).
    pub name: String,
    /// Stable player id (the public key of its identity when encrypted).
    pub client_id: String,
    /// Encrypted (its identity) or the plain transition mode.
    pub security: Security,
}

impl PlayerConfig {
    /// The player of output `name` in the server's plain transition mode: id `bluebridge-<name>` (the same id
    /// scheme as its Snapcast client).
    pub fn new(url: impl Into<String>, name: impl Into<String>) -> Self {
        let name = name.into();
        let client_id = crate::snapcast::client::client_id_for(&name);
        Self {
            meet: Meet::Url(url.into()),
            security: Security::Plain(client_id.clone()),
            client_id,
            name,
        }
    }

    /// The player of output `name`, encrypted, with identity `keys` (its client_id is their public key).
    pub fn encrypted(url: impl Into<String>, name: impl Into<String>, keys: super::secure::handshake::Keypair) -> Self {
        Self {
            client_id: keys.client_id(),
            security: Security::Noise(keys),
            ..Self::new(url, name)
        }
    }
}

/// Runs the player until `shutdown` turns true or `events` closes. `output_delay_ms` is the output's delay as
/// the player reports it (see [`super::delay`]); each change is reported to the server with a `client/state`.
pub async fn run(
    cfg: PlayerConfig,
    clock: Arc<dyn Clock>,
    server_clock: SharedServerClock,
    events: mpsc::Sender<SnapEvent>,
    mut output_delay_ms: watch::Receiver<u32>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    let mut volume = (100u8, false);
    loop {
        if *shutdown.borrow() {
            return;
        }
        let started = Instant::now();
        let mut s = Session {
            cfg: &cfg,
            clock: clock.clone(),
            server_clock: server_clock.clone(),
            events: &events,
            volume,
            stream: None,
            samples: 0,
            available_sent: false,
            connected: false,
            output_delay_ms: *output_delay_ms.borrow_and_update(),
            skipped_frames: 0,
            groups: 0,
            group_log: LogThrottle::new(Duration::from_millis(GROUP_LOG_INTERVAL_MS)),
        };
        let reason = match s.serve(&mut output_delay_ms, &mut shutdown).await {
            Ok(()) => return,
            Err(r) => r,
        };
        volume = s.volume;
        let healthy = s.connected && started.elapsed() >= Duration::from_millis(HEALTHY_AFTER_MS);
        let dial_delay_ms = backoff.next_delay_ms(healthy, false);
        // A listening player does not dial: it takes the server's next connection (after a short pause, so a peer
        // that fails every setup at once cannot spin it).
        let delay_ms = if cfg.meet.is_listen() {
            BACKOFF_MIN_MS
        } else {
            dial_delay_ms
        };
        if cfg.meet.is_listen() {
            tracing::warn!(
                output = cfg.name,
                from = cfg.meet.describe(),
                "sendspin: {reason}; waiting for the server to connect again"
            );
        } else {
            tracing::warn!(
                output = cfg.name,
                from = cfg.meet.describe(),
                "sendspin: {reason}; reconnecting in {delay_ms} ms"
            );
        }
        if s.connected
            && events
                .send(SnapEvent::Disconnected {
                    reason: reason.to_string(),
                })
                .await
                .is_err()
        {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(delay_ms)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

struct Session<'a> {
    cfg: &'a PlayerConfig,
    clock: Arc<dyn Clock>,
    server_clock: SharedServerClock,
    events: &'a mpsc::Sender<SnapEvent>,
    volume: (u8, bool),
    stream: Option<Stream>,
    samples: usize,
    available_sent: bool,
    connected: bool,
    output_delay_ms: u32,
    skipped_frames: u64,
    /// `group/update`s this connection, and their info lines (one per [`GROUP_LOG_INTERVAL_MS`] at most).
    groups: u64,
    group_log: LogThrottle,
}

impl Session<'_> {
    fn now_us(&self) -> i64 {
        self.clock.now().as_ns() / 1000
    }

    /// One connection; `Ok` means stop for good (shutdown, or the owner went away).
    async fn serve(
        &mut self,
        delay_ms: &mut watch::Receiver<u32>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), ConnectionError> {
        let setup = self.cfg.meet.open(&self.cfg.name, &self.cfg.security, BUFFER_AHEAD_MS);
        let (mut ws, met, peer) = tokio::select! {
            r = setup => r?,
            _ = shutdown.changed() => return Ok(()),
        };
        tracing::info!(
            output = self.cfg.name,
            server = met.server_name,
            server_id = met.server_id,
            client_id = self.cfg.client_id,
            encrypted = matches!(self.cfg.security, Security::Noise(_)),
            "sendspin: connected"
        );
        self.connected = true;
        if self.events.send(SnapEvent::Connected { server: peer }).await.is_err() {
            return Ok(());
        }
        self.settings().await;
        let mut requests = 0usize;
        let mut next_request = tokio::time::Instant::now();
        // Counted from the last message heard, not from the last loop turn: the player's own clock requests turn
        // the loop every second, and a server that stalls (reads, never answers) must still time out.
        let mut heard = tokio::time::Instant::now();
        loop {
            let silence = tokio::time::sleep_until(heard + Duration::from_millis(SILENCE_TIMEOUT_MS));
            tokio::select! {
                _ = tokio::time::sleep_until(next_request) => {
                    ws.send_text(ClientTime { client_transmitted: self.now_us() }.encode()).await?;
                    requests += 1;
                    let gap = if requests < SYNC_BURST { SYNC_BURST_INTERVAL_MS } else { SYNC_INTERVAL_MS };
                    next_request = tokio::time::Instant::now() + Duration::from_millis(gap);
                }
                _ = silence => return Err(ConnectionError::Silence { ms: SILENCE_TIMEOUT_MS }),
                stop = shutdown.changed() => {
                    if stop.is_err() || *shutdown.borrow() {
                        ws.goodbye("shutdown").await;
                        return Ok(());
                    }
                }
                changed = delay_ms.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let ms = *delay_ms.borrow_and_update();
                    if ms != self.output_delay_ms {
                        self.output_delay_ms = ms;
                        tracing::info!(output = self.cfg.name, output_delay_ms = ms, "sendspin: reporting a new output delay");
                        // Before the first state the server has no player state to update: the first carries it.
                        if self.available_sent {
                            ws.send_text(self.state()).await?;
                        }
                    }
                }
                msg = ws.recv() => {
                    heard = tokio::time::Instant::now();
                    match msg? {
                        Incoming::Text(t) => {
                            if let Some(reply) = self.text(&t).await? {
                                ws.send_text(reply).await?;
                            }
                        }
                        Incoming::Binary(b) => {
                            if !self.audio(&b).await? {
                                return Ok(());
                            }
                        }
                    }
                }
            }
        }
    }

    fn state(&self) -> String {
        ClientState {
            available: true,
            player: PlayerState {
                volume: self.volume.0,
                muted: self.volume.1,
                output_delay_ms: self.output_delay_ms,
                required_lead_time_ms: REQUIRED_LEAD_TIME_MS,
                min_buffer_ms: MIN_BUFFER_MS,
                supported_commands: SUPPORTED_COMMANDS.to_vec(),
            },
        }
        .encode()
    }

    /// Tells the glue the play settings: the timestamps are play times (no buffer, no latency), the volume.
    async fn settings(&self) {
        let _ = self
            .events
            .send(SnapEvent::Settings {
                buffer_ms: 0,
                latency_ms: 0,
                volume_pct: self.volume.0,
                muted: self.volume.1,
            })
            .await;
    }

    /// Handles a text message; returns what to send back. A message it cannot read is logged and skipped.
    async fn text(&mut self, t: &str) -> Result<Option<String>, ConnectionError> {
        let received_us = self.now_us();
        let msg = match decode_server_text(t) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(output = self.cfg.name, "sendspin: skipped a message: {e}");
                return Ok(None);
            }
        };
        match msg {
            ServerMessage::Time(r) => {
                let Some(x) = r.exchange(received_us) else {
                    tracing::debug!(output = self.cfg.name, "sendspin: inconsistent time reply {r:?}");
                    return Ok(None);
                };
                self.server_clock
                    .lock()
                    .expect("server clock lock")
                    .add_exchange(x.c2s_ns, x.s2c_ns, self.clock.now());
                self.samples += 1;
                if self.samples >= MIN_SYNC_SAMPLES && !self.available_sent {
                    self.available_sent = true;
                    return Ok(Some(self.state()));
                }
            }
            ServerMessage::StreamStart(s) => {
                if let Some(p) = s.player {
                    // A stream the player cannot play (a format it never listed, a codec header that lies or does
                    // not decode) ends the connection: the server gets a fresh start after the backoff.
                    let stream = Stream::start(&player_formats(), &p)?;
                    tracing::info!(
                        output = self.cfg.name,
                        format = stream.describe(),
                        "sendspin: stream start"
                    );
                    // The spec: a format change mid-stream keeps the chunks already buffered (the new ones follow
                    // them on the same timeline), so the timeline is reset only when what it holds changes.
                    let f = stream.format();
                    if self.stream.as_ref().map(Stream::format) != Some(f) {
                        self.reset_timeline(f).await;
                    }
                    self.stream = Some(stream);
                }
            }
            ServerMessage::StreamClear => {
                if let Some(s) = &mut self.stream {
                    s.restart();
                    let f = s.format();
                    self.reset_timeline(f).await;
                }
            }
            ServerMessage::StreamEnd => {
                if let Some(s) = self.stream.take() {
                    self.reset_timeline(s.format()).await;
                }
            }
            ServerMessage::Command(c) => match c.command() {
                Ok(Command::Volume(v)) => {
                    self.volume.0 = v;
                    self.settings().await;
                    return Ok(Some(self.state()));
                }
                Ok(Command::Mute(m)) => {
                    self.volume.1 = m;
                    self.settings().await;
                    return Ok(Some(self.state()));
                }
                Err(e) => tracing::warn!(output = self.cfg.name, "sendspin: {e}"),
            },
            ServerMessage::GroupUpdate(g) => {
                let group = g.group_name.as_deref().map(quoted);
                let state = g.playback_state.as_deref().map(quoted);
                self.groups += 1;
                match self.group_log.due(tokio::time::Instant::now().into_std(), self.groups) {
                    Some(n) => tracing::info!(
                        output = self.cfg.name,
                        group = ?group,
                        state = ?state,
                        unlogged_before = n - 1,
                        "sendspin: group"
                    ),
                    None => tracing::debug!(output = self.cfg.name, group = ?group, state = ?state, "sendspin: group"),
                }
            }
            ServerMessage::Activate(a) => {
                if a.active_roles
                    .is_some_and(|r| !r.iter().any(|r| r == super::proto::hello::PLAYER_ROLE))
                {
                    return Err(ConnectionError::Deactivated);
                }
            }
            ServerMessage::Hello(_) => tracing::warn!(output = self.cfg.name, "sendspin: a second server/hello"),
            ServerMessage::Ignored(_) => {}
        }
        Ok(None)
    }

    async fn reset_timeline(&self, f: AudioFormat) {
        let _ = self.events.send(SnapEvent::Format(f)).await;
    }

    /// Logs a skipped binary frame: the 1st, 10th, 100th… of a connection (a server sending nothing but bad frames
    /// gets a log line per decade, not one per frame).
    fn skipped(&mut self, why: std::fmt::Arguments<'_>) {
        self.skipped_frames += 1;
        let n = self.skipped_frames;
        if n == 1 || (n % 10 == 0 && 10u64.pow(n.ilog10()) == n) {
            tracing::warn!(
                output = self.cfg.name,
                skipped = n,
                "sendspin: skipped a binary frame: {why}"
            );
        }
    }

    /// Handles a binary frame; false when the owner went away, an error when the stream does not decode.
    async fn audio(&mut self, b: &[u8]) -> Result<bool, ConnectionError> {
        let chunk = match decode_frame(b) {
            Ok(c) => c,
            Err(e) => {
                self.skipped(format_args!("{e}"));
                return Ok(true);
            }
        };
        if self.stream.is_none() {
            self.skipped(format_args!("audio before a playable stream/start"));
            return Ok(true);
        }
        let Some(start_ns) = chunk.timestamp_us.checked_mul(1000) else {
            self.skipped(format_args!("chunk timestamp {} µs out of range", chunk.timestamp_us));
            return Ok(true);
        };
        let server_now = self
            .server_clock
            .lock()
            .expect("server clock lock")
            .to_server(self.clock.now());
        if let Some(now) = server_now {
            if start_ns.saturating_sub(now.as_ns()).abs() > MAX_CHUNK_SKEW_NS {
                self.skipped(format_args!(
                    "chunk stamped {} µs, over 60 s from the server's now",
                    chunk.timestamp_us
                ));
                return Ok(true);
            }
        }
        let decoded = self.stream.as_mut().expect("checked above").decode(chunk.payload);
        match decoded {
            // The first decoded sample plays at the chunk's timestamp, for every codec (see `playback`).
            Ok(samples) => Ok(self
                .events
                .send(SnapEvent::Audio {
                    start: ServerTime::from_ns(start_ns),
                    samples,
                })
                .await
                .is_ok()),
            Err(ChunkError::Skipped(e)) => {
                self.skipped(format_args!("{e}"));
                Ok(true)
            }
            Err(ChunkError::Broken(last)) => Err(ConnectionError::Undecodable {
                chunks: MAX_BAD_CHUNKS,
                last,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn players_are_named_after_their_outputs_with_the_snapcast_id_scheme() {
        let c = PlayerConfig::new("ws://127.0.0.1:8927/sendspin", "kitchen");
        assert_eq!(c.client_id, crate::snapcast::client::client_id_for("kitchen"));
        assert_eq!(c.name, "kitchen");
    }

    #[test]
    fn run_is_a_send_future() {
        fn assert_send<T: Send>(_: &T) {}
        let (tx, _rx) = mpsc::channel(1);
        let (_s, srx) = watch::channel(false);
        let (_d, drx) = watch::channel(0);
        let f = run(
            PlayerConfig::new("ws://127.0.0.1:1/sendspin", "o"),
            Arc::new(crate::timeline::SystemClock),
            Default::default(),
            tx,
            drx,
            srx,
        );
        assert_send(&f);
    }
}
