//! The players' listener (server-initiated connections): one TCP port shared by a source's players, each at its
//! own path ([`super::mdns::names::player_path`]). A server that found a player over mDNS dials
//! `ws://host:port/path` (aiosendspin `SendspinServer.connect_to_client`); the listener upgrades the connection
//! and hands the WebSocket to that player, which then runs the same setup as when it dials
//! ([`super::link::setup`]: the player speaks first either way).
//!
//! Bounds: at most [`MAX_UPGRADING`] upgrades at once, each within [`UPGRADE_TIMEOUT_MS`]; an unknown path is
//! answered 404 (paths are compared decoded: a client may normalise percent-escapes); a player already holding a queued connection gets no second one (it is closed).

use super::link::{ws_config, Ws};
use super::mdns::names::decoded_path;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::MaybeTlsStream;

/// WebSocket upgrades in progress at once; more connections wait in the kernel's backlog.
pub const MAX_UPGRADING: usize = 8;
/// An upgrade (the HTTP request and the answer) must finish within this time, ms.
pub const UPGRADE_TIMEOUT_MS: u64 = 5_000;

/// A server's connection, upgraded, for one player.
pub struct Accepted {
    /// The WebSocket.
    pub ws: Ws,
    /// Who dialled.
    pub peer: SocketAddr,
}

type Routes = Arc<Mutex<HashMap<String, mpsc::Sender<Accepted>>>>;
/// The route an upgrade's request picked: its path and its player's hand-off.
type Picked = Arc<Mutex<Option<(String, mpsc::Sender<Accepted>)>>>;

/// The listener; it stops when dropped.
pub struct Listener {
    port: u16,
    routes: Routes,
    task: tokio::task::JoinHandle<()>,
}

impl Listener {
    /// Binds `addr` (port 0: any free port) and starts accepting on `rt`.
    pub fn bind(rt: &tokio::runtime::Handle, addr: SocketAddr) -> std::io::Result<Self> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let port = std_listener.local_addr()?.port();
        let listener = {
            let _guard = rt.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
        let routes: Routes = Arc::default();
        let task = rt.spawn(accept_loop(listener, routes.clone()));
        Ok(Self { port, routes, task })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections to `path` from now on go to the returned receiver (replacing an earlier route of that path).
    pub fn route(&self, path: &str) -> mpsc::Receiver<Accepted> {
        let (tx, rx) = mpsc::channel(1);
        self.routes.lock().expect("routes lock").insert(decoded_path(path), tx);
        rx
    }

    /// Stops routing `path` (its connections are answered 404).
    pub fn unroute(&self, path: &str) {
        self.routes.lock().expect("routes lock").remove(&decoded_path(path));
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, routes: Routes) {
    let upgrading = Arc::new(Semaphore::new(MAX_UPGRADING));
    loop {
        let Ok(permit) = upgrading.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("sendspin: listener accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let routes = routes.clone();
        tokio::spawn(async move {
            let _permit = permit;
            upgrade(tcp, peer, routes).await;
        });
    }
}

// The callback's error type is tungstenite's `ErrorResponse` (an HTTP response), fixed by its `Callback` trait.
#[allow(clippy::result_large_err)]
async fn upgrade(tcp: tokio::net::TcpStream, peer: SocketAddr, routes: Routes) {
    let _ = tcp.set_nodelay(true);
    let chosen: Picked = Arc::default();
    let pick = chosen.clone();
    let check = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let path = decoded_path(req.uri().path());
        match routes.lock().expect("routes lock").get(&path) {
            Some(tx) => {
                *pick.lock().expect("pick lock") = Some((path, tx.clone()));
                Ok(resp)
            }
            None => {
                let mut r = ErrorResponse::new(Some("no Sendspin player at this path".into()));
                *r.status_mut() = StatusCode::NOT_FOUND;
                Err(r)
            }
        }
    };
    let accept = tokio_tungstenite::accept_hdr_async_with_config(MaybeTlsStream::Plain(tcp), check, Some(ws_config()));
    let ws = match tokio::time::timeout(Duration::from_millis(UPGRADE_TIMEOUT_MS), accept).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::info!(%peer, "sendspin: refused a connection to the players' listener: {e}");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "sendspin: a connection to the players' listener sent no upgrade within {UPGRADE_TIMEOUT_MS} ms");
            return;
        }
    };
    let Some((path, tx)) = chosen.lock().expect("pick lock").take() else {
        return;
    };
    match tx.try_send(Accepted { ws, peer }) {
        Ok(()) => tracing::debug!(%peer, path, "sendspin: a server connected"),
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::info!(%peer, path, "sendspin: closed a second server connection to a player that has one queued")
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}
