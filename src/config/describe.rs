//! The human summary of a loaded config (`bluebridge check`): one readable line per output.

use super::{OutputSpec, SourceSpec};
use crate::output::player::ChannelMap;

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
        SourceSpec::Sendspin { meet, encryption } => {
            format!("sendspin {meet}{}", if *encryption { "" } else { " (unencrypted)" })
        }
        SourceSpec::Capture { capture, buffer_ns } => format!(
            "capture {}, period {} ms, buffer {} ms",
            capture.device.as_deref().unwrap_or("default"),
            capture.period_ms,
            buffer_ns / 1_000_000
        ),
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
