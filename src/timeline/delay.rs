//! The output delay: from handing a frame to an output until it is heard, as a sum of named parts.
//!
//! Each part is kept separately, in signed nanoseconds, so status can show where the time goes and a wrong part
//! can be fixed on its own (a calibration corrects a speaker that reports its delay wrongly; a manual offset
//! moves one speaker relative to the group).

use serde::Serialize;

/// The parts of one output's delay, each in signed nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutputDelay {
    /// Algorithmic delay of the encoder (SBC, LC3); 0 for PCM outputs.
    pub encoder_ns: i64,
    /// Frames the player resampled but has not handed over yet.
    pub queue_ns: i64,
    /// Frames handed to the transport (socket, controller, simulated link) and not yet rendered by the sink.
    pub transport_ns: i64,
    /// What the sink says it adds (A2DP DelayReport, broadcast presentation delay, a pipe's declared delay).
    pub sink_reported_ns: i64,
    /// The user's manual offset: positive plays later.
    pub offset_ns: i64,
    /// Correction measured acoustically for a sink whose report is wrong: positive means it is really slower.
    pub calibration_ns: i64,
}

impl OutputDelay {
    /// The whole delay: hand-off to heard.
    pub fn total_ns(&self) -> i64 {
        self.encoder_ns
            + self.queue_ns
            + self.transport_ns
            + self.sink_reported_ns
            + self.offset_ns
            + self.calibration_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_is_the_sum_of_every_part_including_negative_ones() {
        let d = OutputDelay {
            encoder_ns: 1,
            queue_ns: 10,
            transport_ns: 100,
            sink_reported_ns: 1000,
            offset_ns: -5,
            calibration_ns: 20_000,
        };
        assert_eq!(d.total_ns(), 21_106);
    }
}
