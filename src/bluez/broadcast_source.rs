//! The LE Audio broadcast source, D-Bus side (notes/bluez.md §B.1): registers a broadcast source endpoint
//! (`00001852-…`, LC3) on an adapter, finds the `pac_bcast*` endpoint BlueZ creates for it, calls its
//! `SetConfiguration(our endpoint, props)` once per BIS, collects the BIS transports BlueZ announces by calling
//! `SetConfiguration(transport, props)` on our endpoint, acquires them all at once (BlueZ creates the BIG only
//! when every BIS of it is acquired) and hands the sockets to the real-time side through a
//! [`SharedBig`](crate::output::broadcast::SharedBig). A control task keeps doing that, with backoff, until it succeeds and again after a failure.
//!
//! Our served endpoint answers what BlueZ 5.82's `media.c` calls on a local broadcast source endpoint:
//! `SetConfiguration`, `ClearConfiguration` and `Release` (`SelectProperties`/`SelectConfiguration` belong to
//! unicast and A2DP and are refused). Calls are accepted only from BlueZ's unique name.
//!
//! The Broadcast Name, PBP and manufacturer data are not part of the Media API: on BlueZ ≥ 5.87 an advertisement of
//! our own (`super::advertisement`) is registered before the BIG is created, and the kernel puts the BIG on its
//! advertising set; on older BlueZ the kernel advertises the Broadcast Audio Announcement alone, with a random
//! Broadcast_ID (the edge warns once).

use super::advertisement::{self, Advertisement};
use super::media::{MediaBus, MediaError};
use super::media_endpoint::{INTERFACE, MEDIA_INTERFACE};
use super::media_transport;
use crate::bap::advertising::AdvertisementFields;
use crate::bap::broadcast::{BisSetup, BroadcastConfig, PropValue};
use crate::bap::ltv::Lc3Capabilities;
use crate::output::broadcast::{BigLink, BigState};
use dbus::arg::{PropMap, RefArg, Variant};
use dbus::nonblock::stdintf::org_freedesktop_dbus::Properties;
use dbus::MethodErr;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

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

/// What BlueZ told our broadcast endpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum BcastEvent {
    /// A BIS transport was created.
    SetConfiguration {
        /// The transport object.
        transport: String,
    },
    /// A transport is gone.
    ClearConfiguration {
        /// The transport object.
        transport: String,
    },
    /// BlueZ dropped the endpoint.
    Released,
}

struct State {
    bluez_owner: String,
    events: mpsc::UnboundedSender<BcastEvent>,
}

fn check_sender(ctx: &dbus_crossroads::Context, st: &State) -> Result<(), MethodErr> {
    super::media::require_bluez(ctx, &st.bluez_owner, "broadcast endpoint")
}

impl super::media::EndpointOwner for State {
    fn bluez_owner(&self) -> &str {
        &self.bluez_owner
    }
    fn what(&self) -> &'static str {
        "broadcast endpoint"
    }
    fn cleared(&self, transport: String) {
        let _ = self.events.send(BcastEvent::ClearConfiguration { transport });
    }
    fn released(&self) {
        let _ = self.events.send(BcastEvent::Released);
    }
}

/// The registered broadcast source endpoint; unregisters itself when dropped.
#[must_use = "the endpoint is unregistered when the handle is dropped"]
pub struct SourceEndpoint {
    registration: super::media::Registration<State>,
    /// Events from BlueZ.
    pub events: mpsc::UnboundedReceiver<BcastEvent>,
}

impl SourceEndpoint {
    /// The endpoint's object path.
    pub fn path(&self) -> &str {
        self.registration.path()
    }
}

/// A [`PropValue`] as the D-Bus value BlueZ expects.
pub fn to_refarg(v: &PropValue) -> Box<dyn RefArg> {
    match v {
        PropValue::Byte(b) => Box::new(*b),
        PropValue::U16(x) => Box::new(*x),
        PropValue::U32(x) => Box::new(*x),
        PropValue::Bytes(b) => Box::new(b.clone()),
        PropValue::Dict(d) => Box::new(to_propmap(d)),
    }
}

