//! A player's connection up to the point where it plays: the WebSocket, the Noise KKpsk2 handshake
//! ([`super::secure`]) unless the player runs in the server's plain transition mode, the hello exchange, and (when
//! encrypted) the wait for a `server/activate` that activates the player role, which the server sends only once it
//! trusts the player's client_id. [`Link`] then carries text and binary messages either way.
//!
//! Encrypted (`server/connection.py` `_establish_transport`, `_exchange_hellos`): client/init → server/init →
//! noise/handshake ×2, then server/hello → client/hello → server/activate. Plain: client/hello → server/hello (which
//! lists the active roles).

use super::error::quoted;
pub use super::error::ConnectionError;
use super::proto::hello::{ClientHello, PLAYER_ROLE};
use super::proto::{decode_server_text, ServerMessage, MAX_FRAME_BYTES, MAX_TEXT_BYTES};
use super::secure::handshake::{ClientInit, Keypair};
use super::secure::transport::{Plain, Transport, MAX_NOISE_FRAME_BYTES};
use super::secure::{SecureError, Suite};
use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Giving up on connecting (TCP and the WebSocket upgrade) after this long, ms.
pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Each step of the handshake and of the hello exchange must come within this time, ms.
pub const HANDSHAKE_TIMEOUT_MS: u64 = 5_000;
/// Giving up on a write after this long, ms.
pub const WRITE_TIMEOUT_MS: u64 = 2_000;
/// How long a connected player the server does not trust yet waits for the server to activate it (a user accepting
/// it in Music Assistant) before it reconnects, ms.
pub const UNTRUSTED_WAIT_MS: u64 = 30_000;

/// How a player meets the server.
#[derive(Clone, PartialEq, Eq)]
pub enum Security {
    /// Noise KKpsk2 with this identity (the server's default).
    Noise(Keypair),
    /// The server's plain transition mode (aiosendspin's `allow_unencrypted`), with this client_id.
    Plain(String),
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Noise(k) => write!(f, "Noise({})", k.client_id()),
            Self::Plain(id) => write!(f, "Plain({id})"),
        }
    }
}

impl Security {
    /// The client_id the server knows the player by.
    pub fn client_id(&self) -> String {
        match self {
            Self::Noise(k) => k.client_id(),
            Self::Plain(id) => id.clone(),
        }
    }
}

/// A message from the server.
#[derive(Debug)]
pub enum Incoming {
    /// A text (JSON) message.
    Text(String),
    /// A binary message, type byte first.
    Binary(Vec<u8>),
}

/// A WebSocket, dialled by the player or accepted from a server ([`super::listen`]).
pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The bounds of every WebSocket a player speaks: no message or frame over [`MAX_FRAME_BYTES`].
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_FRAME_BYTES.max(MAX_TEXT_BYTES)))
        .max_frame_size(Some(MAX_FRAME_BYTES))
}

/// A connection that passed the handshake.
pub struct Link {
    ws: Ws,
    secure: Option<Transport>,
}

/// Who answered.
#[derive(Debug, Clone)]
pub struct Met {
    /// The server's name.
    pub server_name: String,
    /// The server's id (its public key when encrypted).
    pub server_id: String,
}

/// Connects to `url`, runs the handshake `security` asks for, says hello as `name` (a player holding
/// `buffer_ahead_ms` of audio), and waits until the server activates the player role.
pub async fn connect(
    url: &str,
    name: &str,
    security: &Security,
    buffer_ahead_ms: u32,
) -> Result<(Link, Met), ConnectionError> {
    let connect = tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true);
    let (ws, _) = tokio::time::timeout(Duration::from_millis(CONNECT_TIMEOUT_MS), connect)
        .await
        .map_err(|_| ConnectionError::ConnectTimeout {
            url: url.to_string(),
            ms: CONNECT_TIMEOUT_MS,
        })?
        .map_err(|e| ConnectionError::Connect {
            url: url.to_string(),
            source: Box::new(e),
        })?;
    setup(ws, name, security, buffer_ahead_ms).await
}

