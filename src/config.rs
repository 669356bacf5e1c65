//! The TOML configuration file: types, defaults and validation with errors that name the file, line and key.
//!
//! ```toml
//! [source]
//! kind = "tone"                  # tone | file | snapcast
//!
//! [[output]]
//! name = "kitchen"               # unique; also the speaker's identity towards the group server
//! kind = "sim"                   # sim | file | pipe ; every kind works with defaults
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

use crate::output::player::ChannelMap;
use crate::output::sim::SimParams;
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
        let mut parts = vec![format!("volume {} %", o.volume_pct)];
        if !o.address.is_empty() {
            parts.insert(0, o.address.clone());
        }
        if let Some(a) = &o.adapter {
            parts.push(format!("adapter {a}"));
        }
        if !o.path.is_empty() {
            parts.insert(0, o.path.clone());
        }
        if o.offset_ns != 0 {
            parts.push(format!("offset {} ms", o.offset_ns as f64 / 1e6));
        }
        if o.delay_ns != 0 {
            parts.push(format!("delay {} ms", o.delay_ns as f64 / 1e6));
        }
        if o.channel != ChannelMap::Stereo {
            parts.push(format!("channel {:?}", o.channel).to_lowercase());
        }
        s.push_str(&format!("  {:?} ({}): {}\n", o.name, o.kind, parts.join(", ")));
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
    pub outputs: Vec<Spanned<OutputConfig>>,
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

/// One `[[output]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Unique name.
    pub name: Spanned<String>,
    /// Kind: sim | file | pipe.
    pub kind: Spanned<String>,
    /// Manual offset, ms (positive plays later).
    #[serde(default)]
    pub offset_ms: Option<Spanned<f64>>,
    /// Acoustic calibration, ms (positive: the sink is slower than it reports).
    #[serde(default)]
    pub calibration_ms: Option<Spanned<f64>>,
    /// stereo | left | right | mono.
    #[serde(default)]
    pub channel: ChannelMap,
    /// Software volume, percent.
    #[serde(default)]
    pub volume: Option<Spanned<i64>>,
    /// File or pipe path.
    #[serde(default)]
    pub path: Option<Spanned<String>>,
    /// The declared delay of the pipe's reader, ms.
    #[serde(default)]
    pub delay_ms: Option<Spanned<f64>>,
    /// Simulated speaker parameters.
    #[serde(default)]
    pub sim: Option<Spanned<SimParams>>,
    /// A2DP: the speaker's Bluetooth address.
    #[serde(default)]
    pub address: Option<Spanned<String>>,
    /// A2DP: the adapter to use (`hci0`…); default: placed automatically.
    #[serde(default)]
    pub adapter: Option<Spanned<String>>,
    /// A2DP: `high` (default) or `xq`.
    #[serde(default)]
    pub sbc_quality: Option<crate::bluez::a2dp::sbc_caps::SbcQuality>,
    /// A2DP: use the speaker's AVRCP absolute volume when it offers one (default true).
    #[serde(default)]
    pub avrcp_volume: Option<Spanned<bool>>,
    /// A2DP: seconds of silence after which the stream is released (default 60; 0: never).
    #[serde(default)]
    pub idle_release_s: Option<Spanned<f64>>,
    /// A2DP: play an inaudible tone during silence so the speaker never sleeps (default false).
    #[serde(default)]
    pub keep_alive: Option<Spanned<bool>>,
    /// Broadcast: the BAP preset name (default 48_2_1).
    #[serde(default)]
    pub preset: Option<Spanned<String>>,
    /// Broadcast: presentation delay, ms (default 40).
    #[serde(default)]
    pub presentation_delay_ms: Option<Spanned<f64>>,
    /// Broadcast: the Broadcast_Code (text of up to 16 bytes or 32 hex digits); encrypts the BIG.
    #[serde(default)]
    pub broadcast_code: Option<Spanned<String>>,
    /// Broadcast: `stereo` (two BISes, default) or `mono` (one BIS).
    #[serde(default)]
    pub channels: Option<Spanned<String>>,
    /// Local: the sound device (`hw:CARD=Headphones`, cpal's name; default: the default device).
    #[serde(default)]
    pub device: Option<Spanned<String>>,
    /// Local: the device's period, ms.
    #[serde(default)]
    pub period_ms: Option<Spanned<f64>>,
    /// Local: audio kept queued ahead of the device buffer, ms.
    #[serde(default)]
    pub buffer_ms: Option<Spanned<f64>>,
    /// Broadcast: a Broadcast Name — refused: BlueZ 5.82's Media API gives a source no way to set one.
    #[serde(default)]
    pub broadcast_name: Option<Spanned<String>>,
}

