//! A2DP SBC capabilities: choosing a configuration within a speaker's capabilities (SelectConfiguration) and
//! checking one (SetConfiguration), with BlueZ's error names.
//!
//! Layout (A2DP spec, BlueZ `a2dp-codecs.h`): byte 0 = sampling frequency (high nibble: 16k 0x80, 32k 0x40,
//! 44.1k 0x20, 48k 0x10) | channel mode (low nibble: mono 0x08, dual 0x04, stereo 0x02, joint 0x01); byte 1 =
//! block length (high nibble: 4 0x80, 8 0x40, 12 0x20, 16 0x10) | subbands (8 0x04, 4 0x08) | allocation
//! (SNR 0x02, loudness 0x01); byte 2 = min bitpool; byte 3 = max bitpool. Every preference table is ordered from
//! best to worst.

/// What bluebridge offers as a source: everything it can encode at 48 kHz (the rate every output renders).
pub const SOURCE_CAPABILITIES: [u8; 4] = [0x10 | 0x0f, 0xff, MIN_BITPOOL, MAX_BITPOOL];
/// Smallest bitpool SBC allows.
pub const MIN_BITPOOL: u8 = 2;
/// Largest bitpool A2DP allows.
pub const MAX_BITPOOL: u8 = 250;

const FREQ_48K: u8 = 0x10;
const CHANNEL_MODES: [(u8, &str); 4] = [
    (0x01, "joint stereo"),
    (0x02, "stereo"),
    (0x04, "dual channel"),
    (0x08, "mono"),
];
const BLOCKS: [u8; 4] = [0x10, 0x20, 0x40, 0x80];
const SUBBANDS: [u8; 2] = [0x04, 0x08];
const ALLOCATIONS: [u8; 2] = [0x01, 0x02];

/// Quality target for the bitpool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SbcQuality {
    /// BlueZ's high-quality bitpools (48 kHz: 51 joint stereo and stereo, 29 mono and dual channel).
    #[default]
    High,
    /// SBC-XQ-like: dual channel at a high bitpool, when the speaker allows it.
    Xq,
}

/// Why a capability or configuration was refused: the BlueZ error name and a message naming the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct CapsError {
    /// `org.bluez.Error.…` name BlueZ maps to an AVDTP error.
    pub name: &'static str,
    /// What was wrong.
    pub message: String,
}

fn err(name: &'static str, message: String) -> CapsError {
    CapsError { name, message }
}

/// The HQ (or XQ) maximum bitpool for 48 kHz and a channel mode.
pub fn bitpool_for(mode: u8, quality: SbcQuality) -> u8 {
    match (quality, mode) {
        // SBC-XQ (PipeWire's table for 48 kHz): dual channel and mono 39 per channel, stereo/joint 78.
        (SbcQuality::Xq, 0x04) | (SbcQuality::Xq, 0x08) => 39,
        (SbcQuality::Xq, _) => 78,
        (SbcQuality::High, 0x08) | (SbcQuality::High, 0x04) => 29,
        (SbcQuality::High, _) => 51,
    }
}

