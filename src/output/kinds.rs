//! The output kinds: one [`KINDS`] table (name, help, keys, parse) that the config and `--help` read, the typed
//! [`OutputSpec`] an `[[output]]` becomes with [`OutputSettings::open`] (one match: the variant says the kind), and
//! the parsing of the keys every kind shares.
//!
//! Adding a kind: its file (the output and its settings), a variant of [`OutputSettings`] (with its arm in `open`,
//! `kind_name` and `describe`) and a row of [`KINDS`].

use super::a2dp_settings::{self, A2dpSettings};
use super::broadcast_settings::{self, BroadcastSettings};
use super::file::FileSettings;
use super::local::{self, LocalSpec};
use super::pipe_settings::{self, PipeSettings};
use super::player::ChannelMap;
use super::settings::{Keys, SettingError};
use super::sim::SimParams;
use super::{a2dp, broadcast, file, pipe, sim, Output, OutputContext, OutputError};
use std::sync::Arc;
use toml::Spanned;

/// One output kind.
pub struct Kind {
    /// Its name in `kind = "…"`.
    pub name: &'static str,
    /// One line for `--help` and errors.
    pub help: &'static str,
    /// The keys it takes besides the common ones ([`COMMON_KEYS`]).
    pub keys: &'static [&'static str],
    /// Parses those keys for the output named in the first argument.
    pub parse: fn(&str, &mut Keys) -> Result<OutputSettings, SettingError>,
}

/// The keys every kind takes.
pub const COMMON_KEYS: &[&str] = &[
    "name",
    "kind",
    "offset_ms",
    "calibration_ms",
    "channel",
    "volume",
    "drift_control",
];

/// Every kind this build knows, in the order `--help` lists them.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "sim",
        help: "a simulated speaker (parameters in `sim = { … }`)",
        keys: SimParams::KEYS,
        parse: |_, k| SimParams::parse(k).map(OutputSettings::Sim),
    },
    Kind {
        name: "file",
        help: "a WAV file (`path`, default NAME.wav)",
        keys: FileSettings::KEYS,
        parse: |name, k| FileSettings::parse(name, k).map(OutputSettings::File),
    },
    Kind {
        name: "a2dp",
        help: "a classic Bluetooth speaker (`address`, optional `adapter`, `sbc_quality`, `delay_ms` fallback, \
               `avrcp_volume`, `idle_release_s`, `keep_alive`)",
        keys: a2dp_settings::KEYS,
        parse: |_, k| A2dpSettings::parse(k).map(OutputSettings::A2dp),
    },
    Kind {
        name: "pipe",
        help: "raw S16LE 48 kHz stereo in real time to a FIFO or `-` for stdout (`path`, `delay_ms`)",
        keys: pipe_settings::KEYS,
        parse: |name, k| PipeSettings::parse(name, k).map(OutputSettings::Pipe),
    },
    Kind {
        name: "broadcast",
        help: "an LE Audio broadcast (`preset`, `presentation_delay_ms`, `broadcast_code`, `channels`, `broadcast_name`, `manufacturer_data`, `adapter`)",
        keys: broadcast_settings::KEYS,
        parse: |_, k| BroadcastSettings::parse(k).map(OutputSettings::Broadcast),
    },
    Kind {
        name: "local",
        help: "this box's sound card through ALSA (`device`, default the default device; `period_ms`, `buffer_ms`)",
        keys: local::KEYS,
        parse: |_, k| LocalSpec::parse(k).map(OutputSettings::Local),
    },
];

/// One kind's typed settings.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputSettings {
    /// `sim`.
    Sim(SimParams),
    /// `file`.
    File(FileSettings),
    /// `a2dp`.
    A2dp(A2dpSettings),
    /// `pipe`.
    Pipe(PipeSettings),
    /// `broadcast`.
    Broadcast(BroadcastSettings),
    /// `local`.
    Local(LocalSpec),
}

impl OutputSettings {
    /// The kind's name in [`KINDS`].
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::Sim(_) => "sim",
            Self::File(_) => "file",
            Self::A2dp(_) => "a2dp",
            Self::Pipe(_) => "pipe",
            Self::Broadcast(_) => "broadcast",
            Self::Local(_) => "local",
        }
    }

    /// Opens the output `name` these settings describe (the kind follows from the variant: one match, no row
    /// that could open the wrong settings).
    pub fn open(&self, name: &str, ctx: &OutputContext) -> Result<Box<dyn Output>, OutputError> {
        Ok(match self {
            Self::Sim(p) => Box::new(sim::SimOutput::new(p.clone())),
            Self::File(f) => Box::new(file::FileOutput::create(&f.path)?),
            Self::A2dp(s) => {
                let shared: a2dp::SharedLink = Arc::default();
                ctx.bluetooth.start_a2dp(name, s, &shared)?;
                let options = a2dp::A2dpOptions {
                    fallback_delay_ns: s.fallback_delay_ns,
                    idle_release_ns: s.idle_release_ns,
                    keep_alive: s.keep_alive,
                };
                Box::new(a2dp::A2dpOutput::new(name, shared, options))
            }
            Self::Pipe(p) => Box::new(pipe::PipeOutput::open(&p.path, p.delay_ns)?),
            Self::Broadcast(b) => {
                let shared: broadcast::SharedBig = Arc::default();
                ctx.bluetooth.start_broadcast(name, b, &shared)?;
                Box::new(broadcast::BroadcastOutput::new(name, b.config.clone(), shared))
            }
            Self::Local(l) => Box::new(local::LocalOutput::open(name, l)?),
        })
    }

    /// The kind's row of [`KINDS`].
    pub fn kind(&self) -> &'static Kind {
        by_name(self.kind_name()).expect("every variant has a row in KINDS")
    }

    /// `check-config`'s words: what it plays to (a path, an address), then kind-specific details.
    pub fn describe(&self) -> (Option<String>, Vec<String>) {
        match self {
            Self::Sim(_) => (None, vec![]),
            Self::File(f) => (Some(f.path.clone()), vec![]),
            Self::Pipe(p) => (
                Some(p.path.clone()),
                (p.delay_ns != 0)
                    .then(|| format!("delay {} ms", p.delay_ns as f64 / 1e6))
                    .into_iter()
                    .collect(),
            ),
            Self::A2dp(a) => a.describe(),
            Self::Broadcast(b) => b.describe(),
            Self::Local(l) => l.describe(),
        }
    }
}

