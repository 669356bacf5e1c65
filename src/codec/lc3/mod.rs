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

mod ffi;

use std::fmt;
use std::os::raw::{c_int, c_void};
use std::sync::OnceLock;
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

/// How an [`Lc3Encoder`] brings PCM above the codec rate down to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downsampling {
    /// Nothing to do: the PCM runs at the codec rate.
    None,
    /// liblc3's own (`sr_pcm_hz`), with liblc3 ≥ 1.1.0.
    Library,
    /// A windowed-sinc FIR decimator (one frame in, one codec-rate frame out, 16 codec samples of delay) before a plain
    /// codec-rate encoder: with liblc3 < 1.1.0, whose own downsampling is broken (see the module doc).
    Resampler,
}

/// Whether the linked liblc3's encoder downsamples correctly (`sr_pcm_hz` ≠ `sr_hz`): true from 1.1.0, which
/// fixed `LC3_NT` and is recognised by a function it added, `lc3_hr_frame_samples`.
pub fn library_downsampling_is_sound() -> bool {
    static SOUND: OnceLock<bool> = OnceLock::new();
    *SOUND.get_or_init(|| {
        // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks the symbol up.
        !unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"lc3_hr_frame_samples".as_ptr()) }.is_null()
    })
}

/// The resampler of [`Downsampling::Resampler`]: one channel, one PCM frame in, one codec frame out. A
/// linear-phase windowed-sinc low-pass (Blackman window, cutoff at 0.9 × the codec's Nyquist frequency, ±16 codec
/// samples long) evaluated at each output sample's input time, which lies a whole number of PCM samples (the
/// half-width) behind: so the delay is exact, in PCM samples. The rates are in a ratio L/M (L = 1, or 2 for 32 kHz
/// from 48 kHz); each of the L phases has its own taps, normalised to unit gain at DC.
struct Decimator {
    l: usize,
    m: usize,
    /// Half-width of the filter in PCM samples, and its delay.
    half: usize,
    /// Per phase: the whole part of the phase's position offset, and the taps; `taps[ph][i]` weighs buffer index
    /// `(j·M)/L + whole[ph] + i` for output j.
    whole: Vec<usize>,
    taps: Vec<Vec<f32>>,
    /// `2 × half` samples of history, then the current frame.
    buf: Vec<f32>,
    /// One codec frame.
    out: Vec<f32>,
}

impl Decimator {
    /// From `pcm_hz` to `codec_hz` (lower) in frames of `frame_samples` PCM samples; `None` if a frame does not
    /// hold a whole number of codec samples.
    fn new(pcm_hz: u32, codec_hz: u32, frame_samples: usize) -> Option<Self> {
        let g = gcd(pcm_hz as usize, codec_hz as usize);
        let (l, m) = (codec_hz as usize / g, pcm_hz as usize / g);
        if l >= m || frame_samples % m != 0 {
            return None;
        }
        let half = (16 * m).div_ceil(l);
        let fc = 0.45 * l as f64 / m as f64; // cycles per PCM sample
        let span = half as f64 + 1.0;
        let h = |t: f64| {
            if t.abs() >= span {
                return 0.0;
            }
            let x = 2.0 * fc * t;
            let sinc = if x == 0.0 {
                1.0
            } else {
                (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
            };
            let u = std::f64::consts::PI * t / span;
            sinc * (0.42 + 0.5 * u.cos() + 0.08 * (2.0 * u).cos())
        };
        // Codec sample j stands for PCM time j·M/L + (M/L − 1)/2: where liblc3 puts it when it down- or upsamples
        // itself (the MDCTs' half-sample offsets at the two rates), so both ways line up to the PCM sample.
        let shift = (m as f64 / l as f64 - 1.0) / 2.0;
        let (mut whole, mut taps) = (Vec::new(), Vec::new());
        for ph in 0..l {
            let pos = ph as f64 / l as f64 + shift;
            let frac = pos.fract();
            whole.push(pos.floor() as usize);
            let raw: Vec<f64> = (0..=2 * half + 1).map(|i| h(frac + half as f64 - i as f64)).collect();
            let sum: f64 = raw.iter().sum();
            taps.push(raw.iter().map(|v| (v / sum) as f32).collect::<Vec<f32>>());
        }
        Some(Self {
            l,
            m,
            half,
            whole,
            taps,
            buf: vec![0.0; 2 * half + frame_samples],
            out: vec![0.0; frame_samples * l / m],
        })
    }

    /// Filters and decimates one frame (`frame` yields exactly one frame of samples) into `self.out`.
    fn process(&mut self, frame: impl Iterator<Item = f32>) {
        let hist = 2 * self.half;
        let len = self.buf.len();
        self.buf.copy_within(len - hist.., 0);
        for (b, x) in self.buf[hist..].iter_mut().zip(frame) {
            *b = x;
        }
        for (j, y) in self.out.iter_mut().enumerate() {
            // Output j sits at PCM position j·M/L + shift of the frame, `half` samples back: buffer index
            // j·M/L + shift + half; the taps start `half` before its whole part.
            let ph = (j * self.m) % self.l;
            let start = (j * self.m) / self.l + self.whole[ph];
            let taps = &self.taps[ph];
            let window = &self.buf[start..(start + taps.len()).min(len)];
            *y = window.iter().zip(taps).map(|(x, t)| x * t).sum();
        }
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

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

/// Encodes one channel of PCM into LC3 frames.
pub struct Lc3Encoder {
    p: Params,
    /// The encoder state; liblc3's handle is this memory's address (checked in `new`).
    mem: Vec<usize>,
    /// [`Downsampling::Resampler`]'s resampler.
    decimator: Option<Decimator>,
}

impl fmt::Debug for Lc3Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lc3Encoder")
            .field("params", &self.p)
            .field("downsampling", &self.downsampling())
            .finish_non_exhaustive()
    }
}

impl Lc3Encoder {
    /// An encoder for `duration` frames of PCM at `sample_rate_hz` (one of [`SAMPLE_RATES_HZ`]), producing a
    /// stream at that same rate.
    pub fn new(duration: FrameDuration, sample_rate_hz: u32) -> Result<Self, Lc3Error> {
        Self::with_pcm_rate(duration, sample_rate_hz, sample_rate_hz)
    }

