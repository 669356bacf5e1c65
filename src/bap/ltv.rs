//! LTV (length, type, value) structures of LE Audio: LC3 codec capabilities, codec-specific configuration and
//! metadata (Bluetooth Assigned Numbers §6.12.4–6.12.6; BAP v1.0.1 §4.3).
//!
//! An LTV is `[length][type][value…]` where `length` counts the type byte plus the value (so at most 254 value
//! bytes); multi-byte values are little endian. BlueZ takes these bytes verbatim: the per-BIS `Capabilities`
//! of `SetConfiguration` is a [`CodecConfig`], its `Metadata` a [`Metadata`], and `RegisterEndpoint`'s
//! `Capabilities` an [`Lc3Capabilities`] (notes/bluez.md §B.1). The byte order of fields follows BlueZ's own
//! `LC3_CONFIG_AC` / `LC3_CAPABILITIES` macros (`src/shared/lc3.h`): frequency, duration, (channels,) frame
//! length, then allocation.

use crate::codec::lc3::FrameDuration;

/// The LC3 Coding_Format (Assigned Numbers §2.11), first byte of a codec ID.
pub const LC3_CODING_FORMAT: u8 = 0x06;

/// Codec_Specific_Configuration LTV types (Assigned Numbers §6.12.5).
pub mod config_type {
    /// Sampling_Frequency: 1 byte, a [`super::sampling_frequency_code`].
    pub const SAMPLING_FREQUENCY: u8 = 0x01;
    /// Frame_Duration: 1 byte, 0x00 = 7.5 ms, 0x01 = 10 ms.
    pub const FRAME_DURATION: u8 = 0x02;
    /// Audio_Channel_Allocation: 4 bytes, a bit field of [`super::audio_location`]s.
    pub const AUDIO_CHANNEL_ALLOCATION: u8 = 0x03;
    /// Octets_Per_Codec_Frame: 2 bytes.
    pub const OCTETS_PER_CODEC_FRAME: u8 = 0x04;
    /// Codec_Frame_Blocks_Per_SDU: 1 byte (absent = 1).
    pub const CODEC_FRAME_BLOCKS_PER_SDU: u8 = 0x05;
}

/// Codec_Specific_Capabilities LTV types (Assigned Numbers §6.12.4).
pub mod capability_type {
    /// Supported_Sampling_Frequencies: 2-byte bit field, bit n = frequency code n+1.
    pub const SAMPLING_FREQUENCIES: u8 = 0x01;
    /// Supported_Frame_Durations: 1-byte bit field, bit0 = 7.5 ms, bit1 = 10 ms.
    pub const FRAME_DURATIONS: u8 = 0x02;
    /// Supported_Audio_Channel_Counts: 1-byte bit field, bit n = n+1 channels.
    pub const AUDIO_CHANNEL_COUNTS: u8 = 0x03;
    /// Supported_Octets_Per_Codec_Frame: 2 × 2 bytes, min then max.
    pub const OCTETS_PER_CODEC_FRAME: u8 = 0x04;
    /// Supported_Max_Codec_Frames_Per_SDU: 1 byte.
    pub const MAX_CODEC_FRAMES_PER_SDU: u8 = 0x05;
}

/// Metadata LTV types (Assigned Numbers §6.12.6).
pub mod metadata_type {
    /// Preferred_Audio_Contexts: 2-byte [`super::context`] bit field.
    pub const PREFERRED_AUDIO_CONTEXTS: u8 = 0x01;
    /// Streaming_Audio_Contexts: 2-byte [`super::context`] bit field.
    pub const STREAMING_AUDIO_CONTEXTS: u8 = 0x02;
    /// Program_Info: UTF-8 title/description of the content.
    pub const PROGRAM_INFO: u8 = 0x03;
    /// Language: 3-byte ISO 639-3 code, lower case.
    pub const LANGUAGE: u8 = 0x04;
}

