//! Parsing and validation, one function per section: `[source]`, `[[output]]`, `[service]`, `[bluetooth]`.

use super::errors::pos;
use super::*;
use crate::output::kinds::{self, OutputTable};
use crate::output::settings::SettingError;
use toml::Spanned;

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
            ConfigError::At {
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
        let source = Self::source(&cfg.source, &err_at)?;
        let specs = Self::outputs(&cfg.outputs, &err_at)?;
        Ok(Loaded {
            source,
            outputs: specs,
            service,
            bluetooth,
        })
    }

    /// `[source]`: the kind and its keys; a key another kind takes is an error.
    fn source(
        src: &SourceConfig,
        err_at: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
    ) -> Result<SourceSpec, ConfigError> {
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
        if kind != "sendspin" {
            not_for("encryption", src.encryption.as_ref().map(|v| v.span()), kind)?;
            not_for("discovery", src.discovery.as_ref().map(|v| v.span()), kind)?;
            not_for("listen_port", src.listen_port.as_ref().map(|v| v.span()), kind)?;
            not_for("interface", src.interface.as_ref().map(|v| v.span()), kind)?;
        }
        if kind != "capture" {
            not_for("device", src.device.as_ref().map(|v| v.span()), kind)?;
            not_for("period_ms", src.period_ms.as_ref().map(|v| v.span()), kind)?;
        }
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
            "sendspin" => {
                not_for("path", src.path.as_ref().map(|v| v.span()), kind)?;
                not_for("loop", src.looped.as_ref().map(|v| v.span()), kind)?;
                not_for(
                    "buffer_ms (the server sets the play times)",
                    src.buffer_ms.as_ref().map(|v| v.span()),
                    kind,
                )?;
                SourceSpec::Sendspin {
                    meet: Self::sendspin_meet(src, err_at)?,
                    encryption: src.encryption.as_ref().is_none_or(|e| *e.get_ref()),
                }
            }
            "capture" => {
                not_for("url", src.url.as_ref().map(|v| v.span()), kind)?;
                not_for("path", src.path.as_ref().map(|v| v.span()), kind)?;
                not_for("loop", src.looped.as_ref().map(|v| v.span()), kind)?;
                let mut capture = crate::source::capture::CaptureSpec::default();
                if let Some(d) = &src.device {
                    crate::output::local::device::DeviceName::parse(d.get_ref())
                        .map_err(|e| err_at(d.span(), format!("source.device: {e}")))?;
                    capture.device = Some(d.get_ref().trim().to_string());
                }
                if let Some(p) = &src.period_ms {
                    let v = *p.get_ref();
                    if !(1.0..=100.0).contains(&v) {
                        return Err(err_at(
                            p.span(),
                            format!("source.period_ms must be between 1 and 100, not {v}"),
                        ));
                    }
                    capture.period_ms = v;
                }
                SourceSpec::Capture { capture, buffer_ns }
            }
            other => {
                return Err(err_at(
                    src.kind.span(),
                    format!("source.kind {other:?} is unknown; known kinds: tone, file, snapcast, capture"),
                ))
            }
        };
        Ok(source)
    }

    /// `[[output]]`: at least one, each parsed by its kind, names unique.
    fn outputs(
        tables: &[OutputTable],
        err_at: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
    ) -> Result<Vec<OutputSpec>, ConfigError> {
        if tables.is_empty() {
            return Err(err_at(0..0, "no [[output]]: at least one output is needed".into()));
        }
        let mut specs: Vec<OutputSpec> = Vec::new();
        let setting_err = |e: SettingError| err_at(e.span, e.message);
        for table in tables {
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
        Ok(specs)
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
