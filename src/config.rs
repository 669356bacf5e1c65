//! The TOML configuration file: types, defaults and validation with errors that name the file, line and key.
//!
//! ```toml
//! [source]
//! kind = "tone"                  # tone | file | snapcast
//!
//! [[output]]
//! name = "kitchen"               # unique; also the speaker's identity towards the group server
//! kind = "sim"                   # sim | file | a2dp | pipe | broadcast (output::KINDS); sim, file, pipe and
//!                                # broadcast work with defaults, a2dp needs `address`
//! offset_ms = 0                  # manual per-output offset, may be negative
//!
//! [service]                        # optional; these are the defaults
//! control_socket = "/run/bluebridge/control.sock"
//! state_dir = "/var/lib/bluebridge"
//! # metrics = "127.0.0.1:9464"    # Prometheus endpoint; off unless set
//!
//! [bluetooth]                      # optional; the default
//! max_a2dp_per_adapter = 2         # automatic placement: A2DP speakers per adapter (1..=7)
//! ```
//! Unknown keys, bad values and missing fields are errors; nothing is silently ignored.

use crate::output::kinds::{self, OutputTable};
use crate::output::player::ChannelMap;
use crate::output::settings::SettingError;
pub use crate::output::OutputSpec;
use serde::Deserialize;
use toml::Spanned;

/// A configuration error, already formatted as `FILE:LINE:COL: message` (or, when the file cannot be read,
/// `cannot read config FILE: why`, marked by `line == 0`).
#[derive(Debug)]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// 1-based line (0: the file could not be read).
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong, naming the key.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "cannot read config {}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file, self.line, self.col, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// The file at `path` could not be read.
    fn unreadable(path: &str, e: &std::io::Error) -> Self {
        // The io::Error's Display ends in " (os error N)"; the OS text alone reads better.
        let text = e.to_string();
        let message = match text.rfind(" (os error ") {
            Some(i) => text[..i].to_string(),
            None => text,
        };
        ConfigError {
            file: path.to_string(),
            line: 0,
            col: 0,
            message,
        }
    }
}

/// One line of `check-config` output per item: the source, then each output with its kind and key settings.
pub fn describe(file: &str, source: &SourceSpec, outputs: &[OutputSpec]) -> String {
    let source = match source {
        SourceSpec::Tone { buffer_ns } => format!("tone, buffer {} ms", buffer_ns / 1_000_000),
        SourceSpec::File {
            path,
            looped,
            buffer_ns,
        } => format!(
            "file {path}{}, buffer {} ms",
            if *looped { " (looped)" } else { "" },
            buffer_ns / 1_000_000
        ),
        SourceSpec::Snapcast { url } => format!("snapcast {url}"),
    };
    let n = outputs.len();
    let mut s = format!(
        "{file}: ok: source {source}; {n} output{}:\n",
        if n == 1 { "" } else { "s" }
    );
    for o in outputs {
        let (lead, details) = o.settings.describe();
        let mut parts: Vec<String> = lead.into_iter().collect();
        parts.push(format!("volume {} %", o.volume_pct));
        parts.extend(details);
        if o.offset_ns != 0 {
            parts.push(format!("offset {} ms", o.offset_ns as f64 / 1e6));
        }
        if o.channel != ChannelMap::Stereo {
            parts.push(format!("channel {:?}", o.channel).to_lowercase());
        }
        s.push_str(&format!("  {:?} ({}): {}\n", o.name, o.kind(), parts.join(", ")));
    }
    s
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the audio comes from.
    pub source: SourceConfig,
    /// The outputs, at least one.
    #[serde(rename = "output", default)]
    pub outputs: Vec<OutputTable>,
    /// How the service runs (optional).
    #[serde(default)]
    pub service: Option<ServiceConfig>,
    /// Bluetooth-wide settings (optional).
    #[serde(default)]
    pub bluetooth: Option<BluetoothConfig>,
}

/// `[bluetooth]`: settings shared by every Bluetooth output.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BluetoothConfig {
    /// Automatic placement puts at most this many A2DP speakers on one adapter. Default
    /// [`DEFAULT_MAX_A2DP_PER_ADAPTER`].
    #[serde(default)]
    pub max_a2dp_per_adapter: Option<Spanned<i64>>,
}