/// Chooses the best configuration within the speaker's `caps` (SelectConfiguration).
pub fn select(caps: &[u8], quality: SbcQuality) -> Result<[u8; 4], CapsError> {
    let [c0, c1, min_bp, max_bp] = <[u8; 4]>::try_from(caps).map_err(|_| {
        err(
            "org.bluez.Error.InvalidArguments",
            format!("SBC capabilities must be 4 bytes, got {}: {caps:02x?}", caps.len()),
        )
    })?;
    if c0 & FREQ_48K == 0 {
        return Err(err(
            "org.bluez.Error.NotSupported",
            format!(
                "the speaker does not offer 48 kHz (sampling frequencies 0x{:x}); bluebridge renders at 48 kHz",
                c0 >> 4
            ),
        ));
    }
    let mode_order: Vec<u8> = match quality {
        SbcQuality::Xq => vec![0x04, 0x01, 0x02, 0x08],
        SbcQuality::High => CHANNEL_MODES.iter().map(|m| m.0).collect(),
    };
    let mode = *mode_order.iter().find(|m| c0 & **m != 0).ok_or_else(|| {
        err(
            "org.bluez.Error.NotSupported",
            format!("no channel mode offered (0x{:x})", c0 & 0x0f),
        )
    })?;
    let blocks = *BLOCKS.iter().find(|b| c1 & **b != 0).ok_or_else(|| {
        err(
            "org.bluez.Error.NotSupported",
            format!("no block length offered (0x{:x})", c1 >> 4),
        )
    })?;
    let subbands = *SUBBANDS.iter().find(|s| c1 & **s != 0).ok_or_else(|| {
        err(
            "org.bluez.Error.NotSupported",
            format!("no subband count offered (0x{:x})", (c1 >> 2) & 3),
        )
    })?;
    let alloc = *ALLOCATIONS.iter().find(|a| c1 & **a != 0).ok_or_else(|| {
        err(
            "org.bluez.Error.NotSupported",
            format!("no allocation method offered (0x{:x})", c1 & 3),
        )
    })?;
    if min_bp < MIN_BITPOOL || max_bp > MAX_BITPOOL || min_bp > max_bp {
        return Err(err(
            "org.bluez.Error.InvalidArguments",
            format!("bitpool range {min_bp}..{max_bp} is impossible (SBC allows {MIN_BITPOOL}..{MAX_BITPOOL})"),
        ));
    }
    let max = bitpool_for(mode, quality).clamp(min_bp, max_bp);
    Ok([FREQ_48K | mode, blocks | subbands | alloc, min_bp, max])
}

fn one_bit(v: u8) -> bool {
    v != 0 && v & (v - 1) == 0
}

/// Checks a configuration a speaker (or BlueZ) proposes (SetConfiguration).
pub fn check(conf: &[u8]) -> Result<(), CapsError> {
    let [c0, c1, min_bp, max_bp] = <[u8; 4]>::try_from(conf).map_err(|_| {
        err(
            "org.bluez.Error.InvalidArguments",
            format!("SBC configuration must be 4 bytes, got {}", conf.len()),
        )
    })?;
    let freq = c0 >> 4;
    if !one_bit(freq) {
        return Err(err(
            "org.bluez.Error.A2DP.InvalidSamplingFrequency",
            format!("sampling frequency bits 0x{freq:x}"),
        ));
    }
    if c0 & 0xf0 != FREQ_48K {
        return Err(err(
            "org.bluez.Error.A2DP.NotSupportedSamplingFrequency",
            format!("sampling frequency bits 0x{freq:x}: only 48 kHz"),
        ));
    }
    if !one_bit(c0 & 0x0f) {
        return Err(err(
            "org.bluez.Error.A2DP.InvalidChannelMode",
            format!("channel mode bits 0x{:x}", c0 & 0x0f),
        ));
    }
    if !one_bit(c1 >> 4) {
        return Err(err(
            "org.bluez.Error.A2DP.InvalidBlockLength",
            format!("block length bits 0x{:x}", c1 >> 4),
        ));
    }
    if !one_bit((c1 >> 2) & 3) {
        return Err(err(
            "org.bluez.Error.A2DP.InvalidSubbands",
            format!("subband bits 0x{:x}", (c1 >> 2) & 3),
        ));
    }
    if !one_bit(c1 & 3) {
        return Err(err(
            "org.bluez.Error.A2DP.InvalidAllocationMethod",
            format!("allocation bits 0x{:x}", c1 & 3),
        ));
    }
    if min_bp < MIN_BITPOOL {
        return Err(err(
            "org.bluez.Error.A2DP.InvalidMinimumBitpoolValue",
            format!("minimum bitpool {min_bp}"),
        ));
    }
    if max_bp > MAX_BITPOOL || max_bp < min_bp {
        return Err(err(
            "org.bluez.Error.A2DP.InvalidMaximumBitpoolValue",
            format!("maximum bitpool {max_bp} (minimum {min_bp})"),
        ));
    }
    Ok(())
}