/// The same setup as [`connect`] on a WebSocket that is already open: one the player dialled, or one a server
/// opened to the player's listener (server-initiated, aiosendspin's `connect_to_client`). The player speaks first
/// either way (`server/connection.py` `_establish_transport` reads the client's first frame on both).
pub async fn setup(
    ws: Ws,
    name: &str,
    security: &Security,
    buffer_ahead_ms: u32,
) -> Result<(Link, Met), ConnectionError> {
    let mut link = Link { ws, secure: None };
    match security {
        Security::Plain(id) => {
            link.send_text(ClientHello::player(id, name, buffer_ahead_ms).encode())
                .await?;
            let text = link.raw_text("server/hello").await?;
            if let Err(SecureError::Refused { reason }) = super::secure::init::parse_server_init(&text) {
                return Err(ConnectionError::PlainRefused {
                    reason: quoted(&reason),
                });
            }
            let hello = match decode_server_text(&text) {
                Ok(ServerMessage::Hello(h)) => h,
                Ok(other) => {
                    return Err(ConnectionError::Unexpected {
                        what: "server/hello",
                        got: other.kind(),
                    })
                }
                Err(source) => {
                    return Err(ConnectionError::Proto {
                        what: "server/hello",
                        source,
                    })
                }
            };
            if !hello.active_roles.iter().any(|r| r == PLAYER_ROLE) {
                return Err(ConnectionError::NotActivated {
                    roles: hello.active_roles.iter().map(|r| quoted(r)).collect(),
                });
            }
            Ok((
                link,
                Met {
                    server_name: hello.name,
                    server_id: hello.server_id,
                },
            ))
        }
        Security::Noise(keys) => {
            let server_id = link.handshake(keys).await?;
            let hello = match link.next_message("server/hello").await? {
                ServerMessage::Hello(h) => h,
                other => {
                    return Err(ConnectionError::Unexpected {
                        what: "server/hello",
                        got: other.kind(),
                    })
                }
            };
            link.send_text(ClientHello::secure_player(name, buffer_ahead_ms).encode())
                .await?;
            link.await_activation(name, &keys.client_id(), &hello.name).await?;
            Ok((
                link,
                Met {
                    server_name: hello.name,
                    server_id,
                },
            ))
        }
    }
}

impl Link {
    /// Steps 1–4 of the handshake; returns the server's id.
    async fn handshake(&mut self, keys: &Keypair) -> Result<String, ConnectionError> {
        let (init, text) = ClientInit::start(keys, Suite::ChaChaPoly);
        self.send_raw(Message::Text(text.into())).await?;
        let server_init = self.raw_text("server/init").await?;
        let awaiting = init.server_init(&server_init)?;
        let m1 = self.raw_text("Noise message 1").await?;
        let est = awaiting.message1(&m1)?;
        if est.credential_mismatch {
            tracing::warn!(
                server = est.server_id,
                "sendspin: the server referred to a {:?} PSK this player does not hold (it never pairs); answering as \
                 an unpaired player",
                est.referenced.category
            );
        }
        self.send_raw(Message::Text(est.reply.into())).await?;
        self.secure = Some(est.transport);
        Ok(est.server_id)
    }

