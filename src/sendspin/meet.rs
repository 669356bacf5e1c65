//! How a player meets its server, the three ways the protocol allows: it dials a configured URL, it dials the
//! server it found over mDNS (`_sendspin-server._tcp`, [`super::mdns`]), or it waits for the server to dial it (it
//! advertises `_sendspin._tcp` and a server connects to its listener, [`super::listen`]). Past the open WebSocket
//! all three run the same setup ([`super::link::setup`]).

use super::link::{self, ConnectionError, Link, Met, Security};
use super::listen::Accepted;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// How a source's players meet their server, as configured (`[source]` `url`, `discovery`, `listen_port`,
/// `interface`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MeetSpec {
    /// Dial this `ws://host:port/path` URL.
    Url(String),
    /// Advertise each player over mDNS (`_sendspin._tcp`) and take the server's connections on `port`.
    Advertise {
        /// The players' listener port (0: any free port).
        port: u16,
        /// mDNS only on this interface.
        interface: Option<String>,
    },
    /// Find the server over mDNS (`_sendspin-server._tcp`) and dial it.
    Browse {
        /// mDNS only on this interface.
        interface: Option<String>,
    },
}

impl std::fmt::Display for MeetSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let on = |i: &Option<String>| i.as_ref().map(|i| format!(" on {i}")).unwrap_or_default();
        match self {
            Self::Url(u) => f.write_str(u),
            Self::Advertise { port, interface } => {
                write!(f, "advertised over mDNS, listening on port {port}{}", on(interface))
            }
            Self::Browse { interface } => write!(f, "a server found over mDNS{}", on(interface)),
        }
    }
}

/// Where a player's connections come from.
#[derive(Clone)]
pub enum Meet {
    /// Dial this `ws://` URL.
    Url(String),
    /// Dial the server mDNS found (None until one is).
    Discovered(watch::Receiver<Option<String>>),
    /// Take the connections servers open to this player's listener path.
    Listen {
        /// `ws://*:port/path`, for the log.
        at: String,
        /// The listener's hand-off for this player.
        incoming: Arc<tokio::sync::Mutex<mpsc::Receiver<Accepted>>>,
    },
}

impl std::fmt::Debug for Meet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Meet {
    /// For the log and status: the URL, or how the player waits.
    pub fn describe(&self) -> String {
        match self {
            Self::Url(u) => u.clone(),
            Self::Discovered(rx) => match rx.borrow().as_deref() {
                Some(u) => format!("{u} (found over mDNS)"),
                None => "a server found over mDNS".into(),
            },
            Self::Listen { at, .. } => format!("listening at {at}"),
        }
    }

    /// Whether the server dials (the player never backs off: it waits for the next connection).
    pub fn is_listen(&self) -> bool {
        matches!(self, Self::Listen { .. })
    }

    /// The next connection, set up as `name` (see [`link::setup`]); returns who is at the other end too.
    pub async fn open(
        &self,
        name: &str,
        security: &Security,
        buffer_ahead_ms: u32,
    ) -> Result<(Link, Met, String), ConnectionError> {
        match self {
            Self::Url(url) => {
                let (l, m) = link::connect(url, name, security, buffer_ahead_ms).await?;
                Ok((l, m, url.clone()))
            }
            Self::Discovered(rx) => {
                let mut rx = rx.clone();
                if rx.borrow().is_none() {
                    tracing::info!(output = name, "sendspin: waiting for a server to appear over mDNS");
                }
                let url = rx
                    .wait_for(Option::is_some)
                    .await
                    .map_err(|_| ConnectionError::DiscoveryStopped)?
                    .clone()
                    .expect("waited for Some");
                let (l, m) = link::connect(&url, name, security, buffer_ahead_ms).await?;
                Ok((l, m, url))
            }
            Self::Listen { incoming, .. } => {
                let accepted = incoming
                    .lock()
                    .await
                    .recv()
                    .await
                    .ok_or(ConnectionError::ListenerStopped)?;
                let peer = format!("ws://{} (it dialled)", accepted.peer);
                let (l, m) = link::setup(accepted.ws, name, security, buffer_ahead_ms).await?;
                Ok((l, m, peer))
            }
        }
    }
}
