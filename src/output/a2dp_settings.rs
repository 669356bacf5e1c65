//! The `a2dp` kind's settings: which speaker, where, how loud and how idle; parsed from its `[[output]]` keys.
//! (Beside [`super::a2dp`], the output itself.)

use super::settings::{Keys, SettingError};
use crate::a2dp::sbc_caps::SbcQuality;

/// Delay assumed for an A2DP speaker that reports none (PipeWire assumes 200 ms for SBC; most speakers report).
pub const A2DP_FALLBACK_DELAY_MS: f64 = 150.0;

/// Silence after which an A2DP stream is released by default, s: long enough for any gap between tracks, short
/// enough that an idle speaker is soon free for a phone and may sleep.
pub const A2DP_IDLE_RELEASE_S: f64 = 60.0;

/// The keys of kind `a2dp` (besides the common ones).
pub const KEYS: &[&str] = &[
    "address",
    "adapter",
    "sbc_quality",
    "delay_ms",
    "avrcp_volume",
    "idle_release_s",
    "keep_alive",
];

/// A classic Bluetooth speaker.
#[derive(Debug, Clone, PartialEq)]
pub struct A2dpSettings {
    /// The speaker.
    pub address: bluer::Address,
    /// The adapter, if pinned (`hci0`…); None: placed automatically.
    pub adapter: Option<String>,
    /// SBC quality.
    pub sbc_quality: SbcQuality,
    /// Delay assumed while the speaker reports none, ns.
    pub fallback_delay_ns: i64,
    /// Use the speaker's AVRCP absolute volume when it has one.
    pub avrcp_volume: bool,
    /// Release the stream after this much silence, ns (None: never).
    pub idle_release_ns: Option<i64>,
    /// An inaudible tone during silence instead of releasing.
    pub keep_alive: bool,
}

impl A2dpSettings {
    /// Parses the kind's keys.
    pub fn parse(keys: &mut Keys) -> Result<Self, SettingError> {
        let address = match keys.take::<String>("address")? {
            Some(a) => {
                let text = a.get_ref();
                match text.parse::<bluer::Address>() {
                    Ok(address) if text.len() == 17 => address,
                    _ => {
                        return Err(SettingError::at(
                            a.span(),
                            format!("output.address {text:?} is not a Bluetooth address like 00:11:22:33:44:55"),
                        ))
                    }
                }
            }
            None => {
                return Err(SettingError::at(
                    keys.kind_span.clone(),
                    "output.address is required for kind \"a2dp\"",
                ))
            }
        };
        let adapter = keys.adapter()?;
        let sbc_quality = keys
            .take::<SbcQuality>("sbc_quality")?
            .map(|q| q.into_inner())
            .unwrap_or_default();
        let fallback_delay_ns = keys
            .ms_ns("delay_ms", 0.0, 5_000.0)?
            .unwrap_or((A2DP_FALLBACK_DELAY_MS * 1e6) as i64);
        let avrcp_volume = keys.take::<bool>("avrcp_volume")?.is_none_or(|v| *v.get_ref());
        let keep_alive = keys.take::<bool>("keep_alive")?.is_some_and(|v| *v.get_ref());
        let idle_release_ns = match keys.take::<f64>("idle_release_s")? {
            Some(v) if keep_alive => {
                return Err(SettingError::at(
                    v.span(),
                    "output.idle_release_s does not apply with keep_alive = true (a kept-alive speaker is never \
                     released); remove one of them",
                ))
            }
            Some(v) if !(0.0..=86_400.0).contains(v.get_ref()) => {
                return Err(SettingError::at(
                    v.span(),
                    format!(
                        "output.idle_release_s must be between 0 (never) and 86400 s, not {}",
                        v.get_ref()
                    ),
                ))
            }
            Some(v) if *v.get_ref() == 0.0 => None,
            Some(v) => Some((v.get_ref() * 1e9).round() as i64),
            None if keep_alive => None,
            None => Some((A2DP_IDLE_RELEASE_S * 1e9) as i64),
        };
        Ok(Self {
            address,
            adapter,
            sbc_quality,
            fallback_delay_ns,
            avrcp_volume,
            idle_release_ns,
            keep_alive,
        })
    }

    /// `check-config`'s words for it: the address first, then the rest.
    pub fn describe(&self) -> (Option<String>, Vec<String>) {
        let mut details = Vec::new();
        if let Some(a) = &self.adapter {
            details.push(format!("adapter {a}"));
        }
        details.push(format!("delay {} ms", self.fallback_delay_ns as f64 / 1e6));
        (Some(self.address.to_string()), details)
    }
}
