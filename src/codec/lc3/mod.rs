//! LC3, the LE Audio codec, through the system liblc3 (Debian/Raspberry Pi OS `liblc3-dev` ≥ 1.0).
//!
//! One [`Lc3Encoder`] or [`Lc3Decoder`] handles **one channel**: a stereo broadcast uses two encoders, one per BIS
//! (use the `*_strided` calls to read or write interleaved PCM in place). PCM is S16 (`i16`) or float (`f32`,
//! -1..1), chosen per call by the slice type. Frames last 7.5 or 10 ms; sample rates are 8, 16, 24, 32 and
//! 48 kHz, plus 44.1 kHz, which LC3 runs "around" 48 kHz: the same 360/480 samples per frame, so a frame lasts
//! 8.163 or 10.884 ms (lc3.h, "About 44.1 KHz samplerate"; BAP's 441_* presets use those SDU intervals).
//!
//! PCM rate and codec rate: by default a coder's PCM runs at the codec rate. [`Lc3Encoder::with_pcm_rate`] takes
//! PCM at a higher rate and encodes a lower-rate stream, and [`Lc3Decoder::with_pcm_rate`] decodes a stream to PCM
//! at a higher rate (liblc3's `sr_pcm_hz`: the MDCT runs at the PCM rate and keeps or pads the codec rate's band):
//! bluebridge encodes its 48 kHz output PCM into 8/16/24/32 kHz broadcast streams this way. Frame sizes and delays
//! are then counted in PCM samples. 44.1 kHz pairs only with itself (liblc3 has no 44.1 kHz codec; it runs the
//! 48 kHz one on 44.1 kHz PCM, so 48 kHz PCM cannot make a 44.1 kHz stream).
//!
//! liblc3 before 1.1.0 (Debian 12 / Raspberry Pi OS bookworm ship 1.0.1) gets the encoder's downsampling wrong:
//! its `LC3_NT(sr_hz)` macro ignores its argument and uses the caller's `sr` (the codec rate), so the encoder keeps
//! too short an input history (1.25 ms at the codec rate) while its LTPF resampler reads 1.25 ms at the PCM rate,
//! i.e. before its buffer, into the state's own pointer fields: the stream then depends on where the state lives
//! (measured with 1.0.1, 24 kHz from 48 kHz, 7.5 ms: SNR 51 dB or 13 dB from run to run; found with ASan on a
//! guard zone). Fixed upstream in 1.1.0 (`lc3_nt(sr_pcm)`). With such a liblc3 (detected at run time: it lacks
//! 1.1's `lc3_hr_frame_samples`) the encoder does not use `sr_pcm_hz`; it band-limits and decimates the frame
//! itself ([`Downsampling::Resampler`], a windowed-sinc FIR) and runs a plain codec-rate encoder, which adds the
//! filter's delay, 16 codec samples (2 / 1 / 0.67 / 0.5 ms at 8 / 16 / 24 / 32 kHz; counted in
//! [`Lc3Encoder::delay_samples`]). The decoder's upsampling is unaffected.
//!
//! Timing: a frame of PCM handed to `encode` comes out of `decode` as one frame of PCM too; the output lags
//! the input by [`Lc3Encoder::delay_samples`] (liblc3's `lc3_delay_samples` at the PCM rate: 2.5 ms for 10 ms
//! frames, 4 ms for 7.5 ms frames). End to end the codec adds that delay plus one frame of buffering.
//!
//! Memory: liblc3 never allocates; each coder's state lives in a pointer-aligned `Vec<usize>` sized by
//! `lc3_encoder_size`/`lc3_decoder_size` and freed with the value. The state is only touched through `&mut self`,
//! so the types are `Send` (liblc3 keeps no global state).

mod decoder;
mod downsample;
mod encoder;
mod ffi;

use std::fmt;
use std::os::raw::{c_int, c_void};
use std::time::Duration;