/// Audio Location bits (Assigned Numbers §6.12.1).
pub mod audio_location {
    /// No location: mono audio (also what an absent Audio_Channel_Allocation means).
    pub const MONO: u32 = 0x0000_0000;
    /// Front Left.
    pub const FRONT_LEFT: u32 = 0x0000_0001;
    /// Front Right.
    pub const FRONT_RIGHT: u32 = 0x0000_0002;
}

/// Context Type bits (Assigned Numbers §6.12.3).
pub mod context {
    /// Unspecified.
    pub const UNSPECIFIED: u16 = 0x0001;
    /// Conversational (telephony).
    pub const CONVERSATIONAL: u16 = 0x0002;
    /// Media (music, film).
    pub const MEDIA: u16 = 0x0004;
}

/// Most value bytes one LTV can carry (the length byte counts the type too).
pub const MAX_VALUE_LEN: usize = 254;

/// A malformed or unrepresentable LTV structure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LtvError {
    /// The value does not fit an LTV.
    #[error("LTV type {ty:#04x}: value of {len} bytes, at most {MAX_VALUE_LEN} fit")]
    TooLong {
        /// The LTV type.
        ty: u8,
        /// The value's length.
        len: usize,
    },
    /// A length byte of zero (no type byte) at `offset`.
    #[error("LTV at byte {offset} has length 0")]
    ZeroLength {
        /// Byte offset of the length byte.
        offset: usize,
    },
    /// The length byte runs past the end of the data.
    #[error("LTV at byte {offset} claims {len} bytes but only {left} remain")]
    Truncated {
        /// Byte offset of the length byte.
        offset: usize,
        /// The length byte's value.
        len: usize,
        /// Bytes left after the length byte.
        left: usize,
    },
    /// A known type with a value of the wrong size.
    #[error("LTV type {ty:#04x} at byte {offset}: value of {len} bytes, expected {expected}")]
    BadLength {
        /// The LTV type.
        ty: u8,
        /// Byte offset of the length byte.
        offset: usize,
        /// The value's length.
        len: usize,
        /// The length the type requires.
        expected: usize,
    },
    /// The same type twice.
    #[error("LTV type {ty:#04x} appears twice (second at byte {offset})")]
    Duplicate {
        /// The LTV type.
        ty: u8,
        /// Byte offset of the second one.
        offset: usize,
    },
    /// A codec configuration without a mandatory LTV.
    #[error("LC3 codec configuration lacks {0}")]
    Missing(&'static str),
    /// A value this code cannot represent or read.
    #[error("LC3 codec configuration: {0}")]
    BadValue(String),
}

/// Appends one LTV.
pub fn push_ltv(out: &mut Vec<u8>, ty: u8, value: &[u8]) -> Result<(), LtvError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(LtvError::TooLong { ty, len: value.len() });
    }
    out.push(value.len() as u8 + 1);
    out.push(ty);
    out.extend_from_slice(value);
    Ok(())
}

/// One parsed LTV, borrowing its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ltv<'a> {
    /// Byte offset of its length byte in the parsed data.
    pub offset: usize,
    /// Its type.
    pub ty: u8,
    /// Its value.
    pub value: &'a [u8],
}

/// Splits `bytes` into LTVs, refusing zero lengths and truncation (not duplicates: see the typed parsers).
pub fn parse_ltvs(bytes: &[u8]) -> Result<Vec<Ltv<'_>>, LtvError> {
    let mut out = Vec::new();
    let mut offset = 0;
    while offset < bytes.len() {
        let len = usize::from(bytes[offset]);
        if len == 0 {
            return Err(LtvError::ZeroLength { offset });
        }
        let left = bytes.len() - offset - 1;
        if len > left {
            return Err(LtvError::Truncated { offset, len, left });
        }
        out.push(Ltv {
            offset,
            ty: bytes[offset + 1],
            value: &bytes[offset + 2..offset + 1 + len],
        });
        offset += 1 + len;
    }
    Ok(out)
}

