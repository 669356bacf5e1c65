//! `org.bluez.MediaEndpoint1`, served by bluebridge: the A2DP SBC source endpoint registered on an adapter (and,
//! for the rig's sink recorder, an A2DP SBC sink endpoint).
//!
//! BlueZ calls `SelectConfiguration` with a speaker's capabilities, then `SetConfiguration` with the transport it
//! created, `ClearConfiguration` when the stream goes, and `Release` when it drops the endpoint. Calls are
//! accepted only from BlueZ's unique name; anything else gets `org.bluez.Error.NotAuthorized`. Registration is a
//! [`EndpointHandle`] that unregisters on drop; its event receiver tells the owner about transports.

use super::media::{MediaBus, MediaError};
use crate::a2dp::sbc_caps::{self, SbcQuality};
use crate::a2dp::{A2DP_SINK_UUID, A2DP_SOURCE_UUID, CODEC_SBC};
use dbus::arg::{PropMap, RefArg, Variant};
use dbus::MethodErr;
use std::collections::HashMap;
use tokio::sync::mpsc;

/// The interface name.
pub const INTERFACE: &str = "org.bluez.MediaEndpoint1";
/// `org.bluez.Media1`, where endpoints are registered.
pub const MEDIA_INTERFACE: &str = "org.bluez.Media1";

/// What BlueZ told an endpoint.
#[derive(Debug, Clone, PartialEq)]
pub enum EndpointEvent {
    /// A transport was configured for a device.
    SetConfiguration {
        /// The transport object.
        transport: String,
        /// The device object.
        device: String,
        /// The configuration bytes.
        configuration: Vec<u8>,
        /// The sink's delay report (1/10 ms), if delay reporting is on.
        delay: Option<u16>,
    },
    /// A transport is gone.
    ClearConfiguration {
        /// The transport object.
        transport: String,
    },
    /// BlueZ dropped the endpoint (e.g. bluetoothd stopped).
    Released,
}

struct EndpointState {
    bluez_owner: String,
    quality: SbcQuality,
    events: mpsc::UnboundedSender<EndpointEvent>,
}

fn check_sender(ctx: &dbus_crossroads::Context, st: &EndpointState) -> Result<(), MethodErr> {
    super::media::require_bluez(ctx, &st.bluez_owner, "media endpoint")
}

impl super::media::EndpointOwner for EndpointState {
    fn bluez_owner(&self) -> &str {
        &self.bluez_owner
    }
    fn what(&self) -> &'static str {
        "media endpoint"
    }
    fn cleared(&self, transport: String) {
        let _ = self.events.send(EndpointEvent::ClearConfiguration { transport });
    }
    fn released(&self) {
        let _ = self.events.send(EndpointEvent::Released);
    }
}

/// A registered endpoint; unregisters itself when dropped.
#[must_use = "the endpoint is unregistered when the handle is dropped"]
pub struct EndpointHandle {
    registration: super::media::Registration<EndpointState>,
    /// Events from BlueZ.
    pub events: mpsc::UnboundedReceiver<EndpointEvent>,
}

impl EndpointHandle {
    /// The endpoint's object path.
    pub fn path(&self) -> &str {
        self.registration.path()
    }
}

/// Serves an A2DP SBC source endpoint and registers it on `adapter` (e.g. `hci0`). `index` tells several endpoints
/// on one adapter apart: BlueZ (5.82) runs at most one stream per registered endpoint (a local SEP), so an adapter
/// that carries N speakers needs N endpoints. Index 0 is `/org/bluebridge/hciN/a2dp_source_sbc`, index i > 0 gets
/// `_i` appended.
pub async fn register_a2dp_source(
    bus: &MediaBus,
    adapter: &str,
    index: usize,
    quality: SbcQuality,
) -> Result<EndpointHandle, MediaError> {
    register_a2dp(bus, adapter, index, quality, Role::Source).await
}

/// Serves an A2DP SBC **sink** endpoint (a speaker's side) and registers it on `adapter`: what the rig's sink
/// recorder is. It offers [`sbc_caps::SOURCE_CAPABILITIES`] (48 kHz, every mode, block length, subband count,
/// allocation and bitpool) with `DelayReporting`, and accepts what [`sbc_caps::check`] accepts.
pub async fn register_a2dp_sink(bus: &MediaBus, adapter: &str) -> Result<EndpointHandle, MediaError> {
    register_a2dp(bus, adapter, 0, SbcQuality::High, Role::Sink).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Source,
    Sink,
}

