//! Unregistering a served object from BlueZ when its handle is dropped: `Drop` cannot await, so the call goes to
//! the background. Shared by the media endpoints ([`super::media::Registration`]) and the broadcast's
//! advertisement ([`super::advertisement::Advertisement`]).

use super::media::MediaBus;

/// Calls `interface.method(path)` on BlueZ's `adapter_path` (`/org/bluez/hciN`) in the background, when a tokio
/// runtime is running (at process exit there is none: the connection closing tells BlueZ as much). The task holds
/// a clone of `bus`, so the connection stays open until the call is answered. A failure is only logged (debug):
/// the object may already be gone on BlueZ's side.
pub fn unregister_in_background(
    bus: &MediaBus,
    adapter_path: String,
    interface: &'static str,
    method: &'static str,
    path: dbus::Path<'static>,
) {
    let proxy = bus.bluez_proxy(adapter_path);
    let bus = bus.clone();
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(async move {
            let _bus = bus;
            let r: Result<(), _> = proxy.method_call(interface, method, (path,)).await;
            if let Err(e) = r {
                tracing::debug!("{method}: {e}");
            }
        });
    }
}
