//! SBC through the system libsbc (Debian `libsbc-dev`): a thin FFI and a safe encoder.
//!
//! The codec is configured straight from an A2DP SBC configuration (the 4 bytes BlueZ hands to
//! `SetConfiguration`), so what is encoded is always exactly what was negotiated. The service only encodes; the
//! decoder binding lives with its one user, the rig's sink recorder (`src/bin/bluebridge-sink-recorder/
//! sbc_decode.rs`, through [`Sbc::as_raw`]), and is compiled into this library only for its own tests.

use std::os::raw::{c_int, c_ulong, c_void};

/// libsbc's `sbc_t` (sbc/sbc.h, libsbc 1.x/2.x).
#[repr(C)]
struct SbcT {
    flags: c_ulong,
    frequency: u8,
    blocks: u8,
    subbands: u8,
    mode: u8,
    allocation: u8,
    bitpool: u8,
    endian: u8,
    priv_: *mut c_void,
    priv_alloc_base: *mut c_void,
}

#[link(name = "sbc")]
extern "C" {
    fn sbc_init_a2dp(sbc: *mut SbcT, flags: c_ulong, conf: *const c_void, conf_len: usize) -> c_int;
    fn sbc_encode(
        sbc: *mut SbcT,
        input: *const c_void,
        input_len: usize,
        output: *mut c_void,
        output_len: usize,
        written: *mut isize,
    ) -> isize;
    fn sbc_get_frame_length(sbc: *mut SbcT) -> usize;
    fn sbc_get_codesize(sbc: *mut SbcT) -> usize;
    fn sbc_finish(sbc: *mut SbcT);
}

/// Algorithmic delay of SBC in PCM frames (as bluez-alsa reports it for SBC): an encoder followed by a decoder
/// (libsbc, 8 subbands) puts input frame `n` at output frame `n + 73` (measured: 73.02, in the sink recorder's decoder tests).
pub const SBC_DELAY_FRAMES: u32 = 73;

/// First byte of every SBC frame.
pub const SBC_SYNCWORD: u8 = 0x9c;

/// Why libsbc refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SbcError {
    /// The A2DP configuration was not accepted by libsbc.
    #[error("libsbc rejects the A2DP SBC configuration {conf:02x?} (error {code})")]
    Config {
        /// The bytes.
        conf: Vec<u8>,
        /// libsbc's return code.
        code: i32,
    },
    /// Encoding or decoding failed.
    #[error("libsbc {what} failed with {code}")]
    Codec {
        /// encode / decode.
        what: &'static str,
        /// Return code.
        code: isize,
    },
    /// Wrong buffer size.
    #[error("SBC needs {need} bytes of PCM per frame, got {got}")]
    Size {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        got: usize,
    },
}

/// One SBC codec instance for a fixed A2DP configuration.
pub struct Sbc {
    raw: Box<SbcT>,
    frame_length: usize,
    codesize: usize,
}

// SAFETY: the libsbc state is owned exclusively by this value and only touched through &mut self.
unsafe impl Send for Sbc {}

impl Sbc {
    /// A codec for the 4-byte A2DP SBC configuration `conf`; PCM is little-endian S16 interleaved.
    pub fn new_a2dp(conf: &[u8]) -> Result<Self, SbcError> {
        let mut raw = Box::new(SbcT {
            flags: 0,
            frequency: 0,
            blocks: 0,
            subbands: 0,
            mode: 0,
            allocation: 0,
            bitpool: 0,
            endian: 0,
            priv_: std::ptr::null_mut(),
            priv_alloc_base: std::ptr::null_mut(),
        });
        // SAFETY: raw is a valid sbc_t; conf is valid for conf.len() bytes.
        let rc = unsafe { sbc_init_a2dp(&mut *raw, 0, conf.as_ptr().cast(), conf.len()) };
        if rc != 0 {
            return Err(SbcError::Config {
                conf: conf.to_vec(),
                code: rc,
            });
        }
        raw.endian = 0; // SBC_LE: our PCM is little-endian
                        // libsbc leaves the bitpool at its default (32); a source encodes at the configuration's maximum.
        if let Some(&max_bitpool) = conf.get(3) {
            raw.bitpool = max_bitpool;
        }
        // SAFETY: initialised above.
        let (frame_length, codesize) = unsafe { (sbc_get_frame_length(&mut *raw), sbc_get_codesize(&mut *raw)) };
        Ok(Self {
            raw,
            frame_length,
            codesize,
        })
    }

