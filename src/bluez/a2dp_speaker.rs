//! The control side of A2DP speakers: one source endpoint per adapter, and per speaker a task that connects it,
//! acquires its transport when BlueZ configures one, follows its `Delay`, and reconnects with backoff when the
//! speaker powers off, walks out of range or the link fails (BlueZ itself retries only after link loss).

use super::media::{MediaBus, MediaError};
use super::media_endpoint::{register_a2dp_source, EndpointEvent, EndpointHandle};
use super::media_transport::{self, TransportProps};
use crate::a2dp::sbc_caps::SbcQuality;
use crate::a2dp::A2DP_SINK_UUID;
use crate::output::a2dp::{Link, LinkState, SharedLink};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
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

/// Why a speaker could not be placed on an adapter automatically.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// BlueZ lists no adapter.
    #[error("no Bluetooth adapter")]
    NoAdapter,
    /// Every adapter carries the configured maximum.
    #[error(
        "every adapter ({adapters}) already carries {max} A2DP speakers (bluetooth.max_a2dp_per_adapter = {max}); \
         add an adapter, raise the limit, or pin this speaker with `adapter = \"hciN\"`"
    )]
    Full {
        /// The adapters, comma-separated.
        adapters: String,
        /// The limit.
        max: usize,
    },
}

/// Automatic placement: the adapter carrying the fewest speakers (the first by name among equals), if it carries
/// fewer than `max`. `placed` counts speakers per adapter name (pinned ones included).
pub fn choose_adapter(
    adapters: &[String],
    placed: &HashMap<String, usize>,
    max: usize,
) -> Result<String, PlacementError> {
    let mut names: Vec<&String> = adapters.iter().collect();
    names.sort();
    let load = |n: &String| placed.get(n).copied().unwrap_or(0);
    let best = names.iter().min_by_key(|n| load(n)).ok_or(PlacementError::NoAdapter)?;
    if load(best) >= max {
        return Err(PlacementError::Full {
            adapters: names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", "),
            max,
        });
    }
    Ok((*best).clone())
}

