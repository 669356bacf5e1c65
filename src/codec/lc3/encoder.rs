//! [`Lc3Encoder`]: one channel of PCM into LC3 frames.

use super::downsample::{Decimator, Downsampling};
use super::*;

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