    /// An encoder producing a `codec_rate_hz` stream from PCM at `pcm_rate_hz` (both of [`SAMPLE_RATES_HZ`],
    /// `pcm_rate_hz` ≥ `codec_rate_hz`; 44.1 kHz only with itself). Frame size and delay are then counted in PCM
    /// samples. The PCM is band-limited to the codec rate by liblc3 where that works (≥ 1.1.0), else by a
    /// resampler (see [`Downsampling`]).
    pub fn with_pcm_rate(duration: FrameDuration, codec_rate_hz: u32, pcm_rate_hz: u32) -> Result<Self, Lc3Error> {
        let mode = if lib_rate(codec_rate_hz)? == lib_rate(pcm_rate_hz)? {
            Downsampling::None
        } else if library_downsampling_is_sound() {
            Downsampling::Library
        } else {
            Downsampling::Resampler
        };
        Self::with_downsampling(duration, codec_rate_hz, pcm_rate_hz, mode)
    }

    /// [`Self::with_pcm_rate`] with the downsampling chosen by the caller (tests; `Library` with liblc3 < 1.1.0
    /// makes a corrupt stream). `None` is taken as `Resampler` when the rates differ.
    pub(crate) fn with_downsampling(
        duration: FrameDuration,
        codec_rate_hz: u32,
        pcm_rate_hz: u32,
        mode: Downsampling,
    ) -> Result<Self, Lc3Error> {
        let mut p = Params::new(duration, codec_rate_hz, pcm_rate_hz)?;
        let resample = p.lib_sr != p.lib_sr_pcm && mode != Downsampling::Library;
        // liblc3 runs at the PCM rate, or (resampling here) at the codec rate.
        let lib_pcm = if resample { p.lib_sr } else { p.lib_sr_pcm };
        let dt = duration.us() as c_int;
        // SAFETY: pure function of its integer arguments. lc3.h: the size is that of the PCM rate (`sr_pcm_hz`).
        let size = unsafe { ffi::lc3_encoder_size(dt, lib_pcm) } as usize;
        if size == 0 {
            return Err(p.error("lc3_encoder_size"));
        }
        let mut mem = state_memory(size);
        let base = mem.as_mut_ptr();
        // SAFETY: `mem` holds at least `size` bytes, pointer-aligned, and lives as long as the encoder.
        // 44.1 kHz is fed as-is to the 48 kHz codec (lib_sr = lib_sr_pcm = 48 000).
        let handle = unsafe { ffi::lc3_setup_encoder(dt, p.lib_sr, lib_pcm, base.cast::<c_void>()) };
        if handle.is_null() || handle.cast::<usize>() != base {
            return Err(p.error("lc3_setup_encoder"));
        }
        let decimator = if resample {
            let d = Decimator::new(p.rate_hz, p.stream_rate_hz, p.frame_samples).ok_or(p.error("resampler"))?;
            // The codec's delay is the same time at either rate (lc3_delay_samples at the PCM rate); the
            // resampler adds its own.
            p.delay_samples += d.half;
            Some(d)
        } else {
            None
        };
        Ok(Self { p, mem, decimator })
    }

