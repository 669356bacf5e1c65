//! SBC frame headers as the sink recorder reads them: a frame's length (to split an A2DP payload into frames) and
//! an estimate of its level from the scale factors alone (to decode only the frames around clicks). Pure.
//!
//! Its tests also hold the decoder's ([`crate::sbc_decode`]): that file is shared with the library's tests, where
//! crate paths differ, so its tests live here and run once.

use bluebridge::codec::sbc::SBC_SYNCWORD;

/// What an SBC frame's header says: enough to split an A2DP payload into frames and to judge a frame's level
/// without decoding it (A2DP spec, SBC frame syntax; the same fields libsbc parses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Blocks (4, 8, 12, 16).
    pub blocks: usize,
    /// Subbands (4, 8).
    pub subbands: usize,
    /// Channels (1 for mono, else 2).
    pub channels: usize,
    /// Joint stereo (a join bit per subband precedes the scale factors).
    pub joint: bool,
    /// Bitpool.
    pub bitpool: usize,
    /// Length of the whole frame in bytes.
    pub len: usize,
}

impl FrameHeader {
    /// Parses the header at the start of `frame`; None if it is not an SBC frame header.
    pub fn parse(frame: &[u8]) -> Option<Self> {
        let (&sync, &b1, &bitpool) = (frame.first()?, frame.get(1)?, frame.get(2)?);
        if sync != SBC_SYNCWORD || frame.len() < 4 {
            return None;
        }
        let blocks = 4 * (((b1 >> 4) & 3) as usize + 1);
        let mode = (b1 >> 2) & 3; // 0 mono, 1 dual channel, 2 stereo, 3 joint stereo
        let subbands = if b1 & 1 != 0 { 8 } else { 4 };
        let channels = if mode == 0 { 1 } else { 2 };
        let bitpool = bitpool as usize;
        let audio_bits = match mode {
            0 | 1 => blocks * channels * bitpool,
            2 => blocks * bitpool,
            _ => subbands + blocks * bitpool,
        };
        Some(Self {
            blocks,
            subbands,
            channels,
            joint: mode == 3,
            bitpool,
            len: 4 + (4 * subbands * channels) / 8 + audio_bits.div_ceil(8),
        })
    }

    /// PCM frames (samples per channel) the frame decodes to.
    pub fn pcm_frames(&self) -> usize {
        self.blocks * self.subbands
    }

