//! The `broadcast` kind's settings: preset, layout, presentation delay, code and adapter, checked as BlueZ would;
//! parsed from its `[[output]]` keys. (Beside [`super::broadcast`], the output itself.)

use super::settings::{Keys, SettingError};
use crate::bap::broadcast::{BroadcastCode, BroadcastConfig, ChannelLayout};
use crate::bap::presets::Preset;

/// The keys of kind `broadcast` (besides the common ones).
pub const KEYS: &[&str] = &[
    "preset",
    "presentation_delay_ms",
    "broadcast_code",
    "channels",
    "broadcast_name",
    "adapter",
];

/// Adapter of a broadcast that names none.
pub const DEFAULT_BROADCAST_ADAPTER: &str = "hci0";

/// An LE Audio broadcast.
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastSettings {
    /// The BIG: preset, layout, presentation delay, code.
    pub config: BroadcastConfig,
    /// The adapter, if named (default [`DEFAULT_BROADCAST_ADAPTER`]).
    pub adapter: Option<String>,
}

impl BroadcastSettings {
    /// Parses the kind's keys.
    pub fn parse(keys: &mut Keys) -> Result<Self, SettingError> {
        if let Some(n) = keys.take::<String>("broadcast_name")? {
            return Err(SettingError::at(
                n.span(),
                "output.broadcast_name cannot be honoured: BlueZ 5.82's Media API gives a broadcast source no way to \
                 set a Broadcast Name (receivers list the broadcast by its Broadcast_ID); remove the key",
            ));
        }
        let preset_key = keys.take::<String>("preset")?;
        let preset = match &preset_key {
            None => Preset::default_preset(),
            Some(p) => {
                Preset::by_name(p.get_ref()).map_err(|e| SettingError::at(p.span(), format!("output.preset: {e}")))?
            }
        };
        let pcm_hz = super::OUTPUT_FORMAT.rate_hz;
        if preset.check_pcm_rate(pcm_hz).is_err() {
            let span = preset_key.as_ref().map(|p| p.span()).unwrap_or(keys.kind_span.clone());
            let allowed: Vec<_> = Preset::encodable_from(pcm_hz).map(|p| p.name).collect();
            return Err(SettingError::at(
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
        let layout = match keys.take::<String>("channels")? {
            None => ChannelLayout::default(),
            Some(c) => c
                .get_ref()
                .parse::<ChannelLayout>()
                .map_err(|e| SettingError::at(c.span(), format!("output.channels: {e}")))?,
        };
        let mut config = BroadcastConfig::new(preset, layout);
        if let Some(d) = keys.take::<f64>("presentation_delay_ms")? {
            if !(0.0..=16_777.0).contains(d.get_ref()) {
                return Err(SettingError::at(
                    d.span(),
                    format!(
                        "output.presentation_delay_ms must be between 0 and 16777 ms, not {}",
                        d.get_ref()
                    ),
                ));
            }
            config.presentation_delay_us = (d.get_ref() * 1_000.0).round() as u32;
        }
        if let Some(c) = keys.take::<String>("broadcast_code")? {
            config.code = Some(
                BroadcastCode::parse(c.get_ref())
                    .map_err(|e| SettingError::at(c.span(), format!("output.broadcast_code: {e}")))?,
            );
        }
        config
            .validate()
            .map_err(|e| SettingError::at(keys.kind_span.clone(), format!("output: {e}")))?;
        let adapter = keys.adapter()?;
        Ok(Self { config, adapter })
    }

    /// The adapter it runs on.
    pub fn adapter(&self) -> &str {
        self.adapter.as_deref().unwrap_or(DEFAULT_BROADCAST_ADAPTER)
    }

    /// `check-config`'s words for it.
    pub fn describe(&self) -> (Option<String>, Vec<String>) {
        (None, self.adapter.iter().map(|a| format!("adapter {a}")).collect())
    }
}