/// Default of `bluetooth.max_a2dp_per_adapter`: two SBC streams at the high-quality bitpool (~330 kbit/s each) leave
/// one BR/EDR radio room for retransmissions; a third often stutters.
pub const DEFAULT_MAX_A2DP_PER_ADAPTER: usize = 2;
/// Largest `bluetooth.max_a2dp_per_adapter` (a BR/EDR piconet has at most 7 active peripherals).
pub const MAX_A2DP_PER_ADAPTER_LIMIT: usize = 7;

/// `[bluetooth]`, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct BluetoothSpec {
    /// See [`BluetoothConfig::max_a2dp_per_adapter`].
    pub max_a2dp_per_adapter: usize,
}

impl Default for BluetoothSpec {
    fn default() -> Self {
        Self {
            max_a2dp_per_adapter: DEFAULT_MAX_A2DP_PER_ADAPTER,
        }
    }
}

/// `[service]`: where `bluebridge run` keeps its control socket and state, and its metrics endpoint.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// The control socket's path. Default [`DEFAULT_CONTROL_SOCKET`].
    #[serde(default)]
    pub control_socket: Option<Spanned<String>>,
    /// Where run-time changes are kept (`state.json` inside). Default [`DEFAULT_STATE_DIR`].
    #[serde(default)]
    pub state_dir: Option<Spanned<String>>,
    /// `address:port` of the Prometheus endpoint; none unless set.
    #[serde(default)]
    pub metrics: Option<Spanned<String>>,
}

/// Default control socket.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/bluebridge/control.sock";
/// Default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/bluebridge";
/// Longest path a unix socket address holds (`sun_path` is 108 bytes with its terminating NUL).
pub const MAX_SOCKET_PATH_BYTES: usize = 107;

/// `[service]`, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// The control socket's path.
    pub control_socket: String,
    /// The state directory.
    pub state_dir: String,
    /// The metrics endpoint, if any.
    pub metrics: Option<std::net::SocketAddr>,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            control_socket: DEFAULT_CONTROL_SOCKET.into(),
            state_dir: DEFAULT_STATE_DIR.into(),
            metrics: None,
        }
    }
}

/// A whole config file, resolved.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The source.
    pub source: SourceSpec,
    /// The outputs, in file order.
    pub outputs: Vec<OutputSpec>,
    /// The `[service]` table (defaults if absent).
    pub service: ServiceSpec,
    /// The `[bluetooth]` table (defaults if absent).
    pub bluetooth: BluetoothSpec,
}

/// `[source]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// tone | file | snapcast.
    pub kind: Spanned<String>,
    /// Snapcast: `tcp://[user:password@]host[:port]`, port 1704 by default.
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    /// File: the WAV file's path.
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    /// File: play it in a loop.
    #[serde(default, rename = "loop")]
    pub looped: Option<Spanned<bool>>,
    /// Tone and file: the group buffer (a frame captured at T plays at T + buffer), ms. Default 500.
    #[serde(default)]
    pub buffer_ms: Option<Spanned<i64>>,
}

/// The source, resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    /// The built-in test signal.
    Tone {
        /// Group buffer, ns.
        buffer_ns: i64,
    },
    /// A WAV file.
    File {
        /// Path.
        path: String,
        /// Loop it.
        looped: bool,
        /// Group buffer, ns.
        buffer_ns: i64,
    },
    /// A Snapcast server (buffer and latency come from the server).
    Snapcast {
        /// `tcp://…` URL.
        url: String,
    },
}

/// Default group buffer of the built-in sources, ms.
pub const DEFAULT_LOCAL_BUFFER_MS: i64 = 500;

fn pos(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map(|i| before.len() - i).unwrap_or(before.len() + 1);
    (line, col)
}

impl Config {
    /// Parses and validates `text`, read from `file`: source and outputs.
    pub fn parse(file: &str, text: &str) -> Result<(SourceSpec, Vec<OutputSpec>), ConfigError> {
        Self::parse_all(file, text).map(|l| (l.source, l.outputs))
    }

