//! Raw declarations for the system liblc3 (`lc3.h`, Debian/Raspberry Pi OS `liblc3-dev` ≥ 1.0).
//!
//! Only the stable 1.0 API is declared (it is unchanged in 1.1): sizing, setup, encode, decode and the sizing
//! helpers. The handles are the caller's memory itself (`lc3.h`: "The returned encoder handle is set at the
//! address of the allocated memory space"), so nothing here allocates and nothing needs freeing.
//! All functions are thread-safe for distinct handles: liblc3 keeps no global state.

use std::os::raw::{c_int, c_uint, c_void};

/// `enum lc3_pcm_format` (lc3.h): the PCM sample layout of `lc3_encode`'s input / `lc3_decode`'s output.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // S24 variants are declared for completeness of the C enum.
pub enum PcmFormat {
    /// Signed 16 bits in 16-bit words (`int16_t`).
    S16 = 0,
    /// Signed 24 bits in the low three bytes of 32-bit words, sign-extended.
    S24 = 1,
    /// Signed 24 bits packed in 3 bytes, little endian.
    S24_3le = 2,
    /// 32-bit float, -1..1.
    Float = 3,
}

/// Opaque `struct lc3_encoder`.
#[repr(C)]
pub struct Lc3EncoderState {
    _private: [u8; 0],
}

/// Opaque `struct lc3_decoder`.
#[repr(C)]
pub struct Lc3DecoderState {
    _private: [u8; 0],
}

/// `LC3_MIN_FRAME_BYTES` (lc3.h 1.0).
pub const LC3_MIN_FRAME_BYTES: usize = 20;
/// `LC3_MAX_FRAME_BYTES` (lc3.h 1.0; 1.1 keeps 400 for non-HR mode).
pub const LC3_MAX_FRAME_BYTES: usize = 400;

#[link(name = "lc3")]
extern "C" {
    /// Samples per frame, -1 on bad parameters.
    pub fn lc3_frame_samples(dt_us: c_int, sr_hz: c_int) -> c_int;
    /// Floor of the frame size in bytes for a bitrate, -1 on bad parameters.
    pub fn lc3_frame_bytes(dt_us: c_int, bitrate: c_int) -> c_int;
    /// Bitrate in bit/s for a frame size, -1 on bad parameters.
    pub fn lc3_resolve_bitrate(dt_us: c_int, nbytes: c_int) -> c_int;
    /// Algorithmic delay in samples, -1 on bad parameters.
    pub fn lc3_delay_samples(dt_us: c_int, sr_hz: c_int) -> c_int;

    /// Bytes of (pointer-aligned) memory an encoder needs, 0 on bad parameters; `sr_hz` is the PCM rate (the
    /// `sr_pcm_hz` given to `lc3_setup_encoder`).
    pub fn lc3_encoder_size(dt_us: c_int, sr_hz: c_int) -> c_uint;
    /// Sets an encoder up in `mem` for a `sr_hz` stream from PCM at `sr_pcm_hz` (≥ `sr_hz`, downsampled by the
    /// codec; 0 = `sr_hz`); returns the handle (== `mem`) or NULL on bad parameters.
    pub fn lc3_setup_encoder(dt_us: c_int, sr_hz: c_int, sr_pcm_hz: c_int, mem: *mut c_void) -> *mut Lc3EncoderState;
    /// Encodes one frame of `nbytes` (20..400) into `out`; 0 on success, -1 on bad parameters.
    pub fn lc3_encode(
        encoder: *mut Lc3EncoderState,
        fmt: PcmFormat,
        pcm: *const c_void,
        stride: c_int,
        nbytes: c_int,
        out: *mut c_void,
    ) -> c_int;

    /// Bytes of (pointer-aligned) memory a decoder needs, 0 on bad parameters; `sr_hz` is the PCM rate (the
    /// `sr_pcm_hz` given to `lc3_setup_decoder`).
    pub fn lc3_decoder_size(dt_us: c_int, sr_hz: c_int) -> c_uint;
    /// Sets a decoder up in `mem` for a `sr_hz` stream producing PCM at `sr_pcm_hz` (≥ `sr_hz`, upsampled by the
    /// codec; 0 = `sr_hz`); returns the handle (== `mem`) or NULL on bad parameters.
    pub fn lc3_setup_decoder(dt_us: c_int, sr_hz: c_int, sr_pcm_hz: c_int, mem: *mut c_void) -> *mut Lc3DecoderState;
    /// Decodes one frame (`input` NULL = packet loss concealment); 0 decoded, 1 concealed, -1 bad parameters.
    pub fn lc3_decode(
        decoder: *mut Lc3DecoderState,
        input: *const c_void,
        nbytes: c_int,
        fmt: PcmFormat,
        pcm: *mut c_void,
        stride: c_int,
    ) -> c_int;
}
