//! The libsbc **decoder** binding: decoding is what a speaker does, so it lives with the sink recorder and not in
//! the service's library (which only encodes). It works on the library's [`Sbc`] (one `sbc_t` configured from an
//! A2DP configuration) through [`Sbc::as_raw`].
//!
//! The file is a module of the recorder binary and, for its own tests only, of the library
//! (`codec::sbc::decode`, whose output tests decode what an output sent); in both, its parent names [`Sbc`],
//! [`SbcError`] and [`SBC_SYNCWORD`].

use super::{Sbc, SbcError, SBC_SYNCWORD};
use std::os::raw::c_void;

#[link(name = "sbc")]
extern "C" {
    fn sbc_decode(
        sbc: *mut c_void,
        input: *const c_void,
        input_len: usize,
        output: *mut c_void,
        output_len: usize,
        written: *mut usize,
    ) -> isize;
}

/// Decoding SBC with a libsbc codec.
pub trait SbcDecode {
    /// Decodes one SBC frame from the start of `frame`; appends S16LE PCM bytes to `out`; returns bytes consumed.
    fn decode_frame(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<usize, SbcError>;

    /// Decodes `count` consecutive SBC frames from the start of `data` (e.g. an A2DP media payload after its
    /// 1-byte header), appending interleaved S16 samples to `pcm`; returns the bytes consumed. A frame that does
    /// not start with the SBC syncword, or data that ends before `count` frames, is an error (what was decoded
    /// before it stays in `pcm`).
    fn decode_frames(&mut self, data: &[u8], count: usize, pcm: &mut Vec<i16>) -> Result<usize, SbcError>;
}

impl SbcDecode for Sbc {
    fn decode_frame(&mut self, frame: &[u8], out: &mut Vec<u8>) -> Result<usize, SbcError> {
        let start = out.len();
        out.resize(start + self.codesize().max(512), 0);
        let mut written: usize = 0;
        // SAFETY: as_raw is an initialised sbc_t owned by self (borrowed mutably here); buffers are valid for the
        // lengths passed and libsbc writes at most output_len bytes.
        let rc = unsafe {
            sbc_decode(
                self.as_raw(),
                frame.as_ptr().cast(),
                frame.len(),
                out[start..].as_mut_ptr().cast(),
                out.len() - start,
                &mut written,
            )
        };
        if rc <= 0 {
            out.truncate(start);
            return Err(SbcError::Codec {
                what: "decode",
                code: rc,
            });
        }
        out.truncate(start + written);
        Ok(rc as usize)
    }

    fn decode_frames(&mut self, data: &[u8], count: usize, pcm: &mut Vec<i16>) -> Result<usize, SbcError> {
        let mut off = 0;
        let mut bytes = Vec::with_capacity(self.codesize().max(512));
        for _ in 0..count {
            if data.get(off) != Some(&SBC_SYNCWORD) {
                return Err(SbcError::Codec {
                    what: "decode (no SBC syncword)",
                    code: off as isize,
                });
            }
            bytes.clear();
            off += self.decode_frame(&data[off..], &mut bytes)?;
            pcm.extend(bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])));
        }
        Ok(off)
    }
}
