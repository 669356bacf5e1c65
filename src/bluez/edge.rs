//! The Bluetooth edge the outputs are given ([`crate::output::BluetoothEdge`]): it starts the BlueZ tasks that link
//! an `a2dp` output to its speaker (through the shared [`A2dpHub`]) and a `broadcast` output to its BIG.

use super::a2dp_speaker::{A2dpHub, SpeakerSpec};
use crate::output::a2dp::SharedLink;
use crate::output::a2dp_settings::A2dpSettings;
use crate::output::broadcast::SharedBig;
use crate::output::broadcast_settings::BroadcastSettings;
use crate::output::{BluetoothEdge, OutputError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// First retry of an A2DP speaker whose hub or adapter is not ready; doubled up to [`A2DP_RETRY_MAX`].
const A2DP_RETRY_MIN: Duration = Duration::from_secs(1);
/// Longest wait between retries.
const A2DP_RETRY_MAX: Duration = Duration::from_secs(30);

/// BlueZ, for the outputs: one per run.
pub struct BluezEdge {
    runtime: tokio::runtime::Handle,
    /// Created on first use by an `a2dp` output; shared by all of them (one endpoint per adapter).
    hub: Arc<tokio::sync::Mutex<Option<A2dpHub>>>,
    /// `bluetooth.max_a2dp_per_adapter`: automatic placement's limit (a reload may change it).
    max_a2dp_per_adapter: Arc<AtomicUsize>,
}

impl BluezEdge {
    /// An edge spawning its tasks on `runtime`, placing at most `max_a2dp_per_adapter` speakers per adapter.
    pub fn new(runtime: tokio::runtime::Handle, max_a2dp_per_adapter: usize) -> Self {
        Self {
            runtime,
            hub: Arc::default(),
            max_a2dp_per_adapter: Arc::new(max_a2dp_per_adapter.into()),
        }
    }

    /// Changes automatic placement's limit for speakers placed from now on.
    pub fn set_max_a2dp_per_adapter(&self, max: usize) {
        self.max_a2dp_per_adapter.store(max, Ordering::Relaxed);
    }
}

impl BluetoothEdge for BluezEdge {
    /// Starts the control side of an A2DP speaker in the background: it keeps retrying until BlueZ is there (and,
    /// when placed automatically, until an adapter has room), so a missing bluetoothd or adapter is logged and
    /// recovered from, never fatal. Gives up when the output is gone.
    fn start_a2dp(&self, name: &str, settings: &A2dpSettings, link: &SharedLink) -> Result<(), OutputError> {
        let hub = self.hub.clone();
        let max = self.max_a2dp_per_adapter.clone();
        let settings = settings.clone();
        let name = name.to_string();
        let weak = Arc::downgrade(link);
        self.runtime.spawn(async move {
            let mut delay = A2DP_RETRY_MIN;
            loop {
                let Some(shared) = weak.upgrade() else { return };
                let r: Result<(), super::media::MediaError> = async {
                    let mut guard = hub.lock().await;
                    if guard.is_none() {
                        *guard = Some(A2dpHub::new(settings.sbc_quality).await?);
                    }
                    let h = guard.as_mut().expect("just set");
                    let adapter = match &settings.adapter {
                        Some(a) => a.clone(),
                        None => h.place(max.load(Ordering::Relaxed)).await?,
                    };
                    let speaker = SpeakerSpec {
                        name: name.clone(),
                        adapter,
                        address: settings.address,
                        avrcp_volume: settings.avrcp_volume,
                    };
                    h.add_speaker(speaker, shared.clone()).await
                }
                .await;
                drop(shared);
                match r {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(output = name, "A2DP not ready: {e}; retrying in {delay:?}");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(A2DP_RETRY_MAX);
                    }
                }
            }
        });
        Ok(())
    }

    /// Starts a broadcast's control task. On a BlueZ that can put the broadcast's identity on its advertising set
    /// (≥ 5.87), the task advertises the Broadcast Name, PBP, a Broadcast_ID stable for this host and output, and
    /// the manufacturer data; on an older one it says once what is missing and broadcasts without them.
    fn start_broadcast(&self, name: &str, settings: &BroadcastSettings, big: &SharedBig) -> Result<(), OutputError> {
        // The Broadcast_ID receivers are told (0: unknown, the kernel's random one on a BlueZ before 5.87).
        let mut broadcast_id = 0;
        let identity = match settings.identity_warning(super::version::installed()) {
            Some(w) => {
                tracing::warn!(output = name, "{w}");
                None
            }
            None => {
                let host = host_name();
                broadcast_id = stable_broadcast_id(name);
                let id = settings.identity(host.as_deref(), broadcast_id);
                tracing::info!(
                    output = name,
                    "advertising Broadcast Name {:?}, Broadcast_ID {:#08x}, PBP features {:#04x}{}",
                    id.name,
                    id.broadcast_id,
                    id.features,
                    id.manufacturer
                        .as_ref()
                        .map(|m| format!(", manufacturer data for company {}", m.company))
                        .unwrap_or_default()
                );
                // Checked when the config was read; an error here would be a bug, not bad input.
                id.advertisement()
                    .map_err(|e| OutputError::Other(format!("broadcast identity: {e}")))
                    .map(Some)?
            }
        };
        self.runtime.spawn(super::broadcast_source::run(
            name.to_string(),
            settings.adapter().to_string(),
            settings.config.clone(),
            identity,
            Arc::downgrade(big),
        ));
        for &receiver in &settings.receivers {
            let (output, adapter, weak) = (name.to_string(), settings.adapter().to_string(), Arc::downgrade(big));
            let code = settings.config.code.as_ref().map(|c| *c.as_bytes());
            self.runtime.spawn(async move {
                let ours = loop {
                    match super::assistant::our_broadcast_on(&adapter, broadcast_id, code).await {
                        Ok(o) => break o,
                        Err(e) if weak.strong_count() > 0 => {
                            tracing::warn!(output, "assist {receiver}: {e}; retrying in {A2DP_RETRY_MAX:?}");
                            tokio::time::sleep(A2DP_RETRY_MAX).await;
                        }
                        Err(_) => return,
                    }
                };
                super::assistant::keep(output, adapter, receiver, ours, move || weak.strong_count() > 0).await;
            });
        }
        Ok(())
    }
}

/// The Broadcast_ID output `name` advertises on a BlueZ that carries its identity (≥ 5.87): stable for this host
/// and output.
pub fn stable_broadcast_id(name: &str) -> u32 {
    crate::bap::advertising::stable_broadcast_id(host_name().as_deref().unwrap_or(""), name)
}

/// This machine's host name (`/proc/sys/kernel/hostname`), if it has one.
fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}
