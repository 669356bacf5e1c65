//! `bluebridge run` as a service, driven as a user would: through the CLI on its control socket, with signals,
//! across restarts; plus its systemd notifications and metrics.

use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bluebridge"))
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// A running `bluebridge run` in its own directory (config, state, socket, log).
struct Service {
    dir: PathBuf,
    child: Child,
}

impl Service {
    fn config_path(dir: &Path) -> PathBuf {
        dir.join("c.toml")
    }

    /// Writes the config: `outputs` (TOML) after a tone source, and a `[service]` table pointing into `dir`.
    fn write_config(dir: &Path, outputs: &str, extra_service: &str) {
        let text = format!(
            "[source]\nkind = \"tone\"\nbuffer_ms = 100\n\n{outputs}\n[service]\ncontrol_socket = \"{}\"\nstate_dir = \"{}\"\n{extra_service}",
            dir.join("c.sock").display(),
            dir.join("state").display()
        );
        std::fs::write(Self::config_path(dir), text).unwrap();
    }

    fn start(dir: &Path) -> Self {
        Self::start_with(dir, &[])
    }

    fn start_with(dir: &Path, env: &[(&str, &str)]) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("log"))
            .unwrap();
        let mut cmd = bin();
        cmd.args(["run", "--config", Self::config_path(dir).to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let s = Self {
            dir: dir.to_path_buf(),
            child,
        };
        let t = Instant::now();
        while !s.cli(&["status", "--json"]).status.success() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "no control socket; log:\n{}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("c.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn cli(&self, args: &[&str]) -> Output {
        bin().args(args).arg("--socket").arg(self.socket()).output().unwrap()
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert!(
            o.status.success(),
            "{args:?}: {}\nlog:\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.log()
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Runs a CLI command that must fail with exit status 1; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let o = self.cli(args);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{args:?} should fail: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8(o.stderr).unwrap()
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.ok(&["status", "--json"])).unwrap()
    }

    /// Polls the status until `pred` holds (status snapshots are published about once a second).
    fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let t = Instant::now();
        loop {
            let s = self.status();
            if pred(&s) {
                return s;
            }
            assert!(
                t.elapsed() < Duration::from_secs(8),
                "timed out waiting for {what}: {s:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM; it must be gone within 2 s, successfully.
    fn stop(mut self) {
        signal(&self.child, libc::SIGTERM);
        let t = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "did not stop within 2 s; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(status.success(), "{status:?}; log:\n{}", self.log());
        assert!(!self.socket().exists(), "socket left behind");
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn output<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name} in {status:#}"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

const TWO_SIMS: &str =
    "[[output]]\nname = \"kitchen\"\nkind = \"sim\"\n\n[[output]]\nname = \"hall\"\nkind = \"sim\"\nvolume = 80\n";

#[test]
fn cli_changes_show_in_status_and_metrics_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    Service::write_config(dir.path(), TWO_SIMS, &format!("metrics = \"127.0.0.1:{port}\"\n"));
    let svc = Service::start(dir.path());
    let s = svc.status();
    assert_eq!(s["source"]["kind"], "tone");
    assert_eq!(s["outputs"].as_array().unwrap().len(), 2);
    assert_eq!(output(&s, "hall")["volume_pct"], 80);
    assert_eq!(output(&s, "kitchen")["enabled"], true);

    assert!(svc.ok(&["set-offset", "kitchen", "12.5"]).contains("offset +12.5 ms"));
    assert!(svc.ok(&["set-offset", "kitchen", "-3"]).contains("offset -3.0 ms"));
    assert!(svc.ok(&["set-volume", "hall", "40"]).contains("volume 40 %"));
    assert!(svc.ok(&["disable", "hall"]).contains("hall: disabled"));
    let s = svc.wait_for("the offset in the delay", |s| {
        output(s, "kitchen")["delay"]["offset_ms"] == -3.0 && output(s, "kitchen")["state"] == "playing"
    });
    assert_eq!(output(&s, "kitchen")["offset_ms"], -3.0);
    let hall = output(&s, "hall");
    assert_eq!(
        (&hall["enabled"], &hall["state"], &hall["volume_pct"]),
        (&Value::Bool(false), &"disabled".into(), &40.into())
    );
    assert!(svc.ok(&["enable", "hall"]).contains("hall: enabled"));
    assert_eq!(output(&svc.status(), "hall")["enabled"], true);
    assert!(svc.ok(&["disable", "hall"]).contains("disabled"));

    // Bad requests: clear errors, exit status 1.
    let e = svc.fails(&["set-volume", "nope", "3"]);
    assert!(e.contains("no output \"nope\"; outputs: kitchen, hall"), "{e}");
    let e = svc.fails(&["set-volume", "hall", "101"]);
    assert!(e.contains("0-100"), "{e}");
    let e = svc.fails(&["set-offset", "hall", "9000"]);
    assert!(e.contains("between -5000 and 5000"), "{e}");
    // A raw client speaking another version is told so.
    let mut raw = std::os::unix::net::UnixStream::connect(svc.socket()).unwrap();
    raw.write_all(b"{\"v\":2,\"cmd\":\"status\"}\n").unwrap();
    let mut reply = [0u8; 512];
    let n = raw.read(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply[..n]);
    assert!(
        reply.contains("unsupported-version") && reply.contains("speaks version 1"),
        "{reply}"
    );

    // Human forms.
    let human = svc.ok(&["status"]);
    for want in [
        "source: tone",
        "kitchen (sim): playing",
        "hall (sim): disabled",
        "delay ",
        "resyncs",
    ] {
        assert!(human.contains(want), "{want:?} not in\n{human}");
    }
    let speakers = svc.ok(&["speakers"]);
    assert_eq!(speakers.lines().count(), 3, "{speakers}");
    let sj: Value = serde_json::from_str(&svc.ok(&["speakers", "--json"])).unwrap();
    assert_eq!(sj["speakers"][1]["name"], "hall");
    assert_eq!(sj["speakers"][1]["volume_pct"], 40);

    // Metrics agree with the status.
    let page = http_get(port, "/metrics");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains("bluebridge_output_delay_seconds{output=\"kitchen\",part=\"offset\"} -0.003"),
        "{page}"
    );
    assert!(
        page.contains("bluebridge_output_enabled{output=\"hall\",kind=\"sim\"} 0"),
        "{page}"
    );
    assert!(page.contains("bluebridge_engine_healthy 1"), "{page}");

    svc.stop();
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("state/state.json")).unwrap()).unwrap();
    assert_eq!(saved["outputs"]["kitchen"]["offset_ms"], -3.0);

    // Restarted: everything set at run time is back, over the config's values.
    let svc = Service::start(dir.path());
    let s = svc.status();
    assert_eq!(output(&s, "kitchen")["offset_ms"], -3.0);
    let hall = output(&s, "hall");
    assert_eq!(
        (&hall["enabled"], &hall["volume_pct"]),
        (&Value::Bool(false), &40.into())
    );
    assert!(s["state"]["problems"].as_array().unwrap().is_empty(), "{s:#}");
    svc.stop();
}

fn counter(s: &Value, name: &str, c: &str) -> u64 {
    output(s, name)["counters"][c].as_u64().unwrap_or(0)
}

#[test]
fn sighup_reload_keeps_unchanged_outputs_playing_and_refuses_a_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let sims = |names: &[&str]| {
        names
            .iter()
            .map(|n| format!("[[output]]\nname = \"{n}\"\nkind = \"sim\"\n"))
            .collect::<String>()
    };
    Service::write_config(dir.path(), &sims(&["keep", "change", "gone"]), "");
    let svc = Service::start(dir.path());
    let before = svc.wait_for("a second of audio rendered", |s| {
        counter(s, "keep", "rendered_frames") > 48_000 && output(s, "keep")["synced"] == true
    });
    let frames_before = counter(&before, "keep", "rendered_frames");
    let resyncs_before = output(&before, "keep")["resyncs"].as_u64().unwrap();

    // keep: the same; change: another sim clock (rebuilt); gone: removed; extra: added.
    let new = format!(
        "{}[[output]]\nname = \"change\"\nkind = \"sim\"\nsim = {{ ppm = 50 }}\n{}",
        sims(&["keep"]),
        sims(&["extra"])
    );
    Service::write_config(dir.path(), &new, "");
    signal(&svc.child, libc::SIGHUP);
    let s = svc.wait_for("the reload and the new output playing", |s| {
        s["reload"]["ok"] == true
            && s["outputs"].as_array().unwrap().len() == 3
            && output(s, "extra")["state"] == "playing"
    });
    let msg = s["reload"]["message"].as_str().unwrap();
    for want in ["added extra", "removed gone", "rebuilt change", "unchanged keep"] {
        assert!(msg.contains(want), "{want:?} not in {msg:?}");
    }
    // The unchanged output was not re-opened: its counters went on (a new one starts from zero).
    let keep_frames = counter(&s, "keep", "rendered_frames");
    assert!(keep_frames > frames_before, "{keep_frames} <= {frames_before}");
    assert!(output(&s, "keep")["resyncs"].as_u64().unwrap() >= resyncs_before);
    assert!(counter(&s, "change", "rendered_frames") < keep_frames);
    assert!(counter(&s, "extra", "rendered_frames") < keep_frames);

    // A broken config is refused with its line, and the running one stays.
    std::fs::write(
        Service::config_path(dir.path()),
        "[source]\nkind = \"tone\"\n[[output]]\nname = \"x\"\nkind = \"sim\"\nvolume = 300\n",
    )
    .unwrap();
    signal(&svc.child, libc::SIGHUP);
    let s = svc.wait_for("the refusal", |s| s["reload"]["ok"] == false);
    let msg = s["reload"]["message"].as_str().unwrap();
    assert!(msg.contains("c.toml:6:") && msg.contains("volume"), "{msg}");
    assert_eq!(s["outputs"].as_array().unwrap().len(), 3);
    let e = svc.fails(&["reload"]);
    assert!(e.contains("c.toml:6:"), "{e}");
    assert!(counter(&svc.status(), "keep", "rendered_frames") >= keep_frames);
    assert!(svc.log().contains("reload refused"), "{}", svc.log());
    svc.stop();
}