/// Sample rates (Hz) the wrapper accepts. 44 100 Hz runs the 48 kHz codec (see the module doc).
pub const SAMPLE_RATES_HZ: [u32; 6] = [8_000, 16_000, 24_000, 32_000, 44_100, 48_000];

/// Smallest LC3 frame, in bytes (lc3.h `LC3_MIN_FRAME_BYTES`).
pub const MIN_FRAME_BYTES: usize = ffi::LC3_MIN_FRAME_BYTES;
/// Largest LC3 frame, in bytes (lc3.h `LC3_MAX_FRAME_BYTES`).
pub const MAX_FRAME_BYTES: usize = ffi::LC3_MAX_FRAME_BYTES;

/// The nominal LC3 frame duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameDuration {
    /// 7.5 ms (8.163 ms at 44.1 kHz).
    Ms7_5,
    /// 10 ms (10.884 ms at 44.1 kHz).
    Ms10,
}

impl FrameDuration {
    /// The nominal duration in µs, as liblc3 and BAP's Frame_Duration name it (7500 or 10000).
    pub const fn us(self) -> u32 {
        match self {
            Self::Ms7_5 => 7_500,
            Self::Ms10 => 10_000,
        }
    }

    /// Parses a duration in µs (7500 or 10000).
    pub fn from_us(us: u32) -> Result<Self, Lc3Error> {
        match us {
            7_500 => Ok(Self::Ms7_5),
            10_000 => Ok(Self::Ms10),
            _ => Err(Lc3Error::FrameDuration { us }),
        }
    }
}

impl fmt::Display for FrameDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ms7_5 => "7.5 ms",
            Self::Ms10 => "10 ms",
        })
    }
}

/// What went wrong, naming the input that was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Lc3Error {
    /// The sample rate is not one LC3 supports.
    #[error("LC3 sample rate {hz} Hz not supported (8000, 16000, 24000, 32000, 44100 or 48000)")]
    SampleRate {
        /// The rate asked for.
        hz: u32,
    },
    /// The frame duration is not 7.5 or 10 ms.
    #[error("LC3 frame duration {us} µs not supported (7500 or 10000)")]
    FrameDuration {
        /// The duration asked for, in µs.
        us: u32,
    },
    /// The encoded frame size is outside what LC3 allows.
    #[error("LC3 frame size {bytes} bytes out of range {MIN_FRAME_BYTES}..={MAX_FRAME_BYTES} for {duration}")]
    FrameBytes {
        /// The size asked for.
        bytes: usize,
        /// The coder's frame duration.
        duration: FrameDuration,
    },
    /// The PCM slice does not hold exactly one frame (or, strided, not enough samples).
    #[error("LC3 {duration} frame at {rate_hz} Hz needs {need} PCM samples, got {got}")]
    PcmLength {
        /// Samples needed.
        need: usize,
        /// Samples given.
        got: usize,
        /// The coder's frame duration.
        duration: FrameDuration,
        /// The coder's PCM sample rate.
        rate_hz: u32,
    },
    /// The PCM rate cannot feed (encoder) or be fed by (decoder) the codec rate: it must be at least the codec
    /// rate, and 44.1 kHz pairs only with itself.
    #[error(
        "LC3 cannot pair {pcm_hz} Hz PCM with a {codec_hz} Hz stream (the PCM rate must be at least the codec \
         rate: liblc3 only downsamples the encoder's input and upsamples the decoder's output; 44.1 kHz pairs only \
         with itself)"
    )]
    PcmRate {
        /// The PCM rate asked for.
        pcm_hz: u32,
        /// The codec (stream) rate asked for.
        codec_hz: u32,
    },
    /// The stride (distance between two samples of the channel) is zero or too large.
    #[error("LC3 PCM stride {stride} invalid (must be 1..={})", i16::MAX)]
    Stride {
        /// The stride given.
        stride: usize,
    },
    /// liblc3 refused a call whose parameters the wrapper had already checked (a library mismatch).
    #[error("liblc3 {call} failed for {duration} at {rate_hz} Hz")]
    Library {
        /// The C function.
        call: &'static str,
        /// The coder's frame duration.
        duration: FrameDuration,
        /// The coder's PCM sample rate.
        rate_hz: u32,
    },
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for i16 {}
    impl Sealed for f32 {}
}