/// Speakers per adapter, from the routes' device paths (`/org/bluez/hciN/dev_…`).
fn placed_counts(routes: &Routes) -> HashMap<String, usize> {
    let mut placed = HashMap::new();
    for path in routes.lock().expect("routes lock").keys() {
        if let Some(adapter) = path.strip_prefix("/org/bluez/").and_then(|r| r.split('/').next()) {
            *placed.entry(adapter.to_string()).or_default() += 1;
        }
    }
    placed
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
        tokio::spawn(speaker_task(
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

/// Keeps one speaker streaming for as long as its output exists (`shared` can be upgraded). Ends when the output
/// is removed (releases the stream and disconnects the speaker) or when another output took the speaker over (its
/// event channel closed; releases the stream, leaves the connection to the new owner).
async fn speaker_task(
    spec: SpeakerSpec,
    adapter: bluer::Adapter,
    bus: MediaBus,
    route: Route,
    mut events: mpsc::UnboundedReceiver<EndpointEvent>,
    shared: Weak<Mutex<LinkState>>,
    connecting: Arc<tokio::sync::Mutex<()>>,
) {
    let mut configured = route.inherited.clone();
    let name = spec.name.as_str();
    let device_path = route.device_path.clone();
    let mut backoff = RECONNECT_MIN;
    let mut acquire_failures = 0;
    loop {
        // 0. Still wanted?
        if events.is_closed() || !route.current() {
            tracing::info!(output = name, "{}: handed over to another output", spec.address);
            return;
        }
        if shared.strong_count() == 0 {
            tracing::info!(output = name, "output removed: disconnecting {}", spec.address);
            if let Ok(device) = adapter.device(spec.address) {
                let _ = device.disconnect().await;
            }
            return;
        }
        // 0b. Idle (released after a silence)? Leave the speaker alone until sound returns.
        if wait_while_idle(&shared, &events, &route).await {
            tracing::info!(output = name, "sound again: connecting {}", spec.address);
        }
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
            let turn = connecting.lock().await; // one speaker at a time per adapter
            tracing::info!(output = name, "connecting to {} ({})", spec.address, device_path);
            let result = tokio::time::timeout(Duration::from_secs(30), device.connect_profile(&uuid)).await;
            drop(turn);
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e))
                    if matches!(
                        e.kind,
                        bluer::ErrorKind::AlreadyConnected | bluer::ErrorKind::AlreadyExists
                    ) => {}
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
                // The transport may still be held by the task this one took over from (a reload): try it again
                // a few times while it exists, then reconnect.
                acquire_failures += 1;
                if acquire_failures >= ACQUIRE_ATTEMPTS || media_transport::state(&bus, &transport).await.is_none() {
                    configured = None;
                    acquire_failures = 0;
                }
                tracing::warn!(output = name, "{e}; retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RECONNECT_MAX);
                continue;
            }
        };
        tracing::info!(output = name, "acquired {transport} (write MTU {})", acquired.write_mtu);
        backoff = RECONNECT_MIN;
        acquire_failures = 0;
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
        // 4. Follow it until it goes: its properties by PropertiesChanged, re-read in full now and then.
        let mut watch = match media_transport::watch(&bus, &transport).await {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(
                    output = name,
                    "{e}; reading its properties every {REREAD_INTERVAL:?} instead"
                );
                None
            }
        };
        let mut props = media_transport::properties(&bus, &transport)
            .await
            .unwrap_or(TransportProps {
                delay_dms: delay,
                ..TransportProps::default()
            });
        let mut last_delay = delay;
        let mut volume = VolumeFollower::default();
        let mut reread = tokio::time::interval(REREAD_INTERVAL);
        reread.tick().await; // the first tick is now: the properties were just read
        let changed = match shared.upgrade() {
            Some(link) => link.lock().expect("link lock").changed.clone(),
            None => Arc::default(),
        };
        let reason = loop {
            // Woken by the real-time side (volume, silence, a failed socket), by BlueZ (Delay, State, Volume) or
            // by the periodic re-read.
            tokio::select! {
                _ = changed.notified() => {}
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
                    Some(_) => continue,
                    None => break "another output took the speaker over".to_string(),
                },
                u = async { match watch.as_mut() { Some(w) => w.next().await, None => std::future::pending().await } } => {
                    match u {
                        Some(u) => props.apply(&u),
                        None => {
                            tracing::warn!(output = name, "lost the subscription to {transport}'s properties; reading them every {REREAD_INTERVAL:?}");
                            watch = None;
                        }
                    }
                    if watch.as_ref().is_some_and(|w| w.take_lagged()) {
                        reread.reset_immediately();
                    }
                }
                _ = reread.tick() => match media_transport::properties(&bus, &transport).await {
                    Ok(p) => props = p,
                    Err(e) if e.is_gone() => {
                        configured = None;
                        break "the transport disappeared".to_string();
                    }
                    Err(e) => tracing::debug!(output = name, "{e} (not taken as gone)"),
                },
            }
            let Some(link) = shared.upgrade() else {
                break "the output was removed".to_string();
            };
            let (idle, failed) = {
                let st = link.lock().expect("link lock");
                (st.idle, st.failed)
            };
            if failed {
                break "the transport socket failed".to_string();
            }
            if idle {
                break "silence: released until sound returns".to_string();
            }
            if spec.avrcp_volume {
                volume.follow(&bus, &transport, props.volume, &link, name).await;
            }
            drop(link);
            if props.state.as_deref() == Some("idle") {
                break "the speaker suspended the stream".to_string();
            }
            if props.delay_dms != last_delay {
                tracing::info!(output = name, "speaker reports delay {:?} (1/10 ms)", props.delay_dms);
                last_delay = props.delay_dms;
                if let Some(link) = shared.upgrade() {
                    link.lock().expect("link lock").reported_delay_ns = last_delay.map(|v| v as i64 * 100_000);
                }
            }
        };
        drop(watch);
        publish(&shared, None, None, name);
        let _ = media_transport::release(&bus, &transport).await;
        if events.is_closed() || shared.strong_count() == 0 {
            tracing::info!(output = name, "stream stopped: {reason}");
            continue; // step 0 ends the task
        }
        if shared.upgrade().is_some_and(|l| l.lock().expect("link lock").idle) {
            // The transport stays configured: Acquire starts it again (AVDTP START) when sound returns.
            tracing::info!(output = name, "stream released: {reason}");
            continue;
        }
        tracing::warn!(output = name, "stream stopped: {reason}; reconnecting");
        tokio::time::sleep(RECONNECT_MIN).await;
    }
}

/// While the output is idle (released after a silence), waits for sound to return, the output to go or another
/// output to take the speaker over. True if it waited.
async fn wait_while_idle(
    shared: &Weak<Mutex<LinkState>>,
    events: &mpsc::UnboundedReceiver<EndpointEvent>,
    route: &Route,
) -> bool {
    let mut waited = false;
    loop {
        let Some(link) = shared.upgrade() else { return waited };
        let (idle, changed) = {
            let st = link.lock().expect("link lock");
            (st.idle, st.changed.clone())
        };
        drop(link);
        if !idle || events.is_closed() || !route.current() {
            return waited;
        }
        waited = true;
        let _ = tokio::time::timeout(POLL_INTERVAL, changed.notified()).await;
    }
}

