//! [`Lc3Decoder`]: LC3 frames of one channel into PCM, with liblc3's packet loss concealment.

use super::*;

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
