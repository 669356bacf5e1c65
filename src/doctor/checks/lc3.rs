//! liblc3, the codec library a broadcast encodes with: present, and a version without the fixed-downsampling bug.

use super::{found, need, Finding, Level, Needs, LC3_FIXED_DOWNSAMPLING};
use crate::doctor::facts::MachineFacts;

/// `1.0.1-1+b1` → (1, 0, 1).
pub fn parse_lc3_version(v: &str) -> Option<(u32, u32, u32)> {
    let core = v.split(['-', '+', '~']).next()?;
    let core = core.rsplit(':').next()?;
    let mut it = core.split('.').map(|p| p.parse::<u32>());
    let major = it.next()?.ok()?;
    let minor = it.next()?.ok()?;
    let patch = it.next().and_then(Result::ok).unwrap_or(0);
    Some((major, minor, patch))
}

pub(super) fn lc3(needs: &Needs, facts: &MachineFacts, out: &mut Vec<Finding>) {
    let bc = !needs.broadcasts.is_empty();
    let downsampled: Vec<_> = needs
        .broadcasts
        .iter()
        .filter(|b| b.sample_rate_hz != 48_000)
        .map(|b| b.output.as_str())
        .collect();
    let Some(v) = facts.lc3.version.as_deref() else {
        let at = facts.lc3.path.as_deref().unwrap_or("not mapped");
        out.push(found(
            "liblc3",
            need(bc, Level::Warn),
            format!("liblc3's version is unknown ({at})"),
            None,
        ));
        return;
    };
    match parse_lc3_version(v) {
        Some(parsed) if parsed < LC3_FIXED_DOWNSAMPLING => {
            let (ma, mi, pa) = LC3_FIXED_DOWNSAMPLING;
            if downsampled.is_empty() {
                out.push(found(
                    "liblc3",
                    Level::Info,
                    format!(
                        "liblc3 {v}: its downsampling is faulty before {ma}.{mi}.{pa}, which only 16/24/32 kHz \
                         presets use"
                    ),
                    None,
                ));
            } else {
                out.push(found(
                    "liblc3",
                    Level::Warn,
                    format!(
                        "liblc3 {v} downsamples wrongly (fixed in {ma}.{mi}.{pa}); output(s) {} encode 48 kHz into \
                         a lower rate, so bluebridge low-passes and decimates itself (0.5-2 ms more delay)",
                        downsampled.join(", ")
                    ),
                    Some("upgrade to Debian / Raspberry Pi OS trixie (liblc3-1), or use a 48_x preset".into()),
                ));
            }
        }
        Some(_) => out.push(found("liblc3", Level::Ok, format!("liblc3 {v}"), None)),
        None => out.push(found(
            "liblc3",
            need(bc, Level::Warn),
            format!("liblc3 version {v:?} not understood"),
            None,
        )),
    }
}