/// A PCM sample type liblc3 reads and writes: `i16` (S16) or `f32` (float, -1..1).
pub trait Sample: sealed::Sealed + Copy {
    #[doc(hidden)]
    const FORMAT: ffi::PcmFormat;
    #[doc(hidden)]
    fn to_f32(self) -> f32;
}

impl Sample for i16 {
    const FORMAT: ffi::PcmFormat = ffi::PcmFormat::S16;
    fn to_f32(self) -> f32 {
        f32::from(self) / 32_768.0
    }
}

impl Sample for f32 {
    const FORMAT: ffi::PcmFormat = ffi::PcmFormat::Float;
    fn to_f32(self) -> f32 {
        self
    }
}

pub use decoder::{Decoded, Lc3Decoder};
pub use downsample::{library_downsampling_is_sound, Downsampling};
pub use encoder::Lc3Encoder;

/// The parameters both coders share, resolved once through liblc3.
#[derive(Debug, Clone, Copy)]
struct Params {
    duration: FrameDuration,
    /// The PCM rate the caller uses.
    rate_hz: u32,
    /// The stream's rate, as BAP signals it (44 100 for a 44.1 kHz stream).
    stream_rate_hz: u32,
    /// liblc3's `sr_hz`: the rate the codec runs at (48 000 for 44 100).
    lib_sr: c_int,
    /// liblc3's `sr_pcm_hz`: the PCM rate as liblc3 sees it (48 000 for 44 100).
    lib_sr_pcm: c_int,
    /// PCM samples per frame (at `rate_hz`).
    frame_samples: usize,
    /// Algorithmic delay in PCM samples (at `rate_hz`).
    delay_samples: usize,
}

/// The rate liblc3 runs for a supported rate: itself, or 48 000 for 44 100.
fn lib_rate(hz: u32) -> Result<u32, Lc3Error> {
    match hz {
        8_000 | 16_000 | 24_000 | 32_000 | 48_000 => Ok(hz),
        44_100 => Ok(48_000),
        _ => Err(Lc3Error::SampleRate { hz }),
    }
}

/// Checks that PCM at `pcm_rate_hz` can feed an encoder of (or come out of a decoder of) a `codec_rate_hz` stream:
/// both supported, the PCM rate at least the codec rate, and 44.1 kHz only with itself.
pub fn check_pcm_rate(codec_rate_hz: u32, pcm_rate_hz: u32) -> Result<(), Lc3Error> {
    lib_rate(codec_rate_hz)?;
    lib_rate(pcm_rate_hz)?;
    let mixes_44k1 = (codec_rate_hz == 44_100) != (pcm_rate_hz == 44_100);
    if pcm_rate_hz < codec_rate_hz || mixes_44k1 {
        return Err(Lc3Error::PcmRate {
            pcm_hz: pcm_rate_hz,
            codec_hz: codec_rate_hz,
        });
    }
    Ok(())
}

