//! The D-Bus connection bluebridge serves its media endpoints on, and talks to BlueZ's media objects with.
//!
//! bluer has no media API, so this uses the same stack bluer is built on (`dbus`, `dbus-tokio`,
//! `dbus-crossroads`). One connection per process: BlueZ ties endpoints and acquired transports to the unique
//! name that registered or acquired them.

use dbus::nonblock::SyncConnection;
use dbus::strings::BusName;
use dbus_crossroads::Crossroads;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// BlueZ's well-known bus name.
pub const BLUEZ: &str = "org.bluez";
/// Timeout of ordinary calls to BlueZ.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why talking to BlueZ failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// A D-Bus error (BlueZ's error name and message are in it).
    #[error("{what}: {error}")]
    DBus {
        /// What was being done.
        what: String,
        /// The error.
        error: dbus::Error,
    },
    /// Something BlueZ returned or did that makes no sense.
    #[error("{0}")]
    Protocol(String),
}

impl MediaError {
    /// Wraps a D-Bus error with what was being done.
    pub fn dbus(what: impl Into<String>) -> impl FnOnce(dbus::Error) -> MediaError {
        let what = what.into();
        move |error| MediaError::DBus { what, error }
    }
    /// Whether BlueZ said the object (or its interface or property) does not exist: it is gone. A slow or missing
    /// answer is not: under load property reads can time out.
    pub fn is_gone(&self) -> bool {
        matches!(
            self.name(),
            Some(
                "org.freedesktop.DBus.Error.UnknownObject"
                    | "org.freedesktop.DBus.Error.UnknownMethod"
                    | "org.freedesktop.DBus.Error.UnknownInterface"
                    | "org.freedesktop.DBus.Error.InvalidArgs"
            )
        )
    }
    /// The D-Bus error name, if this is a D-Bus error.
    pub fn name(&self) -> Option<&str> {
        match self {
            MediaError::DBus { error, .. } => error.name(),
            MediaError::Protocol(_) => None,
        }
    }
}

/// The system-bus connection with the object server on it. The connection closes (its unique name leaves the bus,
/// so BlueZ drops what it registered or acquired) when the last clone is dropped.
#[derive(Clone)]
pub struct MediaBus {
    /// The connection.
    pub conn: Arc<SyncConnection>,
    /// Our served objects.
    pub cr: Arc<Mutex<Crossroads>>,
    _teardown: Arc<Teardown>,
}

/// When the last [`MediaBus`] clone goes: removes the method-call handler (breaking the cycle connection → handler
/// → crossroads → connection) and stops the I/O task, so the connection is closed instead of living on unused.
struct Teardown {
    conn: Arc<SyncConnection>,
    receive: Option<dbus::channel::Token>,
    io: tokio::task::JoinHandle<()>,
}

impl Drop for Teardown {
    fn drop(&mut self) {
        use dbus::channel::MatchingReceiver;
        if let Some(token) = self.receive.take() {
            drop(self.conn.stop_receive(token));
        }
        self.io.abort();
    }
}

impl MediaBus {
    /// Connects to the system bus (must run inside a tokio runtime) and starts serving method calls.
    pub fn connect() -> Result<Self, MediaError> {
        let (resource, conn) =
            dbus_tokio::connection::new_system_sync().map_err(MediaError::dbus("connecting to the system bus"))?;
        let io = tokio::spawn(async move {
            let err = resource.await;
            tracing::error!("lost the D-Bus connection: {err}");
        });
        let cr = Arc::new(Mutex::new(Crossroads::new()));
        {
            let conn2 = conn.clone();
            let mut c = cr.lock().expect("crossroads lock");
            c.set_async_support(Some((
                conn2,
                Box::new(|fut| {
                    tokio::spawn(fut);
                }),
            )));
        }
        let cr2 = cr.clone();
        use dbus::channel::MatchingReceiver;
        let receive = conn.start_receive(
            dbus::message::MatchRule::new_method_call(),
            Box::new(move |msg, conn| {
                let _ = cr2.lock().expect("crossroads lock").handle_message(msg, conn);
                true
            }),
        );
        let teardown = Arc::new(Teardown {
            conn: conn.clone(),
            receive: Some(receive),
            io,
        });
        Ok(Self {
            conn,
            cr,
            _teardown: teardown,
        })
    }