    /// Waits for a `server/activate` with the player role. The first one without it says why in the log; after
    /// [`UNTRUSTED_WAIT_MS`] without one the setup fails with `untrusted`.
    async fn await_activation(&mut self, name: &str, client_id: &str, server: &str) -> Result<(), ConnectionError> {
        let until = Instant::now() + Duration::from_millis(UNTRUSTED_WAIT_MS);
        let mut told = false;
        loop {
            let first = Instant::now() + Duration::from_millis(HANDSHAKE_TIMEOUT_MS);
            let deadline = if told { until } else { first.min(until) };
            let msg = match tokio::time::timeout_at(deadline, self.recv()).await {
                Ok(m) => m?,
                Err(_) if told => {
                    return Err(ConnectionError::Untrusted {
                        name: name.to_string(),
                        client_id: client_id.to_string(),
                        ms: UNTRUSTED_WAIT_MS,
                    })
                }
                Err(_) => {
                    return Err(ConnectionError::Timeout {
                        what: "server/activate",
                        ms: HANDSHAKE_TIMEOUT_MS,
                    })
                }
            };
            let Incoming::Text(t) = msg else { continue };
            match decode_server_text(&t) {
                Ok(ServerMessage::Activate(a)) => {
                    let roles = a.active_roles.unwrap_or_default();
                    if roles.iter().any(|r| r == PLAYER_ROLE) {
                        return Ok(());
                    }
                    if !told {
                        told = true;
                        tracing::warn!(
                            output = name,
                            client_id,
                            "sendspin: server {server:?} has not accepted player {name:?} yet (client id \
                             {client_id}); accept it in Music Assistant (or trust the client id on the server). Waiting {} s for it, \
                             then reconnecting",
                            UNTRUSTED_WAIT_MS / 1000
                        );
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(output = name, "sendspin: skipped a message before activation: {e}"),
            }
        }
    }

    /// The next text message, read as a server message, within [`HANDSHAKE_TIMEOUT_MS`].
    async fn next_message(&mut self, what: &'static str) -> Result<ServerMessage, ConnectionError> {
        let deadline = Instant::now() + Duration::from_millis(HANDSHAKE_TIMEOUT_MS);
        loop {
            let msg =
                tokio::time::timeout_at(deadline, self.recv())
                    .await
                    .map_err(|_| ConnectionError::Timeout {
                        what,
                        ms: HANDSHAKE_TIMEOUT_MS,
                    })??;
            if let Incoming::Text(t) = msg {
                return decode_server_text(&t).map_err(|source| ConnectionError::Proto { what, source });
            }
        }
    }

    /// A cleartext TEXT frame of the handshake, within [`HANDSHAKE_TIMEOUT_MS`].
    async fn raw_text(&mut self, what: &'static str) -> Result<String, ConnectionError> {
        let deadline = Instant::now() + Duration::from_millis(HANDSHAKE_TIMEOUT_MS);
        loop {
            let msg =
                tokio::time::timeout_at(deadline, self.ws.next())
                    .await
                    .map_err(|_| ConnectionError::Timeout {
                        what,
                        ms: HANDSHAKE_TIMEOUT_MS,
                    })?;
            match msg {
                Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
                Some(Ok(Message::Binary(b))) => return Err(ConnectionError::BinaryInHandshake { what, len: b.len() }),
                Some(Ok(Message::Close(c))) => return Err(ConnectionError::closed(Some(what), c.as_ref())),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(ConnectionError::read(e)),
                None => return Err(ConnectionError::closed(Some(what), None)),
            }
        }
    }

    /// The next message. Cancel-safe (a fragment already read stays in the reassembly).
    pub async fn recv(&mut self) -> Result<Incoming, ConnectionError> {
        loop {
            let msg = match self.ws.next().await {
                Some(Ok(m)) => m,
                Some(Err(e)) => return Err(ConnectionError::read(e)),
                None => return Err(ConnectionError::closed(None, None)),
            };
            match (msg, self.secure.as_mut()) {
                (Message::Text(t), None) => return Ok(Incoming::Text(t.to_string())),
                (Message::Binary(b), None) => return Ok(Incoming::Binary(b.to_vec())),
                (Message::Binary(b), Some(tr)) => match tr.open(&b)? {
                    Some(Plain::Text(t)) => return Ok(Incoming::Text(t)),
                    Some(Plain::Binary(b)) => return Ok(Incoming::Binary(b)),
                    None => {}
                },
                (Message::Text(t), Some(_)) => return Err(ConnectionError::TextAfterHandshake { len: t.len() }),
                (Message::Close(c), _) => return Err(ConnectionError::closed(None, c.as_ref())),
                _ => {}
            }
        }
    }

    /// Sends a text (JSON) message, encrypted when the link is.
    pub async fn send_text(&mut self, text: String) -> Result<(), ConnectionError> {
        match self.secure.as_mut() {
            None => self.send_raw(Message::Text(text.into())).await,
            Some(tr) => {
                let frames = tr.seal_text(&text)?;
                for f in frames {
                    debug_assert!(f.len() <= MAX_NOISE_FRAME_BYTES);
                    self.send_raw(Message::Binary(f.into())).await?;
                }
                Ok(())
            }
        }
    }

    async fn send_raw(&mut self, m: Message) -> Result<(), ConnectionError> {
        match tokio::time::timeout(Duration::from_millis(WRITE_TIMEOUT_MS), self.ws.send(m)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ConnectionError::Write(Box::new(e))),
            Err(_) => Err(ConnectionError::WriteStalled { ms: WRITE_TIMEOUT_MS }),
        }
    }

    /// Says goodbye and closes, best effort.
    pub async fn goodbye(&mut self, reason: &str) {
        let _ = self
            .send_text(super::proto::encode(
                "client/goodbye",
                &serde_json::json!({ "reason": reason }),
            ))
            .await;
        let _ = self.ws.close(None).await;
    }
}
