//! The cpal edge of a `local` output: device names as the config gives them, listing the devices, choosing a
//! stream format, and opening a playback stream whose callback reads the ring ([`super::ring`]).
//!
//! A device is named as ALSA names it (`hw:CARD=Headphones,DEV=0`, `hw:1,0`, `plughw:CARD=Device`, `default`,
//! `sysdefault:CARD=…`), as cpal describes it (the first line `bluebridge devices` shows), or not at all (the
//! default device). The pure parts ([`DeviceName`], [`choose_config`]) are tested here; the rest needs a card.

use super::ring::RingReader;
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{SampleFormat, SupportedStreamConfigRange};
use serde::Serialize;

/// The rate the timeline runs at, preferred when the device has it (no resampling).
const PREFERRED_RATE_HZ: u32 = 48_000;
/// Rates tried, in order, when the device lacks 48 kHz.
const FALLBACK_RATES_HZ: [u32; 4] = [44_100, 96_000, 88_200, 32_000];

/// A device as the config names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceName {
    /// The system's default device.
    Default,
    /// An ALSA PCM name, canonical (`hw:CARD=1,DEV=0` for `hw:1,0`; `hw:CARD=Headphones,DEV=0` for
    /// `hw:CARD=Headphones` or `hw:Headphones`).
    Pcm(String),
    /// cpal's description of the device (its first line), matched exactly.
    Described(String),
}

/// Why a device name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceNameError {
    /// Empty (leave `device` out for the default device).
    #[error("the device name is empty (leave `device` out for the default device)")]
    Empty,
    /// Too long or holding control characters.
    #[error("the device name {0:?} is not a device name (at most 256 printable characters)")]
    Malformed(String),
}

impl DeviceName {
    /// Parses a name from the config.
    pub fn parse(s: &str) -> Result<Self, DeviceNameError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(DeviceNameError::Empty);
        }
        if s.len() > 256 || s.chars().any(|c| c.is_control()) {
            return Err(DeviceNameError::Malformed(s.into()));
        }
        if s == "default" {
            return Ok(Self::Default);
        }
        let Some((prefix, rest)) = s.split_once(':') else {
            return Ok(if s.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                // `pulse`, `pipewire`, `null`…: ALSA PCM plugins named alone.
                Self::Pcm(s.into())
            } else {
                Self::Described(s.into())
            });
        };
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Ok(Self::Described(s.into()));
        }
        // `CARD=x,DEV=y` or positional `x,y`; any other argument is kept as given.
        let parts: Vec<&str> = rest.split(',').map(str::trim).collect();
        let mut card = None;
        let mut dev = None;
        let mut others = vec![];
        for (i, p) in parts.iter().enumerate() {
            match p.split_once('=') {
                Some(("CARD", v)) => card = Some(v),
                Some(("DEV", v)) => dev = Some(v),
                Some(_) => others.push(p.to_string()),
                None if i == 0 => card = Some(p),
                None if i == 1 => dev = Some(p),
                None if i == 2 => others.push(format!("SUBDEV={p}")),
                None => others.push(p.to_string()),
            }
        }
        let Some(card) = card.filter(|c| !c.is_empty()) else {
            return Ok(Self::Pcm(s.into()));
        };
        let mut id = format!("{prefix}:CARD={card}");
        if prefix.ends_with("hw") || dev.is_some() {
            id += &format!(",DEV={}", dev.unwrap_or("0"));
        }
        for o in others {
            id += &format!(",{o}");
        }
        Ok(Self::Pcm(id))
    }

    /// Whether a device cpal lists (its PCM id and description's first line) is this one.
    pub fn matches(&self, pcm_id: &str, description: &str) -> bool {
        match self {
            Self::Default => pcm_id == "default",
            Self::Pcm(id) => DeviceName::parse(pcm_id).is_ok_and(|d| d == Self::Pcm(id.clone())),
            Self::Described(d) => d == description,
        }
    }
}