/// Output kinds this build knows, with a line each for `--help` and errors.
pub const OUTPUT_KINDS: &[(&str, &str)] = &[
    ("sim", "a simulated speaker (parameters in `sim = { … }`)"),
    ("file", "a WAV file (`path`, default NAME.wav)"),
    (
        "a2dp",
        "a classic Bluetooth speaker (`address`, optional `adapter`, `sbc_quality`, `delay_ms` fallback, \
         `avrcp_volume`, `idle_release_s`, `keep_alive`)",
    ),
    (
        "pipe",
        "raw S16LE 48 kHz stereo in real time to a FIFO or `-` for stdout (`path`, `delay_ms`)",
    ),
    (
        "local",
        "this box's sound card through ALSA (`device`, default the default device; `period_ms`, `buffer_ms`)",
    ),
    (
        "broadcast",
        "an LE Audio broadcast (`preset`, `presentation_delay_ms`, `broadcast_code`, `channels`, `adapter`)",
    ),
];

/// An output with everything resolved to plain values.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSpec {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Offset, ns.
    pub offset_ns: i64,
    /// Calibration, ns.
    pub calibration_ns: i64,
    /// Channel map.
    pub channel: ChannelMap,
    /// Volume, percent.
    pub volume_pct: u8,
    /// Path (file, pipe).
    pub path: String,
    /// Declared sink delay, ns.
    pub delay_ns: i64,
    /// Sim parameters.
    pub sim: SimParams,
    /// A2DP speaker address (`XX:XX:XX:XX:XX:XX`), empty for other kinds.
    pub address: String,
    /// A2DP adapter, if pinned.
    pub adapter: Option<String>,
    /// A2DP SBC quality.
    pub sbc_quality: crate::bluez::a2dp::sbc_caps::SbcQuality,
    /// A2DP: use the speaker's AVRCP absolute volume when it has one.
    pub avrcp_volume: bool,
    /// A2DP: release the stream after this much silence, ns (None: never).
    pub idle_release_ns: Option<i64>,
    /// A2DP: an inaudible tone during silence instead of releasing.
    pub keep_alive: bool,
    /// The broadcast (kind `broadcast` only).
    pub broadcast: Option<crate::bluez::bap::broadcast::BroadcastConfig>,
    /// The sound card (kind `local` only).
    pub local: Option<crate::output::local::LocalSpec>,
}

/// Delay assumed for an A2DP speaker that reports none (PipeWire assumes 200 ms for SBC; most speakers report).
pub const A2DP_FALLBACK_DELAY_MS: f64 = 150.0;

/// Silence after which an A2DP stream is released by default, s: long enough for any gap between tracks, short
/// enough that an idle speaker is soon free for a phone and may sleep.
pub const A2DP_IDLE_RELEASE_S: f64 = 60.0;