impl Params {
    /// Checks a (stream rate, PCM rate) pair and resolves sizes and delay at the PCM rate.
    fn new(duration: FrameDuration, stream_rate_hz: u32, rate_hz: u32) -> Result<Self, Lc3Error> {
        check_pcm_rate(stream_rate_hz, rate_hz)?;
        let lib_sr = lib_rate(stream_rate_hz)?;
        let lib_sr_pcm = lib_rate(rate_hz)?;
        let dt = duration.us() as c_int;
        let lib = |call| Lc3Error::Library {
            call,
            duration,
            rate_hz,
        };
        // SAFETY: pure functions of their integer arguments. Both count samples at the PCM rate (lc3.h: the
        // encoder/decoder processes frames of PCM at `sr_pcm_hz`).
        let frame_samples = unsafe { ffi::lc3_frame_samples(dt, lib_sr_pcm as c_int) };
        let delay_samples = unsafe { ffi::lc3_delay_samples(dt, lib_sr_pcm as c_int) };
        Ok(Self {
            duration,
            rate_hz,
            stream_rate_hz,
            lib_sr: lib_sr as c_int,
            lib_sr_pcm: lib_sr_pcm as c_int,
            frame_samples: usize::try_from(frame_samples).map_err(|_| lib("lc3_frame_samples"))?,
            delay_samples: usize::try_from(delay_samples).map_err(|_| lib("lc3_delay_samples"))?,
        })
    }

    fn samples_to_duration(&self, samples: usize) -> Duration {
        Duration::from_nanos(samples as u64 * 1_000_000_000 / u64::from(self.rate_hz))
    }

    fn check_frame_bytes(&self, bytes: usize) -> Result<(), Lc3Error> {
        if (MIN_FRAME_BYTES..=MAX_FRAME_BYTES).contains(&bytes) {
            Ok(())
        } else {
            Err(Lc3Error::FrameBytes {
                bytes,
                duration: self.duration,
            })
        }
    }

    /// Checks that `len` samples at `stride` hold one frame; returns the stride as liblc3 takes it.
    fn check_pcm(&self, len: usize, stride: usize) -> Result<c_int, Lc3Error> {
        if stride == 0 || stride > i16::MAX as usize {
            return Err(Lc3Error::Stride { stride });
        }
        let need = (self.frame_samples - 1) * stride + 1;
        let ok = if stride == 1 { len == need } else { len >= need };
        if !ok {
            return Err(Lc3Error::PcmLength {
                need,
                got: len,
                duration: self.duration,
                rate_hz: self.rate_hz,
            });
        }
        Ok(stride as c_int)
    }

    fn error(&self, call: &'static str) -> Lc3Error {
        Lc3Error::Library {
            call,
            duration: self.duration,
            rate_hz: self.rate_hz,
        }
    }
}

/// Pointer-aligned zeroed memory of at least `bytes` bytes (liblc3 requires pointer alignment).
fn state_memory(bytes: usize) -> Vec<usize> {
    vec![0usize; bytes.div_ceil(std::mem::size_of::<usize>())]
}

/// The bitrate (bit/s) of `frame_bytes`-byte frames of `duration` (`lc3_resolve_bitrate`; nominal durations, so
/// 44.1 kHz streams run about 8 % below it).
pub fn bitrate_bps(duration: FrameDuration, frame_bytes: usize) -> Result<u32, Lc3Error> {
    if !(MIN_FRAME_BYTES..=MAX_FRAME_BYTES).contains(&frame_bytes) {
        return Err(Lc3Error::FrameBytes {
            bytes: frame_bytes,
            duration,
        });
    }
    // SAFETY: pure function of its integer arguments.
    let bps = unsafe { ffi::lc3_resolve_bitrate(duration.us() as c_int, frame_bytes as c_int) };
    u32::try_from(bps).map_err(|_| Lc3Error::FrameBytes {
        bytes: frame_bytes,
        duration,
    })
}

/// The frame size in bytes for a bitrate (`lc3_frame_bytes`, rounded down, clamped by liblc3 to 20..=400).
pub fn frame_bytes_for_bitrate(duration: FrameDuration, bitrate_bps: u32) -> usize {
    let bps = bitrate_bps.min(i32::MAX as u32) as c_int;
    // SAFETY: pure function of its integer arguments.
    let n = unsafe { ffi::lc3_frame_bytes(duration.us() as c_int, bps) };
    usize::try_from(n).unwrap_or(MIN_FRAME_BYTES)
}

#[cfg(test)]
pub(crate) mod tests;
