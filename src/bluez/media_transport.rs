//! `org.bluez.MediaTransport1`, as a client: acquiring the stream's socket, releasing it, reading its properties.

use super::media::{MediaBus, MediaError};
use dbus::nonblock::stdintf::org_freedesktop_dbus::Properties;
use std::os::fd::OwnedFd;

/// The interface name.
pub const INTERFACE: &str = "org.bluez.MediaTransport1";

/// An acquired transport: the socket and its MTUs.
#[derive(Debug)]
pub struct Acquired {
    /// The L2CAP (A2DP) or ISO (broadcast) socket; one write = one packet.
    pub fd: OwnedFd,
    /// Read MTU.
    pub read_mtu: u16,
    /// Write MTU: the largest packet.
    pub write_mtu: u16,
}

/// Acquires `transport`: `TryAcquire` when BlueZ says it is already streaming ("pending"), `Acquire` otherwise.
pub async fn acquire(bus: &MediaBus, transport: &str) -> Result<Acquired, MediaError> {
    let proxy = bus.bluez_proxy(transport.to_string());
    let state: String = proxy
        .get(INTERFACE, "State")
        .await
        .map_err(MediaError::dbus(format!("reading {transport} State")))?;
    let method = if state == "pending" { "TryAcquire" } else { "Acquire" };
    let (fd, read_mtu, write_mtu): (dbus::arg::OwnedFd, u16, u16) = proxy
        .method_call(INTERFACE, method, ())
        .await
        .map_err(MediaError::dbus(format!("{method} on {transport}")))?;
    // SAFETY: dbus hands us ownership of the descriptor.
    let fd: OwnedFd = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd.into_fd()) };
    Ok(Acquired {
        fd,
        read_mtu,
        write_mtu,
    })
}

/// Releases `transport` (AVDTP SUSPEND for A2DP). Errors are returned for logging; the transport may be gone.
pub async fn release(bus: &MediaBus, transport: &str) -> Result<(), MediaError> {
    let proxy = bus.bluez_proxy(transport.to_string());
    proxy
        .method_call::<(), _, _, _>(INTERFACE, "Release", ())
        .await
        .map_err(MediaError::dbus(format!("Release on {transport}")))
}

/// The sink's delay report in 1/10 ms, if it reports one.
pub async fn delay(bus: &MediaBus, transport: &str) -> Option<u16> {
    bus.bluez_proxy(transport.to_string())
        .get::<u16>(INTERFACE, "Delay")
        .await
        .ok()
}

/// The transport's state (`idle`, `pending`, `active`, `broadcasting`), if it still exists.
pub async fn state(bus: &MediaBus, transport: &str) -> Option<String> {
    bus.bluez_proxy(transport.to_string())
        .get::<String>(INTERFACE, "State")
        .await
        .ok()
}

/// Sets the transport's `Delay` (1/10 ms): what a local A2DP **sink** reports to the source with AVDTP
/// DelayReport. BlueZ ≥ 5.79 allows it only on a sink transport the caller has acquired; otherwise the error
/// carries BlueZ's name (e.g. `org.freedesktop.DBus.Error.PropertyReadOnly` before 5.79, `org.bluez.Error.Failed`).
pub async fn set_delay(bus: &MediaBus, transport: &str, delay_dms: u16) -> Result<(), MediaError> {
    bus.bluez_proxy(transport.to_string())
        .set(INTERFACE, "Delay", delay_dms)
        .await
        .map_err(MediaError::dbus(format!(
            "setting Delay = {delay_dms} (1/10 ms) on {transport}"
        )))
}

pub use crate::a2dp::A2DP_VOLUME_MAX;

/// The speaker's absolute volume (AVRCP, 0…127 for A2DP), if the property is there: BlueZ shows it once AVRCP
/// reports an absolute volume, i.e. when the speaker supports AVRCP 1.4 absolute volume.
pub async fn volume(bus: &MediaBus, transport: &str) -> Option<u16> {
    bus.bluez_proxy(transport.to_string())
        .get::<u16>(INTERFACE, "Volume")
        .await
        .ok()
}

/// Sets the speaker's absolute volume (BlueZ sends AVRCP SetAbsoluteVolume). Fails when the speaker has no
/// absolute volume (`org.bluez.Error.Failed` / NotSupported) or the value is out of range.
pub async fn set_volume(bus: &MediaBus, transport: &str, level: u16) -> Result<(), MediaError> {
    bus.bluez_proxy(transport.to_string())
        .set(INTERFACE, "Volume", level)
        .await
        .map_err(MediaError::dbus(format!("setting Volume = {level} on {transport}")))
}

/// The AVRCP level for a volume in percent (0 → 0, 100 → 127, rounded).
pub fn level_for_pct(pct: u8) -> u16 {
    ((pct.min(100) as u32 * A2DP_VOLUME_MAX as u32 + 50) / 100) as u16
}
