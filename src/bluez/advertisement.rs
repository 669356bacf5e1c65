//! A broadcast's own `org.bluez.LEAdvertisement1` (BlueZ ≥ 5.87): carries the Broadcast Name (0x30), the Public
//! Broadcast Announcement (0x1856), our Broadcast_ID (0x1852) and the manufacturer data, on the advertising set
//! the BIG then uses.
//!
//! How BlueZ 5.87 and the kernel tie the two (read in BlueZ's and the kernel's source, see FINDINGS.md):
//! - `LEAdvertisingManager1.RegisterAdvertisement` gives the advertisement the lowest free instance from 1
//!   (`src/advertising.c:1746`, `util_get_uid`), adds it through mgmt, and — only if our object has an `Instance`
//!   property — writes that number into it before replying (`src/advertising.c:1396-1401`, commit b55c0559b,
//!   first in 5.87). So `Instance` is read-write here, and is set when the registration returns.
//! - BlueZ passes no advertising instance to the kernel for a broadcast source: its QoS parser has no such key
//!   (`profiles/audio/bap.c:666-747`) and leaves the BIS field unset (`bap.c:1063-1064`). The kernel then picks
//!   the lowest advertising handle from 1 that no BIS uses (`qos_set_bis`, `net/bluetooth/hci_conn.c`) and, when an
//!   instance of that number exists, turns it into the periodic-advertising set of the BIG, keeping its data and
//!   adding 0x1852 only when absent (`hci_start_per_adv_sync` / `hci_adv_bcast_annoucement`, `hci_sync.c`, kernel
//!   fix of June 2025 for bluez/bluez#1117).
//! - Hence: register before the BIG is created, and check that the instance BlueZ gave is
//!   [`FIRST_BIG_ADV_INSTANCE`]; another one means another advertisement holds that set and ours is not the
//!   broadcast's (warned).
//!
//! Calls (`Release`, `Set`) are accepted only from BlueZ's unique name. Dropping the handle unregisters it.

use super::media::{require_bluez, MediaBus, MediaError};
use crate::bap::advertising::{uuid16_string, AdvertisementFields, FIRST_BIG_ADV_INSTANCE};
use dbus::arg::{RefArg, Variant};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The advertisement's interface.
pub const INTERFACE: &str = "org.bluez.LEAdvertisement1";
/// The manager's interface on `/org/bluez/hciN`.
pub const MANAGER_INTERFACE: &str = "org.bluez.LEAdvertisingManager1";

struct State {
    bluez_owner: String,
    fields: AdvertisementFields,
    /// What BlueZ wrote into `Instance` (0 until it does).
    instance: Arc<Mutex<u8>>,
    released: Arc<Mutex<bool>>,
}

/// A registered advertisement; unregistered when dropped.
#[must_use = "the advertisement is unregistered when the handle is dropped"]
pub struct Advertisement {
    bus: MediaBus,
    adapter_path: String,
    path: dbus::Path<'static>,
    instance: Arc<Mutex<u8>>,
    released: Arc<Mutex<bool>>,
}

impl Advertisement {
    /// The instance BlueZ gave it (`None` if BlueZ never wrote `Instance`: a BlueZ before 5.87).
    pub fn instance(&self) -> Option<u8> {
        Some(*self.instance.lock().expect("instance lock")).filter(|i| *i != 0)
    }

    /// Whether BlueZ released it (`LEAdvertisement1.Release`, e.g. the adapter went away).
    pub fn released(&self) -> bool {
        *self.released.lock().expect("released lock")
    }

    /// Whether it sits on the advertising set the kernel gives the adapter's first BIG; the warning otherwise.
    pub fn check_instance(&self) -> Result<u8, String> {
        match self.instance() {
            Some(FIRST_BIG_ADV_INSTANCE) => Ok(FIRST_BIG_ADV_INSTANCE),
            Some(i) => Err(format!(
                "BlueZ gave the broadcast's advertisement instance {i}, but the kernel puts the BIG on advertising set \
                 {FIRST_BIG_ADV_INSTANCE} (another advertisement holds it): the Broadcast Name and PBP go out on a \
                 set of their own, which receivers do not tie to the broadcast"
            )),
            None => Err(
                "BlueZ did not say which advertising instance it used (LEAdvertisement1.Instance is BlueZ 5.87's): \
                 the Broadcast Name and PBP may not be on the broadcast's set"
                    .to_string(),
            ),
        }
    }
}

/// The `ServiceData` dictionary (`a{sv}`, 128-bit UUID strings → `ay`).
fn service_data(f: &AdvertisementFields) -> HashMap<String, Variant<Vec<u8>>> {
    f.service_data
        .iter()
        .map(|(uuid, d)| (uuid16_string(*uuid), Variant(d.clone())))
        .collect()
}