/// BAP's Sampling_Frequency code for a rate (Assigned Numbers §6.12.5.1), e.g. 48 000 → 0x08.
pub fn sampling_frequency_code(hz: u32) -> Option<u8> {
    SAMPLING_FREQUENCIES.iter().position(|&f| f == hz).map(|i| i as u8 + 1)
}

/// The rate a Sampling_Frequency code stands for.
pub fn sampling_frequency_hz(code: u8) -> Option<u32> {
    SAMPLING_FREQUENCIES.get(usize::from(code).checked_sub(1)?).copied()
}

/// Codes 0x01..=0x0D in order.
const SAMPLING_FREQUENCIES: [u32; 13] = [
    8_000, 11_025, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 88_200, 96_000, 176_400, 192_000, 384_000,
];

/// The Frame_Duration code: 0x00 = 7.5 ms, 0x01 = 10 ms.
pub fn frame_duration_code(d: FrameDuration) -> u8 {
    match d {
        FrameDuration::Ms7_5 => 0x00,
        FrameDuration::Ms10 => 0x01,
    }
}

/// An LC3 Codec_Specific_Configuration: what one BIS (or a BASE subgroup) carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecConfig {
    /// Sampling rate, Hz (must have a BAP code).
    pub sample_rate_hz: u32,
    /// Frame duration.
    pub frame_duration: FrameDuration,
    /// Audio_Channel_Allocation; `None` = omitted (mono, no location).
    pub audio_channel_allocation: Option<u32>,
    /// Octets per codec frame.
    pub octets_per_frame: u16,
    /// Codec_Frame_Blocks_Per_SDU; `None` = omitted (1 block).
    pub frame_blocks_per_sdu: Option<u8>,
}

impl CodecConfig {
    /// The LTV bytes: sampling frequency, frame duration, octets per frame, then (when set) the channel allocation
    /// and the frame blocks per SDU.
    pub fn to_bytes(&self) -> Result<Vec<u8>, LtvError> {
        let freq = sampling_frequency_code(self.sample_rate_hz).ok_or_else(|| {
            LtvError::BadValue(format!("sampling frequency {} Hz has no BAP code", self.sample_rate_hz))
        })?;
        let mut out = Vec::with_capacity(19);
        push_ltv(&mut out, config_type::SAMPLING_FREQUENCY, &[freq])?;
        push_ltv(
            &mut out,
            config_type::FRAME_DURATION,
            &[frame_duration_code(self.frame_duration)],
        )?;
        push_ltv(
            &mut out,
            config_type::OCTETS_PER_CODEC_FRAME,
            &self.octets_per_frame.to_le_bytes(),
        )?;
        if let Some(a) = self.audio_channel_allocation {
            push_ltv(&mut out, config_type::AUDIO_CHANNEL_ALLOCATION, &a.to_le_bytes())?;
        }
        if let Some(n) = self.frame_blocks_per_sdu {
            push_ltv(&mut out, config_type::CODEC_FRAME_BLOCKS_PER_SDU, &[n])?;
        }
        Ok(out)
    }