/// The broadcast of a `broadcast` output: preset, layout, presentation delay and code, checked as BlueZ would.
fn broadcast_spec(
    o: &OutputConfig,
    err_at: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<crate::bluez::bap::broadcast::BroadcastConfig, ConfigError> {
    use crate::bluez::bap::broadcast::{BroadcastCode, BroadcastConfig, ChannelLayout};
    use crate::bluez::bap::presets::Preset;
    if let Some(n) = &o.broadcast_name {
        return Err(err_at(
            n.span(),
            "output.broadcast_name cannot be honoured: BlueZ 5.82's Media API gives a broadcast source no way to \
             set a Broadcast Name (receivers list the broadcast by its Broadcast_ID); remove the key"
                .into(),
        ));
    }
    let preset = match &o.preset {
        None => Preset::default_preset(),
        Some(p) => Preset::by_name(p.get_ref()).map_err(|e| err_at(p.span(), format!("output.preset: {e}")))?,
    };
    let pcm_hz = crate::output::OUTPUT_FORMAT.rate_hz;
    if preset.check_pcm_rate(pcm_hz).is_err() {
        let span = o.preset.as_ref().map(|p| p.span()).unwrap_or(o.kind.span());
        let allowed: Vec<_> = Preset::encodable_from(pcm_hz).map(|p| p.name).collect();
        return Err(err_at(
            span,
            format!(
                "output.preset {:?} is {} Hz, which bluebridge cannot broadcast: its audio is {} kHz, which LC3 \
                 encodes into 8, 16, 24, 32 or 48 kHz streams but not 44.1 kHz (that needs a resampler); allowed \
                 presets: {}",
                preset.name,
                preset.sample_rate_hz,
                pcm_hz / 1_000,
                allowed.join(", ")
            ),
        ));
    }
    let layout = match &o.channels {
        None => ChannelLayout::default(),
        Some(c) => c
            .get_ref()
            .parse::<ChannelLayout>()
            .map_err(|e| err_at(c.span(), format!("output.channels: {e}")))?,
    };
    let mut b = BroadcastConfig::new(preset, layout);
    if let Some(d) = &o.presentation_delay_ms {
        if !(0.0..=16_777.0).contains(d.get_ref()) {
            return Err(err_at(
                d.span(),
                format!(
                    "output.presentation_delay_ms must be between 0 and 16777 ms, not {}",
                    d.get_ref()
                ),
            ));
        }
        b.presentation_delay_us = (d.get_ref() * 1_000.0).round() as u32;
    }
    if let Some(c) = &o.broadcast_code {
        b.code = Some(
            BroadcastCode::parse(c.get_ref()).map_err(|e| err_at(c.span(), format!("output.broadcast_code: {e}")))?,
        );
    }
    b.validate()
        .map_err(|e| err_at(o.kind.span(), format!("output: {e}")))?;
    Ok(b)
}

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
        let mut specs = Vec::new();
        for o in &cfg.outputs {
            let o = o.get_ref();
            let name = o.name.get_ref();
            if name.is_empty()
                || name.len() > 64
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(err_at(
                    o.name.span(),
                    format!("output.name {name:?} must be 1-64 characters of letters, digits, '-', '_' or '.'"),
                ));
            }
            if specs.iter().any(|s: &OutputSpec| &s.name == name) {
                return Err(err_at(
                    o.name.span(),
                    format!("output.name {name:?} is used twice; names must be unique"),
                ));
            }
            let kind = o.kind.get_ref().as_str();
            if !OUTPUT_KINDS.iter().any(|(k, _)| *k == kind) {
                let known: Vec<&str> = OUTPUT_KINDS.iter().map(|(k, _)| *k).collect();
                let later = if kind == "a2dp" || kind == "broadcast" {
                    " (not in this build yet)"
                } else {
                    ""
                };
                return Err(err_at(
                    o.kind.span(),
                    format!(
                        "output.kind {kind:?} is unknown{later}; known kinds: {}",
                        known.join(", ")
                    ),
                ));
            }
            let ms = |v: &Option<Spanned<f64>>, key: &str, lo: f64, hi: f64| -> Result<i64, ConfigError> {
                match v {
                    None => Ok(0),
                    Some(s) if (lo..=hi).contains(s.get_ref()) => Ok((s.get_ref() * 1e6).round() as i64),
                    Some(s) => Err(err_at(
                        s.span(),
                        format!("output.{key} must be between {lo} and {hi} ms, not {}", s.get_ref()),
                    )),
                }
            };
            let offset_ns = ms(&o.offset_ms, "offset_ms", -5_000.0, 5_000.0)?;
            let calibration_ns = ms(&o.calibration_ms, "calibration_ms", -2_000.0, 2_000.0)?;
            let delay_ns = ms(&o.delay_ms, "delay_ms", 0.0, 5_000.0)?;
            let volume_pct = match &o.volume {
                None => 100,
                Some(v) if (0..=100).contains(v.get_ref()) => *v.get_ref() as u8,
                Some(v) => {
                    return Err(err_at(
                        v.span(),
                        format!("output.volume must be a percentage 0-100, not {}", v.get_ref()),
                    ))
                }
            };
            let wrong_key = |present: bool, key: &str, span: std::ops::Range<usize>| {
                if present {
                    Err(err_at(span, format!("output.{key} does not apply to kind {kind:?}")))
                } else {
                    Ok(())
                }
            };
            if kind != "sim" {
                if let Some(s) = &o.sim {
                    wrong_key(true, "sim", s.span())?;
                }
            }
            if kind == "sim" {
                if let Some(p) = &o.path {
                    wrong_key(true, "path", p.span())?;
                }
            }
            if kind != "pipe" && kind != "a2dp" {
                if let Some(d) = &o.delay_ms {
                    wrong_key(true, "delay_ms", d.span())?;
                }
            }
            if kind != "broadcast" {
                for (key, v) in [
                    ("preset", &o.preset),
                    ("broadcast_code", &o.broadcast_code),
                    ("channels", &o.channels),
                    ("broadcast_name", &o.broadcast_name),
                ] {
                    if let Some(v) = v {
                        wrong_key(true, key, v.span())?;
                    }
                }
                if let Some(v) = &o.presentation_delay_ms {
                    wrong_key(true, "presentation_delay_ms", v.span())?;
                }
            }
            let local = crate::output::local::parse_spec(
                kind,
                o.device.as_ref(),
                o.period_ms.as_ref(),
                o.buffer_ms.as_ref(),
                &err_at,
            )?;
            let broadcast = if kind == "broadcast" {
                Some(broadcast_spec(o, &err_at)?)
            } else {
                None
            };
            if kind != "a2dp" && kind != "broadcast" {
                if let Some(v) = &o.adapter {
                    wrong_key(true, "adapter", v.span())?;
                }
            }
            if kind != "a2dp" {
                for (key, v) in [("address", &o.address)] {
                    if let Some(v) = v {
                        wrong_key(true, key, v.span())?;
                    }
                }
                for (key, v) in [("avrcp_volume", &o.avrcp_volume), ("keep_alive", &o.keep_alive)] {
                    if let Some(v) = v {
                        wrong_key(true, key, v.span())?;
                    }
                }
                if let Some(v) = &o.idle_release_s {
                    wrong_key(true, "idle_release_s", v.span())?;
                }
            }
            let keep_alive = o.keep_alive.as_ref().is_some_and(|v| *v.get_ref());
            let idle_release_ns = match &o.idle_release_s {
                Some(v) if keep_alive => {
                    return Err(err_at(
                        v.span(),
                        "output.idle_release_s does not apply with keep_alive = true (a kept-alive speaker is \
                         never released); remove one of them"
                            .into(),
                    ))
                }
                Some(v) if !(0.0..=86_400.0).contains(v.get_ref()) => {
                    return Err(err_at(
                        v.span(),
                        format!(
                            "output.idle_release_s must be between 0 (never) and 86400 s, not {}",
                            v.get_ref()
                        ),
                    ))
                }
                Some(v) if *v.get_ref() == 0.0 => None,
                Some(v) => Some((v.get_ref() * 1e9).round() as i64),
                None if keep_alive || kind != "a2dp" => None,
                None => Some((A2DP_IDLE_RELEASE_S * 1e9) as i64),
            };
            let address = match (&o.address, kind) {
                (Some(a), "a2dp") => {
                    let ok = a.get_ref().parse::<bluer::Address>().is_ok() && a.get_ref().len() == 17;
                    if !ok {
                        return Err(err_at(
                            a.span(),
                            format!(
                                "output.address {:?} is not a Bluetooth address like 00:11:22:33:44:55",
                                a.get_ref()
                            ),
                        ));
                    }
                    a.get_ref().to_ascii_uppercase()
                }
                (None, "a2dp") => {
                    return Err(err_at(
                        o.kind.span(),
                        "output.address is required for kind \"a2dp\"".into(),
                    ))
                }
                _ => String::new(),
            };
            let adapter = match &o.adapter {
                Some(a) if !a.get_ref().starts_with("hci") || a.get_ref()[3..].parse::<u16>().is_err() => {
                    return Err(err_at(
                        a.span(),
                        format!("output.adapter {:?} must look like hci0", a.get_ref()),
                    ))
                }
                Some(a) => Some(a.get_ref().clone()),
                None => None,
            };
            let delay_ns = if kind == "a2dp" && o.delay_ms.is_none() {
                (A2DP_FALLBACK_DELAY_MS * 1e6) as i64
            } else {
                delay_ns
            };
            let sim = o.sim.as_ref().map(|s| s.get_ref().clone()).unwrap_or_default();
            if let Err(m) = sim.validate() {
                let span = o.sim.as_ref().map(|s| s.span()).unwrap_or(0..0);
                return Err(err_at(span, format!("output.sim: {m}")));
            }
            let path = match (&o.path, kind) {
                (Some(p), _) if p.get_ref().is_empty() => {
                    return Err(err_at(p.span(), "output.path must not be empty".into()))
                }
                (Some(p), _) => p.get_ref().clone(),
                (None, "file") => format!("{name}.wav"),
                (None, "pipe") => format!("/run/bluebridge/{name}.pcm"),
                (None, _) => String::new(),
            };
            specs.push(OutputSpec {
                name: name.clone(),
                kind: kind.to_string(),
                offset_ns,
                calibration_ns,
                channel: o.channel,
                volume_pct,
                path,
                delay_ns,
                sim,
                address,
                adapter,
                sbc_quality: o.sbc_quality.unwrap_or_default(),
                avrcp_volume: o.avrcp_volume.as_ref().is_none_or(|v| *v.get_ref()),
                idle_release_ns,
                keep_alive,
                broadcast,
                local,
            });
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
        assert_eq!(specs[1].delay_ns, 10_000_000);
        assert_eq!(specs[1].path, "/run/bluebridge/recorder.pcm");
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
        for (kind, _) in OUTPUT_KINDS {
            let extra = if *kind == "a2dp" {
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
        let b = specs[0].broadcast.as_ref().unwrap();
        assert_eq!(b.preset.name, "48_2_1");
        assert_eq!(b.presentation_delay_us, 40_000);
        assert_eq!(b.bis_count(), 2);
        assert!(b.code.is_none());
        assert_eq!(specs[0].adapter, None);
        let t = format!(
            "{base}preset = \"48_4_2\"\npresentation_delay_ms = 25.5\nchannels = \"mono\"\nadapter = \"hci1\"\n\
             broadcast_code = \"000102030405060708090a0b0c0d0e0f\"\n"
        );
        let (_, specs) = Config::parse("t.toml", &t).unwrap();
        let b = specs[0].broadcast.as_ref().unwrap();
        assert_eq!(
            (b.preset.name, b.presentation_delay_us, b.bis_count()),
            ("48_4_2", 25_500, 1)
        );
        assert_eq!(b.code.unwrap().as_bytes()[15], 0x0f);
        assert_eq!(specs[0].adapter.as_deref(), Some("hci1"));
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
            let b = specs[0].broadcast.as_ref().unwrap();
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
        let o = &specs[0];
        assert_eq!(
            (o.avrcp_volume, o.idle_release_ns, o.keep_alive),
            (true, Some(60_000_000_000), false),
            "defaults: AVRCP volume, released after 60 s of silence, no keep-alive"
        );
        let parse = |extra: &str| {
            let (_, specs) = Config::parse("t.toml", &format!("{base}{extra}")).unwrap();
            let o = &specs[0];
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
