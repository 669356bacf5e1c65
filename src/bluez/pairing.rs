//! Speaker management through bluer: scanning, and headless pairing (a NoInputNoOutput agent: "just works").

use bluer::agent::Agent;
use bluer::{AdapterEvent, Address};
use futures::StreamExt;
use serde::Serialize;
use std::time::Duration;

/// A device seen while scanning.
#[derive(Debug, Clone, Serialize)]
pub struct Seen {
    /// Its address.
    pub address: String,
    /// Its name or alias.
    pub name: String,
    /// Whether it offers an A2DP sink.
    pub a2dp_sink: bool,
    /// Paired already.
    pub paired: bool,
}

async fn adapter_of(session: &bluer::Session, name: Option<&str>) -> bluer::Result<bluer::Adapter> {
    match name {
        Some(n) => session.adapter(n),
        None => session.default_adapter().await,
    }
}

/// Scans for `secs` seconds on `adapter` (default: the first) and lists what it saw.
pub async fn scan(adapter: Option<&str>, secs: u64) -> bluer::Result<Vec<Seen>> {
    let session = bluer::Session::new().await?;
    let adapter = adapter_of(&session, adapter).await?;
    adapter.set_powered(true).await?;
    let events = adapter.discover_devices().await?;
    futures::pin_mut!(events);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut seen = std::collections::BTreeSet::new();
    while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, events.next()).await {
        if let AdapterEvent::DeviceAdded(addr) = ev {
            seen.insert(addr);
        }
    }
    let sink: bluer::Uuid = crate::a2dp::A2DP_SINK_UUID.parse().expect("valid");
    let mut out = vec![];
    for addr in seen {
        let d = adapter.device(addr)?;
        let uuids = d.uuids().await?.unwrap_or_default();
        out.push(Seen {
            address: addr.to_string(),
            name: d.alias().await.unwrap_or_default(),
            a2dp_sink: uuids.contains(&sink),
            paired: d.is_paired().await.unwrap_or(false),
        });
    }
    Ok(out)
}

/// How `pair` looks for a device BlueZ does not know, within `discover_secs`: a BR/EDR inquiry first (an A2DP
/// speaker; no LE scan, which could make BlueZ pair a dual-mode speaker over LE), then an LE scan for the rest (an
/// LE Audio receiver, which answers no inquiry). Each phase at least 1 s.
pub fn discovery_phases(discover_secs: u64) -> Vec<(bluer::DiscoveryTransport, u64)> {
    let bredr = discover_secs.div_ceil(2).max(1);
    let le = discover_secs.saturating_sub(bredr).max(1);
    vec![
        (bluer::DiscoveryTransport::BrEdr, bredr),
        (bluer::DiscoveryTransport::Le, le),
    ]
}

/// Discovers on `transport` for up to `secs` s; whether `address` turned up.
async fn discover(
    adapter: &bluer::Adapter,
    address: Address,
    transport: bluer::DiscoveryTransport,
    secs: u64,
) -> bluer::Result<bool> {
    adapter
        .set_discovery_filter(bluer::DiscoveryFilter {
            transport,
            ..Default::default()
        })
        .await?;
    let events = adapter.discover_devices().await?;
    futures::pin_mut!(events);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(AdapterEvent::DeviceAdded(a))) if a == address => return Ok(true),
            Ok(Some(_)) => {}
            _ => return Ok(false),
        }
    }
}

/// Pairs with `address` from `adapter` (default: the first), trusts it and connects its A2DP sink if it has one.
/// Headless: a NoInputNoOutput agent answers BlueZ. Discovers for up to `discover_secs` if BlueZ does not know the
/// device ([`discovery_phases`]: BR/EDR, then LE).
pub async fn pair(address: Address, adapter: Option<&str>, discover_secs: u64) -> bluer::Result<String> {
    let session = bluer::Session::new().await?;
    let _agent = session
        .register_agent(Agent {
            request_default: true,
            ..Agent::default()
        })
        .await?;
    let adapter = adapter_of(&session, adapter).await?;
    adapter.set_powered(true).await?;
    adapter.set_pairable(true).await?;
    if !adapter.device_addresses().await?.contains(&address) {
        for (transport, secs) in discovery_phases(discover_secs) {
            if discover(&adapter, address, transport, secs).await? {
                break;
            }
        }
    }
    let device = adapter.device(address)?;
    if !device.is_paired().await? {
        device.pair().await?;
    }
    device.set_trusted(true).await?;
    let sink: bluer::Uuid = crate::a2dp::A2DP_SINK_UUID.parse().expect("valid");
    // An LE Audio receiver has no A2DP sink: nothing more to connect (the Broadcast Assistant connects it).
    if device.uuids().await?.unwrap_or_default().contains(&sink) {
        if let Err(e) = device.connect_profile(&sink).await {
            tracing::info!("paired; connecting the A2DP profile now failed ({e}); `run` connects it when needed");
        }
    }
    Ok(format!("{address} paired and trusted on {}", adapter.name()))
}

#[cfg(test)]
mod tests {
    use super::discovery_phases;
    use bluer::DiscoveryTransport::{BrEdr, Le};

    #[test]
    fn inquiry_first_then_an_le_scan() {
        assert_eq!(discovery_phases(20), vec![(BrEdr, 10), (Le, 10)]);
        assert_eq!(discovery_phases(7), vec![(BrEdr, 4), (Le, 3)]);
        assert_eq!(discovery_phases(0), vec![(BrEdr, 1), (Le, 1)]);
    }
}
