//! Lists the Bluetooth adapters BlueZ knows, through bluer (`org.bluez.Adapter1`).

use serde::Serialize;

/// One adapter as BlueZ reports it.
#[derive(Debug, Clone, Serialize)]
pub struct AdapterInfo {
    /// The adapter's name, e.g. `hci0`.
    pub name: String,
    /// Its Bluetooth address.
    pub address: String,
    /// Whether it is powered.
    pub powered: bool,
    /// Its alias (friendly name).
    pub alias: String,
    /// The UUIDs of the services registered on it.
    pub uuids: Vec<String>,
}

/// Asks BlueZ (on the system bus) for every adapter it has.
pub async fn list() -> bluer::Result<Vec<AdapterInfo>> {
    let session = bluer::Session::new().await?;
    let mut out = Vec::new();
    for name in session.adapter_names().await? {
        let adapter = session.adapter(&name)?;
        let mut uuids: Vec<String> = adapter
            .uuids()
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(|u| u.to_string())
            .collect();
        uuids.sort();
        out.push(AdapterInfo {
            address: adapter.address().await?.to_string(),
            powered: adapter.is_powered().await?,
            alias: adapter.alias().await?,
            name,
            uuids,
        });
    }
    Ok(out)
}