impl std::fmt::Display for DeviceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Default => f.write_str("the default device"),
            Self::Pcm(id) => write!(f, "{id:?}"),
            Self::Described(d) => write!(f, "{d:?}"),
        }
    }
}

/// One device as `bluebridge devices` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    /// The name the config accepts (`device = "…"`).
    pub name: String,
    /// cpal's description (first line; also accepted as a name).
    pub description: String,
    /// It can play.
    pub output: bool,
    /// It can record.
    pub capture: bool,
}

/// Why a device could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// No such device; lists those there are.
    #[error("sound device {name} not found; available {direction} devices: {available}")]
    NotFound {
        /// The name asked for.
        name: String,
        /// `output` or `capture`.
        direction: &'static str,
        /// Comma-separated names.
        available: String,
    },
    /// The device is there but cannot be used (busy, no permission, no usable format…).
    #[error("sound device {name}: {message}; available {direction} devices: {available}")]
    Unusable {
        /// The name asked for.
        name: String,
        /// What failed.
        message: String,
        /// `output` or `capture`.
        direction: &'static str,
        /// Comma-separated names.
        available: String,
    },
    /// ALSA itself failed (listing).
    #[error("sound devices: {0}")]
    Host(String),
}

impl DeviceError {
    /// True when the device is missing (rather than there but unusable).
    pub fn is_missing(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

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

fn host() -> cpal::Host {
    cpal::host_from_id(cpal::HostId::Alsa).unwrap_or_else(|_| cpal::default_host())
}

fn describe(d: &cpal::Device) -> (String, String) {
    let id = d.id().map(|i| i.id().to_string()).unwrap_or_default();
    let desc = d.description().map(|d| d.name().to_string()).unwrap_or_default();
    (id, desc)
}

/// Every device ALSA knows, with the names the config accepts.
pub fn list_devices() -> Result<Vec<DeviceInfo>, DeviceError> {
    let devices = host().devices().map_err(|e| DeviceError::Host(e.to_string()))?;
    Ok(devices
        .map(|d| {
            let (name, description) = describe(&d);
            DeviceInfo {
                name,
                description,
                output: d.supports_output(),
                capture: d.supports_input(),
            }
        })
        .collect())
}

fn available(output: bool) -> String {
    match list_devices() {
        Ok(l) => {
            let names: Vec<String> = l
                .into_iter()
                .filter(|d| if output { d.output } else { d.capture })
                .map(|d| d.name)
                .collect();
            if names.is_empty() {
                "none".into()
            } else {
                names.join(", ")
            }
        }
        Err(e) => format!("(cannot list: {e})"),
    }
}

/// Finds the device `name` for playback (`output`) or capture.
pub fn find(name: &DeviceName, output: bool) -> Result<cpal::Device, DeviceError> {
    let direction = if output { "output" } else { "capture" };
    let h = host();
    let not_found = || DeviceError::NotFound {
        name: name.to_string(),
        direction,
        available: available(output),
    };
    if *name == DeviceName::Default {
        let d = if output {
            h.default_output_device()
        } else {
            h.default_input_device()
        };
        return d.ok_or_else(not_found);
    }
    let devices = h.devices().map_err(|e| DeviceError::Host(e.to_string()))?;
    for d in devices {
        let (id, desc) = describe(&d);
        if name.matches(&id, &desc)
            && (if output {
                d.supports_output()
            } else {
                d.supports_input()
            })
        {
            return Ok(d);
        }
    }
    Err(not_found())
}

/// A device that is there but cannot be used as asked: the error names it and lists the devices there are.
pub fn unusable(name: &DeviceName, output: bool, message: String) -> DeviceError {
    DeviceError::Unusable {
        name: name.to_string(),
        message,
        direction: if output { "output" } else { "capture" },
        available: available(output),
    }
}

/// How often [`supervise`] looks at a running stream (whether it failed, whether to stop).
const SUPERVISE_POLL: std::time::Duration = std::time::Duration::from_millis(50);
/// First and largest wait between attempts to reopen a vanished device.
const REOPEN_MIN: std::time::Duration = std::time::Duration::from_millis(500);
const REOPEN_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// Tells whether a running stream failed (its error callback set a flag).
pub type FailedCheck = Box<dyn Fn() -> bool + Send>;

/// Keeps device `name` open for `what` (an output or the capture source, for the log): watches the running stream
/// (`current`), drops it when it fails, and reopens it with `open` (backing off from 0.5 to 5 s) until `stop`;
/// each new link goes to the engine through `links`. Runs on a thread of its own, which owns the streams.
pub fn supervise<L>(
    what: &str,
    name: &DeviceName,
    mut current: Option<(cpal::Stream, FailedCheck)>,
    mut open: impl FnMut() -> Result<(cpal::Stream, L, FailedCheck), DeviceError>,
    links: std::sync::mpsc::SyncSender<L>,
    stop: &std::sync::atomic::AtomicBool,
) {
    use std::sync::atomic::Ordering;
    let mut backoff = REOPEN_MIN;
    let mut last_error = String::new();
    while !stop.load(Ordering::Relaxed) {
        if let Some((_, failed)) = &current {
            if failed() {
                tracing::warn!("{what}: sound device {name} failed or vanished; waiting for it to return");
                current = None; // drops (closes) the stream
                continue;
            }
            std::thread::sleep(SUPERVISE_POLL);
            continue;
        }
        match open() {
            Ok((stream, link, failed)) => {
                tracing::info!("{what}: sound device {name} is back");
                if links.send(link).is_err() {
                    return;
                }
                current = Some((stream, failed));
                backoff = REOPEN_MIN;
                last_error.clear();
            }
            Err(e) => {
                let msg = e.to_string();
                if msg != last_error {
                    tracing::info!("{what}: sound device not usable yet: {msg}");
                    last_error = msg;
                }
                let until = std::time::Instant::now() + backoff;
                while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(SUPERVISE_POLL);
                }
                backoff = (backoff * 2).min(REOPEN_MAX);
            }
        }
    }
}

/// Starts a playback stream on `device` (named `name`, for errors) in `format`, its callback reading `reader`;
/// the stream is playing when this returns. `on_error` is told of every stream error.
pub fn open_output(
    name: &DeviceName,
    device: &cpal::Device,
    format: DeviceFormat,
    reader: RingReader,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, DeviceError> {
    let config = format.stream_config();
    let stream = match format.sample_format {
        SampleFormat::F32 => build::<f32>(device, &config, reader, on_error),
        SampleFormat::I32 => build::<i32>(device, &config, reader, on_error),
        SampleFormat::I24 => build::<cpal::I24>(device, &config, reader, on_error),
        SampleFormat::I16 => build::<i16>(device, &config, reader, on_error),
        SampleFormat::U16 => build::<u16>(device, &config, reader, on_error),
        SampleFormat::U8 => build::<u8>(device, &config, reader, on_error),
        SampleFormat::I8 => build::<i8>(device, &config, reader, on_error),
        other => unreachable!("choose_config picks only writable formats, not {other}"),
    }
    .map_err(|e| {
        unusable(
            name,
            true,
            format!("cannot open a {} stream: {e}", describe_format(&format)),
        )
    })?;
    stream
        .play()
        .map_err(|e| unusable(name, true, format!("cannot start: {e}")))?;
    Ok(stream)
}

/// The output formats `device` offers and the one chosen for `period_frames` periods.
pub fn negotiate_output(
    name: &DeviceName,
    device: &cpal::Device,
    period_frames: u32,
) -> Result<DeviceFormat, DeviceError> {
    let ranges: Vec<_> = device
        .supported_output_configs()
        .map_err(|e| unusable(name, true, e.to_string()))?
        .collect();
    choose_config(&ranges, period_frames).ok_or_else(|| {
        unusable(
            name,
            true,
            format!(
                "no sample format bluebridge can write among {} configurations",
                ranges.len()
            ),
        )
    })
}

/// `48000 Hz 2-channel i16 (480-frame periods)`, for errors and logs.
pub fn describe_format(f: &DeviceFormat) -> String {
    format!(
        "{} Hz {}-channel {} ({}-frame periods)",
        f.rate_hz, f.channels, f.sample_format, f.period_frames
    )
}

fn build<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    mut reader: RingReader,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, cpal::Error>
where
    T: cpal::SizedSample + cpal::FromSample<f32> + Send + 'static,
{
    use crate::timeline::Clock;
    let clock = crate::timeline::SystemClock;
    device.build_output_stream::<T, _, _>(
        *config,
        move |out: &mut [T], info: &cpal::OutputCallbackInfo| {
            // The local time now plus the device's delay (cpal: playback − callback instant, from ALSA's delay)
            // is when out[0] is heard. clock_gettime is a vDSO call: no lock, no allocation.
            let now = clock.now();
            let ts = info.timestamp();
            let delay_ns = ts
                .playback
                .checked_duration_since(ts.callback)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0);
            reader.fill(
                out,
                T::EQUILIBRIUM,
                super::convert::to_device::<T>,
                now.as_ns() + delay_ns,
                delay_ns,
            );
        },
        on_error,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cpal::SupportedBufferSize;

    #[test]
    fn names_parse_to_canonical_pcm_ids() {
        let pcm = |s: &str| DeviceName::Pcm(s.into());
        for (input, want) in [
            ("hw:CARD=Headphones,DEV=0", pcm("hw:CARD=Headphones,DEV=0")),
            ("hw:CARD=Headphones", pcm("hw:CARD=Headphones,DEV=0")),
            ("hw:1,0", pcm("hw:CARD=1,DEV=0")),
            ("hw:1", pcm("hw:CARD=1,DEV=0")),
            ("plughw:Loopback,1", pcm("plughw:CARD=Loopback,DEV=1")),
            (" hw:Loopback,0,2 ", pcm("hw:CARD=Loopback,DEV=0,SUBDEV=2")),
            ("sysdefault:CARD=Device", pcm("sysdefault:CARD=Device")),
            ("front:CARD=Device,DEV=0", pcm("front:CARD=Device,DEV=0")),
            ("pulse", pcm("pulse")),
            ("default", DeviceName::Default),
            (
                "bcm2835 Headphones, bcm2835 Headphones",
                DeviceName::Described("bcm2835 Headphones, bcm2835 Headphones".into()),
            ),
            (
                "USB Audio: Line Out",
                DeviceName::Described("USB Audio: Line Out".into()),
            ),
        ] {
            assert_eq!(DeviceName::parse(input), Ok(want), "{input:?}");
        }
        assert_eq!(DeviceName::parse("  "), Err(DeviceNameError::Empty));
        assert!(matches!(
            DeviceName::parse("hw:\u{7}0"),
            Err(DeviceNameError::Malformed(_))
        ));
        assert!(matches!(
            DeviceName::parse(&"x".repeat(300)),
            Err(DeviceNameError::Malformed(_))
        ));
    }

    #[test]
    fn names_match_what_cpal_lists_in_either_spelling() {
        let n = DeviceName::parse("hw:Loopback,0").unwrap();
        assert!(n.matches("hw:CARD=Loopback,DEV=0", "Loopback, Loopback PCM"));
        assert!(!n.matches("hw:CARD=Loopback,DEV=1", "Loopback, Loopback PCM"));
        assert!(!n.matches("plughw:CARD=Loopback,DEV=0", "Loopback, Loopback PCM"));
        let d = DeviceName::parse("Loopback, Loopback PCM").unwrap();
        assert!(d.matches("hw:CARD=Loopback,DEV=0", "Loopback, Loopback PCM"));
        assert!(DeviceName::Default.matches("default", "Default Audio Device"));
    }

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