    /// How this encoder brings its PCM to the codec rate.
    pub fn downsampling(&self) -> Downsampling {
        if self.decimator.is_some() {
            Downsampling::Resampler
        } else if self.p.lib_sr != self.p.lib_sr_pcm {
            Downsampling::Library
        } else {
            Downsampling::None
        }
    }

    /// PCM samples (of this one channel) per frame.
    pub fn frame_samples(&self) -> usize {
        self.p.frame_samples
    }

    /// The codec's algorithmic delay in PCM samples (`lc3_delay_samples`, plus the resampler's with
    /// [`Downsampling::Resampler`]), excluding the one frame of buffering.
    pub fn delay_samples(&self) -> usize {
        self.p.delay_samples
    }

    /// [`Self::delay_samples`] as a time at this encoder's PCM rate.
    pub fn delay(&self) -> Duration {
        self.p.samples_to_duration(self.p.delay_samples)
    }

    /// The nominal frame duration.
    pub fn frame_duration(&self) -> FrameDuration {
        self.p.duration
    }

    /// How long one frame of PCM lasts at this PCM rate (10.884 ms for 10 ms frames at 44.1 kHz).
    pub fn frame_time(&self) -> Duration {
        self.p.samples_to_duration(self.p.frame_samples)
    }

    /// The PCM sample rate in Hz.
    pub fn sample_rate_hz(&self) -> u32 {
        self.p.rate_hz
    }

    /// The stream's (codec's) sample rate in Hz, as BAP's Sampling_Frequency names it.
    pub fn codec_rate_hz(&self) -> u32 {
        self.p.stream_rate_hz
    }

    /// Encodes exactly one frame of PCM (`frame_samples()` samples) into `out`, whose length is the frame size
    /// in bytes (20..=400; constant bitrate, may change per frame). Returns the number of bytes written.
    pub fn encode<S: Sample>(&mut self, pcm: &[S], out: &mut [u8]) -> Result<usize, Lc3Error> {
        self.encode_strided(pcm, 1, out)
    }

    /// Like [`Self::encode`], reading every `stride`-th sample from `pcm` (one channel of interleaved PCM: pass
    /// `&pcm[channel..]` and the channel count).
    pub fn encode_strided<S: Sample>(&mut self, pcm: &[S], stride: usize, out: &mut [u8]) -> Result<usize, Lc3Error> {
        let stride = self.p.check_pcm(pcm.len(), stride)?;
        self.p.check_frame_bytes(out.len())?;
        if let Some(d) = &mut self.decimator {
            d.process(pcm.iter().step_by(stride as usize).map(|s| s.to_f32()));
            let codec_frame = &d.out;
            // SAFETY: the handle is our live state, set up at the codec rate; `codec_frame` holds one frame of
            // float samples at that rate; `out` holds exactly `out.len()` bytes, which liblc3 fills.
            let rc = unsafe {
                ffi::lc3_encode(
                    self.mem.as_mut_ptr().cast(),
                    ffi::PcmFormat::Float,
                    codec_frame.as_ptr().cast(),
                    1,
                    out.len() as c_int,
                    out.as_mut_ptr().cast(),
                )
            };
            return if rc == 0 {
                Ok(out.len())
            } else {
                Err(self.p.error("lc3_encode"))
            };
        }
        // SAFETY: the handle is our live state; `pcm` holds (frame_samples-1)*stride+1 samples of the format
        // S::FORMAT names; `out` holds exactly `out.len()` bytes, which liblc3 fills.
        let rc = unsafe {
            ffi::lc3_encode(
                self.mem.as_mut_ptr().cast(),
                S::FORMAT,
                pcm.as_ptr().cast(),
                stride,
                out.len() as c_int,
                out.as_mut_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(self.p.error("lc3_encode"));
        }
        Ok(out.len())
    }
}

/// What [`Lc3Decoder::decode`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// The frame was decoded.
    Frame,
    /// Packet loss concealment filled in: no frame was given, or the frame was corrupt.
    Concealed,
}

/// Decodes LC3 frames of one channel into PCM.
pub struct Lc3Decoder {
    p: Params,
    /// The decoder state; liblc3's handle is this memory's address (checked in `new`).
    mem: Vec<usize>,
}

impl fmt::Debug for Lc3Decoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lc3Decoder")
            .field("params", &self.p)
            .finish_non_exhaustive()
    }
}

