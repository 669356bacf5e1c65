//! `org.bluez.MediaTransport1`, as a client: acquiring the stream's socket, releasing it, reading its properties,
//! and following their changes (`PropertiesChanged`, [`watch`]) instead of polling them.

use super::media::{MediaBus, MediaError};
use dbus::arg::PropMap;
use dbus::nonblock::stdintf::org_freedesktop_dbus::Properties;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

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

/// The properties of a transport that bluebridge follows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportProps {
    /// `State`: `idle`, `pending`, `active` (A2DP) or `broadcasting`.
    pub state: Option<String>,
    /// `Delay`, the sink's delay report in 1/10 ms.
    pub delay_dms: Option<u16>,
    /// `Volume`, AVRCP absolute volume (0…127) once the speaker reported one.
    pub volume: Option<u16>,
}

/// What one `PropertiesChanged` signal said: `None` where it said nothing about a property, `Some(None)` where
/// it invalidated it (or gave it a type BlueZ never sends).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PropsUpdate {
    /// `State`.
    pub state: Option<Option<String>>,
    /// `Delay`.
    pub delay_dms: Option<Option<u16>>,
    /// `Volume`.
    pub volume: Option<Option<u16>>,
}

impl PropsUpdate {
    /// Whether it changes nothing bluebridge follows.
    pub fn is_empty(&self) -> bool {
        self.state.is_none() && self.delay_dms.is_none() && self.volume.is_none()
    }
}

impl TransportProps {
    /// Reads them from a property dictionary (`GetAll`'s answer).
    pub fn from_map(map: &PropMap) -> Self {
        Self {
            state: dbus::arg::prop_cast::<String>(map, "State").cloned(),
            delay_dms: dbus::arg::prop_cast::<u16>(map, "Delay").copied(),
            volume: dbus::arg::prop_cast::<u16>(map, "Volume").copied(),
        }
    }

    /// Applies a change.
    pub fn apply(&mut self, u: &PropsUpdate) {
        if let Some(s) = &u.state {
            self.state = s.clone();
        }
        if let Some(d) = u.delay_dms {
            self.delay_dms = d;
        }
        if let Some(v) = u.volume {
            self.volume = v;
        }
    }
}

/// Reads a `PropertiesChanged` signal's arguments (changed properties, invalidated names).
pub fn parse_changed(changed: &PropMap, invalidated: &[String]) -> PropsUpdate {
    fn field<T: Clone + 'static>(changed: &PropMap, invalidated: &[String], name: &str) -> Option<Option<T>> {
        if changed.contains_key(name) {
            Some(dbus::arg::prop_cast::<T>(changed, name).cloned())
        } else if invalidated.iter().any(|n| n == name) {
            Some(None)
        } else {
            None
        }
    }
    PropsUpdate {
        state: field(changed, invalidated, "State"),
        delay_dms: field(changed, invalidated, "Delay"),
        volume: field(changed, invalidated, "Volume"),
    }
}

/// All of a transport's followed properties (`GetAll`). An error when the transport is gone or BlueZ does not
/// answer; [`MediaError::is_gone`] tells which.
pub async fn properties(bus: &MediaBus, transport: &str) -> Result<TransportProps, MediaError> {
    let map: PropMap = bus
        .bluez_proxy(transport.to_string())
        .get_all(INTERFACE)
        .await
        .map_err(MediaError::dbus(format!("reading the properties of {transport}")))?;
    Ok(TransportProps::from_map(&map))
}

/// Changes queued between two reads of a [`TransportWatch`]; beyond it they are dropped and the watch reports
/// itself lagged, so the reader reads the properties afresh instead.
pub const WATCH_QUEUE: usize = 32;

/// A subscription to one transport's `PropertiesChanged` signals, from BlueZ only (the bus delivers a signal sent
/// to us directly whatever its sender, so the sender is checked against BlueZ's unique name). Ends the
/// subscription when dropped.
pub struct TransportWatch {
    updates: mpsc::Receiver<PropsUpdate>,
    lagged: Arc<AtomicBool>,
    conn: Arc<dbus::nonblock::SyncConnection>,
    token: Option<dbus::channel::Token>,
    /// Holds the callback: the connection keeps it only weakly.
    _match: dbus::nonblock::MsgMatch,
}

