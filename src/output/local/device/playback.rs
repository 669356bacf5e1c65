//! The playback stream of a `local` output: the format negotiated with the device, and a stream whose callback
//! fills the device's buffer from the ring ([`crate::output::local::ring`]), stamping when it is heard.

use super::{choose_config, describe_format, unusable, DeviceError, DeviceFormat, DeviceName};
use crate::output::local::ring::RingReader;
use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::SampleFormat;

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
                crate::output::local::convert::to_device::<T>,
                now.as_ns() + delay_ns,
                delay_ns,
            );
        },
        on_error,
        None,
    )
}