    /// Reads, parses and validates the file at `path`, `[service]` included.
    pub fn load_all(path: &str) -> Result<Loaded, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::unreadable(path, &e))?;
        Self::parse_all(path, &text)
    }

    /// Parses and validates `text`, read from `file`, `[service]` included.
    pub fn parse_all(file: &str, text: &str) -> Result<Loaded, ConfigError> {
        let err_at = |span: std::ops::Range<usize>, message: String| {
            let (line, col) = pos(text, span.start);
            ConfigError {
                file: file.to_string(),
                line,
                col,
                message,
            }
        };
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            err_at(span, e.message().to_string())
        })?;
        let service = Self::service(&cfg.service, &err_at)?;
        let bluetooth = Self::bluetooth(&cfg.bluetooth, &err_at)?;
        let src = &cfg.source;
        let not_for = |key: &str, span: Option<std::ops::Range<usize>>, kind: &str| -> Result<(), ConfigError> {
            match span {
                Some(span) => Err(err_at(span, format!("source.{key} does not apply to kind {kind:?}"))),
                None => Ok(()),
            }
        };
        let kind = src.kind.get_ref().as_str();
        let buffer_ns = match &src.buffer_ms {
            None => DEFAULT_LOCAL_BUFFER_MS * 1_000_000,
            Some(b) if (20..=10_000).contains(b.get_ref()) => b.get_ref() * 1_000_000,
            Some(b) => {
                return Err(err_at(
                    b.span(),
                    format!("source.buffer_ms must be between 20 and 10000, not {}", b.get_ref()),
                ))
            }
        };
        let source = match kind {
            "tone" => {
                not_for("url", src.url.as_ref().map(|v| v.span()), kind)?;
                not_for("path", src.path.as_ref().map(|v| v.span()), kind)?;
                not_for("loop", src.looped.as_ref().map(|v| v.span()), kind)?;
                SourceSpec::Tone { buffer_ns }
            }
            "file" => {
                not_for("url", src.url.as_ref().map(|v| v.span()), kind)?;
                let path = match &src.path {
                    Some(p) if !p.get_ref().is_empty() => p.get_ref().clone(),
                    Some(p) => return Err(err_at(p.span(), "source.path must not be empty".into())),
                    None => {
                        return Err(err_at(
                            src.kind.span(),
                            "source.path is required for kind \"file\"".into(),
                        ))
                    }
                };
                SourceSpec::File {
                    path,
                    looped: src.looped.as_ref().is_some_and(|l| *l.get_ref()),
                    buffer_ns,
                }
            }
            "snapcast" => {
                not_for("path", src.path.as_ref().map(|v| v.span()), kind)?;
                not_for("loop", src.looped.as_ref().map(|v| v.span()), kind)?;
                not_for(
                    "buffer_ms (the server sets the buffer)",
                    src.buffer_ms.as_ref().map(|v| v.span()),
                    kind,
                )?;
                let url = src
                    .url
                    .as_ref()
                    .map(|u| u.get_ref().clone())
                    .unwrap_or_else(|| "tcp://127.0.0.1:1704".into());
                if !url.starts_with("tcp://") || url.len() <= "tcp://".len() {
                    let span = src.url.as_ref().map(|u| u.span()).unwrap_or(src.kind.span());
                    return Err(err_at(
                        span,
                        format!("source.url must look like tcp://host[:port], not {url:?}"),
                    ));
                }
                SourceSpec::Snapcast { url }
            }
            other => {
                return Err(err_at(
                    src.kind.span(),
                    format!("source.kind {other:?} is unknown; known kinds: tone, file, snapcast"),
                ))
            }
        };
        if cfg.outputs.is_empty() {
            return Err(err_at(0..0, "no [[output]]: at least one output is needed".into()));
        }
        let mut specs: Vec<OutputSpec> = Vec::new();
        let setting_err = |e: SettingError| err_at(e.span, e.message);
        for table in &cfg.outputs {
            let spec = kinds::parse(table).map_err(setting_err)?;
            if specs.iter().any(|s| s.name == spec.name) {
                let span = table
                    .get_ref()
                    .get_key_value("name")
                    .map(|(_, v)| v.span())
                    .unwrap_or(table.span());
                return Err(err_at(
                    span,
                    format!("output.name {:?} is used twice; names must be unique", spec.name),
                ));
            }
            specs.push(spec);
        }
        Ok(Loaded {
            source,
            outputs: specs,
            service,
            bluetooth,
        })
    }

    fn bluetooth(
        cfg: &Option<BluetoothConfig>,
        err_at: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
    ) -> Result<BluetoothSpec, ConfigError> {
        let mut spec = BluetoothSpec::default();
        let Some(cfg) = cfg else { return Ok(spec) };
        if let Some(v) = &cfg.max_a2dp_per_adapter {
            let n = *v.get_ref();
            if !(1..=MAX_A2DP_PER_ADAPTER_LIMIT as i64).contains(&n) {
                return Err(err_at(
                    v.span(),
                    format!(
                        "bluetooth.max_a2dp_per_adapter must be between 1 and {MAX_A2DP_PER_ADAPTER_LIMIT}, not {n}"
                    ),
                ));
            }
            spec.max_a2dp_per_adapter = n as usize;
        }
        Ok(spec)
    }

    fn service(
        cfg: &Option<ServiceConfig>,
        err_at: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
    ) -> Result<ServiceSpec, ConfigError> {
        let mut spec = ServiceSpec::default();
        let Some(cfg) = cfg else { return Ok(spec) };
        let absolute = |v: &Spanned<String>, key: &str| -> Result<String, ConfigError> {
            let p = v.get_ref();
            if !p.starts_with('/') || p.ends_with('/') || p.contains('\0') {
                return Err(err_at(
                    v.span(),
                    format!("service.{key} must be an absolute path (not ending in '/'), not {p:?}"),
                ));
            }
            Ok(p.clone())
        };
        if let Some(v) = &cfg.control_socket {
            spec.control_socket = absolute(v, "control_socket")?;
            if spec.control_socket.len() > MAX_SOCKET_PATH_BYTES {
                return Err(err_at(
                    v.span(),
                    format!(
                        "service.control_socket is {} bytes long; a unix socket path holds at most {MAX_SOCKET_PATH_BYTES}",
                        spec.control_socket.len()
                    ),
                ));
            }
        }
        if let Some(v) = &cfg.state_dir {
            spec.state_dir = absolute(v, "state_dir")?;
        }
        if let Some(v) = &cfg.metrics {
            spec.metrics = Some(v.get_ref().parse().map_err(|_| {
                err_at(
                    v.span(),
                    format!(
                        "service.metrics must be an address:port such as \"127.0.0.1:9464\" or \"[::1]:9464\", not {:?}",
                        v.get_ref()
                    ),
                )
            })?);
        }
        Ok(spec)
    }

    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &str) -> Result<(SourceSpec, Vec<OutputSpec>), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::unreadable(path, &e))?;
        Self::parse(path, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::a2dp_settings::A2dpSettings;
    use crate::output::broadcast_settings::BroadcastSettings;
    use crate::output::OutputSettings;

    fn broadcast(spec: &OutputSpec) -> &BroadcastSettings {
        match &spec.settings {
            OutputSettings::Broadcast(b) => b,
            other => panic!("not a broadcast: {other:?}"),
        }
    }

    fn a2dp(spec: &OutputSpec) -> &A2dpSettings {
        match &spec.settings {
            OutputSettings::A2dp(a) => a,
            other => panic!("not an A2DP speaker: {other:?}"),
        }
    }

    #[test]
    fn describe_is_one_readable_line_per_output() {
        let (source, outputs) = Config::parse("t.toml", GOOD).unwrap();
        let d = describe("t.toml", &source, &outputs);
        assert!(
            d.starts_with("t.toml: ok: source snapcast tcp://127.0.0.1:1704; "),
            "{d}"
        );
        assert!(
            d.contains("\n  \"kitchen\" (sim): volume 100 %, offset -3.5 ms\n"),
            "{d}"
        );
        assert!(
            d.contains("\n  \"recorder\" (pipe): /run/bluebridge/recorder.pcm, volume 100 %"),
            "{d}"
        );
        assert!(!d.contains("Snapcast {"), "{d}");
    }

    #[test]
    fn an_unreadable_file_is_named_without_a_line_and_column() {
        let e = Config::load("/nonexistent/x.toml").unwrap_err().to_string();
        assert_eq!(e, "cannot read config /nonexistent/x.toml: No such file or directory");
        let e = Config::load_all("/nonexistent/x.toml").unwrap_err().to_string();
        assert_eq!(e, "cannot read config /nonexistent/x.toml: No such file or directory");
    }

    fn err(text: &str) -> String {
        Config::parse("t.toml", text).unwrap_err().to_string()
    }

    const GOOD: &str = r#"
[source]
kind = "snapcast"
url = "tcp://127.0.0.1:1704"

[[output]]
name = "kitchen"
kind = "sim"
offset_ms = -3.5

[[output]]
name = "recorder"
kind = "pipe"
path = "/run/bluebridge/recorder.pcm"
delay_ms = 10
"#;

    #[test]
    fn bluetooth_table_defaults_and_bounds() {
        let l = Config::parse_all("t.toml", GOOD).unwrap();
        assert_eq!(l.bluetooth.max_a2dp_per_adapter, DEFAULT_MAX_A2DP_PER_ADAPTER);
        let l = Config::parse_all("t.toml", &format!("{GOOD}\n[bluetooth]\nmax_a2dp_per_adapter = 3\n")).unwrap();
        assert_eq!(l.bluetooth.max_a2dp_per_adapter, 3);
        for bad in ["0", "8", "-1"] {
            let e = Config::parse_all(
                "t.toml",
                &format!("{GOOD}\n[bluetooth]\nmax_a2dp_per_adapter = {bad}\n"),
            )
            .unwrap_err()
            .to_string();
            assert!(
                e.starts_with("t.toml:18:24:") && e.contains("bluetooth.max_a2dp_per_adapter") && e.contains(bad),
                "{e}"
            );
        }
        let e = Config::parse_all("t.toml", &format!("{GOOD}\n[bluetooth]\nmax_a2dp = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_a2dp"), "{e}");
    }

    #[test]
    fn the_documented_example_parses() {
        let (_, specs) = Config::parse("t.toml", GOOD).unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].offset_ns, -3_500_000);
        let OutputSettings::Pipe(pipe) = &specs[1].settings else {
            panic!("{:?}", specs[1])
        };
        assert_eq!(pipe.delay_ns, 10_000_000);
        assert_eq!(pipe.path, "/run/bluebridge/recorder.pcm");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = err(&GOOD.replace("offset_ms = -3.5", "offsett_ms = 1"));
        assert!(e.starts_with("t.toml:9:1:") && e.contains("offsett_ms"), "{e}");
        let e = err(&GOOD.replace("delay_ms = 10", "delay_ms = -10"));
        assert!(e.starts_with("t.toml:15:") && e.contains("delay_ms"), "{e}");
        let e = err(&GOOD.replace("kind = \"sim\"", "kind = \"bogus\""));
        assert!(
            e.starts_with("t.toml:8:") && e.contains("bogus") && e.contains("sim, file, a2dp, pipe"),
            "{e}"
        );
        let e = err(&GOOD.replace("recorder", "kitchen"));
        assert!(e.contains("used twice") && e.starts_with("t.toml:12:"), "{e}");
        let e = err(&GOOD.replace("name = \"kitchen\"\n", ""));
        assert!(e.contains("missing field `name`"), "{e}");
        let e = err("[source]\nkind = \"tone\"\n");
        assert!(e.contains("at least one output"), "{e}");
        let e = err(&GOOD.replace("offset_ms = -3.5", "sim = { loss = 3.0 }"));
        assert!(e.contains("loss") && e.starts_with("t.toml:9:"), "{e}");
        let e = err(&GOOD.replace("offset_ms = -3.5", "volume = 300"));
        assert!(e.contains("volume"), "{e}");
        let e = err("[source]\nkind = \"tone\"\nbuffer_ms = \"x\"\n[[output]]\nname=\"a\"\nkind=\"sim\"\n");
        assert!(e.starts_with("t.toml:3:"), "{e}");
    }

    #[test]
    fn the_service_table_has_defaults_and_line_precise_errors() {
        let l = Config::parse_all("t.toml", GOOD).unwrap();
        assert_eq!(l.service, ServiceSpec::default());
        assert_eq!(l.service.control_socket, "/run/bluebridge/control.sock");
        assert_eq!(l.service.state_dir, "/var/lib/bluebridge");
        assert_eq!(l.service.metrics, None);
        let with = |t: &str| format!("{GOOD}\n[service]\n{t}\n");
        let l = Config::parse_all(
            "t.toml",
            &with("control_socket = \"/tmp/b/c.sock\"\nstate_dir = \"/tmp/b\"\nmetrics = \"127.0.0.1:9464\""),
        )
        .unwrap();
        assert_eq!(l.service.control_socket, "/tmp/b/c.sock");
        assert_eq!(l.service.state_dir, "/tmp/b");
        assert_eq!(l.service.metrics, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(l.outputs.len(), 2);
        let e = err(&with("metrics = \"localhost\""));
        assert!(e.starts_with("t.toml:18:11:") && e.contains("service.metrics"), "{e}");
        let e = err(&with("state_dir = \"relative/dir\""));
        assert!(e.starts_with("t.toml:18:") && e.contains("service.state_dir"), "{e}");
        let long = format!("/{}", "x".repeat(120));
        let e = err(&with(&format!("control_socket = \"{long}\"")));
        assert!(e.starts_with("t.toml:18:") && e.contains("at most 107"), "{e}");
        let e = err(&with("stat_dir = \"/x\""));
        assert!(e.starts_with("t.toml:18:1:") && e.contains("stat_dir"), "{e}");
    }

    #[test]
    fn every_kind_works_with_defaults() {
        for kind in crate::output::KINDS.iter().map(|k| k.name) {
            let extra = if kind == "a2dp" {
                "address = \"00:11:22:33:44:55\"\n"
            } else {
                ""
            };
            let t = format!("[source]\nkind = \"tone\"\n[[output]]\nname = \"x\"\nkind = \"{kind}\"\n{extra}");
            Config::parse("t.toml", &t).unwrap();
        }
    }

    #[test]
    fn broadcast_keys_have_defaults_and_line_precise_errors() {
        let base = "[source]\nkind = \"tone\"\n[[output]]\nname = \"b\"\nkind = \"broadcast\"\n";
        let (_, specs) = Config::parse("t.toml", base).unwrap();
        let b = &broadcast(&specs[0]).config;
        assert_eq!(b.preset.name, "48_2_1");
        assert_eq!(b.presentation_delay_us, 40_000);
        assert_eq!(b.bis_count(), 2);
        assert!(b.code.is_none());
        assert_eq!(broadcast(&specs[0]).adapter, None);
        let t = format!(
            "{base}preset = \"48_4_2\"\npresentation_delay_ms = 25.5\nchannels = \"mono\"\nadapter = \"hci1\"\n\
             broadcast_code = \"000102030405060708090a0b0c0d0e0f\"\n"
        );
        let (_, specs) = Config::parse("t.toml", &t).unwrap();
        let b = &broadcast(&specs[0]).config;
        assert_eq!(
            (b.preset.name, b.presentation_delay_us, b.bis_count()),
            ("48_4_2", 25_500, 1)
        );
        assert_eq!(b.code.unwrap().as_bytes()[15], 0x0f);
        assert_eq!(broadcast(&specs[0]).adapter.as_deref(), Some("hci1"));
        let e = err(&format!("{base}preset = \"48_9_1\"\n"));
        assert!(e.starts_with("t.toml:6:") && e.contains("48_2_1"), "{e}");
        // Every preset but the 44.1 kHz ones: LC3 encodes the 48 kHz audio into the preset's rate.
        for (name, rate) in [
            ("16_2_1", 16_000),
            ("24_1_2", 24_000),
            ("8_2_1", 8_000),
            ("32_1_1", 32_000),
        ] {
            let (_, specs) = Config::parse("t.toml", &format!("{base}preset = \"{name}\"\n")).unwrap();
            let b = &broadcast(&specs[0]).config;
            assert_eq!((b.preset.name, b.preset.sample_rate_hz), (name, rate));
        }
        for name in ["441_2_1", "44_1_2"] {
            let e = err(&format!("{base}preset = \"{name}\"\n"));
            assert!(
                e.starts_with("t.toml:6:") && e.contains("output.preset") && e.contains("44100 Hz"),
                "{e}"
            );
            assert!(
                e.contains("allowed presets: 8_1_1, 8_2_1, 16_1_1,") && e.ends_with("48_5_2, 48_6_2"),
                "{e}"
            );
            assert!(!e.split("allowed presets:").nth(1).unwrap().contains("441_"), "{e}");
        }
        let e = err(&format!("{base}channels = \"quad\"\n"));
        assert!(e.starts_with("t.toml:6:") && e.contains("stereo, mono"), "{e}");
        let e = err(&format!("{base}presentation_delay_ms = 20000\n"));
        assert!(e.starts_with("t.toml:6:") && e.contains("presentation_delay_ms"), "{e}");
        let e = err(&format!("{base}broadcast_code = \"seventeen bytes!!\"\n"));
        assert!(e.starts_with("t.toml:6:") && e.contains("broadcast_code"), "{e}");
        let e = err(&format!("{base}broadcast_name = \"Kitchen\"\n"));
        assert!(e.starts_with("t.toml:6:") && e.contains("Broadcast Name"), "{e}");
        let e = err(&format!("{base}address = \"00:11:22:33:44:55\"\n"));
        assert!(e.starts_with("t.toml:6:") && e.contains("address"), "{e}");
        let e = err("[source]\nkind = \"tone\"\n[[output]]\nname = \"s\"\nkind = \"sim\"\npreset = \"48_2_1\"\n");
        assert!(e.starts_with("t.toml:6:") && e.contains("preset"), "{e}");
    }
    #[test]
    fn a2dp_volume_and_idle_keys_have_defaults_and_line_precise_errors() {
        let base =
            "[source]\nkind = \"tone\"\n[[output]]\nname = \"s\"\nkind = \"a2dp\"\naddress = \"00:11:22:33:44:55\"\n";
        let (_, specs) = Config::parse("t.toml", base).unwrap();
        let o = a2dp(&specs[0]);
        assert_eq!(
            (o.avrcp_volume, o.idle_release_ns, o.keep_alive),
            (true, Some(60_000_000_000), false),
            "defaults: AVRCP volume, released after 60 s of silence, no keep-alive"
        );
        let parse = |extra: &str| {
            let (_, specs) = Config::parse("t.toml", &format!("{base}{extra}")).unwrap();
            let o = a2dp(&specs[0]);
            (o.avrcp_volume, o.idle_release_ns, o.keep_alive)
        };
        assert_eq!(parse("avrcp_volume = false\n"), (false, Some(60_000_000_000), false));
        assert_eq!(parse("idle_release_s = 0\n"), (true, None, false), "0: never");
        assert_eq!(parse("idle_release_s = 2.5\n"), (true, Some(2_500_000_000), false));
        assert_eq!(
            parse("keep_alive = true\n"),
            (true, None, true),
            "kept alive: never released"
        );
        let e = err(&format!("{base}keep_alive = true\nidle_release_s = 30\n"));
        assert!(e.starts_with("t.toml:8:") && e.contains("keep_alive"), "{e}");
        let e = err(&format!("{base}idle_release_s = -1\n"));
        assert!(e.starts_with("t.toml:7:") && e.contains("idle_release_s"), "{e}");
        let e = err(&format!("{base}keep_alive = \"yes\"\n"));
        assert!(e.starts_with("t.toml:7:"), "{e}");
        let sim = "[source]\nkind = \"tone\"\n[[output]]\nname = \"s\"\nkind = \"sim\"\n";
        for key in ["avrcp_volume = true", "keep_alive = false", "idle_release_s = 5"] {
            let e = err(&format!("{sim}{key}\n"));
            assert!(e.starts_with("t.toml:6:") && e.contains("does not apply"), "{key}: {e}");
        }
    }
}