impl TransportWatch {
    /// The next change, or `None` if the subscription ended (the connection went away).
    pub async fn next(&mut self) -> Option<PropsUpdate> {
        self.updates.recv().await
    }

    /// Whether changes were dropped since the last call (more than [`WATCH_QUEUE`] unread): then read the
    /// properties afresh.
    pub fn take_lagged(&self) -> bool {
        self.lagged.swap(false, Ordering::Relaxed)
    }
}

impl Drop for TransportWatch {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            let conn = self.conn.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = conn.remove_match(token).await;
                });
            }
        }
    }
}

/// Subscribes to `transport`'s property changes. Subscribe first, then read [`properties`]: nothing is missed.
pub async fn watch(bus: &MediaBus, transport: &str) -> Result<TransportWatch, MediaError> {
    let owner = bus.bluez_owner().await?;
    let path = dbus::Path::new(transport.to_string())
        .map_err(|e| MediaError::Protocol(format!("{transport:?} is not an object path: {e}")))?;
    let rule = dbus::message::MatchRule::new_signal("org.freedesktop.DBus.Properties", "PropertiesChanged")
        .with_sender(super::media::BLUEZ)
        .with_path(path);
    let (tx, rx) = mpsc::channel(WATCH_QUEUE);
    let lagged = Arc::new(AtomicBool::new(false));
    let lagged2 = lagged.clone();
    let what = transport.to_string();
    let m = bus
        .conn
        .add_match(rule)
        .await
        .map_err(MediaError::dbus(format!(
            "subscribing to the property changes of {transport}"
        )))?
        .cb(
            move |msg, (iface, changed, invalidated): (String, PropMap, Vec<String>)| {
                if msg.sender().as_deref() != Some(owner.as_str()) {
                    tracing::warn!(
                        "{what}: ignored a PropertiesChanged from {:?} (only BlueZ's {owner} is followed)",
                        msg.sender().map(|s| s.to_string())
                    );
                    return true;
                }
                if iface != INTERFACE {
                    return true;
                }
                let u = parse_changed(&changed, &invalidated);
                if u.is_empty() {
                    return true;
                }
                match tx.try_send(u) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        lagged2.store(true, Ordering::Relaxed);
                        true
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                }
            },
        );
    Ok(TransportWatch {
        updates: rx,
        lagged,
        conn: bus.conn.clone(),
        token: Some(m.token()),
        _match: m,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dbus::arg::{RefArg, Variant};

    fn map(entries: Vec<(&str, Box<dyn RefArg>)>) -> PropMap {
        entries.into_iter().map(|(k, v)| (k.to_string(), Variant(v))).collect()
    }

    #[test]
    fn a_change_updates_what_it_names_and_invalidation_clears() {
        let mut p = TransportProps::from_map(&map(vec![
            ("State", Box::new("active".to_string())),
            ("Delay", Box::new(1500u16)),
            ("Codec", Box::new(0u8)),
        ]));
        assert_eq!(
            p,
            TransportProps {
                state: Some("active".into()),
                delay_dms: Some(1500),
                volume: None
            }
        );
        let u = parse_changed(&map(vec![("Delay", Box::new(2000u16))]), &[]);
        assert_eq!(u.delay_dms, Some(Some(2000)));
        assert!(u.state.is_none() && u.volume.is_none());
        p.apply(&u);
        assert_eq!(p.delay_dms, Some(2000));
        assert_eq!(p.state.as_deref(), Some("active"));
        p.apply(&parse_changed(
            &map(vec![
                ("Volume", Box::new(90u16)),
                ("State", Box::new("idle".to_string())),
            ]),
            &[],
        ));
        assert_eq!((p.state.as_deref(), p.volume), (Some("idle"), Some(90)));
        p.apply(&parse_changed(&PropMap::new(), &["Volume".to_string()]));
        assert_eq!(p.volume, None);
    }

    #[test]
    fn a_wrongly_typed_value_is_no_value_and_unfollowed_names_are_no_change() {
        let u = parse_changed(&map(vec![("Delay", Box::new("soon".to_string()))]), &[]);
        assert_eq!(u.delay_dms, Some(None));
        let u = parse_changed(&map(vec![("Codec", Box::new(2u8))]), &["Links".to_string()]);
        assert!(u.is_empty());
    }
}
