//! The control task of one broadcast output ([`run`]): sets the broadcast up with backoff, hands the BIG to the
//! real-time side, watches the endpoint and the transports, and sets it up again after a failure.

use super::{start, BcastEvent, POLL_INTERVAL, RETRY_MAX, RETRY_MIN};
use crate::bap::advertising::AdvertisementFields;
use crate::bap::broadcast::BroadcastConfig;
use crate::bluez::media::MediaBus;
use crate::bluez::media_transport;
use crate::output::broadcast::{BigLink, BigState};
use std::sync::{Arc, Mutex, Weak};

/// Whether `transport` is gone (BlueZ says the object or property is unknown). A slow or missing reply is not
/// taken as gone: under load (a receiver scanning on the same bluetoothd) property reads can time out.
async fn transport_gone(bus: &MediaBus, transport: &str) -> Option<String> {
    match media_transport::properties(bus, transport).await {
        Ok(_) => None,
        Err(e) if e.is_gone() => Some(format!("{transport} disappeared ({e})")),
        Err(e) => {
            tracing::debug!("{e} (not taken as gone)");
            None
        }
    }
}

fn publish(shared: &Weak<Mutex<BigState>>, link: Option<BigLink>) {
    let Some(shared) = shared.upgrade() else { return };
    let mut st = shared.lock().expect("big lock");
    st.link = link.map(Arc::new);
    st.generation += 1;
    st.failed = false;
}

/// The control task of one broadcast output: sets the broadcast up (retrying with backoff), hands the BIG to the
/// real-time side, and sets it up again when a socket fails, a transport disappears or BlueZ drops the endpoint.
/// Ends with its output: it holds `shared` weakly and, once the output is dropped, releases the transports,
/// unregisters the endpoint (dropping it) and returns, so a reload that removes or rebuilds a broadcast leaves no
/// BIG or D-Bus connection behind.
pub async fn run(
    name: String,
    adapter: String,
    config: BroadcastConfig,
    identity: Option<AdvertisementFields>,
    shared: Weak<Mutex<BigState>>,
) {
    let mut backoff = RETRY_MIN;
    let mut bus: Option<MediaBus> = None;
    loop {
        if shared.strong_count() == 0 {
            tracing::info!(output = name, "broadcast output gone; control task ends");
            return;
        }
        if bus.is_none() {
            match MediaBus::connect() {
                Ok(b) => bus = Some(b),
                Err(e) => {
                    tracing::warn!(output = name, "broadcast not ready: {e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(RETRY_MAX);
                    continue;
                }
            }
        }
        let b = bus.clone().expect("just set");
        let (mut bc, link) = match start(&b, &adapter, &config, identity.as_ref()).await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(output = name, "broadcast not ready: {e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_MAX);
                continue;
            }
        };
        backoff = RETRY_MIN;
        publish(&shared, Some(link));
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        let reason = loop {
            tokio::select! {
                ev = bc.endpoint.events.recv() => match ev {
                    Some(BcastEvent::ClearConfiguration { transport }) if bc.transports.contains(&transport) => {
                        break format!("BlueZ cleared {transport}");
                    }
                    Some(BcastEvent::Released) | None => break "BlueZ released the endpoint".to_string(),
                    Some(_) => {}
                },
                _ = poll.tick() => {
                    let Some(strong) = shared.upgrade() else { break String::new() };
                    if strong.lock().expect("big lock").failed {
                        break "a BIS socket failed".to_string();
                    }
                    if let Some(gone) = transport_gone(&b, &bc.transports[0]).await {
                        break gone;
                    }
                }
            }
        };
        // An empty reason: the output was dropped (removed or rebuilt by a reload), which is no fault.
        if reason.is_empty() {
            tracing::info!(
                output = name,
                "broadcast output removed; releasing its BIG and endpoint"
            );
        } else {
            tracing::warn!(output = name, "broadcast stopped: {reason}; setting it up again");
        }
        publish(&shared, None);
        for t in &bc.transports {
            let _ = media_transport::release(&b, t).await;
        }
        drop(bc);
        if shared.strong_count() == 0 {
            tracing::info!(output = name, "broadcast output gone; control task ends");
            return;
        }
        tokio::time::sleep(RETRY_MIN).await;
    }
}
