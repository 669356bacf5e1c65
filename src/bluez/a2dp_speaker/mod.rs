//! The control side of A2DP speakers: one source endpoint per adapter, and per speaker a task that connects it,
//! acquires its transport when BlueZ configures one, follows its `Delay`, and reconnects with backoff when the
//! speaker powers off, walks out of range or the link fails (BlueZ itself retries only after link loss).
//!
//! Here: the hub (endpoints per adapter, routing BlueZ's endpoint calls to speaker tasks); `placement` chooses an
//! adapter, `task` is one speaker's life, `volume` keeps its AVRCP volume.

mod placement;
mod task;
mod volume;

pub use placement::{choose_adapter, PlacementError};

use super::media::{MediaBus, MediaError};
use super::media_endpoint::{register_a2dp_source, EndpointEvent, EndpointHandle};
use crate::a2dp::sbc_caps::SbcQuality;
use crate::output::a2dp::SharedLink;
use placement::placed_counts;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// First reconnect delay.
pub const RECONNECT_MIN: Duration = Duration::from_secs(1);
/// Largest reconnect delay.
pub const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// How long to wait for BlueZ to configure a transport after connecting.
pub const CONFIGURE_TIMEOUT: Duration = Duration::from_secs(15);
/// How often a released (idle) speaker's task looks at its output besides being woken by it.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How often a streaming transport's properties are read in full. Their changes arrive as `PropertiesChanged`;
/// this is the backstop for a lost signal and the check that the transport still exists.
pub const REREAD_INTERVAL: Duration = Duration::from_secs(5);

/// Where a speaker is and how to reach it.
#[derive(Debug, Clone)]
pub struct SpeakerSpec {
    /// Output name (for logs).
    pub name: String,
    /// Adapter, e.g. `hci0`.
    pub adapter: String,
    /// The speaker's address.
    pub address: bluer::Address,
    /// Use the speaker's AVRCP absolute volume when it offers one.
    pub avrcp_volume: bool,
}

/// device object path → (route id, that speaker's event channel).
type Routes = Arc<Mutex<HashMap<String, (u64, mpsc::UnboundedSender<EndpointEvent>)>>>;

/// A stream BlueZ configured on one of our endpoints: (transport path, SBC configuration, Delay).
type Configured = (String, [u8; 4], Option<u16>);

/// device object path → the stream configured for it now, so that a speaker task taking a speaker over (a reload
/// rebuilt its output) can acquire it at once instead of waiting for a SetConfiguration that already happened.
type Configs = Arc<Mutex<HashMap<String, Configured>>>;

/// Acquire attempts on one configured transport before the speaker is reconnected instead.
const ACQUIRE_ATTEMPTS: u32 = 3;

/// Route ids, so that a speaker task ending late never removes its successor's route.
static NEXT_ROUTE_ID: AtomicU64 = AtomicU64::new(1);

/// A speaker task's entry in the hub's routes; removed when the task ends, unless another task took it over.
struct Route {
    routes: Routes,
    device_path: String,
    id: u64,
    /// The stream BlueZ had configured for the device when the route was made (a task taking a speaker over).
    inherited: Option<Configured>,
}

impl Route {
    /// Whether this task still owns the speaker's route.
    fn current(&self) -> bool {
        self.routes
            .lock()
            .expect("routes lock")
            .get(&self.device_path)
            .is_some_and(|(id, _)| *id == self.id)
    }
}

impl Drop for Route {
    fn drop(&mut self) {
        let mut routes = self.routes.lock().expect("routes lock");
        if routes.get(&self.device_path).is_some_and(|(id, _)| *id == self.id) {
            routes.remove(&self.device_path);
        }
    }
}

