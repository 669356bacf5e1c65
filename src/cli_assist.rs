//! `bluebridge assist RECEIVER`: tells one LE Audio receiver, once, to play a configured broadcast output (as a
//! Broadcast Assistant over its BASS) and waits for it to sync; prints each state the receiver reports.

use anyhow::{bail, Context, Result};
use bluebridge::bap::bass::keeper::ReceiverState;
use bluebridge::config::Config;
use bluebridge::output::OutputSettings;
use std::time::Duration;

/// Most seconds `assist` waits for the receiver.
const SECONDS_MAX: u64 = 600;

/// What `assist` was asked.
#[derive(clap::Args, Debug)]
pub struct AssistArgs {
    /// The receiver's address, e.g. 00:11:22:33:44:55.
    receiver: String,
    /// The config whose broadcast output to hand over.
    #[arg(long, short, default_value = "/etc/bluebridge/bluebridge.toml")]
    config: String,
    /// The broadcast output (default: the only one).
    #[arg(long)]
    output: Option<String>,
    /// The Advertising_SID to tell (default: the one the kernel gives a BlueZ broadcast, 0).
    #[arg(long)]
    sid: Option<u8>,
    /// How long to wait for the receiver to sync, seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
}

/// Runs it; fails unless the receiver plays the broadcast in time.
pub fn run(a: AssistArgs) -> Result<()> {
    let receiver: bluer::Address = a
        .receiver
        .parse()
        .ok()
        .filter(|_| a.receiver.len() == 17)
        .ok_or_else(|| anyhow::anyhow!("{:?} is not a Bluetooth address like 00:11:22:33:44:55", a.receiver))?;
    if a.seconds == 0 || a.seconds > SECONDS_MAX {
        bail!("--seconds {} must be 1..={SECONDS_MAX}", a.seconds);
    }
    if let Some(s) = a.sid.filter(|s| *s > bluebridge::bap::bass::ADV_SID_MAX) {
        bail!("--sid {s} is over {}", bluebridge::bap::bass::ADV_SID_MAX);
    }
    let loaded = Config::load_all(&a.config)?;
    let broadcasts: Vec<_> = loaded
        .outputs
        .iter()
        .filter_map(|o| match &o.settings {
            OutputSettings::Broadcast(b) => Some((o.name.clone(), b.clone())),
            _ => None,
        })
        .filter(|(n, _)| a.output.as_ref().is_none_or(|w| w == n))
        .collect();
    let (name, settings) = match broadcasts.as_slice() {
        [one] => one.clone(),
        [] => match &a.output {
            Some(w) => bail!("{} has no broadcast output named {w:?}", a.config),
            None => bail!("{} has no broadcast output", a.config),
        },
        _ => bail!("{} has several broadcast outputs; name one with --output", a.config),
    };
    let broadcast_id = match settings.identity_warning(bluebridge::bluez::version::installed()) {
        None => bluebridge::bluez::edge::stable_broadcast_id(&name),
        Some(_) => 0,
    };
    let code = settings.config.code.as_ref().map(|c| *c.as_bytes());
    let rt = tokio::runtime::Runtime::new()?;
    let states = rt
        .block_on(async {
            let session = bluer::Session::new().await?;
            let ours = bluebridge::bluez::assistant::our_broadcast(
                &session,
                settings.adapter(),
                a.sid.unwrap_or(bluebridge::bluez::assistant::DEFAULT_SID),
                broadcast_id,
                code,
            )
            .await?;
            println!(
                "telling {receiver} about {name}: {} (type {}), SID {}, Broadcast_ID {:#08x}{}",
                bluer::Address(ours.source.address),
                ours.source.address_type,
                ours.source.adv_sid,
                ours.source.broadcast_id,
                if code.is_some() {
                    ", encrypted: the code goes over BASS"
                } else {
                    ""
                }
            );
            let r = bluebridge::bluez::assistant::assist_once(
                settings.adapter(),
                receiver,
                ours,
                Duration::from_secs(a.seconds),
            )
            .await?;
            anyhow::Ok(r)
        })
        .with_context(|| format!("assisting {receiver}"))?;
    for s in &states {
        println!("{receiver}: {}", s.word());
    }
    match states.last() {
        Some(s) if s.playing() => Ok(()),
        Some(ReceiverState::BadCode) => bail!("{receiver} says the broadcast code is wrong"),
        Some(s) => bail!(
            "{receiver} did not sync within {} s (last state: {})",
            a.seconds,
            s.word()
        ),
        None => bail!("no state from {receiver}"),
    }
}
