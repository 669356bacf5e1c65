//! The broadcast source endpoint we serve (`org.bluez.MediaEndpoint1` at `/org/bluebridge/ADAPTER/bcast_source_lc3`)
//! and register with BlueZ, the events BlueZ sends it, and the marshalling of BAP properties into the D-Bus values
//! BlueZ parses.

use super::{BCAST_SOURCE_UUID, CODEC_LC3, SETUP_TIMEOUT};
use crate::bap::broadcast::PropValue;
use crate::bap::ltv::Lc3Capabilities;
use crate::bluez::media::{self, MediaBus, MediaError};
use crate::bluez::media_endpoint::{INTERFACE, MEDIA_INTERFACE};
use dbus::arg::{PropMap, RefArg, Variant};
use dbus::MethodErr;
use std::collections::HashMap;
use tokio::sync::mpsc;

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
    media::require_bluez(ctx, &st.bluez_owner, "broadcast endpoint")
}

impl media::EndpointOwner for State {
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
    registration: media::Registration<State>,
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
            media::add_lifecycle_methods(b);
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
        registration: media::Registration::new(bus, &adapter_path, path.clone()),
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
        let why = super::diagnose(bus, adapter).await;
        return Err(MediaError::Protocol(format!(
            "BlueZ refused the broadcast source endpoint on {adapter} ({}: {}): {why}",
            e.name().unwrap_or("?"),
            e.message().unwrap_or("")
        )));
    }
    tracing::info!("broadcast source endpoint registered on {adapter} at {path}");
    Ok(handle)
}

/// Waits for the next transport BlueZ announces on `ep`.
pub(super) async fn next_transport(ep: &mut SourceEndpoint) -> Result<String, MediaError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bap::broadcast::{BroadcastCode, BroadcastConfig, ChannelLayout};
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
}