    /// Reads a configuration (any LTV order; unknown types are skipped, known ones must have their size).
    pub fn parse(bytes: &[u8]) -> Result<Self, LtvError> {
        let (mut rate, mut dur, mut alloc, mut octets, mut blocks) = (None, None, None, None, None);
        let mut seen = Vec::new();
        for ltv in parse_ltvs(bytes)? {
            let expected = match ltv.ty {
                config_type::SAMPLING_FREQUENCY | config_type::FRAME_DURATION => 1,
                config_type::AUDIO_CHANNEL_ALLOCATION => 4,
                config_type::OCTETS_PER_CODEC_FRAME => 2,
                config_type::CODEC_FRAME_BLOCKS_PER_SDU => 1,
                _ => continue,
            };
            if seen.contains(&ltv.ty) {
                return Err(LtvError::Duplicate {
                    ty: ltv.ty,
                    offset: ltv.offset,
                });
            }
            seen.push(ltv.ty);
            if ltv.value.len() != expected {
                return Err(LtvError::BadLength {
                    ty: ltv.ty,
                    offset: ltv.offset,
                    len: ltv.value.len(),
                    expected,
                });
            }
            let v = ltv.value;
            match ltv.ty {
                config_type::SAMPLING_FREQUENCY => {
                    rate =
                        Some(sampling_frequency_hz(v[0]).ok_or_else(|| {
                            LtvError::BadValue(format!("unknown sampling frequency code {:#04x}", v[0]))
                        })?)
                }
                config_type::FRAME_DURATION => {
                    dur = Some(match v[0] {
                        0x00 => FrameDuration::Ms7_5,
                        0x01 => FrameDuration::Ms10,
                        c => return Err(LtvError::BadValue(format!("unknown frame duration code {c:#04x}"))),
                    })
                }
                config_type::AUDIO_CHANNEL_ALLOCATION => alloc = Some(u32::from_le_bytes([v[0], v[1], v[2], v[3]])),
                config_type::OCTETS_PER_CODEC_FRAME => octets = Some(u16::from_le_bytes([v[0], v[1]])),
                _ => blocks = Some(v[0]),
            }
        }
        Ok(Self {
            sample_rate_hz: rate.ok_or(LtvError::Missing("Sampling_Frequency"))?,
            frame_duration: dur.ok_or(LtvError::Missing("Frame_Duration"))?,
            audio_channel_allocation: alloc,
            octets_per_frame: octets.ok_or(LtvError::Missing("Octets_Per_Codec_Frame"))?,
            frame_blocks_per_sdu: blocks,
        })
    }
}

/// Metadata of a broadcast subgroup / BIS configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata {
    /// Streaming_Audio_Contexts ([`context`] bits), e.g. [`context::MEDIA`].
    pub streaming_audio_contexts: Option<u16>,
    /// Program_Info: what is playing, UTF-8.
    pub program_info: Option<String>,
    /// Language: ISO 639-3 code (three lowercase ASCII letters, e.g. `"eng"`).
    pub language: Option<String>,
}

impl Metadata {
    /// Streaming context Media only: what a music broadcast carries.
    pub fn media() -> Self {
        Self {
            streaming_audio_contexts: Some(context::MEDIA),
            ..Self::default()
        }
    }

    /// The LTV bytes (empty when nothing is set): contexts, program info, language.
    pub fn to_bytes(&self) -> Result<Vec<u8>, LtvError> {
        let mut out = Vec::new();
        if let Some(c) = self.streaming_audio_contexts {
            push_ltv(&mut out, metadata_type::STREAMING_AUDIO_CONTEXTS, &c.to_le_bytes())?;
        }
        if let Some(p) = &self.program_info {
            push_ltv(&mut out, metadata_type::PROGRAM_INFO, p.as_bytes())?;
        }
        if let Some(l) = &self.language {
            if l.len() != 3 || !l.bytes().all(|b| b.is_ascii_lowercase()) {
                return Err(LtvError::BadValue(format!(
                    "language {l:?} is not an ISO 639-3 code (three lowercase letters, e.g. \"eng\")"
                )));
            }
            push_ltv(&mut out, metadata_type::LANGUAGE, l.as_bytes())?;
        }
        Ok(out)
    }
}

/// LC3 Codec_Specific_Capabilities of a local endpoint (`RegisterEndpoint`'s `Capabilities`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lc3Capabilities {
    /// Supported_Sampling_Frequencies bit field (bit n = code n+1: bit0 8 kHz … bit7 48 kHz).
    pub sampling_frequencies: u16,
    /// Supported_Frame_Durations bit field (bit0 7.5 ms, bit1 10 ms).
    pub frame_durations: u8,
    /// Supported_Audio_Channel_Counts bit field (bit0 = 1 channel).
    pub channel_counts: u8,
    /// Supported_Octets_Per_Codec_Frame, min.
    pub min_octets: u16,
    /// Supported_Octets_Per_Codec_Frame, max.
    pub max_octets: u16,
}