#[test]
fn a_corrupt_state_file_is_kept_aside_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    Service::write_config(dir.path(), TWO_SIMS, "");
    std::fs::create_dir(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("state/state.json"), "{\"outputs\": {\"kitchen\": ").unwrap();
    let svc = Service::start(dir.path());
    let s = svc.status();
    let problems = s["state"]["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 1, "{s:#}");
    let p = problems[0].as_str().unwrap();
    assert!(p.contains("corrupt") && p.contains("state.json.corrupt-"), "{p}");
    let kept: Vec<_> = std::fs::read_dir(dir.path().join("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("state.json.corrupt-"))
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("state").join(&kept[0])).unwrap(),
        "{\"outputs\": {\"kitchen\": "
    );
    assert!(svc.ok(&["status"]).contains("problem: "));
    assert!(svc.log().contains("corrupt"));
    // Playing from the config alone, and the next change writes a good file.
    svc.ok(&["set-volume", "kitchen", "55"]);
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("state/state.json")).unwrap()).unwrap();
    assert_eq!(saved["outputs"]["kitchen"]["volume_pct"], 55);
    svc.stop();
}

#[test]
fn systemd_hears_ready_status_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    Service::write_config(dir.path(), TWO_SIMS, "");
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let svc = Service::start_with(
        dir.path(),
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "2000000"),
        ],
    );
    let mut seen = String::new();
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    while !(seen.contains("READY=1") && seen.contains("WATCHDOG=1") && seen.contains("STATUS=playing")) {
        assert!(t.elapsed() < Duration::from_secs(6), "only {seen:?}");
        let n = sock.recv(&mut buf).unwrap();
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        seen.push('\n');
    }
    assert!(seen.contains("STATUS=playing: "), "{seen}");
    signal(&svc.child, libc::SIGTERM);
    let mut stopping = false;
    while let Ok(n) = sock.recv(&mut buf) {
        if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
            stopping = true;
            break;
        }
    }
    assert!(stopping);
    svc.stop();
}