    /// An estimate of the frame's peak sample (S16 units) from its scale factors alone: the sum over channels and
    /// subbands of 2^(scale factor + 1), the bound of each subband's samples. Not a strict bound on the output
    /// (the synthesis filter can add a little), but a frame whose estimate is a fraction of a level cannot reach
    /// it. None if `frame` is shorter than its scale factors.
    pub fn peak_estimate(&self, frame: &[u8]) -> Option<u32> {
        let first_bit = 32 + if self.joint { self.subbands } else { 0 };
        let mut sum = 0u32;
        for i in 0..self.channels * self.subbands {
            let bit = first_bit + 4 * i;
            let byte = *frame.get(bit / 8)?;
            let sf = if bit % 8 == 0 { byte >> 4 } else { byte & 0x0f };
            sum += 2u32 << sf;
        }
        Some(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sbc_decode::SbcDecode;
    use bluebridge::codec::sbc::{Sbc, SBC_DELAY_FRAMES};

    /// 48 kHz, joint stereo, 16 blocks, 8 subbands, loudness, bitpool 2..51.
    const CONF_48K_JS: [u8; 4] = [0x11, 0x15, 2, 51];

    #[test]
    fn encode_decode_round_trip_keeps_a_tone() {
        let mut enc = Sbc::new_a2dp(&CONF_48K_JS).unwrap();
        let mut dec = Sbc::new_a2dp(&CONF_48K_JS).unwrap();
        let n_frames = 100;
        let pcm: Vec<i16> = (0..128 * n_frames)
            .flat_map(|i| {
                let v = (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 48_000.0).sin()) as i16;
                [v, v]
            })
            .collect();
        let bytes: Vec<u8> = pcm.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut encoded = vec![];
        for chunk in bytes.chunks_exact(enc.codesize()) {
            enc.encode_frame(chunk, &mut encoded).unwrap();
        }
        assert_eq!(encoded.len(), 115 * n_frames);
        let mut decoded = vec![];
        let mut off = 0;
        while off < encoded.len() {
            off += dec.decode_frame(&encoded[off..], &mut decoded).unwrap();
        }
        let out: Vec<i16> = decoded
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(out.len(), pcm.len());
        // Compare after the codec delay (73 frames), left channel; SNR well above 30 dB for a pure tone.
        let d = SBC_DELAY_FRAMES as usize;
        let (mut sig, mut err) = (0.0f64, 0.0f64);
        for i in 2_000..(128 * n_frames - d - 10) {
            let a = pcm[2 * i] as f64;
            let b = out[2 * (i + d)] as f64;
            sig += a * a;
            err += (a - b) * (a - b);
        }
        let snr = 10.0 * (sig / err).log10();
        assert!(snr > 30.0, "SNR {snr:.1} dB");
    }

    /// The test signal (440 Hz at −20 dBFS + a Gaussian click every second) survives SBC: after the codec delay
    /// the decoded left channel matches the input with an SNR above 50 dB (measured 62.9 dB at bitpool 51), and
    /// every click comes out [`SBC_DELAY_FRAMES`] later to within 0.25 frame (measured 73.02), which is what the
    /// sink recorder's timing relies on.
    #[test]
    fn decoder_round_trip_of_the_test_signal() {
        use bluebridge::report::ClickDetector;
        use bluebridge::source::tone::{TestSignal, CLICK_OFFSET_FRAMES};
        let signal = TestSignal::standard();
        let n_sbc = 3 * 48_000 / 128; // 3 s
        let input: Vec<i16> = (0..n_sbc as u64 * 128)
            .flat_map(|n| {
                let v = (signal.sample(n) * 32767.0).round() as i16;
                [v, v]
            })
            .collect();
        let bytes: Vec<u8> = input.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut enc = Sbc::new_a2dp(&CONF_48K_JS).unwrap();
        let mut payload = vec![];
        for chunk in bytes.chunks_exact(enc.codesize()) {
            enc.encode_frame(chunk, &mut payload).unwrap();
        }
        // Decode as the recorder does: packets of 7 frames.
        let mut dec = Sbc::new_a2dp(&CONF_48K_JS).unwrap();
        let mut out = vec![];
        let mut off = 0;
        for n in (0..n_sbc).step_by(7).map(|i| (n_sbc - i).min(7)) {
            off += dec.decode_frames(&payload[off..], n, &mut out).unwrap();
        }
        assert_eq!(off, payload.len());
        assert_eq!(out.len(), input.len());
        let d = SBC_DELAY_FRAMES as usize;
        let (mut sig, mut err) = (0.0f64, 0.0f64);
        for i in 1_000..(out.len() / 2 - d) {
            let (a, b) = (input[2 * i] as f64, out[2 * (i + d)] as f64);
            sig += a * a;
            err += (a - b) * (a - b);
        }
        let snr = 10.0 * (sig / err).log10();
        assert!(snr > 50.0, "SNR {snr:.1} dB");
        let mut det = ClickDetector::new();
        let mut found = vec![];
        det.push(0, out.chunks_exact(2).map(|f| f[0] as f32 / 32768.0), &mut found);
        assert_eq!(found.len(), 3, "{found:?}");
        for (k, pos) in found.iter().enumerate() {
            let want = (k as u64 * 48_000 + CLICK_OFFSET_FRAMES) as f64 + SBC_DELAY_FRAMES as f64;
            assert!((pos - want).abs() < 0.25, "click {k} at {pos}, want {want}");
        }
        // Garbage is refused, not decoded.
        assert!(dec.decode_frames(&[0u8; 115], 1, &mut out).is_err());
        assert!(dec.decode_frames(&payload[..100], 1, &mut out).is_err());
    }

    /// Frame lengths from the header equal libsbc's for every channel mode, block count and subband count, and
    /// the scale-factor peak estimate tells the test signal's clicks (estimate ≥ 16384, half full scale) from its
    /// tone (≈ 4100, 0.1 full scale) without decoding.
    #[test]
    fn frame_headers_give_lengths_and_a_level_estimate() {
        use bluebridge::source::tone::TestSignal;
        for mode in [0x08, 0x04, 0x02, 0x01] {
            for blocks in [0x80, 0x40, 0x20, 0x10] {
                for subbands in [0x08, 0x04] {
                    let conf = [0x10 | mode, blocks | subbands | 0x01, 2, 35];
                    let mut enc = Sbc::new_a2dp(&conf).unwrap();
                    let mut out = vec![];
                    enc.encode_frame(&vec![0u8; enc.codesize()], &mut out).unwrap();
                    let h = FrameHeader::parse(&out).unwrap();
                    assert_eq!(
                        (h.len, out.len()),
                        (enc.frame_length(), enc.frame_length()),
                        "{conf:02x?}"
                    );
                    assert_eq!(h.pcm_frames() * h.channels * 2, enc.codesize(), "{conf:02x?}");
                }
            }
        }
        assert!(FrameHeader::parse(&[0x9d, 0, 0, 0]).is_none());
        assert!(FrameHeader::parse(&[0x9c, 0]).is_none());
        let signal = TestSignal::standard();
        let mut enc = Sbc::new_a2dp(&CONF_48K_JS).unwrap();
        let (mut loud, mut quiet_max) = (0, 0);
        for f in 1..800u64 {
            let pcm: Vec<u8> = (f * 128..f * 128 + 128)
                .flat_map(|n| {
                    let v = ((signal.sample(n) * 32767.0).round() as i16).to_le_bytes();
                    [v, v].concat()
                })
                .collect();
            let mut out = vec![];
            enc.encode_frame(&pcm, &mut out).unwrap();
            let h = FrameHeader::parse(&out).unwrap();
            let estimate = h.peak_estimate(&out).unwrap();
            let click = (f * 128..f * 128 + 128).any(|n| (n % 48_000).abs_diff(4_800) < 3);
            if click {
                assert!(estimate >= 16_384, "frame {f}: {estimate}");
                loud += 1;
            } else {
                quiet_max = quiet_max.max(estimate);
            }
        }
        assert_eq!(loud, 3);
        assert!(quiet_max < 8_192, "the tone alone: {quiet_max}");
        assert_eq!(
            FrameHeader::parse(&[0x9c, 0xbd, 51, 0])
                .unwrap()
                .peak_estimate(&[0x9c; 6]),
            None
        );
    }
}
