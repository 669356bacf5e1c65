//! The LE Audio broadcast source, D-Bus side (notes/bluez.md §B.1): registers a broadcast source endpoint
//! (`00001852-…`, LC3) on an adapter, finds the `pac_bcast*` endpoint BlueZ creates for it, calls its
//! `SetConfiguration(our endpoint, props)` once per BIS, collects the BIS transports BlueZ announces by calling
//! `SetConfiguration(transport, props)` on our endpoint, acquires them all at once (BlueZ creates the BIG only
//! when every BIS of it is acquired) and hands the sockets to the real-time side through a
//! [`SharedBig`](crate::output::broadcast::SharedBig). A control task keeps doing that, with backoff, until it
//! succeeds and again after a failure.
//!
//! Our served endpoint answers what BlueZ 5.82's `media.c` calls on a local broadcast source endpoint:
//! `SetConfiguration`, `ClearConfiguration` and `Release` (`SelectProperties`/`SelectConfiguration` belong to
//! unicast and A2DP and are refused). Calls are accepted only from BlueZ's unique name.
//!
//! The Broadcast Name, PBP and manufacturer data are not part of the Media API: on BlueZ ≥ 5.87 an advertisement of
//! our own (`super::advertisement`) is registered before the BIG is created, and the kernel puts the BIG on its
//! advertising set; on older BlueZ the kernel advertises the Broadcast Audio Announcement alone, with a random
//! Broadcast_ID (the edge warns once).
//!
//! The parts: [`endpoint`] (the endpoint we serve and register, and the property marshalling), [`discovery`] (what
//! BlueZ shows: its objects, the `pac_bcast*` endpoint, which prerequisite is missing), this module (setting one
//! broadcast up: [`start`]) and [`control`] (the task that keeps it up: [`run`]).

pub mod control;
pub mod discovery;
pub mod endpoint;

pub use control::run;
pub use discovery::{diagnose, explain, find_pac_bcast, managed_objects, ManagedObjects};
pub use endpoint::{register, to_propmap, to_refarg, BcastEvent, SourceEndpoint};

use endpoint::next_transport;

use super::advertisement::{self, Advertisement};
use super::media::{MediaBus, MediaError};
use super::media_endpoint::INTERFACE;
use super::media_transport;
use crate::bap::advertising::AdvertisementFields;
use crate::bap::broadcast::{BisSetup, BroadcastConfig};
use crate::output::broadcast::BigLink;
use std::time::Duration;

/// Broadcast Audio Announcement service: the UUID of a broadcast source endpoint.
pub const BCAST_SOURCE_UUID: &str = "00001852-0000-1000-8000-00805f9b34fb";
/// LC3.
pub const CODEC_LC3: u8 = 0x06;
/// The kernel's ISO-socket experimental feature.
pub const ISO_SOCKET_UUID: &str = "6fbaf188-05e0-496a-9885-d6ddfdb4e03e";
/// How long BlueZ gets to create `pac_bcast*` after registration, and to announce a BIS transport.
pub const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long acquiring the BIG may take (BlueZ creates the BIG and starts periodic advertising).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(20);
/// First retry delay after a failed setup.
pub const RETRY_MIN: Duration = Duration::from_secs(1);
/// Largest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(30);
/// How often the transports' health is checked while broadcasting.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// One set-up broadcast: the endpoint (kept registered), its transports in BIS order, the BIG's sockets.
pub struct Broadcast {
    /// The registered endpoint.
    pub endpoint: SourceEndpoint,
    /// Transport object per BIS.
    pub transports: Vec<String>,
    /// Our advertisement on the BIG's advertising set, if one was asked for and BlueZ took it.
    pub advertisement: Option<Advertisement>,
}

/// Registers the broadcast's advertisement (Broadcast Name, PBP, Broadcast_ID, manufacturer data) on `adapter`; a
/// failure is logged and the broadcast goes on without it.
async fn advertise(bus: &MediaBus, adapter: &str, fields: AdvertisementFields) -> Option<Advertisement> {
    match advertisement::register(bus, adapter, fields).await {
        Ok(a) => Some(a),
        Err(e) => {
            tracing::warn!("broadcast: {e}; broadcasting without Broadcast Name and PBP");
            None
        }
    }
}

/// Registers, configures every BIS of `config` on `adapter` and acquires them all; with `identity`, first puts
/// the advertisement the BIG's advertising set will carry in place.
pub async fn start(
    bus: &MediaBus,
    adapter: &str,
    config: &BroadcastConfig,
    identity: Option<&AdvertisementFields>,
) -> Result<(Broadcast, BigLink), MediaError> {
    let setups: Vec<BisSetup> = config.bis_setups().map_err(|e| MediaError::Protocol(e.to_string()))?;
    // Before the BIG exists: the kernel reuses the advertising instance it finds (module doc of `advertisement`).
    let advertisement = match identity {
        Some(f) => advertise(bus, adapter, f.clone()).await,
        None => None,
    };
    if let Some(a) = &advertisement {
        match a.check_instance() {
            Ok(i) => tracing::info!("broadcast: advertisement on instance {i}, the set the BIG will use"),
            Err(w) => tracing::warn!("broadcast: {w}"),
        }
    }
    let mut endpoint = register(bus, adapter).await?;
    let pac = find_pac_bcast(bus, adapter).await?;
    tracing::info!("broadcast: configuring {} BIS on {pac}", setups.len());
    let ep_path = dbus::Path::new(endpoint.path().to_string()).map_err(MediaError::Protocol)?;
    let mut transports = Vec::new();
    for s in &setups {
        let props = to_propmap(&s.properties());
        let r: Result<(), _> = bus
            .bluez_proxy(pac.clone())
            .method_call(INTERFACE, "SetConfiguration", (ep_path.clone(), props))
            .await;
        if let Err(e) = r {
            let why = if e.name() == Some("org.bluez.Error.NotSupported")
                || e.name() == Some("org.freedesktop.DBus.Error.UnknownMethod")
            {
                format!(" — {}", diagnose(bus, adapter).await)
            } else {
                String::new()
            };
            return Err(MediaError::Protocol(format!(
                "SetConfiguration on {pac} for BIS {} failed ({}: {}){why}",
                s.channel + 1,
                e.name().unwrap_or("?"),
                e.message().unwrap_or("")
            )));
        }
        transports.push(next_transport(&mut endpoint).await?);
    }
    tracing::info!("broadcast: transports {transports:?}; acquiring them all");
    let acquired = tokio::time::timeout(
        ACQUIRE_TIMEOUT,
        futures::future::try_join_all(transports.iter().map(|t| media_transport::acquire(bus, t))),
    )
    .await
    .map_err(|_| {
        MediaError::Protocol(format!(
            "acquiring the BIG on {adapter} timed out after {ACQUIRE_TIMEOUT:?} (kernel ISO sockets off?)"
        ))
    })?
    .map_err(|e| {
        MediaError::Protocol(format!(
            "acquiring the BIS transports on {adapter}: {e} (kernel ISO sockets need bluetoothd -K; the controller \
             must be an ISO broadcaster)"
        ))
    })?;
    let link = BigLink {
        write_mtu: acquired.iter().map(|a| a.write_mtu as usize).collect(),
        fds: acquired.into_iter().map(|a| a.fd).collect(),
    };
    tracing::info!("broadcast: BIG up on {adapter}, write MTUs {:?}", link.write_mtu);
    Ok((
        Broadcast {
            endpoint,
            transports,
            advertisement,
        },
        link,
    ))
}