/// Endpoints per adapter and the routing of their events to speaker tasks. One hub serves every `a2dp` output of
/// the service (one endpoint per adapter; BlueZ hands a speaker's stream to whichever endpoint it picks).
pub struct A2dpHub {
    bus: MediaBus,
    session: bluer::Session,
    quality: SbcQuality,
    /// Source endpoints registered per adapter: one per speaker placed there (BlueZ runs one stream per endpoint).
    endpoints: HashMap<String, usize>,
    /// Per adapter: held while one speaker's profile connection is being set up, so that an adapter pages one
    /// speaker at a time (two at once raced in BlueZ: "Connection reset by peer" on the second).
    connecting: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    /// device object path → that speaker's event channel; also which speakers each adapter carries.
    routes: Routes,
    /// The streams configured now, per device.
    configs: Configs,
}
impl A2dpHub {
    /// Connects to the system bus (inside a tokio runtime).
    pub async fn new(quality: SbcQuality) -> Result<Self, MediaError> {
        let bus = MediaBus::connect()?;
        let session = bluer::Session::new()
            .await
            .map_err(|e| MediaError::Protocol(format!("bluer: {e}")))?;
        Ok(Self {
            bus,
            session,
            quality,
            endpoints: HashMap::new(),
            connecting: HashMap::new(),
            routes: Arc::default(),
            configs: Arc::default(),
        })
    }

    /// The adapters BlueZ has.
    pub async fn adapter_names(&self) -> Result<Vec<String>, MediaError> {
        self.session
            .adapter_names()
            .await
            .map_err(|e| MediaError::Protocol(format!("listing adapters: {e}")))
    }

    /// Chooses an adapter for a speaker that names none (see [`choose_adapter`]); an error when every adapter
    /// already carries `max` speakers (the caller retries: an adapter plugged in later is used).
    pub async fn place(&mut self, max: usize) -> Result<String, MediaError> {
        let names = self.adapter_names().await?;
        choose_adapter(&names, &placed_counts(&self.routes), max).map_err(|e| MediaError::Protocol(e.to_string()))
    }

    /// Registers source endpoints on `adapter` until there are `wanted` (powering the adapter on first).
    async fn ensure_endpoints(&mut self, adapter: &str, wanted: usize) -> Result<(), MediaError> {
        let have = self.endpoints.get(adapter).copied().unwrap_or(0);
        if have >= wanted {
            return Ok(());
        }
        let a = self
            .session
            .adapter(adapter)
            .map_err(|e| MediaError::Protocol(format!("adapter {adapter}: {e}")))?;
        if !a.is_powered().await.unwrap_or(false) {
            a.set_powered(true)
                .await
                .map_err(|e| MediaError::Protocol(format!("powering {adapter} on: {e}")))?;
        }
        for index in have..wanted {
            let handle = register_a2dp_source(&self.bus, adapter, index, self.quality).await?;
            tokio::spawn(dispatch(
                adapter.to_string(),
                index,
                handle,
                self.routes.clone(),
                self.configs.clone(),
                self.bus.clone(),
                self.quality,
            ));
            self.endpoints.insert(adapter.to_string(), index + 1);
        }
        Ok(())
    }

    /// Starts managing a speaker: its link appears in `shared` whenever it is streaming.
    pub async fn add_speaker(&mut self, spec: SpeakerSpec, shared: SharedLink) -> Result<(), MediaError> {
        let device_path = format!(
            "/org/bluez/{}/dev_{}",
            spec.adapter,
            spec.address.to_string().replace(':', "_")
        );
        let adapter = self
            .session
            .adapter(&spec.adapter)
            .map_err(|e| MediaError::Protocol(format!("adapter {}: {e}", spec.adapter)))?;
        let mut wanted = placed_counts(&self.routes).get(&spec.adapter).copied().unwrap_or(0);
        if !self.routes.lock().expect("routes lock").contains_key(&device_path) {
            wanted += 1;
        }
        self.ensure_endpoints(&spec.adapter, wanted).await?;
        let connecting = self.connecting.entry(spec.adapter.clone()).or_default().clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let id = NEXT_ROUTE_ID.fetch_add(1, Ordering::Relaxed);
        if self
            .routes
            .lock()
            .expect("routes lock")
            .insert(device_path.clone(), (id, tx))
            .is_some()
        {
            // The same speaker under a new output (a reload changed it): the old task sees its channel close.
            tracing::info!(output = spec.name, "{} moves to this output", spec.address);
        }
        tracing::info!(output = spec.name, "speaker {} on {}", spec.address, spec.adapter);
        let configured = self.configs.lock().expect("configs lock").get(&device_path).cloned();
        let route = Route {
            routes: self.routes.clone(),
            device_path,
            id,
            inherited: configured,
        };
        tokio::spawn(task::speaker_task(
            spec,
            adapter,
            self.bus.clone(),
            route,
            rx,
            Arc::downgrade(&shared),
            connecting,
        ));
        Ok(())
    }
}

