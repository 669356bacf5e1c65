//! The TOML configuration file: types, defaults and validation with errors that name the file, line and key.
//!
//! ```toml
//! [source]
//! kind = "tone"                  # tone | file | snapcast
//!
//! [[output]]
//! name = "kitchen"               # unique; also the speaker's identity towards the group server
//! kind = "sim"                   # sim | file | a2dp | pipe | broadcast | local (output::KINDS); sim, file, pipe and
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
//!
//! The parts: this file holds the types and defaults, `parse` reads and validates each section, `errors`
//! places an error at its file, line and column, `describe` is the one-line-per-output summary.

mod describe;
mod errors;
mod parse;
mod sendspin;
#[cfg(test)]
mod tests;

use crate::output::kinds::OutputTable;
pub use crate::output::OutputSpec;
use serde::Deserialize;
use toml::Spanned;

pub use describe::describe;
pub use errors::ConfigError;

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
    /// tone | file | snapcast | capture.
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
    /// Tone, file and capture: the group buffer (a frame captured at T plays at T + buffer), ms. Default 500.
    #[serde(default)]
    pub buffer_ms: Option<Spanned<i64>>,
    /// Capture: the capture device (`bluebridge devices` lists them); default: the default capture device.
    #[serde(default)]
    pub device: Option<Spanned<String>>,
    /// Capture: the device period, ms (default 10).
    #[serde(default)]
    pub period_ms: Option<Spanned<f64>>,
    /// Sendspin: Noise encryption (default true); false speaks the server's plain transition mode.
    #[serde(default)]
    pub encryption: Option<Spanned<bool>>,
    /// Sendspin without `url`: `advertise` (default; the players advertise `_sendspin._tcp` and the server dials
    /// them) or `browse` (find `_sendspin-server._tcp` and dial it).
    #[serde(default)]
    pub discovery: Option<Spanned<String>>,
    /// Sendspin, `discovery = "advertise"`: the players' listener port (default 8928; 0 picks a free one).
    #[serde(default)]
    pub listen_port: Option<Spanned<i64>>,
    /// Sendspin mDNS: only on this network interface (default: every non-loopback IPv4 interface).
    #[serde(default)]
    pub interface: Option<Spanned<String>>,
}

/// How Sendspin players meet their server (the type lives with the players).
pub use crate::sendspin::meet::MeetSpec as SendspinMeet;

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
    /// A Sendspin server (Music Assistant): each output is a player of its own; chunks carry their play times.
    Sendspin {
        /// A `ws://host:port/path` URL, or mDNS either way.
        meet: SendspinMeet,
        /// Noise KKpsk2 with a per-output identity (the server's default); false: the plain transition mode.
        encryption: bool,
    },
    /// A capture device (line-in, a microphone): a frame captured at T plays at T + buffer.
    Capture {
        /// The device and its period.
        capture: crate::source::capture::CaptureSpec,
        /// Group buffer, ns.
        buffer_ns: i64,
    },
}

/// Default group buffer of the built-in sources, ms.
pub const DEFAULT_LOCAL_BUFFER_MS: i64 = 500;