/// A property list as an `a{sv}` dictionary.
pub fn to_propmap(props: &[(&'static str, PropValue)]) -> PropMap {
    props
        .iter()
        .map(|(k, v)| (k.to_string(), Variant(to_refarg(v))))
        .collect()
}

/// Says which broadcast prerequisite is missing on `adapter`, from what BlueZ shows: `Media1.SupportedUUIDs`
/// (lists 0x1852 only when broadcast sources can be registered), and `Adapter1.ExperimentalFeatures` (an
/// experimental property: visible only with `-E`, listing the kernel experimental features bluetoothd enabled).
pub async fn diagnose(bus: &MediaBus, adapter: &str) -> String {
    let proxy = bus.bluez_proxy(format!("/org/bluez/{adapter}"));
    let uuids: Option<Vec<String>> = proxy.get(MEDIA_INTERFACE, "SupportedUUIDs").await.ok();
    let exps: Option<Vec<String>> = proxy.get("org.bluez.Adapter1", "ExperimentalFeatures").await.ok();
    explain(uuids.as_deref(), exps.as_deref(), adapter)
}

/// The pure part of [`diagnose`].
pub fn explain(supported_uuids: Option<&[String]>, exps: Option<&[String]>, adapter: &str) -> String {
    let iso_on = exps.map(|e| e.iter().any(|u| u.eq_ignore_ascii_case(ISO_SOCKET_UUID)));
    let bcast = supported_uuids.map(|u| u.iter().any(|u| u.eq_ignore_ascii_case(BCAST_SOURCE_UUID)));
    match (bcast, exps.is_some(), iso_on) {
        (Some(true), _, _) => format!("{adapter} supports broadcast sources (BlueZ lists {BCAST_SOURCE_UUID})"),
        (_, false, _) => format!(
            "bluetoothd runs without experimental interfaces (-E / [General] Experimental=true), or with them but \
             without the kernel ISO-socket feature (-K / KernelExperimental={ISO_SOCKET_UUID}): start it with -E -K"
        ),
        (_, true, Some(false)) => format!(
            "the kernel ISO-socket experimental feature is off (bluetoothd lacks -K / KernelExperimental=\
             {ISO_SOCKET_UUID}, or the kernel has no ISO sockets)"
        ),
        _ => format!(
            "{adapter} is not an ISO broadcaster: bluetoothd has -E and the kernel ISO sockets are on, yet BlueZ \
             offers no broadcast source on it (the controller lacks the iso-broadcaster setting)"
        ),
    }
}

/// Serves a broadcast source endpoint and registers it on `adapter`.
pub async fn register(bus: &MediaBus, adapter: &str) -> Result<SourceEndpoint, MediaError> {
    let owner = bus.bluez_owner().await?;
    let adapter_path = format!("/org/bluez/{adapter}");
    let path = dbus::Path::new(format!("/org/bluebridge/{adapter}/bcast_source_lc3")).map_err(MediaError::Protocol)?;
    let (tx, rx) = mpsc::unbounded_channel();
    {
        let mut cr = bus.cr.lock().expect("crossroads lock");
        let iface = cr.register(INTERFACE, |b: &mut dbus_crossroads::IfaceBuilder<State>| {
            b.method(
                "SetConfiguration",
                ("transport", "properties"),
                (),
                |ctx, st, (transport, _props): (dbus::Path<'static>, PropMap)| {
                    check_sender(ctx, st)?;
                    tracing::info!("broadcast SetConfiguration: {transport}");
                    let _ = st.events.send(BcastEvent::SetConfiguration {
                        transport: transport.to_string(),
                    });
                    Ok(())
                },
            );
            super::media::add_lifecycle_methods(b);
            b.method(
                "SelectProperties",
                ("capabilities",),
                ("properties",),
                |ctx, st, (_caps,): (PropMap,)| -> Result<(PropMap,), MethodErr> {
                    check_sender(ctx, st)?;
                    Err(MethodErr::from((
                        "org.bluez.Error.NotSupported",
                        "a broadcast source is configured by its owner, not by selection",
                    )))
                },
            );
        });
        cr.insert(
            path.clone(),
            &[iface],
            State {
                bluez_owner: owner,
                events: tx,
            },
        );
    }
    let handle = SourceEndpoint {
        registration: super::media::Registration::new(bus, &adapter_path, path.clone()),
        events: rx,
    };
    let mut props: HashMap<&str, Variant<Box<dyn RefArg>>> = HashMap::new();
    props.insert("UUID", Variant(Box::new(BCAST_SOURCE_UUID.to_string())));
    props.insert("Codec", Variant(Box::new(CODEC_LC3)));
    props.insert(
        "Capabilities",
        Variant(Box::new(Lc3Capabilities::broadcast_source().to_bytes())),
    );
    let r: Result<(), _> = bus
        .bluez_proxy(adapter_path.clone())
        .method_call(MEDIA_INTERFACE, "RegisterEndpoint", (path.clone(), props))
        .await;
    if let Err(e) = r {
        let why = diagnose(bus, adapter).await;
        return Err(MediaError::Protocol(format!(
            "BlueZ refused the broadcast source endpoint on {adapter} ({}: {}): {why}",
            e.name().unwrap_or("?"),
            e.message().unwrap_or("")
        )));
    }
    tracing::info!("broadcast source endpoint registered on {adapter} at {path}");
    Ok(handle)
}

/// What `GetManagedObjects` returns: interfaces and their properties per object.
pub type ManagedObjects = HashMap<dbus::Path<'static>, HashMap<String, PropMap>>;

/// BlueZ's objects (`ObjectManager.GetManagedObjects` on `/`). The reply's signature is checked first: the `dbus`
/// crate reads a reply of another array type (e.g. `as`) as an empty map, which would pass for "no objects yet"
/// and end, 10 s later, in a wrong diagnosis instead of naming the broken reply.
pub async fn managed_objects(bus: &MediaBus) -> Result<ManagedObjects, MediaError> {
    use dbus::nonblock::{NonblockReply, SyncConnection};
    const WHAT: &str = "listing BlueZ objects (GetManagedObjects)";
    const SIGNATURE: &str = "a{oa{sa{sv}}}";
    let msg = dbus::Message::new_method_call(
        super::media::BLUEZ,
        "/",
        "org.freedesktop.DBus.ObjectManager",
        "GetManagedObjects",
    )
    .map_err(MediaError::Protocol)?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let f = <SyncConnection as NonblockReply>::make_f(move |reply: dbus::Message, _: &SyncConnection| {
        let _ = tx.send(reply);
    });
    let token = bus
        .conn
        .send_with_reply(msg, f)
        .map_err(|()| MediaError::Protocol(format!("{WHAT}: the D-Bus connection is closed")))?;
    let mut reply = match tokio::time::timeout(super::media::CALL_TIMEOUT, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => return Err(MediaError::Protocol(format!("{WHAT}: the D-Bus connection closed"))),
        Err(_) => {
            drop(bus.conn.cancel_reply(token));
            return Err(MediaError::Protocol(format!(
                "{WHAT}: no reply within {:?}",
                super::media::CALL_TIMEOUT
            )));
        }
    };
    reply.as_result().map_err(MediaError::dbus(WHAT))?;
    let sig = reply.iter_init().signature();
    if &*sig != SIGNATURE {
        return Err(MediaError::Protocol(format!(
            "{WHAT}: BlueZ answered with a value of type {:?}, not {SIGNATURE:?}",
            &*sig
        )));
    }
    let (objects,): (ManagedObjects,) = reply.read_all().map_err(MediaError::dbus(WHAT))?;
    Ok(objects)
}

/// Finds the `pac_bcast*` endpoint BlueZ created on `adapter` for a local broadcast source (UUID 0x1852),
/// waiting up to [`SETUP_TIMEOUT`] for it to appear.
pub async fn find_pac_bcast(bus: &MediaBus, adapter: &str) -> Result<String, MediaError> {
    let prefix = format!("/org/bluez/{adapter}/pac_bcast");
    let deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
    loop {
        let objects = managed_objects(bus).await?;
        // Every MediaEndpoint1 under pac_bcast*, ones whose UUID says broadcast source (0x1852) first (BlueZ
        // 5.82 shows the local PAC's type there, which is not always 0x1852).
        let mut found: Vec<(bool, String)> = objects
            .iter()
            .filter(|(p, ifaces)| p.starts_with(&prefix) && ifaces.contains_key(INTERFACE))
            .map(|(p, ifaces)| {
                let uuid = dbus::arg::prop_cast::<String>(&ifaces[INTERFACE], "UUID")
                    .cloned()
                    .unwrap_or_default();
                tracing::debug!("found {p} (UUID {uuid:?})");
                (!uuid.eq_ignore_ascii_case(BCAST_SOURCE_UUID), p.to_string())
            })
            .collect();
        found.sort();
        let found: Vec<String> = found.into_iter().map(|(_, p)| p).collect();
        if let Some(p) = found.into_iter().next() {
            return Ok(p);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(MediaError::Protocol(format!(
                "BlueZ accepted the broadcast endpoint on {adapter} but created no {prefix}* object \
                 (is this BlueZ older than 5.73?)"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for the next transport BlueZ announces on `ep`.
async fn next_transport(ep: &mut SourceEndpoint) -> Result<String, MediaError> {
    let deadline = tokio::time::Instant::now() + SETUP_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, ep.events.recv()).await {
            Ok(Some(BcastEvent::SetConfiguration { transport })) => return Ok(transport),
            Ok(Some(BcastEvent::Released)) | Ok(None) => {
                return Err(MediaError::Protocol("BlueZ released the broadcast endpoint".into()))
            }
            Ok(Some(_)) => {}
            Err(_) => {
                return Err(MediaError::Protocol(
                    "BlueZ configured a BIS but never announced its transport".into(),
                ))
            }
        }
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bap::broadcast::{BroadcastCode, ChannelLayout};
    use crate::bap::presets::Preset;

    #[test]
    fn properties_marshal_to_the_types_bluez_parses() {
        let mut c = BroadcastConfig::new(Preset::by_name("48_2_1").unwrap(), ChannelLayout::Stereo);
        c.code = Some(BroadcastCode::parse("secret").unwrap());
        let setups = c.bis_setups().unwrap();
        let m = to_propmap(&setups[1].properties());
        assert_eq!(m["Capabilities"].0.signature().to_string(), "ay");
        let qos = dbus::arg::prop_cast::<PropMap>(&m, "QoS").expect("QoS is a{sv}");
        assert_eq!(dbus::arg::prop_cast::<u8>(qos, "Encryption"), Some(&1));
        assert_eq!(dbus::arg::prop_cast::<u16>(qos, "SDU"), Some(&100));
        assert_eq!(dbus::arg::prop_cast::<u32>(qos, "Interval"), Some(&10_000));
        assert_eq!(dbus::arg::prop_cast::<u32>(qos, "PresentationDelay"), Some(&40_000));
        assert_eq!(dbus::arg::prop_cast::<Vec<u8>>(qos, "BCode").map(|b| b.len()), Some(16));
        // The whole dictionary goes into a D-Bus message as a{sv}.
        let msg = dbus::Message::new_method_call("org.bluez", "/", INTERFACE, "SetConfiguration")
            .unwrap()
            .append2(dbus::Path::new("/x").unwrap(), m);
        let (_, back): (dbus::Path, PropMap) = msg.read2().expect("reads back as (o, a{sv})");
        let qos = dbus::arg::prop_cast::<PropMap>(&back, "QoS").expect("QoS survives marshalling");
        assert_eq!(dbus::arg::prop_cast::<u16>(qos, "Latency"), Some(&20));
    }

    #[test]
    fn missing_prerequisites_are_named() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(explain(Some(&s(&[BCAST_SOURCE_UUID])), None, "hci0").contains("supports"));
        assert!(explain(Some(&s(&[])), None, "hci0").contains("-E"));
        assert!(explain(None, Some(&s(&["15c0a148-c273-11ea-b3de-0242ac130004"])), "hci0").contains("ISO-socket"));
        assert!(explain(Some(&s(&[])), Some(&s(&[ISO_SOCKET_UUID])), "hci0").contains("not an ISO broadcaster"));
    }
}