/// Routes endpoint events to the speaker tasks; re-registers the endpoint if BlueZ drops it (bluetoothd
/// restarted), retrying until it succeeds.
async fn dispatch(
    adapter: String,
    index: usize,
    mut handle: EndpointHandle,
    routes: Routes,
    configs: Configs,
    bus: MediaBus,
    quality: SbcQuality,
) {
    let mut transports: HashMap<String, String> = HashMap::new(); // transport → device
    loop {
        while let Some(ev) = handle.events.recv().await {
            let device = match &ev {
                EndpointEvent::SetConfiguration {
                    transport,
                    device,
                    configuration,
                    delay,
                } => {
                    transports.insert(transport.clone(), device.clone());
                    if let Ok(c) = <[u8; 4]>::try_from(configuration.as_slice()) {
                        let mut configs = configs.lock().expect("configs lock");
                        configs.insert(device.clone(), (transport.clone(), c, *delay));
                    }
                    Some(device.clone())
                }
                EndpointEvent::ClearConfiguration { transport } => {
                    let device = transports.remove(transport);
                    let mut configs = configs.lock().expect("configs lock");
                    configs.retain(|_, c| c.0 != *transport);
                    device
                }
                EndpointEvent::Released => {
                    let mut configs = configs.lock().expect("configs lock");
                    configs.retain(|_, c| !transports.contains_key(&c.0));
                    transports.clear();
                    None
                }
            };
            let released = matches!(ev, EndpointEvent::Released);
            let routes = routes.lock().expect("routes lock");
            match device {
                Some(d) => match routes.get(&d) {
                    Some((_, tx)) => {
                        let _ = tx.send(ev);
                    }
                    None => tracing::info!("{adapter}: {d} is not a configured speaker; its stream is ignored"),
                },
                None => {
                    for (dev, (_, tx)) in routes.iter() {
                        if dev.starts_with(&format!("/org/bluez/{adapter}/")) {
                            let _ = tx.send(ev.clone());
                        }
                    }
                }
            }
            drop(routes);
            if released {
                break;
            }
        }
        tracing::warn!("{adapter}: BlueZ released the A2DP endpoint; registering it again");
        let mut delay = RECONNECT_MIN;
        loop {
            tokio::time::sleep(delay).await;
            match register_a2dp_source(&bus, &adapter, index, quality).await {
                Ok(h) => {
                    handle = h;
                    break;
                }
                Err(e) => {
                    tracing::warn!("{adapter}: cannot register the endpoint again ({e}); retrying in {delay:?}");
                    delay = (delay * 2).min(RECONNECT_MAX);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_removed_when_its_task_ends_but_never_its_successor() {
        let routes: Routes = Arc::default();
        let path = "/org/bluez/hci0/dev_00_11".to_string();
        let (tx1, rx1) = mpsc::unbounded_channel();
        routes.lock().unwrap().insert(path.clone(), (1, tx1));
        let first = Route {
            routes: routes.clone(),
            device_path: path.clone(),
            id: 1,
            inherited: None,
        };
        assert!(first.current());
        // A new output takes the speaker over: the first task's channel closes and its route is no longer current.
        let (tx2, _rx2) = mpsc::unbounded_channel();
        routes.lock().unwrap().insert(path.clone(), (2, tx2));
        assert!(rx1.is_closed() && !first.current());
        drop(first);
        assert_eq!(
            routes.lock().unwrap().get(&path).map(|r| r.0),
            Some(2),
            "successor's route kept"
        );
        let second = Route {
            routes: routes.clone(),
            device_path: path.clone(),
            id: 2,
            inherited: None,
        };
        drop(second);
        assert!(routes.lock().unwrap().is_empty(), "the last owner's route is removed");
    }
}