/// The kind named `name`.
pub fn by_name(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name == name)
}

/// An output with everything resolved to typed values.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSpec {
    /// Unique name; also its identity towards the group server.
    pub name: String,
    /// Manual offset, ns (positive plays later).
    pub offset_ns: i64,
    /// Acoustic calibration, ns (positive: the sink is slower than it reports).
    pub calibration_ns: i64,
    /// Channel map.
    pub channel: ChannelMap,
    /// Software volume, percent.
    pub volume_pct: u8,
    /// Rate correction against drift (default on; off only to measure what drift does).
    pub drift_control: bool,
    /// The kind and its settings.
    pub settings: OutputSettings,
}

impl OutputSpec {
    /// The kind's name.
    pub fn kind(&self) -> &'static str {
        self.settings.kind_name()
    }
}

/// Longest output name.
pub const MAX_NAME_LEN: usize = 64;

/// One `[[output]]` table as read: its keys with the spans of keys and values, and the table's own span.
pub type OutputTable = Spanned<std::collections::BTreeMap<Spanned<String>, Spanned<toml::Value>>>;

/// Parses one `[[output]]`: the common keys here, the kind's keys by its row of [`KINDS`], and no key left over.
pub fn parse(table: &OutputTable) -> Result<OutputSpec, SettingError> {
    let entries: Vec<_> = table.get_ref().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut keys = Keys::new(entries, table.span());
    let missing = |key: &str| SettingError::at(table.span(), format!("missing field `{key}`"));
    let name = keys.take::<String>("name")?.ok_or_else(|| missing("name"))?;
    let kind_key = keys.take::<String>("kind")?.ok_or_else(|| missing("kind"))?;
    let n = name.get_ref();
    if n.is_empty() || n.len() > MAX_NAME_LEN || !n.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(SettingError::at(
            name.span(),
            format!("output.name {n:?} must be 1-{MAX_NAME_LEN} characters of letters, digits, '-', '_' or '.'"),
        ));
    }
    let kind = by_name(kind_key.get_ref()).ok_or_else(|| {
        let known: Vec<&str> = KINDS.iter().map(|k| k.name).collect();
        SettingError::at(
            kind_key.span(),
            format!(
                "output.kind {:?} is unknown; known kinds: {}",
                kind_key.get_ref(),
                known.join(", ")
            ),
        )
    })?;
    keys.kind_span = kind_key.span();
    let offset_ns = keys.ms_ns("offset_ms", -5_000.0, 5_000.0)?.unwrap_or(0);
    let calibration_ns = keys.ms_ns("calibration_ms", -2_000.0, 2_000.0)?.unwrap_or(0);
    let channel = keys
        .take::<ChannelMap>("channel")?
        .map(Spanned::into_inner)
        .unwrap_or_default();
    let volume_pct = match keys.take::<i64>("volume")? {
        None => 100,
        Some(v) if (0..=100).contains(v.get_ref()) => *v.get_ref() as u8,
        Some(v) => {
            return Err(SettingError::at(
                v.span(),
                format!("output.volume must be a percentage 0-100, not {}", v.get_ref()),
            ))
        }
    };
    let drift_control = keys.take::<bool>("drift_control")?.is_none_or(|d| *d.get_ref());
    let settings = (kind.parse)(n, &mut keys)?;
    keys.finish(kind.name, |key| KINDS.iter().any(|k| k.keys.contains(&key)))?;
    Ok(OutputSpec {
        name: n.clone(),
        offset_ns,
        calibration_ns,
        channel,
        volume_pct,
        drift_control,
        settings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_its_row_and_every_row_parses_its_own_keys_only() {
        for k in KINDS {
            assert!(!COMMON_KEYS.iter().any(|c| k.keys.contains(c)), "{}", k.name);
        }
        let names: Vec<_> = KINDS.iter().map(|k| k.name).collect();
        assert_eq!(names, ["sim", "file", "a2dp", "pipe", "broadcast", "local"]);
    }
}
