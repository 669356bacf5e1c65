//! The control side of A2DP speakers: one source endpoint per adapter, and per speaker a task that connects it,
//! acquires its transport when BlueZ configures one, follows its `Delay`, and reconnects with backoff when the
//! speaker powers off, walks out of range or the link fails (BlueZ itself retries only after link loss).

use super::a2dp::sbc_caps::SbcQuality;
use super::a2dp::A2DP_SINK_UUID;
use super::media::{MediaBus, MediaError};
use super::media_endpoint::{register_a2dp_source, EndpointEvent, EndpointHandle};
use super::media_transport;
use crate::output::a2dp::{Link, SharedLink};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// First reconnect delay.
pub const RECONNECT_MIN: Duration = Duration::from_secs(1);
/// Largest reconnect delay.
pub const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// How long to wait for BlueZ to configure a transport after connecting.
pub const CONFIGURE_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the transport's Delay and the link's health are checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Where a speaker is and how to reach it.
#[derive(Debug, Clone)]
pub struct SpeakerSpec {
    /// Output name (for logs).
    pub name: String,
    /// Adapter, e.g. `hci0`.
    pub adapter: String,
    /// The speaker's address.
    pub address: bluer::Address,
}

type Routes = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<EndpointEvent>>>>;

/// Endpoints per adapter and the routing of their events to speaker tasks.
pub struct A2dpHub {
    bus: MediaBus,
    session: bluer::Session,
    quality: SbcQuality,
    endpoints: HashMap<String, ()>,
    /// device object path → that speaker's event channel.
    routes: Routes,
    /// Speakers per adapter.
    placed: HashMap<String, usize>,
}

/// Speakers one adapter carries well (air time); automatic placement spreads beyond this.
pub const MAX_STREAMS_PER_ADAPTER: usize = 2;

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
            routes: Arc::default(),
            placed: HashMap::new(),
        })
    }

    /// The adapters BlueZ has.
    pub async fn adapter_names(&self) -> Result<Vec<String>, MediaError> {
        self.session
            .adapter_names()
            .await
            .map_err(|e| MediaError::Protocol(format!("listing adapters: {e}")))
    }

    /// Chooses an adapter for a speaker that names none: the powered-on-able adapter carrying the fewest
    /// speakers, keeping at most [`MAX_STREAMS_PER_ADAPTER`] per adapter while any has room.
    pub async fn place(&mut self) -> Result<String, MediaError> {
        let mut names = self.adapter_names().await?;
        names.sort();
        if names.is_empty() {
            return Err(MediaError::Protocol("no Bluetooth adapter".into()));
        }
        let load = |n: &String| self.placed.get(n).copied().unwrap_or(0);
        let best = names.iter().min_by_key(|n| load(n)).expect("non-empty").clone();
        if load(&best) >= MAX_STREAMS_PER_ADAPTER {
            tracing::warn!(
                "every adapter already carries {MAX_STREAMS_PER_ADAPTER} speakers; putting one more on {best}"
            );
        }
        Ok(best)
    }

    async fn ensure_endpoint(&mut self, adapter: &str) -> Result<(), MediaError> {
        if self.endpoints.contains_key(adapter) {
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
        let handle = register_a2dp_source(&self.bus, adapter, self.quality).await?;
        tokio::spawn(dispatch(
            adapter.to_string(),
            handle,
            self.routes.clone(),
            self.bus.clone(),
            self.quality,
        ));
        self.endpoints.insert(adapter.to_string(), ());
        Ok(())
    }

    /// Starts managing a speaker: its link appears in `shared` whenever it is streaming.
    pub async fn add_speaker(&mut self, spec: SpeakerSpec, shared: SharedLink) -> Result<(), MediaError> {
        self.ensure_endpoint(&spec.adapter).await?;
        let device_path = format!(
            "/org/bluez/{}/dev_{}",
            spec.adapter,
            spec.address.to_string().replace(':', "_")
        );
        let (tx, rx) = mpsc::unbounded_channel();
        self.routes.lock().expect("routes lock").insert(device_path.clone(), tx);
        *self.placed.entry(spec.adapter.clone()).or_default() += 1;
        tracing::info!(output = spec.name, "speaker {} on {}", spec.address, spec.adapter);
        let adapter = self
            .session
            .adapter(&spec.adapter)
            .map_err(|e| MediaError::Protocol(format!("adapter {}: {e}", spec.adapter)))?;
        tokio::spawn(speaker_task(spec, adapter, self.bus.clone(), device_path, rx, shared));
        Ok(())
    }
}