async fn register_a2dp(
    bus: &MediaBus,
    adapter: &str,
    index: usize,
    quality: SbcQuality,
    role: Role,
) -> Result<EndpointHandle, MediaError> {
    let (uuid, name) = match role {
        Role::Source => (A2DP_SOURCE_UUID, "source"),
        Role::Sink => (A2DP_SINK_UUID, "sink"),
    };
    let owner = bus.bluez_owner().await?;
    let adapter_path = format!("/org/bluez/{adapter}");
    let suffix = if index == 0 { String::new() } else { format!("_{index}") };
    let path =
        dbus::Path::new(format!("/org/bluebridge/{adapter}/a2dp_{name}_sbc{suffix}")).map_err(MediaError::Protocol)?;
    let (tx, rx) = mpsc::unbounded_channel();
    {
        let mut cr = bus.cr.lock().expect("crossroads lock");
        let iface = cr.register(INTERFACE, |b: &mut dbus_crossroads::IfaceBuilder<EndpointState>| {
            b.method(
                "SelectConfiguration",
                ("capabilities",),
                ("configuration",),
                |ctx, st, (caps,): (Vec<u8>,)| {
                    check_sender(ctx, st)?;
                    match sbc_caps::select(&caps, st.quality) {
                        Ok(conf) => {
                            tracing::info!("SelectConfiguration: speaker offers {caps:02x?}, chose {conf:02x?}");
                            Ok((conf.to_vec(),))
                        }
                        Err(e) => {
                            tracing::warn!("SelectConfiguration: {e}");
                            Err(MethodErr::from((e.name, e.message)))
                        }
                    }
                },
            );
            b.method(
                "SetConfiguration",
                ("transport", "properties"),
                (),
                |ctx, st, (transport, props): (dbus::Path<'static>, PropMap)| {
                    check_sender(ctx, st)?;
                    let configuration: Vec<u8> = dbus::arg::prop_cast::<Vec<u8>>(&props, "Configuration")
                        .cloned()
                        .unwrap_or_default();
                    if let Err(e) = sbc_caps::check(&configuration) {
                        tracing::warn!("SetConfiguration {transport}: {e}");
                        return Err(MethodErr::from((e.name, e.message)));
                    }
                    let device = dbus::arg::prop_cast::<dbus::Path>(&props, "Device")
                        .map(|p| p.to_string())
                        .unwrap_or_default();
                    let delay = dbus::arg::prop_cast::<u16>(&props, "Delay").copied();
                    tracing::info!("SetConfiguration: {transport} for {device}, {configuration:02x?}, delay {delay:?}");
                    let _ = st.events.send(EndpointEvent::SetConfiguration {
                        transport: transport.to_string(),
                        device,
                        configuration,
                        delay,
                    });
                    Ok(())
                },
            );
            super::media::add_lifecycle_methods(b);
        });
        cr.insert(
            path.clone(),
            &[iface],
            EndpointState {
                bluez_owner: owner,
                quality,
                events: tx,
            },
        );
    }
    let mut props: HashMap<&str, Variant<Box<dyn RefArg>>> = HashMap::new();
    props.insert("UUID", Variant(Box::new(uuid.to_string())));
    props.insert("Codec", Variant(Box::new(CODEC_SBC)));
    props.insert(
        "Capabilities",
        Variant(Box::new(sbc_caps::SOURCE_CAPABILITIES.to_vec())),
    );
    props.insert("DelayReporting", Variant(Box::new(true)));
    let handle = EndpointHandle {
        registration: super::media::Registration::new(bus, &adapter_path, path.clone()),
        events: rx,
    };
    let proxy = bus.bluez_proxy(adapter_path.clone());
    proxy
        .method_call::<(), _, _, _>(MEDIA_INTERFACE, "RegisterEndpoint", (path.clone(), props))
        .await
        .map_err(MediaError::dbus(format!(
            "registering the A2DP {name} endpoint on {adapter}"
        )))?;
    tracing::info!("A2DP SBC {name} endpoint registered on {adapter} at {path}");
    Ok(handle)
}