/// Number of audio channels of a (checked) configuration.
pub fn channels(conf: &[u8; 4]) -> usize {
    if conf[0] & 0x08 != 0 {
        1
    } else {
        2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Capabilities, quality, expected configuration or BlueZ error name.
    type SelectCase<'a> = (&'a [u8], SbcQuality, Result<[u8; 4], &'a str>);

    #[test]
    fn select_table() {
        let cases: &[SelectCase] = &[
            // Everything offered: 48 kHz joint stereo, 16 blocks, 8 subbands, loudness, HQ bitpool 51.
            (&[0xff, 0xff, 2, 250], SbcQuality::High, Ok([0x11, 0x15, 2, 51])),
            // A speaker capped at bitpool 35.
            (&[0xff, 0xff, 2, 35], SbcQuality::High, Ok([0x11, 0x15, 2, 35])),
            // Only stereo, 8 blocks, 4 subbands, SNR.
            (&[0x32, 0x4a, 10, 60], SbcQuality::High, Ok([0x12, 0x4a, 10, 51])),
            // Mono only: mono bitpool.
            (&[0x18, 0xff, 2, 250], SbcQuality::High, Ok([0x18, 0x15, 2, 29])),
            // XQ prefers dual channel when offered.
            (&[0xff, 0xff, 2, 250], SbcQuality::Xq, Ok([0x14, 0x15, 2, 39])),
            // No 48 kHz.
            (
                &[0x2f, 0xff, 2, 250],
                SbcQuality::High,
                Err("org.bluez.Error.NotSupported"),
            ),
            // No channel mode.
            (
                &[0x10, 0xff, 2, 250],
                SbcQuality::High,
                Err("org.bluez.Error.NotSupported"),
            ),
            // No allocation method.
            (
                &[0x11, 0xfc, 2, 250],
                SbcQuality::High,
                Err("org.bluez.Error.NotSupported"),
            ),
            // Impossible bitpools.
            (
                &[0xff, 0xff, 60, 30],
                SbcQuality::High,
                Err("org.bluez.Error.InvalidArguments"),
            ),
            (
                &[0xff, 0xff, 0, 30],
                SbcQuality::High,
                Err("org.bluez.Error.InvalidArguments"),
            ),
            // Wrong length.
            (
                &[0xff, 0xff, 2],
                SbcQuality::High,
                Err("org.bluez.Error.InvalidArguments"),
            ),
        ];
        for (caps, q, want) in cases {
            let got = select(caps, *q).map_err(|e| e.name);
            assert_eq!(&got, want, "caps {caps:02x?} {q:?}");
            if let Ok(conf) = got {
                assert_eq!(check(&conf), Ok(()), "selected {conf:02x?} must pass check");
            }
        }
    }

    #[test]
    fn check_table() {
        let cases: &[(&[u8], Result<(), &str>)] = &[
            (&[0x11, 0x15, 2, 51], Ok(())),
            (
                &[0x31, 0x15, 2, 51],
                Err("org.bluez.Error.A2DP.InvalidSamplingFrequency"),
            ),
            (
                &[0x21, 0x15, 2, 51],
                Err("org.bluez.Error.A2DP.NotSupportedSamplingFrequency"),
            ),
            (&[0x13, 0x15, 2, 51], Err("org.bluez.Error.A2DP.InvalidChannelMode")),
            (&[0x11, 0x35, 2, 51], Err("org.bluez.Error.A2DP.InvalidBlockLength")),
            (&[0x11, 0x1d, 2, 51], Err("org.bluez.Error.A2DP.InvalidSubbands")),
            (
                &[0x11, 0x17, 2, 51],
                Err("org.bluez.Error.A2DP.InvalidAllocationMethod"),
            ),
            (
                &[0x11, 0x15, 1, 51],
                Err("org.bluez.Error.A2DP.InvalidMinimumBitpoolValue"),
            ),
            (
                &[0x11, 0x15, 60, 51],
                Err("org.bluez.Error.A2DP.InvalidMaximumBitpoolValue"),
            ),
            (&[0x11, 0x15], Err("org.bluez.Error.InvalidArguments")),
        ];
        for (conf, want) in cases {
            assert_eq!(&check(conf).map_err(|e| e.name), want, "{conf:02x?}");
        }
        assert_eq!(channels(&[0x18, 0x15, 2, 29]), 1);
        assert_eq!(channels(&[0x11, 0x15, 2, 51]), 2);
    }
}