impl Lc3Decoder {
    /// A decoder for `duration` frames of a `sample_rate_hz` stream (one of [`SAMPLE_RATES_HZ`]), producing PCM
    /// at that same rate.
    pub fn new(duration: FrameDuration, sample_rate_hz: u32) -> Result<Self, Lc3Error> {
        Self::with_pcm_rate(duration, sample_rate_hz, sample_rate_hz)
    }

    /// A decoder for a `codec_rate_hz` stream producing PCM at `pcm_rate_hz` (both of [`SAMPLE_RATES_HZ`],
    /// `pcm_rate_hz` ≥ `codec_rate_hz`; 44.1 kHz only with itself): liblc3 upsamples. Frame size and delay are
    /// then counted in PCM samples.
    pub fn with_pcm_rate(duration: FrameDuration, codec_rate_hz: u32, pcm_rate_hz: u32) -> Result<Self, Lc3Error> {
        let p = Params::new(duration, codec_rate_hz, pcm_rate_hz)?;
        let dt = duration.us() as c_int;
        // SAFETY: pure function of its integer arguments. lc3.h: the size is that of the PCM rate (`sr_pcm_hz`).
        let size = unsafe { ffi::lc3_decoder_size(dt, p.lib_sr_pcm) } as usize;
        if size == 0 {
            return Err(p.error("lc3_decoder_size"));
        }
        let mut mem = state_memory(size);
        let base = mem.as_mut_ptr();
        // SAFETY: as in `Lc3Encoder::with_pcm_rate`.
        let handle = unsafe { ffi::lc3_setup_decoder(dt, p.lib_sr, p.lib_sr_pcm, base.cast::<c_void>()) };
        if handle.is_null() || handle.cast::<usize>() != base {
            return Err(p.error("lc3_setup_decoder"));
        }
        Ok(Self { p, mem })
    }

    /// PCM samples (of this one channel) per frame.
    pub fn frame_samples(&self) -> usize {
        self.p.frame_samples
    }

    /// The codec's algorithmic delay in PCM samples (`lc3_delay_samples`).
    pub fn delay_samples(&self) -> usize {
        self.p.delay_samples
    }

    /// The nominal frame duration.
    pub fn frame_duration(&self) -> FrameDuration {
        self.p.duration
    }

    /// The PCM sample rate in Hz.
    pub fn sample_rate_hz(&self) -> u32 {
        self.p.rate_hz
    }

    /// The stream's (codec's) sample rate in Hz, as BAP's Sampling_Frequency names it.
    pub fn codec_rate_hz(&self) -> u32 {
        self.p.stream_rate_hz
    }

    /// Decodes one frame (20..=400 bytes) into exactly `frame_samples()` samples of `pcm`; `None` runs packet loss
    /// concealment for a lost frame.
    pub fn decode<S: Sample>(&mut self, frame: Option<&[u8]>, pcm: &mut [S]) -> Result<Decoded, Lc3Error> {
        self.decode_strided(frame, pcm, 1)
    }

    /// Like [`Self::decode`], writing every `stride`-th sample of `pcm` (one channel of interleaved PCM).
    pub fn decode_strided<S: Sample>(
        &mut self,
        frame: Option<&[u8]>,
        pcm: &mut [S],
        stride: usize,
    ) -> Result<Decoded, Lc3Error> {
        let stride = self.p.check_pcm(pcm.len(), stride)?;
        let (input, nbytes) = match frame {
            Some(f) => {
                self.p.check_frame_bytes(f.len())?;
                (f.as_ptr().cast::<c_void>(), f.len() as c_int)
            }
            None => (std::ptr::null(), 0),
        };
        // SAFETY: the handle is our live state; `input` is NULL (PLC) or `nbytes` readable bytes; `pcm` has room
        // for (frame_samples-1)*stride+1 samples of the format S::FORMAT names.
        let rc = unsafe {
            ffi::lc3_decode(
                self.mem.as_mut_ptr().cast(),
                input,
                nbytes,
                S::FORMAT,
                pcm.as_mut_ptr().cast(),
                stride,
            )
        };
        match rc {
            0 => Ok(Decoded::Frame),
            1 => Ok(Decoded::Concealed),
            _ => Err(self.p.error("lc3_decode")),
        }
    }
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