    /// Bytes of one encoded SBC frame.
    pub fn frame_length(&self) -> usize {
        self.frame_length
    }

    /// Bytes of PCM (S16 interleaved) one SBC frame holds.
    pub fn codesize(&self) -> usize {
        self.codesize
    }

    /// PCM frames (samples per channel) in one SBC frame: blocks × subbands.
    pub fn frames_per_sbc_frame(&self, channels: usize) -> usize {
        self.codesize / 2 / channels
    }

    /// Encodes exactly one SBC frame from `pcm` (S16LE interleaved bytes, [`codesize`](Self::codesize) long),
    /// appending it to `out`.
    pub fn encode_frame(&mut self, pcm: &[u8], out: &mut Vec<u8>) -> Result<(), SbcError> {
        if pcm.len() != self.codesize {
            return Err(SbcError::Size {
                need: self.codesize,
                got: pcm.len(),
            });
        }
        let start = out.len();
        out.resize(start + self.frame_length, 0);
        let mut written: isize = 0;
        // SAFETY: buffers valid for the lengths passed; libsbc writes at most output_len bytes.
        let rc = unsafe {
            sbc_encode(
                &mut *self.raw,
                pcm.as_ptr().cast(),
                pcm.len(),
                out[start..].as_mut_ptr().cast(),
                self.frame_length,
                &mut written,
            )
        };
        if rc < 0 || written <= 0 {
            out.truncate(start);
            return Err(SbcError::Codec {
                what: "encode",
                code: rc.min(written),
            });
        }
        out.truncate(start + written as usize);
        Ok(())
    }

    /// The libsbc `sbc_t *` behind this codec, for a binding of libsbc functions this module leaves out (the sink
    /// recorder's decoder). Valid while `self` lives; the caller must not `sbc_finish` it.
    pub fn as_raw(&mut self) -> *mut c_void {
        (&mut *self.raw as *mut SbcT).cast()
    }
}

/// The sink recorder's decoder, borrowed for the tests of the outputs (they decode what an output sent).
#[cfg(test)]
#[path = "../bin/bluebridge-sink-recorder/sbc_decode.rs"]
pub(crate) mod decode;

#[cfg(test)]
impl Sbc {
    /// [`decode::SbcDecode::decode_frames`], callable without importing the trait.
    pub(crate) fn decode_frames(&mut self, data: &[u8], count: usize, pcm: &mut Vec<i16>) -> Result<usize, SbcError> {
        decode::SbcDecode::decode_frames(self, data, count, pcm)
    }
}

impl Drop for Sbc {
    fn drop(&mut self) {
        // SAFETY: initialised in new_a2dp; finish frees libsbc's private state once.
        unsafe { sbc_finish(&mut *self.raw) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 48 kHz, joint stereo, 16 blocks, 8 subbands, loudness, bitpool 2..51.
    const CONF_48K_JS: [u8; 4] = [0x11, 0x15, 2, 51];

    #[test]
    fn frame_sizes_match_the_a2dp_formula() {
        let s = Sbc::new_a2dp(&CONF_48K_JS).unwrap();
        // Joint stereo: 4 + (4·8·2)/8 + ceil((8 + 16·51)/8) = 4 + 8 + 103 = 115 bytes.
        assert_eq!(s.frame_length(), 115);
        assert_eq!(s.codesize(), 16 * 8 * 2 * 2);
        assert_eq!(s.frames_per_sbc_frame(2), 128);
    }

    #[test]
    fn bad_configuration_and_sizes_are_errors() {
        assert!(matches!(
            Sbc::new_a2dp(&[0xff, 0xff, 2, 250]),
            Err(SbcError::Config { .. })
        ));
        let mut s = Sbc::new_a2dp(&CONF_48K_JS).unwrap();
        assert_eq!(
            s.encode_frame(&[0; 10], &mut vec![]),
            Err(SbcError::Size { need: 512, got: 10 })
        );
    }
}
