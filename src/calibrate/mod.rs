//! Acoustic calibration: measure with a microphone when each speaker is really heard, and turn the error into
//! that output's `calibration_ms` (pure maths, no I/O: the service and the demo feed it recordings).
//!
//! - [`signal`]: the measurement burst (an MLS, deterministic from a seed);
//! - [`detect`]: FFT cross-correlation and the first arrival (the direct sound, not the loudest reflection);
//! - [`measure`]: one speaker's repeats → its error, spread, confidence and new `calibration_ms`, or a typed
//!   refusal ([`CalibrateError`]);
//! - [`overlay`]: the burst laid over one output's audio at a source time, inside its player;
//! - [`recording`]: a recording of the played sequence made with any recorder (a phone): decode, resample, the
//!   recorder's clock ratio from the two reference bursts, each speaker's relative offset;
//! - [`session`]: one run over several outputs against a [`session::Stage`] (the outputs) and a
//!   [`session::Microphone`], and the plan of corrections against a [`session::Reference`];
//! - [`sim_room`]: a simulated room (speakers that misreport their delay, distance, reverberation, noise, a
//!   microphone with a capture latency, a recorder with a clock error) for the tests and `demo --calibrate`.
//!
//! **Sign.** A measured error is *heard − should have been heard*: positive means the speaker sounds late. The
//! delay model ([`crate::timeline::delay::OutputDelay`]) hands a frame to an output at play time − total delay,
//! and `calibration_ns` is one part of that total (positive: the sink is really slower than it reports). So a
//! speaker heard `e` ms late gets `calibration_ms += e`: its total delay grows by `e` and every frame is handed
//! over `e` ms earlier, which makes it heard on time.

pub mod detect;
pub mod measure;
pub mod overlay;
pub mod recording;
pub mod session;
pub mod signal;
pub mod sim_room;

use thiserror::Error;

/// Why a calibration refused to produce a figure. Each message names the speaker and the figure that failed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum CalibrateError {
    /// The microphone delivered (near) digital silence.
    #[error("{speaker}: the microphone recorded nothing (level {level_dbfs:.0} dBFS); is it connected, selected and unmuted?")]
    NoInput {
        /// The speaker being measured.
        speaker: String,
        /// RMS level of the recording, dBFS.
        level_dbfs: f64,
    },
    /// No arrival stands out of the noise at all: the speaker did not play.
    #[error("{speaker}: not heard at all: nothing in the recording stands out of the noise (peak-to-noise {pnr_db:.1} dB; a speaker that plays gives at least {heard_db:.0} dB); is it on, connected and turned up?")]
    SpeakerSilent {
        /// The speaker being measured.
        speaker: String,
        /// The recording's peak-to-noise ratio, dB.
        pnr_db: f64,
        /// The least ratio that counts as heard, dB.
        heard_db: f64,
    },
    /// The burst is heard but too close to the noise for a reliable figure.
    #[error("{speaker}: signal too weak or room too noisy: peak-to-noise {pnr_db:.1} dB, needs {min_db:.0} dB; turn the speaker up, bring the microphone closer or quieten the room")]
    TooWeak {
        /// The speaker being measured.
        speaker: String,
        /// The measured peak-to-noise ratio, dB.
        pnr_db: f64,
        /// The least ratio accepted, dB.
        min_db: f64,
    },
    /// The microphone input clipped: the waveform, so the arrival, is distorted.
    #[error("{speaker}: the microphone input clipped ({clipped_samples} samples at full scale, at most {max_samples} allowed); lower the speaker's volume or the microphone gain")]
    Clipped {
        /// The speaker being measured.
        speaker: String,
        /// Samples at or beyond the clip level.
        clipped_samples: usize,
        /// The most tolerated.
        max_samples: usize,
    },
    /// The repeats disagree by more than the bound: the speaker's latency is not steady, or the room changed.
    #[error("{speaker}: the repeats disagree: spread {spread_ms:.2} ms over {repeats} repeats, at most {max_ms:.2} ms allowed (errors {errors}); is something moving the speaker's latency (a weak link, a codec change)?")]
    RepeatsDisagree {
        /// The speaker being measured.
        speaker: String,
        /// max − min of the repeats' errors, ms.
        spread_ms: f64,
        /// The bound, ms.
        max_ms: f64,
        /// How many repeats.
        repeats: usize,
        /// The repeats' errors, formatted in ms.
        errors: String,
    },
    /// Nothing to combine.
    #[error("{speaker}: no repeats were measured")]
    NoRepeats {
        /// The speaker being measured.
        speaker: String,
    },
    /// The microphone could not be opened or stopped delivering.
    #[error("microphone: {0}")]
    Microphone(String),
    /// An output could not be made to play the burst (or to be muted meanwhile).
    #[error("{speaker}: cannot play the measurement burst: {message}")]
    Playback {
        /// The output.
        speaker: String,
        /// Why.
        message: String,
    },
    /// A recording that cannot be decoded.
    #[error("recording: {0}")]
    Decode(String),
    /// A recording shorter than the sequence it should hold.
    #[error("recording: {seconds:.1} s long, but the sequence of {speakers} speakers needs at least {needed_s:.1} s")]
    RecordingTooShort {
        /// Length of the recording, s.
        seconds: f64,
        /// Length of the sequence, s.
        needed_s: f64,
        /// Speakers in the sequence.
        speakers: usize,
    },
}