#[test]
fn a_second_instance_on_the_same_socket_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    Service::write_config(dir.path(), TWO_SIMS, "");
    let svc = Service::start(dir.path());
    let o = bin()
        .args(["run", "--config", Service::config_path(dir.path()).to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("control socket") && e.contains("already running"), "{e}");
    // The first one is unharmed.
    assert_eq!(svc.status()["outputs"].as_array().unwrap().len(), 2);
    svc.stop();
}

#[test]
fn the_cli_says_when_no_service_is_listening() {
    let dir = tempfile::tempdir().unwrap();
    let o = bin()
        .args(["status", "--socket"])
        .arg(dir.path().join("none.sock"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("none.sock") && e.contains("is bluebridge running"), "{e}");
}

#[test]
fn the_packaged_default_config_is_valid() {
    let o = bin()
        .args([
            "check-config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/dist/bluebridge.toml"),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Issue 16: what the Snapcast server sets (group volume, mute, latency) is what status and metrics show.
#[test]
fn snapcast_volume_mute_and_latency_from_the_server_show_in_status_and_metrics() {
    use crate::snap_support::{SnapServer, StreamSpec};
    let server = SnapServer::start(&[StreamSpec::new("default", "pcm", "48000:16:2")]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(
        Service::config_path(dir.path()),
        format!(
            "[source]\nkind = \"snapcast\"\nurl = \"{}\"\n\n[[output]]\nname = \"kitchen\"\nkind = \"sim\"\nvolume = 80\n\n\
             [service]\ncontrol_socket = \"{}\"\nstate_dir = \"{}\"\nmetrics = \"127.0.0.1:{port}\"\n",
            server.url(),
            dir.path().join("c.sock").display(),
            dir.path().join("state").display()
        ),
    )
    .unwrap();
    let svc = Service::start(dir.path());
    let id = "bluebridge-kitchen";
    let t = Instant::now();
    while !rt.block_on(server.rpc("Server.GetStatus", serde_json::json!({})))["server"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["clients"].as_array().unwrap())
        .any(|c| c["id"] == id && c["connected"] == true)
    {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "never connected; log:\n{}",
            svc.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    rt.block_on(server.rpc(
        "Client.SetVolume",
        serde_json::json!({"id": id, "volume": {"muted": false, "percent": 37}}),
    ));
    rt.block_on(server.rpc("Client.SetLatency", serde_json::json!({"id": id, "latency": 25})));
    let s = svc.wait_for("the server's volume and latency", |s| {
        let o = output(s, "kitchen");
        o["group_volume_pct"] == 37 && o["delay"]["snapcast_latency_ms"] == 25.0
    });
    let o = output(&s, "kitchen");
    assert_eq!(o["volume_pct"], 80);
    assert_eq!(o["group_muted"], false);
    assert_eq!(o["effective_volume_pct"].as_f64(), Some(29.6));
    let human = svc.ok(&["status"]);
    assert!(human.contains("volume 29.6 % = group 37 % × local 80 %"), "{human}");
    assert!(human.contains("snapcast latency +25.00 ms"), "{human}");
    let page = http_get(port, "/metrics");
    for want in [
        "bluebridge_output_group_volume_percent{output=\"kitchen\",kind=\"sim\"} 37",
        "bluebridge_output_effective_volume_percent{output=\"kitchen\",kind=\"sim\"} 29.6",
        "bluebridge_output_delay_seconds{output=\"kitchen\",part=\"snapcast_latency\"} 0.025",
    ] {
        assert!(page.contains(want), "missing {want:?} in\n{page}");
    }
    rt.block_on(server.rpc(
        "Client.SetVolume",
        serde_json::json!({"id": id, "volume": {"muted": true, "percent": 37}}),
    ));
    let s = svc.wait_for("the group mute", |s| output(s, "kitchen")["group_muted"] == true);
    assert_eq!(output(&s, "kitchen")["effective_volume_pct"].as_f64(), Some(0.0));
    svc.stop();
}

/// Issue 18: `calibrate` through the service: refusals, a played sequence that puts the outputs back, offsets from
/// a recording applied, persisted with their record, shown in status and kept across a restart.
#[test]
fn calibrate_plays_a_sequence_applies_recording_offsets_and_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    Service::write_config(dir.path(), TWO_SIMS, "");
    let svc = Service::start(dir.path());
    svc.wait_for("both playing", |s| {
        output(s, "kitchen")["state"] == "playing" && output(s, "hall")["state"] == "playing"
    });
    assert!(svc.ok(&["disable", "hall"]).contains("disabled"));
    let e = svc.fails(&["calibrate"]);
    assert!(e.contains("name the outputs to measure, or give --all"), "{e}");
    let e = svc.fails(&["calibrate", "nope"]);
    assert!(e.contains("no output \"nope\""), "{e}");
    let e = svc.fails(&["calibrate", "--all", "--repeat", "11"]);
    assert!(e.contains("1-10"), "{e}");
    let e = svc.fails(&["calibrate", "--all", "--mic", "hw:CARD=NoSuchMic,DEV=0"]);
    assert!(e.contains("microphone") || e.contains("NoSuchMic"), "{e}");
    // The sequence plays through both (hall disabled: its burst plays all the same) and puts them back.
    let t = Instant::now();
    let out = svc.ok(&["calibrate", "kitchen", "hall", "--play-sequence"]);
    assert!(
        out.contains("played the sequence: reference kitchen at 0, then kitchen, hall every 4000 ms"),
        "{out}"
    );
    assert!(
        t.elapsed() >= Duration::from_secs(12),
        "it waits for the sequence to play"
    );
    let s = svc.status();
    assert_eq!(output(&s, "kitchen")["enabled"], true);
    assert_eq!(output(&s, "hall")["enabled"], false, "hall stays as the user had it");
    // Offsets from a recording (as `--from-recording` sends them): hall heard 3 ms after kitchen.
    let mut raw = std::os::unix::net::UnixStream::connect(svc.socket()).unwrap();
    raw.write_all(b"{\"v\":1,\"cmd\":\"calibrate\",\"from_recording\":{\"kitchen\":0.0,\"hall\":3.0}}\n")
        .unwrap();
    let mut reply = vec![0u8; 8192];
    let n = raw.read(&mut reply).unwrap();
    let reply: Value = serde_json::from_slice(&reply[..n]).unwrap();
    assert_eq!(reply["ok"], true, "{reply}");
    let s = svc.wait_for("the calibration in the delay", |s| {
        output(s, "kitchen")["delay"]["calibration_ms"] == -1.5
    });
    assert_eq!(output(&s, "hall")["calibrated"]["error_ms"], 1.5);
    assert_eq!(output(&s, "hall")["calibrated"]["source"], "recording");
    assert!(svc.ok(&["status"]).contains("calibrated "), "human status shows it");
    let e = svc.fails(&["calibrate", "--all", "--from-recording", "/nonexistent.wav"]);
    assert!(e.contains("/nonexistent.wav"), "{e}");
    svc.stop();
    let svc = Service::start(dir.path());
    let s = svc.status();
    assert_eq!(
        output(&s, "hall")["calibrated"]["error_ms"],
        1.5,
        "kept across a restart"
    );
    let sp: Value = serde_json::from_str(&svc.ok(&["speakers", "--json"])).unwrap();
    let hall = sp["speakers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "hall")
        .unwrap()
        .clone();
    assert_eq!(hall["calibration_ms"], 1.5);
    svc.stop();
}
