//! The commands that talk to the running service over its control socket (`status`, `speakers`, `set-offset`,
//! `set-volume`, `enable`, `disable`, `reload`), and printing their answers.

use crate::cli_args::SocketArg;
use anyhow::Result;
use bluebridge::control::protocol::{ReloadReport, Request, Speaker, SpeakersReport, StatusReport};

/// Writes to stdout; a closed pipe (`bluebridge status | head`) is not an error.
pub fn out(text: &str) -> Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// One request to the running service over its control socket, its answer printed.
pub fn control(socket: &SocketArg, req: Request, json: bool) -> Result<()> {
    let (result, warnings) =
        bluebridge::control::client::call(&socket.socket, &req, bluebridge::control::client::DEFAULT_TIMEOUT)?;
    for w in &warnings {
        eprintln!("bluebridge: warning: {w}");
    }
    if json {
        return out(&format!("{}\n", serde_json::to_string_pretty(&result)?));
    }
    let text = match req {
        Request::Status => serde_json::from_value::<StatusReport>(result)?.human(),
        Request::Speakers => serde_json::from_value::<SpeakersReport>(result)?.human(),
        Request::Reload => format!(
            "reloaded: {}\n",
            serde_json::from_value::<ReloadReport>(result)?.message
        ),
        _ => format!("{}\n", serde_json::from_value::<Speaker>(result)?.human()),
    };
    out(&text)
}
