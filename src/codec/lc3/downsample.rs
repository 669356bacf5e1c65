//! Bringing PCM above the codec rate down to it: liblc3's own downsampling where it is sound (≥ 1.1.0), else a
//! windowed-sinc decimator of our own before a codec-rate encoder (see the module doc of [`super`]).

use std::sync::OnceLock;

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
pub(super) struct Decimator {
    l: usize,
    m: usize,
    /// Half-width of the filter in PCM samples, and its delay.
    pub(super) half: usize,
    /// Per phase: the whole part of the phase's position offset, and the taps; `taps[ph][i]` weighs buffer index
    /// `(j·M)/L + whole[ph] + i` for output j.
    whole: Vec<usize>,
    taps: Vec<Vec<f32>>,
    /// `2 × half` samples of history, then the current frame.
    buf: Vec<f32>,
    /// One codec frame.
    pub(super) out: Vec<f32>,
}

impl Decimator {
    /// From `pcm_hz` to `codec_hz` (lower) in frames of `frame_samples` PCM samples; `None` if a frame does not
    /// hold a whole number of codec samples.
    pub(super) fn new(pcm_hz: u32, codec_hz: u32, frame_samples: usize) -> Option<Self> {
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
    pub(super) fn process(&mut self, frame: impl Iterator<Item = f32>) {
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
