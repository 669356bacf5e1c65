//! What BlueZ shows of the broadcast side: its objects (`GetManagedObjects`, the reply's type checked), the
//! `pac_bcast*` endpoint it creates for our source, and which prerequisite is missing when it offers none.

use super::{BCAST_SOURCE_UUID, ISO_SOCKET_UUID, SETUP_TIMEOUT};
use crate::bluez::media::{self, MediaBus, MediaError};
use crate::bluez::media_endpoint::{INTERFACE, MEDIA_INTERFACE};
use dbus::arg::PropMap;
use dbus::nonblock::stdintf::org_freedesktop_dbus::Properties;
use std::collections::HashMap;
use std::time::Duration;

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
        media::BLUEZ,
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
    let mut reply = match tokio::time::timeout(media::CALL_TIMEOUT, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => return Err(MediaError::Protocol(format!("{WHAT}: the D-Bus connection closed"))),
        Err(_) => {
            drop(bus.conn.cancel_reply(token));
            return Err(MediaError::Protocol(format!(
                "{WHAT}: no reply within {:?}",
                media::CALL_TIMEOUT
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_prerequisites_are_named() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(explain(Some(&s(&[BCAST_SOURCE_UUID])), None, "hci0").contains("supports"));
        assert!(explain(Some(&s(&[])), None, "hci0").contains("-E"));
        assert!(explain(None, Some(&s(&["15c0a148-c273-11ea-b3de-0242ac130004"])), "hci0").contains("ISO-socket"));
        assert!(explain(Some(&s(&[])), Some(&s(&[ISO_SOCKET_UUID])), "hci0").contains("not an ISO broadcaster"));
    }
}
