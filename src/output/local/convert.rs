//! Conversions between the timeline's 48 kHz stereo and what a sound card takes: channel count, rate, and the
//! sample format in the callback.
//!
//! The player hands an output 48 kHz stereo S16 blocks, already drift-corrected. [`DeviceConverter`] turns them
//! into the device's channel count and, when the device runs at another rate (44.1 kHz), resamples them with the
//! project's [`RateConverter`] at a fixed ratio; it knows exactly which device frame each 48 kHz frame becomes, so
//! the output can tell when that frame is heard. [`to_device`] converts one sample to the device's format in the
//! callback (no allocation).

use crate::output::resample::RateConverter;
use cpal::{FromSample, Sample};

/// Device frames per resampler block.
pub const DEVICE_BLOCK_FRAMES: usize = 240;

/// Maps one stereo frame onto `out` (the device's channels): mono gets the mix, stereo the pair, more channels
/// get left and right on the first two and silence on the rest.
pub fn map_channels(l: f32, r: f32, out: &mut [f32]) {
    match out.len() {
        0 => {}
        1 => out[0] = 0.5 * (l + r),
        _ => {
            out[0] = l;
            out[1] = r;
            out[2..].fill(0.0);
        }
    }
}

/// Maps one device frame (any channel count) to stereo: mono on both, the first two channels of more.
pub fn to_stereo(frame: &[f32]) -> (f32, f32) {
    match frame.len() {
        0 => (0.0, 0.0),
        1 => (frame[0], frame[0]),
        _ => (frame[0], frame[1]),
    }
}

/// The largest sample value every format holds: 1 − 2⁻²³ (full scale 1.0 would be 2²³ in I24, which wraps to the
/// most negative value).
const FULL_SCALE_BELOW_ONE: f32 = 1.0 - 1.0 / 8_388_608.0;

/// One `f32` sample (−1…1, clipped) in the device's sample format.
#[inline]
pub fn to_device<T: Sample + FromSample<f32>>(s: f32) -> T {
    T::from_sample(s.clamp(-1.0, FULL_SCALE_BELOW_ONE))
}

/// 48 kHz stereo S16 in, the device's rate and channels out (interleaved `f32`).
pub struct DeviceConverter {
    conv: RateConverter,
    channels: usize,
    /// Stereo f32 input not yet converted.
    pending: Vec<f32>,
    block: Vec<f32>,
    out: Vec<f32>,
    /// 48 kHz frames taken in since the start.
    in_frames: u64,
    /// Device frames produced since the start.
    out_frames: u64,
    ratio: f64,
}

impl DeviceConverter {
    /// From 48 kHz stereo to `rate_hz` and `channels`.
    pub fn new(rate_hz: u32, channels: usize) -> Self {
        let in_rate = crate::output::OUTPUT_FORMAT.rate_hz;
        let mut conv = RateConverter::new(in_rate, rate_hz, 2, DEVICE_BLOCK_FRAMES);
        if !conv.reset_exact() {
            conv.reset();
        }
        Self {
            conv,
            channels: channels.max(1),
            pending: Vec::with_capacity(4 * DEVICE_BLOCK_FRAMES * 2),
            block: vec![0.0; DEVICE_BLOCK_FRAMES * 2],
            out: Vec::with_capacity(DEVICE_BLOCK_FRAMES * channels.max(1)),
            in_frames: 0,
            out_frames: 0,
            ratio: rate_hz as f64 / in_rate as f64,
        }
    }

    /// Converts `frames` (interleaved stereo S16); hands every device block that is complete to `sink`.
    pub fn push(&mut self, frames: &[i16], mut sink: impl FnMut(&[f32])) {
        self.pending.extend(frames.iter().map(|&s| s as f32 / 32768.0));
        self.in_frames += (frames.len() / 2) as u64;
        loop {
            let need = self.conv.input_needed();
            if self.pending.len() < need * 2 {
                break;
            }
            self.conv.process(&self.pending[..need * 2], &mut self.block);
            self.pending.drain(..need * 2);
            self.out.clear();
            let ch = self.channels;
            for f in self.block.chunks_exact(2) {
                let at = self.out.len();
                self.out.resize(at + ch, 0.0);
                map_channels(f[0], f[1], &mut self.out[at..]);
            }
            self.out_frames += DEVICE_BLOCK_FRAMES as u64;
            sink(&self.out);
        }
    }

