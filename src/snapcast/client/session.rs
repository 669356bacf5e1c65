//! One connection to the server: connect, Hello, then time sync, settings, codec headers and chunks until the
//! first error ([`SessionError`]) or shutdown.

use super::reader::{read_messages, Incoming};
use super::{
    shutdown_requested, ClientCommand, Link, SessionError, SnapEvent, CLOCK_JUMP_NS, CONNECT_TIMEOUT_MS,
    HANDSHAKE_TIMEOUT_MS, INCOMING_QUEUE, MAX_CHUNK_SKEW_NS, MIN_SESSION_SAMPLES, WRITE_TIMEOUT_MS,
};
use crate::snapcast::decoder::{new_decoder, Decoder};
use crate::snapcast::proto::{self, Hello, Message, Time, Tv};
use crate::snapcast::time_sync::{Due, TimeSync, REPLY_TIMEOUT_NS};
use crate::snapcast::url::ServerUrl;
use crate::timeline::server_clock::{ServerClock, SharedServerClock};
use crate::timeline::{Clock, ServerTime};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

/// Why a connection ended without an error.
pub(super) enum End {
    Shutdown,
    EventsClosed,
}

/// Aborts the reader task when the connection ends.
pub(super) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One connection.
pub(super) struct Session<'a> {
    pub(super) name: &'a str,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) server_clock: SharedServerClock,
    /// This connection's own offset estimate: checks chunk timestamps and detects server clock jumps.
    pub(super) own_clock: ServerClock,
    pub(super) events: &'a mpsc::Sender<SnapEvent>,
    /// Set once connected.
    pub(super) writer: Option<OwnedWriteHalf>,
    pub(super) next_id: u16,
    pub(super) decoder: Option<Box<dyn Decoder>>,
    pub(super) settings_seen: bool,
}

