//! `bluebridge adapters`, `scan` and `pair`: the Bluetooth side of the machine, through BlueZ.

use anyhow::{Context, Result};

pub fn adapters(json: bool) -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let list = rt
        .block_on(bluebridge::bluez::adapters::list())
        .context("cannot list adapters through BlueZ (is bluetoothd running on the system bus?)")?;
    if json {
        println!("{}", serde_json::json!({ "adapters": list }));
    } else {
        for a in &list {
            println!(
                "{}\t{}\t{}\t{}",
                a.name,
                a.address,
                if a.powered { "powered" } else { "off" },
                a.alias
            );
        }
    }
    Ok(())
}

pub fn scan(adapter: Option<&str>, seconds: u64, json: bool) -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let seen = rt
        .block_on(bluebridge::bluez::pairing::scan(adapter, seconds))
        .context("cannot scan through BlueZ (is bluetoothd running? is the adapter there?)")?;
    if json {
        println!("{}", serde_json::json!({ "devices": seen }));
    } else {
        for d in &seen {
            let kind = if d.a2dp_sink { "A2DP speaker" } else { "" };
            let paired = if d.paired { "paired" } else { "" };
            println!("{}\t{}\t{kind}\t{paired}", d.address, d.name);
        }
    }
    Ok(())
}

pub fn pair(address: &str, adapter: Option<&str>, seconds: u64) -> Result<()> {
    let addr: bluer::Address = address
        .parse()
        .map_err(|_| anyhow::anyhow!("{address:?} is not a Bluetooth address like 00:11:22:33:44:55"))?;
    let rt = tokio::runtime::Runtime::new()?;
    let msg = rt
        .block_on(bluebridge::bluez::pairing::pair(addr, adapter, seconds))
        .with_context(|| format!("pairing with {address} failed"))?;
    println!("{msg}");
    Ok(())
}