impl Lc3Capabilities {
    /// What a broadcast source covering every standard preset supports: 8/16/24/32/44.1/48 kHz, both durations,
    /// one channel per BIS, 26..=155 octets (the presets' smallest and largest frames).
    pub fn broadcast_source() -> Self {
        let sampling_frequencies = [8_000, 16_000, 24_000, 32_000, 44_100, 48_000]
            .iter()
            .map(|&hz| 1u16 << (sampling_frequency_code(hz).expect("standard rate") - 1))
            .fold(0, |a, b| a | b);
        Self {
            sampling_frequencies,
            frame_durations: 0b11,
            channel_counts: 0b1,
            min_octets: 26,
            max_octets: 155,
        }
    }

    /// The LTV bytes in BlueZ's `LC3_CAPABILITIES` order.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        let octets = [self.min_octets.to_le_bytes(), self.max_octets.to_le_bytes()].concat();
        // Every value here is at most 4 bytes, so push_ltv cannot fail.
        for (ty, v) in [
            (
                capability_type::SAMPLING_FREQUENCIES,
                &self.sampling_frequencies.to_le_bytes()[..],
            ),
            (capability_type::FRAME_DURATIONS, &[self.frame_durations][..]),
            (capability_type::AUDIO_CHANNEL_COUNTS, &[self.channel_counts][..]),
            (capability_type::OCTETS_PER_CODEC_FRAME, &octets[..]),
        ] {
            push_ltv(&mut out, ty, v).expect("short value");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_config_golden_bytes() {
        // Derived by hand from Assigned Numbers §6.12.5 and checked against BlueZ src/shared/lc3.h (HEAD 690c16df):
        // LC3_CONFIG_48_2 = 02 01 08 | 02 02 01 | 03 04 64 00, and LC3_CONFIG_AC appends 05 03 <allocation LE32>.
        let c = CodecConfig {
            sample_rate_hz: 48_000,
            frame_duration: FrameDuration::Ms10,
            audio_channel_allocation: Some(audio_location::FRONT_LEFT),
            octets_per_frame: 100,
            frame_blocks_per_sdu: None,
        };
        assert_eq!(
            c.to_bytes().unwrap(),
            [0x02, 0x01, 0x08, 0x02, 0x02, 0x01, 0x03, 0x04, 0x64, 0x00, 0x05, 0x03, 0x01, 0x00, 0x00, 0x00]
        );
        // 16_2 (LC3_CONFIG_16_2 = 02 01 03 | 02 02 01 | 03 04 28 00), no allocation, 2 blocks per SDU.
        let c = CodecConfig {
            sample_rate_hz: 16_000,
            frame_duration: FrameDuration::Ms10,
            audio_channel_allocation: None,
            octets_per_frame: 40,
            frame_blocks_per_sdu: Some(2),
        };
        assert_eq!(
            c.to_bytes().unwrap(),
            [0x02, 0x01, 0x03, 0x02, 0x02, 0x01, 0x03, 0x04, 0x28, 0x00, 0x02, 0x05, 0x02]
        );
        // 441_1 (LC3_CONFIG_44_1 = 02 01 07 | 02 02 00 | 03 04 61 00) with FL|FR.
        let c = CodecConfig {
            sample_rate_hz: 44_100,
            frame_duration: FrameDuration::Ms7_5,
            audio_channel_allocation: Some(audio_location::FRONT_LEFT | audio_location::FRONT_RIGHT),
            octets_per_frame: 97,
            frame_blocks_per_sdu: None,
        };
        assert_eq!(
            c.to_bytes().unwrap(),
            [0x02, 0x01, 0x07, 0x02, 0x02, 0x00, 0x03, 0x04, 0x61, 0x00, 0x05, 0x03, 0x03, 0x00, 0x00, 0x00]
        );
        assert_eq!(CodecConfig::parse(&c.to_bytes().unwrap()).unwrap(), c);
    }

    #[test]
    fn codec_config_parse_any_order_and_errors() {
        // Allocation first, an unknown type (0x7f) skipped.
        let bytes = [
            0x05, 0x03, 0x02, 0, 0, 0, 0x02, 0x7f, 0xaa, 0x03, 0x04, 0x9b, 0x00, 0x02, 0x02, 0x00, 0x02, 0x01, 0x05,
        ];
        let c = CodecConfig::parse(&bytes).unwrap();
        assert_eq!(
            c,
            CodecConfig {
                sample_rate_hz: 24_000,
                frame_duration: FrameDuration::Ms7_5,
                audio_channel_allocation: Some(2),
                octets_per_frame: 155,
                frame_blocks_per_sdu: None,
            }
        );
        let cases: [(&[u8], &str); 8] = [
            (&[0x02, 0x01], "LTV at byte 0 claims 2 bytes but only 1 remain"),
            (&[0x00, 0x01], "LTV at byte 0 has length 0"),
            (
                &[0x02, 0x01, 0x08, 0x03, 0x02, 0x01, 0x00],
                "LTV type 0x02 at byte 3: value of 2 bytes, expected 1",
            ),
            (
                &[0x02, 0x01, 0x08, 0x02, 0x01, 0x03],
                "LTV type 0x01 appears twice (second at byte 3)",
            ),
            (
                &[0x02, 0x02, 0x01, 0x03, 0x04, 0x64, 0x00],
                "LC3 codec configuration lacks Sampling_Frequency",
            ),
            (
                &[0x02, 0x01, 0x08, 0x03, 0x04, 0x64, 0x00],
                "LC3 codec configuration lacks Frame_Duration",
            ),
            (
                &[0x02, 0x01, 0x08, 0x02, 0x02, 0x01],
                "LC3 codec configuration lacks Octets_Per_Codec_Frame",
            ),
            (
                &[0x02, 0x01, 0x0e, 0x02, 0x02, 0x01],
                "LC3 codec configuration: unknown sampling frequency code 0x0e",
            ),
        ];
        for (bytes, msg) in cases {
            assert_eq!(CodecConfig::parse(bytes).unwrap_err().to_string(), msg, "{bytes:02x?}");
        }
        let bad_rate = CodecConfig {
            sample_rate_hz: 12_345,
            frame_duration: FrameDuration::Ms10,
            audio_channel_allocation: None,
            octets_per_frame: 40,
            frame_blocks_per_sdu: None,
        };
        assert_eq!(
            bad_rate.to_bytes().unwrap_err().to_string(),
            "LC3 codec configuration: sampling frequency 12345 Hz has no BAP code"
        );
    }

    #[test]
    fn sampling_frequency_codes() {
        for (hz, code) in [
            (8_000, 0x01),
            (11_025, 0x02),
            (16_000, 0x03),
            (22_050, 0x04),
            (24_000, 0x05),
        ] {
            assert_eq!(
                (sampling_frequency_code(hz), sampling_frequency_hz(code)),
                (Some(code), Some(hz))
            );
        }
        for (hz, code) in [
            (32_000, 0x06),
            (44_100, 0x07),
            (48_000, 0x08),
            (96_000, 0x0a),
            (384_000, 0x0d),
        ] {
            assert_eq!(
                (sampling_frequency_code(hz), sampling_frequency_hz(code)),
                (Some(code), Some(hz))
            );
        }
        assert_eq!(sampling_frequency_code(44_000), None);
        assert_eq!(sampling_frequency_hz(0x00), None);
        assert_eq!(sampling_frequency_hz(0x0e), None);
    }

    #[test]
    fn metadata_golden_bytes_and_errors() {
        // Streaming_Audio_Contexts = Media: 03 02 04 00 (notes/bluez.md §B.1; bluetoothctl's metadata example).
        assert_eq!(Metadata::media().to_bytes().unwrap(), [0x03, 0x02, 0x04, 0x00]);
        assert_eq!(Metadata::default().to_bytes().unwrap(), Vec::<u8>::new());
        let m = Metadata {
            streaming_audio_contexts: Some(context::MEDIA | context::UNSPECIFIED),
            program_info: Some("Jazz".into()),
            language: Some("eng".into()),
        };
        assert_eq!(
            m.to_bytes().unwrap(),
            [0x03, 0x02, 0x05, 0x00, 0x05, 0x03, b'J', b'a', b'z', b'z', 0x04, 0x04, b'e', b'n', b'g']
        );
        let bad = Metadata {
            language: Some("EN".into()),
            ..Metadata::default()
        };
        assert_eq!(
            bad.to_bytes().unwrap_err().to_string(),
            "LC3 codec configuration: language \"EN\" is not an ISO 639-3 code (three lowercase letters, e.g. \"eng\")"
        );
        let long = Metadata {
            program_info: Some("x".repeat(255)),
            ..Metadata::default()
        };
        assert_eq!(long.to_bytes().unwrap_err(), LtvError::TooLong { ty: 0x03, len: 255 });
        let fits = Metadata {
            program_info: Some("x".repeat(254)),
            ..Metadata::default()
        };
        assert_eq!(fits.to_bytes().unwrap()[..2], [0xff, 0x03]);
    }

    #[test]
    fn capabilities_golden_bytes() {
        // LC3_CAPABILITIES layout (src/shared/lc3.h): 03 01 <freq LE16> | 02 02 <dur> | 02 03 <chan> |
        // 05 04 <min LE16> <max LE16>. 8/16/24/32/44.1/48 kHz = bits 0,2,4,5,6,7 = 0x00f5.
        let caps = Lc3Capabilities::broadcast_source();
        assert_eq!(
            caps.to_bytes(),
            [0x03, 0x01, 0xf5, 0x00, 0x02, 0x02, 0x03, 0x02, 0x03, 0x01, 0x05, 0x04, 0x1a, 0x00, 0x9b, 0x00]
        );
        // BlueZ's LC3_CAPABILITIES(LC3_FREQ_ANY, LC3_DURATION_ANY, 3, 26, 240): every rate, both durations, 1 or 2
        // channels, 26..=240 octets (bluetoothctl's own LC3_DATA default is the same without the channel LTV).
        let any = Lc3Capabilities {
            sampling_frequencies: 0x00ff,
            frame_durations: 0x03,
            channel_counts: 0x03,
            min_octets: 26,
            max_octets: 240,
        };
        assert_eq!(
            any.to_bytes(),
            [0x03, 0x01, 0xff, 0x00, 0x02, 0x02, 0x03, 0x02, 0x03, 0x03, 0x05, 0x04, 0x1a, 0x00, 0xf0, 0x00]
        );
    }

    #[test]
    fn ltv_split() {
        let ltvs = parse_ltvs(&[0x02, 0x01, 0x08, 0x01, 0x09, 0x03, 0x04, 0x64, 0x00]).unwrap();
        assert_eq!(
            ltvs,
            [
                Ltv {
                    offset: 0,
                    ty: 0x01,
                    value: &[0x08]
                },
                Ltv {
                    offset: 3,
                    ty: 0x09,
                    value: &[]
                },
                Ltv {
                    offset: 5,
                    ty: 0x04,
                    value: &[0x64, 0x00]
                },
            ]
        );
        assert_eq!(parse_ltvs(&[]).unwrap(), []);
    }
}