/// Keeps the speaker's AVRCP absolute volume at what the output wants, and the output told whether the speaker
/// applies it. BlueZ shows `Volume` on the transport only once AVRCP reported an absolute volume (often a moment
/// after the stream started), so it is followed as its changes come in. A change made on the speaker itself (its
/// buttons) is shown in status and left alone until the output's own volume changes again.
#[derive(Debug, Default)]
struct VolumeFollower {
    /// The level we last set, if any.
    set: Option<u16>,
    /// The level last read.
    seen: Option<u16>,
    /// Setting failed: the speaker does not really take absolute volume; software volume from now on.
    refused: bool,
}

impl VolumeFollower {
    /// `now`: the speaker's `Volume` as last heard from BlueZ.
    async fn follow(
        &mut self,
        bus: &MediaBus,
        transport: &str,
        now: Option<u16>,
        link: &Arc<Mutex<LinkState>>,
        name: &str,
    ) {
        if self.refused {
            return;
        }
        let wanted = link
            .lock()
            .expect("link lock")
            .wanted_volume_pct
            .map(media_transport::level_for_pct);
        match volume_action(self.set, self.seen, now, wanted) {
            VolumeAction::Keep => {}
            VolumeAction::Lost => {
                tracing::info!(
                    output = name,
                    "the speaker no longer offers absolute volume: software volume"
                );
                self.set = None;
            }
            VolumeAction::ChangedOnSpeaker(level) => {
                tracing::info!(output = name, "volume changed on the speaker: {level}/127");
            }
            VolumeAction::Set(level) => match media_transport::set_volume(bus, transport, level).await {
                Ok(()) => {
                    if self.set.is_none() {
                        tracing::info!(
                            output = name,
                            "the speaker offers AVRCP absolute volume: set to {level}/127"
                        );
                    }
                    self.set = Some(level);
                }
                Err(e) => {
                    tracing::warn!(output = name, "{e}; using software volume for this speaker");
                    self.refused = true;
                }
            },
        }
        self.seen = now;
        let mut st = link.lock().expect("link lock");
        // The samples go out at full scale only once the speaker itself is at our level.
        st.device_volume = !self.refused && self.set.is_some() && now.is_some();
        st.device_level = if st.device_volume { now } else { None };
    }
}

/// What to do about the speaker's volume, given the level we last set, the level last read, the level read now
/// (None: no absolute volume) and the level the output wants (None: not known yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VolumeAction {
    /// Nothing to do.
    Keep,
    /// Set the speaker to this level.
    Set(u16),
    /// Somebody changed it on the speaker: leave it.
    ChangedOnSpeaker(u16),
    /// The property went away.
    Lost,
}

fn volume_action(set: Option<u16>, seen: Option<u16>, now: Option<u16>, wanted: Option<u16>) -> VolumeAction {
    let (Some(now), Some(wanted)) = (now, wanted) else {
        return if now.is_none() && set.is_some() {
            VolumeAction::Lost
        } else {
            VolumeAction::Keep
        };
    };
    match set {
        // First sight of the property, or our own wish changed: apply it.
        None => VolumeAction::Set(wanted),
        Some(s) if s != wanted => VolumeAction::Set(wanted),
        // The speaker moved away from what we set and from what it showed last time: a button press.
        Some(s) if now != s && seen != Some(now) => VolumeAction::ChangedOnSpeaker(now),
        Some(_) => VolumeAction::Keep,
    }
}

