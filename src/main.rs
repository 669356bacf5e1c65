//! The `bluebridge` binary: command line, wiring, signals. The only place that knows every module.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "bluebridge", version, about = "Plays a multi-room group stream on Bluetooth speakers, in sync")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the Bluetooth adapters BlueZ knows (needs bluetoothd on the system bus).
    Adapters {
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BLUEBRIDGE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Adapters { json } => adapters(json),
    }
}

fn adapters(json: bool) -> Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let list = rt
        .block_on(bluebridge::bluez::adapters::list())
        .context("cannot list adapters through BlueZ (is bluetoothd running on the system bus?)")?;
    if json {
        println!("{}", serde_json::json!({ "adapters": list }));
    } else {
        for a in &list {
            println!("{}\t{}\t{}\t{}", a.name, a.address, if a.powered { "powered" } else { "off" }, a.alias);
        }
    }
    Ok(())
}
