//! One speaker's task: connect, wait for BlueZ to configure the stream, acquire it, follow it (Delay, State,
//! Volume by `PropertiesChanged`) and start again with backoff when it goes.

use super::volume::VolumeFollower;
use super::SpeakerSpec;
use super::{
    Configured, Route, ACQUIRE_ATTEMPTS, CONFIGURE_TIMEOUT, POLL_INTERVAL, RECONNECT_MAX, RECONNECT_MIN,
    REREAD_INTERVAL,
};
use crate::a2dp::A2DP_SINK_UUID;
use crate::bluez::media::MediaBus;
use crate::bluez::media_endpoint::EndpointEvent;
use crate::bluez::media_transport::{self, TransportProps};
use crate::output::a2dp::{Link, LinkState};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// Keeps one speaker streaming for as long as its output exists (`shared` can be upgraded). Ends when the output
/// is removed (releases the stream and disconnects the speaker) or when another output took the speaker over (its
/// event channel closed; releases the stream, leaves the connection to the new owner).
pub(super) async fn speaker_task(
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