    /// The device frame (fractional, counted from the start) that 48 kHz input frame `n` becomes.
    pub fn device_frame_of(&self, n: u64) -> f64 {
        // The next output frame is taken from input position next_position(); later ones 1/ratio apart.
        self.out_frames as f64 + (n as f64 - self.conv.next_position()) * self.ratio
    }

    /// The device frame the next 48 kHz frame written becomes.
    pub fn next_device_frame(&self) -> f64 {
        self.device_frame_of(self.in_frames)
    }

    /// Device frames that `frames_48k` 48 kHz frames make.
    pub fn device_frames(&self, frames_48k: f64) -> f64 {
        frames_48k * self.ratio
    }

    /// Device frames produced (handed to the sink) since the start.
    pub fn produced_frames(&self) -> u64 {
        self.out_frames
    }

    /// Copies (no resampling: the device runs at 48 kHz).
    pub fn is_exact(&self) -> bool {
        self.conv.is_exact()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_map_both_ways() {
        let mut one = [9.0];
        map_channels(0.5, -0.25, &mut one);
        assert_eq!(one, [0.125]);
        let mut six = [9.0; 6];
        map_channels(0.5, -0.25, &mut six);
        assert_eq!(six, [0.5, -0.25, 0.0, 0.0, 0.0, 0.0]);
        assert_eq!(to_stereo(&[0.3]), (0.3, 0.3));
        assert_eq!(to_stereo(&[0.3, 0.4, 0.5, 0.6]), (0.3, 0.4));
    }

    #[test]
    fn samples_convert_to_every_device_format_with_clipping() {
        assert_eq!(to_device::<i16>(0.5), 16_384);
        assert_eq!(to_device::<i16>(-1.0), -32_768);
        assert_eq!(to_device::<i16>(3.0), i16::MAX);
        assert_eq!(to_device::<i32>(-0.5), -1_073_741_824);
        assert_eq!(to_device::<u8>(0.0), 128);
        assert_eq!(to_device::<u16>(-1.0), 0);
        assert_eq!(to_device::<f32>(-2.0), -1.0);
        assert_eq!(to_device::<i32>(1.0), 2_147_483_392);
        assert_eq!(to_device::<cpal::I24>(1.0).inner(), (1 << 23) - 1);
    }

    #[test]
    fn at_48_khz_it_copies_and_frame_n_is_device_frame_n() {
        let mut c = DeviceConverter::new(48_000, 2);
        assert!(c.is_exact());
        let input: Vec<i16> = (0..960).map(|i| i as i16 * 10).collect();
        let mut out = vec![];
        c.push(&input, |b| out.extend_from_slice(b));
        assert_eq!(out.len(), 960);
        assert_eq!(out[7], 70.0 / 32768.0);
        assert_eq!(c.device_frame_of(480), 480.0);
        assert_eq!(c.next_device_frame(), 480.0);
    }

    #[test]
    fn at_44_1_khz_a_click_lands_on_the_device_frame_it_is_said_to() {
        let mut c = DeviceConverter::new(44_100, 1);
        assert!(!c.is_exact());
        // A smooth click centred on 48 kHz frame 4800.
        let input: Vec<i16> = (0..9_600)
            .flat_map(|i| {
                let d = i as f64 - 4_800.0;
                let v = (26_000.0 * (-(d * d) / 4.5).exp()) as i16;
                [v, v]
            })
            .collect();
        let expect = c.device_frame_of(4_800);
        let mut out = vec![];
        c.push(&input, |b| out.extend_from_slice(b));
        let mut found = vec![];
        crate::report::ClickDetector::new().push(0, out.iter().copied(), &mut found);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            (found[0] - expect).abs() < 0.1,
            "click at {} expected {expect}",
            found[0]
        );
        assert!((c.device_frames(480.0) - 441.0).abs() < 1e-9);
    }
}