impl Session<'_> {
    pub(super) async fn serve(
        &mut self,
        url: &ServerUrl,
        hello: &Hello,
        link: &mut Link,
        commands: &mut mpsc::Receiver<ClientCommand>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<End, SessionError> {
        let addr = url.address();
        let stream = match tokio::time::timeout(
            Duration::from_millis(CONNECT_TIMEOUT_MS),
            TcpStream::connect((url.host.as_str(), url.port)),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(source)) => return Err(SessionError::Connect { addr, source }),
            Err(_) => {
                return Err(SessionError::ConnectTimeout {
                    addr,
                    ms: CONNECT_TIMEOUT_MS,
                })
            }
        };
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        self.writer = Some(wr);
        tracing::info!(output = self.name, server = %addr, id = %hello.id, "connected");
        if self.events.send(SnapEvent::Connected { server: addr }).await.is_err() {
            return Ok(End::EventsClosed);
        }
        let (tx, mut rx) = mpsc::channel(INCOMING_QUEUE);
        let _reader = AbortOnDrop(tokio::spawn(read_messages(rd, self.clock.clone(), tx)));

        self.send(&Message::Hello(hello.clone())).await?;
        if let Some(report) = link.pending_report.take() {
            self.send(&Message::ClientInfo(report)).await?;
        }
        let handshake_deadline = self.clock.now().add_ns(HANDSHAKE_TIMEOUT_MS as i64 * 1_000_000);
        let mut sync = TimeSync::new(self.clock.now());
        loop {
            let now = self.clock.now();
            let mut wake = match sync.due(now) {
                Due::Send => {
                    let id = self.send(&Message::Time(Time::default())).await?;
                    sync.sent(id, self.clock.now());
                    continue;
                }
                Due::TimedOut(id) => {
                    return Err(SessionError::TimeUnanswered {
                        id,
                        ms: REPLY_TIMEOUT_NS / 1_000_000,
                    })
                }
                Due::WaitUntil(t) => t,
            };
            if !self.settings_seen {
                if now >= handshake_deadline {
                    return Err(SessionError::NoSettings {
                        ms: HANDSHAKE_TIMEOUT_MS,
                    });
                }
                wake = wake.min(handshake_deadline);
            }
            let sleep = tokio::time::sleep(Duration::from_nanos(wake.ns_since(now).max(0) as u64));
            tokio::select! {
                biased;
                stop = shutdown_requested(shutdown) => if stop { return Ok(End::Shutdown) },
                item = rx.recv() => {
                    let inc = item.unwrap_or(Err(SessionError::ReaderStopped))?;
                    if let Some(end) = self.handle(inc, &mut sync).await? {
                        return Ok(end);
                    }
                }
                cmd = commands.recv(), if link.commands_open => {
                    link.command(cmd);
                    if let Some(report) = link.pending_report.take() {
                        self.send(&Message::ClientInfo(report)).await?;
                    }
                }
                _ = sleep => {}
            }
        }
    }

    /// Sends a message as a request with a fresh id; returns the id.
    async fn send(&mut self, msg: &Message) -> Result<u16, SessionError> {
        let id = self.next_id;
        self.next_id = self.next_id.checked_add(1).unwrap_or(1);
        let what = proto::message_name(msg.msg_type());
        let bytes = proto::encode(msg, id, 0, Tv::from_ns(self.clock.now().as_ns()))?;
        let wr = self.writer.as_mut().ok_or(SessionError::NotConnected)?;
        match tokio::time::timeout(Duration::from_millis(WRITE_TIMEOUT_MS), wr.write_all(&bytes)).await {
            Ok(Ok(())) => Ok(id),
            Ok(Err(source)) => Err(SessionError::Send { what, source }),
            Err(_) => Err(SessionError::SendTimeout {
                what,
                ms: WRITE_TIMEOUT_MS,
            }),
        }
    }

    /// Sends an event (not a `&self` method: `Session` is not `Sync`, and the future must stay `Send`).
    async fn emit(events: &mpsc::Sender<SnapEvent>, event: SnapEvent) -> Option<End> {
        events.send(event).await.err().map(|_| End::EventsClosed)
    }

    /// Handles one message; `Err` ends the connection with that reason.
    async fn handle(&mut self, inc: Incoming, sync: &mut TimeSync) -> Result<Option<End>, SessionError> {
        let h = inc.header;
        match inc.msg {
            Message::Time(t) => {
                if let Some(x) = sync.on_reply(h.refers_to, t.latency.to_ns(), h.sent.to_ns(), inc.received) {
                    self.own_clock.add_exchange(x.c2s_ns, x.s2c_ns, inc.received);
                    let mut shared = self.server_clock.lock().unwrap_or_else(|e| e.into_inner());
                    shared.add_exchange(x.c2s_ns, x.s2c_ns, inc.received);
                    if let (Some(own), Some(all)) = (self.own_clock.offset_ns(), shared.offset_ns()) {
                        if self.own_clock.sample_count() >= MIN_SESSION_SAMPLES && (own - all).abs() > CLOCK_JUMP_NS {
                            tracing::warn!(
                                output = self.name,
                                "server clock jumped by {:.3} s (server restarted?); restarting the estimate",
                                (own - all) as f64 / 1e9
                            );
                            *shared = self.own_clock.clone();
                        }
                    }
                }
                Ok(None)
            }
            Message::ServerSettings(s) => {
                self.settings_seen = true;
                tracing::debug!(output = self.name, ?s, "server settings");
                Ok(Self::emit(
                    self.events,
                    SnapEvent::Settings {
                        buffer_ms: s.buffer_ms,
                        latency_ms: s.latency_ms,
                        volume_pct: s.volume_pct.min(100) as u8,
                        muted: s.muted,
                    },
                )
                .await)
            }
            Message::CodecHeader(ch) => {
                let decoder = new_decoder(&ch.codec, &ch.header).map_err(SessionError::CodecHeader)?;
                let format = decoder.format();
                tracing::info!(output = self.name, codec = %ch.codec, %format, "stream format");
                self.decoder = Some(decoder);
                Ok(Self::emit(self.events, SnapEvent::Format(format)).await)
            }
            Message::WireChunk(chunk) => {
                let decoder = self.decoder.as_mut().ok_or(SessionError::ChunkBeforeHeader)?;
                let start = ServerTime::from_ns(chunk.timestamp.to_ns());
                if self.own_clock.sample_count() > 0 {
                    if let Some(server_now) = self.own_clock.to_server(self.clock.now()) {
                        let skew_ns = start.ns_since(server_now);
                        if skew_ns.abs() > MAX_CHUNK_SKEW_NS {
                            return Err(SessionError::ChunkSkew {
                                start_s: start.as_secs_f64(),
                                skew_s: skew_ns as f64 / 1e9,
                                server_now_s: server_now.as_secs_f64(),
                                limit_s: MAX_CHUNK_SKEW_NS / 1_000_000_000,
                            });
                        }
                    }
                }
                let mut samples = Vec::new();
                let frames = decoder
                    .decode(&chunk.payload, &mut samples)
                    .map_err(SessionError::Chunk)?;
                if frames == 0 {
                    return Ok(None);
                }
                Ok(Self::emit(self.events, SnapEvent::Audio { start, samples }).await)
            }
            Message::Error(e) => Err(SessionError::Refused {
                code: e.code,
                error: e.error,
                message: e.message,
            }),
            Message::Hello(_) | Message::ClientInfo(_) => {
                tracing::debug!(
                    output = self.name,
                    "ignoring a client-to-server message sent by the server"
                );
                Ok(None)
            }
            Message::Unknown { msg_type } => {
                tracing::debug!(
                    output = self.name,
                    msg_type,
                    size = h.size,
                    "skipping unknown message type"
                );
                Ok(None)
            }
        }
    }
}