/// Routes endpoint events to the speaker tasks; re-registers the endpoint if BlueZ drops it (bluetoothd
/// restarted), retrying until it succeeds.
async fn dispatch(adapter: String, mut handle: EndpointHandle, routes: Routes, bus: MediaBus, quality: SbcQuality) {
    let mut transports: HashMap<String, String> = HashMap::new(); // transport → device
    loop {
        while let Some(ev) = handle.events.recv().await {
            let device = match &ev {
                EndpointEvent::SetConfiguration { transport, device, .. } => {
                    transports.insert(transport.clone(), device.clone());
                    Some(device.clone())
                }
                EndpointEvent::ClearConfiguration { transport } => transports.remove(transport),
                EndpointEvent::Released => None,
            };
            let released = matches!(ev, EndpointEvent::Released);
            let routes = routes.lock().expect("routes lock");
            match device {
                Some(d) => match routes.get(&d) {
                    Some(tx) => {
                        let _ = tx.send(ev);
                    }
                    None => tracing::info!("{adapter}: {d} is not a configured speaker; its stream is ignored"),
                },
                None => {
                    for (dev, tx) in routes.iter() {
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
            match register_a2dp_source(&bus, &adapter, quality).await {
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

async fn speaker_task(
    spec: SpeakerSpec,
    adapter: bluer::Adapter,
    bus: MediaBus,
    device_path: String,
    mut events: mpsc::UnboundedReceiver<EndpointEvent>,
    shared: SharedLink,
) {
    let name = spec.name.as_str();
    let mut backoff = RECONNECT_MIN;
    let mut configured: Option<(String, [u8; 4], Option<u16>)> = None;
    loop {
        // 1. Connected?
        let device = match adapter.device(spec.address) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(output = name, "{}: {e}", spec.address);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RECONNECT_MAX);
                continue;
            }
        };
        let connected = device.is_connected().await.unwrap_or(false);
        if !connected || configured.is_none() {
            let uuid: bluer::Uuid = A2DP_SINK_UUID.parse().expect("valid UUID");
            tracing::info!(output = name, "connecting to {} ({})", spec.address, device_path);
            match tokio::time::timeout(Duration::from_secs(30), device.connect_profile(&uuid)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) if e.to_string().contains("lready") => {}
                Ok(Err(e)) => {
                    tracing::warn!(
                        output = name,
                        "cannot connect to {}: {e}; retrying in {backoff:?}",
                        spec.address
                    );
                    drain_until(&mut events, &mut configured, backoff).await;
                    backoff = (backoff * 2).min(RECONNECT_MAX);
                    continue;
                }
                Err(_) => {
                    tracing::warn!(
                        output = name,
                        "connecting to {} timed out; retrying in {backoff:?}",
                        spec.address
                    );
                    drain_until(&mut events, &mut configured, backoff).await;
                    backoff = (backoff * 2).min(RECONNECT_MAX);
                    continue;
                }
            }
        }
        // 2. Wait for BlueZ to configure our endpoint for it.
        if configured.is_none() {
            drain_until(&mut events, &mut configured, CONFIGURE_TIMEOUT).await;
        }
        let Some((transport, configuration, delay)) = configured.clone() else {
            tracing::warn!(
                output = name,
                "{} connected but no A2DP stream was configured; retrying",
                spec.address
            );
            let _ = device.disconnect().await;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RECONNECT_MAX);
            continue;
        };
        // 3. Acquire and stream.
        let acquired = match media_transport::acquire(&bus, &transport).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(output = name, "{e}; retrying in {backoff:?}");
                configured = None;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RECONNECT_MAX);
                continue;
            }
        };
        tracing::info!(output = name, "acquired {transport} (write MTU {})", acquired.write_mtu);
        backoff = RECONNECT_MIN;
        publish(
            &shared,
            Some(Link {
                fd: acquired.fd,
                write_mtu: acquired.write_mtu as usize,
                configuration,
            }),
            delay,
            name,
        );
        // 4. Follow it until it goes.
        let mut last_delay = delay;
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        let reason = loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(EndpointEvent::ClearConfiguration { transport: t }) if t == transport => {
                        configured = None;
                        break "BlueZ cleared the stream configuration".to_string();
                    }
                    Some(EndpointEvent::SetConfiguration { transport: t, configuration: c, delay: d, .. }) => {
                        if let Ok(c) = <[u8; 4]>::try_from(c.as_slice()) {
                            configured = Some((t, c, d));
                        }
                        break "BlueZ configured a new stream".to_string();
                    }
                    Some(EndpointEvent::Released) => { configured = None; break "BlueZ released the endpoint".to_string() }
                    Some(_) => {}
                    None => return,
                },
                _ = poll.tick() => {
                    if shared.lock().expect("link lock").failed {
                        break "the transport socket failed".to_string();
                    }
                    match media_transport::state(&bus, &transport).await {
                        None => { configured = None; break "the transport disappeared".to_string() }
                        Some(s) if s == "idle" => break "the speaker suspended the stream".to_string(),
                        _ => {}
                    }
                    let d = media_transport::delay(&bus, &transport).await;
                    if d != last_delay {
                        tracing::info!(output = name, "speaker reports delay {:?} (1/10 ms)", d);
                        last_delay = d;
                        shared.lock().expect("link lock").reported_delay_ns = d.map(|v| v as i64 * 100_000);
                    }
                }
            }
        };
        tracing::warn!(output = name, "stream stopped: {reason}; reconnecting");
        publish(&shared, None, None, name);
        let _ = media_transport::release(&bus, &transport).await;
        tokio::time::sleep(RECONNECT_MIN).await;
    }
}

/// Collects endpoint events for up to `wait`, remembering the latest configuration.
async fn drain_until(
    events: &mut mpsc::UnboundedReceiver<EndpointEvent>,
    configured: &mut Option<(String, [u8; 4], Option<u16>)>,
    wait: Duration,
) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(EndpointEvent::SetConfiguration {
                transport,
                configuration,
                delay,
                ..
            })) => {
                if let Ok(c) = <[u8; 4]>::try_from(configuration.as_slice()) {
                    *configured = Some((transport, c, delay));
                    return;
                }
            }
            Ok(Some(EndpointEvent::ClearConfiguration { transport })) => {
                if configured.as_ref().is_some_and(|c| c.0 == transport) {
                    *configured = None;
                }
            }
            Ok(Some(EndpointEvent::Released)) => *configured = None,
            Ok(None) | Err(_) => return,
        }
    }
}

fn publish(shared: &SharedLink, link: Option<Link>, delay: Option<u16>, name: &str) {
    let mut st = shared.lock().expect("link lock");
    st.link = link.map(Arc::new);
    st.generation += 1;
    st.failed = false;
    st.reported_delay_ns = delay.map(|v| v as i64 * 100_000);
    if st.link.is_some() && st.reported_delay_ns.is_none() {
        tracing::warn!(
            output = name,
            "the speaker reports no delay; using the configured fallback"
        );
    }
}