/// Serves the advertisement on `bus` and registers it on `adapter` (`hciN`).
pub async fn register(bus: &MediaBus, adapter: &str, fields: AdvertisementFields) -> Result<Advertisement, MediaError> {
    let owner = bus.bluez_owner().await?;
    let adapter_path = format!("/org/bluez/{adapter}");
    let path = dbus::Path::new(format!("/org/bluebridge/{adapter}/bcast_adv")).map_err(MediaError::Protocol)?;
    let instance = Arc::new(Mutex::new(0u8));
    let released = Arc::new(Mutex::new(false));
    {
        let mut cr = bus.cr.lock().expect("crossroads lock");
        let iface = cr.register(INTERFACE, |b: &mut dbus_crossroads::IfaceBuilder<State>| {
            b.property::<String, _>("Type").get(|_, _| Ok("broadcast".to_string()));
            b.property::<HashMap<String, Variant<Vec<u8>>>, _>("ServiceData")
                .get(|_, st| Ok(service_data(&st.fields)));
            b.property::<HashMap<u8, Variant<Vec<u8>>>, _>("Data")
                .get(|_, st| Ok(st.fields.data.iter().map(|(t, d)| (*t, Variant(d.clone()))).collect()));
            b.property::<HashMap<u16, Variant<Vec<u8>>>, _>("ManufacturerData")
                .get(|_, st| {
                    Ok(st
                        .fields
                        .manufacturer
                        .iter()
                        .map(|(c, d)| (*c, Variant(d.clone())))
                        .collect())
                });
            b.property::<u8, _>("Instance")
                .get(|_, st| Ok(*st.instance.lock().expect("instance lock")))
                .set(|ctx, st, v| {
                    let from = ctx.message().and_then(|m| m.sender()).map(|s| s.to_string());
                    if from.as_deref() != Some(st.bluez_owner.as_str()) {
                        tracing::warn!("advertisement: refused setting Instance from {from:?} (only BlueZ may)");
                        return Err(dbus::MethodErr::from((
                            "org.bluez.Error.NotAuthorized",
                            "only BlueZ may set the instance",
                        )));
                    }
                    tracing::debug!("advertisement: BlueZ set Instance = {v}");
                    *st.instance.lock().expect("instance lock") = v;
                    Ok(None)
                });
            b.method("Release", (), (), |ctx, st: &mut State, (): ()| {
                require_bluez(ctx, &st.bluez_owner, "advertisement")?;
                tracing::info!("BlueZ released the broadcast's advertisement");
                *st.released.lock().expect("released lock") = true;
                Ok(())
            });
        });
        cr.insert(
            path.clone(),
            &[iface],
            State {
                bluez_owner: owner,
                fields,
                instance: instance.clone(),
                released: released.clone(),
            },
        );
    }
    let handle = Advertisement {
        bus: bus.clone(),
        adapter_path: adapter_path.clone(),
        path: path.clone(),
        instance,
        released,
    };
    let options: HashMap<&str, Variant<Box<dyn RefArg>>> = HashMap::new();
    let r: Result<(), _> = bus
        .bluez_proxy(adapter_path)
        .method_call(MANAGER_INTERFACE, "RegisterAdvertisement", (path.clone(), options))
        .await;
    r.map_err(MediaError::dbus(format!(
        "registering the broadcast's advertisement on {adapter}"
    )))?;
    tracing::info!(
        "broadcast advertisement registered on {adapter} at {path}, instance {:?}",
        handle.instance()
    );
    Ok(handle)
}

impl Drop for Advertisement {
    fn drop(&mut self) {
        self.bus.cr.lock().expect("crossroads lock").remove::<State>(&self.path);
        if self.released() {
            return;
        }
        let proxy = self.bus.bluez_proxy(self.adapter_path.clone());
        let path = self.path.clone();
        let bus = self.bus.clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _bus = bus;
                let r: Result<(), _> = proxy
                    .method_call(MANAGER_INTERFACE, "UnregisterAdvertisement", (path,))
                    .await;
                if let Err(e) = r {
                    tracing::debug!("UnregisterAdvertisement: {e}");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_data_keys_are_full_uuids() {
        let f = AdvertisementFields {
            service_data: vec![(0x1852, vec![1, 2, 3]), (0x1856, vec![4, 0])],
            data: vec![(0x30, b"Hall".to_vec())],
            manufacturer: None,
        };
        let m = service_data(&f);
        assert_eq!(m["00001852-0000-1000-8000-00805f9b34fb"].0, vec![1, 2, 3]);
        assert_eq!(m["00001856-0000-1000-8000-00805f9b34fb"].0, vec![4, 0]);
        // The whole dictionary marshals as a{sv}, the type bluetoothd's parse_service_data reads.
        let msg = dbus::Message::new_method_call("org.bluez", "/", INTERFACE, "X")
            .unwrap()
            .append1(m);
        assert_eq!(msg.iter_init().signature().to_string(), "a{sv}");
    }
}