/// Collects endpoint events for up to `wait`, remembering the latest configuration.
async fn drain_until(
    events: &mut mpsc::UnboundedReceiver<EndpointEvent>,
    configured: &mut Option<Configured>,
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

fn publish(shared: &Weak<Mutex<LinkState>>, link: Option<Link>, delay: Option<u16>, name: &str) {
    let Some(shared) = shared.upgrade() else { return };
    let mut st = shared.lock().expect("link lock");
    st.link = link.map(Arc::new);
    st.generation += 1;
    st.failed = false;
    st.reported_delay_ns = delay.map(|v| v as i64 * 100_000);
    // A new stream starts on software volume until the speaker is seen at our level.
    st.device_volume = false;
    st.device_level = None;
    if st.link.is_some() && st.reported_delay_ns.is_none() {
        tracing::warn!(
            output = name,
            "the speaker reports no delay; using the configured fallback"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn counts(v: &[(&str, usize)]) -> HashMap<String, usize> {
        v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    #[test]
    fn placement_spreads_speakers_and_keeps_the_limit() {
        /// Adapters, speakers already placed, limit, expected adapter (None: every adapter is full).
        type Case<'a> = (&'a [&'a str], &'a [(&'a str, usize)], usize, Option<&'a str>);
        let cases: &[Case] = &[
            (&["hci0"], &[], 2, Some("hci0")),
            (&["hci1", "hci0"], &[], 2, Some("hci0")), // first by name among equals
            (&["hci0", "hci1"], &[("hci0", 1)], 2, Some("hci1")),
            (&["hci0", "hci1"], &[("hci0", 1), ("hci1", 1)], 2, Some("hci0")),
            (&["hci0", "hci1"], &[("hci0", 2), ("hci1", 1)], 2, Some("hci1")),
            (&["hci0", "hci1"], &[("hci0", 2), ("hci1", 2)], 2, None),
            (&["hci0"], &[("hci0", 1)], 1, None),
            (&["hci0"], &[("hci0", 2)], 3, Some("hci0")),
            // Speakers pinned to an adapter that is gone still count nowhere else.
            (&["hci1"], &[("hci0", 5)], 2, Some("hci1")),
        ];
        for (adapters, placed, max, want) in cases {
            let got = choose_adapter(&names(adapters), &counts(placed), *max);
            match want {
                Some(a) => assert_eq!(got.as_deref(), Ok(*a), "{adapters:?} {placed:?} max {max}"),
                None => {
                    let e = got.unwrap_err();
                    assert!(matches!(e, PlacementError::Full { max: m, .. } if m == *max), "{e:?}");
                    let msg = e.to_string();
                    assert!(
                        msg.contains("bluetooth.max_a2dp_per_adapter") && msg.contains("hci0"),
                        "{msg}"
                    );
                }
            }
        }
        assert_eq!(choose_adapter(&[], &HashMap::new(), 2), Err(PlacementError::NoAdapter));
    }

    #[test]
    fn placement_counts_come_from_the_routes() {
        let routes: Routes = Arc::default();
        let (tx, _rx) = mpsc::unbounded_channel();
        for (i, p) in [
            "/org/bluez/hci0/dev_00_11",
            "/org/bluez/hci0/dev_00_12",
            "/org/bluez/hci1/dev_00_13",
        ]
        .iter()
        .enumerate()
        {
            routes.lock().unwrap().insert(p.to_string(), (i as u64, tx.clone()));
        }
        assert_eq!(placed_counts(&routes), counts(&[("hci0", 2), ("hci1", 1)]));
    }

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
    #[test]
    fn volume_follows_our_wish_and_leaves_a_change_made_on_the_speaker() {
        use VolumeAction::{ChangedOnSpeaker, Keep, Lost, Set};
        // (level we set, level seen last, level now, level wanted) → action
        type Case = (Option<u16>, Option<u16>, Option<u16>, Option<u16>, VolumeAction);
        let cases: &[Case] = &[
            (None, None, None, Some(64), Keep),                // no absolute volume: software
            (None, None, Some(127), None, Keep),               // the player has not said yet
            (None, None, Some(127), Some(64), Set(64)),        // the property appears: apply ours
            (Some(64), Some(127), Some(64), Some(64), Keep),   // it took it
            (Some(64), Some(64), Some(64), Some(80), Set(80)), // our volume changed
            (Some(64), Some(64), Some(90), Some(64), ChangedOnSpeaker(90)), // a button on the speaker
            (Some(64), Some(90), Some(90), Some(64), Keep),    // … reported once, then left alone
            (Some(64), Some(90), Some(95), Some(64), ChangedOnSpeaker(95)),
            (Some(64), Some(90), Some(90), Some(70), Set(70)), // until ours changes again
            (Some(64), Some(64), None, Some(64), Lost),        // AVRCP went away
        ];
        for &(set, seen, now, wanted, want) in cases {
            assert_eq!(
                volume_action(set, seen, now, wanted),
                want,
                "{set:?} {seen:?} {now:?} {wanted:?}"
            );
        }
    }

    #[test]
    fn avrcp_levels_span_0_to_127() {
        use media_transport::level_for_pct;
        assert_eq!(
            [
                level_for_pct(0),
                level_for_pct(50),
                level_for_pct(100),
                level_for_pct(255)
            ],
            [0, 64, 127, 127]
        );
    }
}