    /// BlueZ's current unique name (calls to our endpoints are accepted only from it).
    pub async fn bluez_owner(&self) -> Result<String, MediaError> {
        let proxy = dbus::nonblock::Proxy::new(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            CALL_TIMEOUT,
            self.conn.clone(),
        );
        let (owner,): (String,) = proxy
            .method_call("org.freedesktop.DBus", "GetNameOwner", (BLUEZ,))
            .await
            .map_err(MediaError::dbus(
                "looking up org.bluez on the system bus (is bluetoothd running?)",
            ))?;
        Ok(owner)
    }

    /// A proxy to a BlueZ object.
    pub fn bluez_proxy(
        &self,
        path: impl Into<dbus::Path<'static>>,
    ) -> dbus::nonblock::Proxy<'static, Arc<SyncConnection>> {
        dbus::nonblock::Proxy::new(
            BusName::new(BLUEZ).expect("valid"),
            path.into(),
            CALL_TIMEOUT,
            self.conn.clone(),
        )
    }
}

/// Refuses a method call on one of our served objects unless it comes from BlueZ's unique name `owner`
/// (`org.bluez.Error.NotAuthorized`, logged with the caller's name). `what` names the object in the log.
pub fn require_bluez(ctx: &dbus_crossroads::Context, owner: &str, what: &str) -> Result<(), dbus::MethodErr> {
    match ctx.message().sender() {
        Some(s) if &*s == owner => Ok(()),
        other => {
            tracing::warn!(
                "{what}: refused a call from {:?} (only BlueZ may call it)",
                other.map(|s| s.to_string())
            );
            Err(dbus::MethodErr::from((
                "org.bluez.Error.NotAuthorized",
                "only BlueZ may call this endpoint",
            )))
        }
    }
}

/// The state a served media endpoint keeps: whom to accept calls from and whom to tell about the end of a stream.
pub trait EndpointOwner: Send + 'static {
    /// BlueZ's unique name (calls from anyone else are refused).
    fn bluez_owner(&self) -> &str;
    /// What the endpoint is, for the refusal's log line.
    fn what(&self) -> &'static str;
    /// BlueZ cleared the configuration of `transport`.
    fn cleared(&self, transport: String);
    /// BlueZ released the endpoint.
    fn released(&self);
}

/// `MediaEndpoint1.ClearConfiguration` and `Release`, which every endpoint kind answers alike: a caller that is not
/// BlueZ is refused ([`require_bluez`]), otherwise the owner is told.
pub fn add_lifecycle_methods<S: EndpointOwner>(b: &mut dbus_crossroads::IfaceBuilder<S>) {
    b.method(
        "ClearConfiguration",
        ("transport",),
        (),
        |ctx, st: &mut S, (transport,): (dbus::Path<'static>,)| {
            require_bluez(ctx, st.bluez_owner(), st.what())?;
            st.cleared(transport.to_string());
            Ok(())
        },
    );
    b.method("Release", (), (), |ctx, st: &mut S, (): ()| {
        require_bluez(ctx, st.bluez_owner(), st.what())?;
        st.released();
        Ok(())
    });
}

/// A served media endpoint registered on an adapter: removes its object (state type `S`) from the crossroads and
/// unregisters it from BlueZ (`Media1.UnregisterEndpoint`, in the background) when dropped. Shared by the A2DP
/// endpoints and the broadcast source endpoint.
pub struct Registration<S: Send + 'static> {
    bus: MediaBus,
    adapter_path: String,
    path: dbus::Path<'static>,
    state: std::marker::PhantomData<fn() -> S>,
}

impl<S: Send + 'static> Registration<S> {
    /// The endpoint at `path`, served with state `S`, registered on `adapter_path` (`/org/bluez/hciN`).
    pub fn new(bus: &MediaBus, adapter_path: &str, path: dbus::Path<'static>) -> Self {
        Self {
            bus: bus.clone(),
            adapter_path: adapter_path.to_string(),
            path,
            state: std::marker::PhantomData,
        }
    }

    /// The endpoint's object path.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl<S: Send + 'static> Drop for Registration<S> {
    fn drop(&mut self) {
        self.bus.cr.lock().expect("crossroads lock").remove::<S>(&self.path);
        super::unregister::unregister_in_background(
            &self.bus,
            self.adapter_path.clone(),
            "org.bluez.Media1",
            "UnregisterEndpoint",
            self.path.clone(),
        );
    }
}
