//! The stream format of a device: chosen from the configurations it offers (48 kHz and stereo when it has them,
//! the widest sample format the callback writes), as cpal's stream settings, and described for errors and logs.

use cpal::{SampleFormat, SupportedStreamConfigRange};
use serde::Serialize;

/// The rate the timeline runs at, preferred when the device has it (no resampling).
const PREFERRED_RATE_HZ: u32 = 48_000;
/// Rates tried, in order, when the device lacks 48 kHz.
const FALLBACK_RATES_HZ: [u32; 4] = [44_100, 96_000, 88_200, 32_000];

/// The stream format chosen for a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeviceFormat {
    /// Frames per second.
    pub rate_hz: u32,
    /// Interleaved channels.
    pub channels: u16,
    /// Sample format, as cpal names it (`i16`, `f32`…).
    #[serde(serialize_with = "ser_format")]
    pub sample_format: SampleFormat,
    /// Frames per period asked for (the device buffer holds two).
    pub period_frames: u32,
}

impl DeviceFormat {
    /// Interleaved stereo at `rate_hz` in `sample_format`, `period_frames` a period.
    pub fn stereo(rate_hz: u32, sample_format: SampleFormat, period_frames: u32) -> Self {
        Self {
            rate_hz,
            channels: 2,
            sample_format,
            period_frames,
        }
    }

    /// cpal's stream settings for this format (playback and capture alike).
    pub fn stream_config(&self) -> cpal::StreamConfig {
        cpal::StreamConfig {
            channels: self.channels,
            sample_rate: self.rate_hz,
            buffer_size: cpal::BufferSize::Fixed(self.period_frames),
        }
    }
}

fn ser_format<S: serde::Serializer>(f: &SampleFormat, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&f.to_string())
}

/// Preference among sample formats: the widest the callback converts to exactly, then the common ones.
fn format_rank(f: SampleFormat) -> u32 {
    match f {
        SampleFormat::F32 => 0,
        SampleFormat::I32 => 1,
        SampleFormat::I24 => 2,
        SampleFormat::I16 => 3,
        SampleFormat::U16 => 4,
        SampleFormat::U8 => 5,
        SampleFormat::I8 => 6,
        _ => 100,
    }
}

/// Whether the callback can write this sample format.
pub fn format_supported(f: SampleFormat) -> bool {
    format_rank(f) < 100
}

/// Chooses rate, channels and sample format from what the device offers: 48 kHz if it has it (else the first of
/// [`FALLBACK_RATES_HZ`] it has, else its highest), two channels if it has them (else the fewest above, else
/// mono), and the best sample format the callback writes. None: nothing usable.
pub fn choose_config(ranges: &[SupportedStreamConfigRange], period_frames: u32) -> Option<DeviceFormat> {
    let usable: Vec<_> = ranges.iter().filter(|r| format_supported(r.sample_format())).collect();
    let has_rate = |rate: u32| {
        usable
            .iter()
            .any(|r| (r.min_sample_rate()..=r.max_sample_rate()).contains(&rate))
    };
    let rate = std::iter::once(PREFERRED_RATE_HZ)
        .chain(FALLBACK_RATES_HZ)
        .find(|r| has_rate(*r))
        .or_else(|| usable.iter().map(|r| r.max_sample_rate()).max())?;
    let at_rate: Vec<_> = usable
        .iter()
        .filter(|r| (r.min_sample_rate()..=r.max_sample_rate()).contains(&rate))
        .collect();
    let channels = at_rate.iter().map(|r| r.channels()).min_by_key(|&c| match c {
        2 => 0,
        c if c > 2 => c as u32,
        _ => 1_000,
    })?;
    let sample_format = at_rate
        .iter()
        .filter(|r| r.channels() == channels)
        .map(|r| r.sample_format())
        .min_by_key(|f| format_rank(*f))?;
    Some(DeviceFormat {
        rate_hz: rate,
        channels,
        sample_format,
        period_frames,
    })
}

/// `48000 Hz 2-channel i16 (480-frame periods)`, for errors and logs.
pub fn describe_format(f: &DeviceFormat) -> String {
    format!(
        "{} Hz {}-channel {} ({}-frame periods)",
        f.rate_hz, f.channels, f.sample_format, f.period_frames
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpal::SupportedBufferSize;

    fn range(ch: u16, min: u32, max: u32, f: SampleFormat) -> SupportedStreamConfigRange {
        SupportedStreamConfigRange::new(ch, min, max, SupportedBufferSize::Unknown, f)
    }

    #[test]
    fn the_format_prefers_48_khz_stereo_and_the_widest_sample() {
        let all = [
            range(1, 8_000, 192_000, SampleFormat::I16),
            range(2, 8_000, 192_000, SampleFormat::I16),
            range(2, 8_000, 192_000, SampleFormat::I32),
            range(8, 8_000, 192_000, SampleFormat::F32),
            range(2, 8_000, 192_000, SampleFormat::F64),
        ];
        let f = choose_config(&all, 480).unwrap();
        assert_eq!(
            (f.rate_hz, f.channels, f.sample_format, f.period_frames),
            (48_000, 2, SampleFormat::I32, 480)
        );
        // A 44.1 kHz-only HDMI output with 8 channels; a mono USB microphone; nothing usable.
        let hdmi = [range(8, 44_100, 44_100, SampleFormat::I16)];
        let f = choose_config(&hdmi, 441).unwrap();
        assert_eq!((f.rate_hz, f.channels), (44_100, 8));
        let mic = [range(1, 16_000, 16_000, SampleFormat::I16)];
        assert_eq!(
            choose_config(&mic, 160).map(|f| (f.rate_hz, f.channels)),
            Some((16_000, 1))
        );
        assert_eq!(choose_config(&[range(2, 48_000, 48_000, SampleFormat::F64)], 480), None);
    }
}
