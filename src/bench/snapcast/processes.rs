//! The bench's child processes: real-time priority for them and for our readers, free ports, and stopping them.

use super::RT_PRIORITY;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// SCHED_FIFO at [`RT_PRIORITY`] for the calling thread, where allowed; true if set.
pub fn realtime_self() -> bool {
    crate::timeline::clock::SystemClock::realtime_priority(RT_PRIORITY).is_ok()
}

/// The reference player: `snapclient` (real-time where allowed, as [`realtime_command`]) joining the server on
/// 127.0.0.1:`stream_port` as `host_id` and writing what it plays to `file` (its file player), quietly.
pub fn reference_snapclient(stream_port: u16, host_id: &str, file: &std::path::Path) -> Command {
    let mut c = realtime_command("snapclient");
    c.args([
        "-h",
        "127.0.0.1",
        "-p",
        &stream_port.to_string(),
        "--hostID",
        host_id,
        "-i",
        "1",
    ])
    .arg(format!("--player=file:filename={}", file.display()))
    .args(["--logsink", "null"])
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    c
}

/// `program` under `chrt -f RT_PRIORITY` when that is allowed here, else plain.
pub fn realtime_command(program: &str) -> Command {
    let rt = Command::new("chrt")
        .args(["-f", &RT_PRIORITY.to_string(), "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if rt {
        let mut c = Command::new("chrt");
        c.args(["-f", &RT_PRIORITY.to_string(), program]);
        c
    } else {
        Command::new(program)
    }
}

pub(super) fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("finding a free port: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Child processes stopped when dropped (the work directory stays; [`run`] removes it after a good run).
pub(crate) struct Children {
    pub(crate) procs: Vec<Child>,
}

impl Drop for Children {
    fn drop(&mut self) {
        for p in &mut self.procs {
            // SIGTERM first: bluebridge exits cleanly on it.
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(p.id() as i32), nix::sys::signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        for p in &mut self.procs {
            while p.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}
