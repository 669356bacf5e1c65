//! Running the reference Sendspin server (`tests/sendspin/server.py`, aiosendspin 10.2.1 in the trixie root that
//! `scripts/sendspin-server-setup` builds) from a test, and reading what it prints.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// The root `scripts/sendspin-server-setup` builds (`BLUEBRIDGE_SENDSPIN_CACHE` as there).
pub fn server_root() -> std::path::PathBuf {
    let cache = std::env::var_os("BLUEBRIDGE_SENDSPIN_CACHE")
        .map(Into::into)
        .unwrap_or_else(|| {
            std::path::Path::new(&std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/bluebridge-sendspin")
        });
    cache.join("root-trixie")
}

/// Why the server cannot run here (no venv, not root), or None. With `BLUEBRIDGE_CI` set a missing server is a
/// failure, not a skip (`scripts/test` builds the venv first).
pub fn unavailable(test: &str) -> Option<String> {
    let root = server_root();
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    let why = if !root.join("opt/venv/.done").exists() {
        format!(
            "no aiosendspin venv at {} (run scripts/sendspin-server-setup)",
            root.display()
        )
    } else if !is_root {
        "running the aiosendspin server needs root (chroot)".to_string()
    } else {
        return None;
    };
    assert!(
        std::env::var_os("BLUEBRIDGE_CI").is_none(),
        "BLUEBRIDGE_CI is set: {why}"
    );
    eprintln!("SKIPPED {test}: {why}");
    Some(why)
}

/// A running `server.py` (or another script of tests/sendspin/) in the root; killed on drop.
pub struct Server {
    child: Child,
    events: Receiver<serde_json::Value>,
    reader: Option<std::thread::JoinHandle<()>>,
    script: std::path::PathBuf,
    /// Its first line (`{"event": "listening", …}`).
    pub listening: serde_json::Value,
}

impl Server {
    /// Starts tests/sendspin/`script` with `args` and waits (30 s) for its `listening` line.
    pub fn start(script: &str, args: &[String]) -> Server {
        let root = server_root();
        let copy = format!("srv/{}-{}.py", script.trim_end_matches(".py"), std::process::id());
        std::fs::copy(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/sendspin")
                .join(script),
            root.join(&copy),
        )
        .unwrap();
        let mut child = Command::new("chroot")
            .arg(&root)
            .args(["/opt/venv/bin/python", &format!("/{copy}")])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chroot");
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        let listening: serde_json::Value = events
            .recv_timeout(Duration::from_secs(30))
            .expect("the server did not start");
        assert_eq!(listening["event"], "listening", "{listening}");
        Server {
            child,
            events,
            reader: Some(reader),
            script: root.join(copy),
            listening,
        }
    }

    /// `ws://127.0.0.1:PORT/PATH`.
    pub fn url(&self) -> String {
        format!(
            "ws://127.0.0.1:{}{}",
            self.listening["port"],
            self.listening["path"].as_str().unwrap_or("/sendspin")
        )
    }

    /// Every event until `{"event": "done"}` or `within`; then stops the server and returns them with its stderr.
    pub fn finish(mut self, within: Duration) -> (Vec<serde_json::Value>, String) {
        let mut events = vec![self.listening.clone()];
        let until = Instant::now() + within;
        while let Ok(v) = self
            .events
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            let done = v["event"] == "done";
            events.push(v);
            if done {
                break;
            }
        }
        let _ = self.child.kill();
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut err);
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        (events, err)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.script);
    }
}

/// The server's last `player` event for the player named `name`.
pub fn last_player<'a>(events: &'a [serde_json::Value], name: &str) -> Option<&'a serde_json::Value> {
    events
        .iter()
        .rev()
        .find(|e| e["event"] == "player" && e["name"] == name)
}

/// `bluebridge run --config CFG` with its log in `log`; stopped with SIGTERM by [`Player::stop`].
pub struct Player {
    child: Child,
    log: std::path::PathBuf,
}

impl Player {
    /// Starts bluebridge on `cfg`, its stderr into `log`.
    pub fn start(cfg: &std::path::Path, log: std::path::PathBuf) -> Player {
        let child = Command::new(env!("CARGO_BIN_EXE_bluebridge"))
            .args(["run", "--config", cfg.to_str().unwrap()])
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Player { child, log }
    }

    /// Stops it (SIGTERM, then waits) and returns its log.
    pub fn stop(mut self) -> String {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
