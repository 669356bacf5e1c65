//! Opening a capture device through cpal: the format it is asked for and the callback that stamps its data.
//!
//! The callback reads the local clock once (a vDSO call: no lock, no allocation) and takes cpal's capture
//! timestamp against its callback timestamp (ALSA: the callback instant minus the frames waiting in the device),
//! so the first frame of its data was captured at `now − (callback − capture)` on the local clock. It converts
//! the samples to `f32` and hands them with that stamp to the ring.

use super::ring::CaptureWriter;
use crate::output::local::device::{self, DeviceError, DeviceFormat, DeviceName};
use cpal::traits::{DeviceTrait, StreamTrait};
use cpal::SampleFormat;

/// The capture formats `device` offers and the one chosen for `period_frames` periods (48 kHz stereo preferred,
/// then the widest sample).
pub fn negotiate_input(
    name: &DeviceName,
    device: &cpal::Device,
    period_frames: u32,
) -> Result<DeviceFormat, DeviceError> {
    let ranges: Vec<_> = device
        .supported_input_configs()
        .map_err(|e| device::unusable(name, false, e.to_string()))?
        .collect();
    device::choose_config(&ranges, period_frames).ok_or_else(|| {
        device::unusable(
            name,
            false,
            format!(
                "no sample format bluebridge can read among {} configurations",
                ranges.len()
            ),
        )
    })
}

/// Starts a capture stream on `device` (named `name`, for errors) in `format`, its callback writing `writer`;
/// the stream is running when this returns. `on_error` is told of every stream error. With `realtime`, the
/// callback thread asks for SCHED_FIFO at that priority on its first call (logged once if refused): cpal
/// double-buffers, so a callback later than one period loses frames to an overrun.
pub fn open_input(
    name: &DeviceName,
    device: &cpal::Device,
    format: DeviceFormat,
    writer: CaptureWriter,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
    realtime: Option<i32>,
) -> Result<cpal::Stream, DeviceError> {
    let config = format.stream_config();
    let rt = realtime;
    let stream = match format.sample_format {
        SampleFormat::F32 => build::<f32>(device, config, writer, on_error, rt),
        SampleFormat::I32 => build::<i32>(device, config, writer, on_error, rt),
        SampleFormat::I24 => build::<cpal::I24>(device, config, writer, on_error, rt),
        SampleFormat::I16 => build::<i16>(device, config, writer, on_error, rt),
        SampleFormat::U16 => build::<u16>(device, config, writer, on_error, rt),
        SampleFormat::U8 => build::<u8>(device, config, writer, on_error, rt),
        SampleFormat::I8 => build::<i8>(device, config, writer, on_error, rt),
        other => unreachable!("choose_config picks only formats bluebridge converts, not {other}"),
    }
    .map_err(|e| {
        device::unusable(
            name,
            false,
            format!("cannot open a {} capture stream: {e}", device::describe_format(&format)),
        )
    })?;
    stream
        .play()
        .map_err(|e| device::unusable(name, false, format!("cannot start: {e}")))?;
    Ok(stream)
}

fn build<T>(
    device: &cpal::Device,
    config: cpal::StreamConfig,
    mut writer: CaptureWriter,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
    mut realtime: Option<i32>,
) -> Result<cpal::Stream, cpal::Error>
where
    T: cpal::SizedSample + Send + 'static,
    f32: cpal::FromSample<T>,
{
    use crate::timeline::Clock;
    let clock = crate::timeline::SystemClock;
    device.build_input_stream::<T, _, _>(
        config,
        move |data: &[T], info: &cpal::InputCallbackInfo| {
            if let Some(p) = realtime.take() {
                // Once, on the callback's own thread (a system call, before the clock is read).
                if let Err(e) = crate::timeline::SystemClock::realtime_priority(p) {
                    tracing::warn!("capture thread stays at normal priority: SCHED_FIFO {p} refused ({e})");
                }
            }
            let now = clock.now();
            let ts = info.timestamp();
            let age_ns = ts
                .callback
                .checked_duration_since(ts.capture)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or(0);
            writer.write(data, |s: T| s.to_sample::<f32>(), now.as_ns() - age_ns);
        },
        on_error,
        None,
    )
}
