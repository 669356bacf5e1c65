//! The `file` output: writes what it renders to a WAV file (48 kHz stereo S16), consumed at the local clock.

use super::local_clocked::LocalClocked;
use super::{Output, OutputError, OutputStatus, OUTPUT_FORMAT};
use crate::timeline::LocalTime;

/// Frames kept queued ahead of rendering.
const LEAD_NS: i64 = 20_000_000;
/// How far behind the writer may fall before the file's clock restarts (a skip in the recording). A file has no
/// real-time reader, so a stall of ours (or of the disk: the writes happen on the real-time thread) is caught up
/// by writing more afterwards instead of cutting audio; the integration test that checks click spacing to half a
/// frame failed 1 run in 5 on a loaded host with a 60 ms skip before this.
const LATE_TOLERANCE_NS: i64 = 500_000_000;

/// A WAV file as an output.
pub struct FileOutput {
    path: String,
    writer: Option<hound::WavWriter<std::io::BufWriter<std::fs::File>>>,
    clock: LocalClocked,
}

impl FileOutput {
    /// Creates (truncates) `path`.
    pub fn create(path: &str) -> Result<Self, OutputError> {
        let spec = hound::WavSpec {
            channels: OUTPUT_FORMAT.channels,
            sample_rate: OUTPUT_FORMAT.rate_hz,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(path, spec)
            .map_err(|e| OutputError::Other(format!("cannot create WAV file {path}: {e}")))?;
        Ok(Self {
            path: path.to_string(),
            writer: Some(writer),
            clock: LocalClocked::with_late_tolerance(LEAD_NS, 0, LATE_TOLERANCE_NS),
        })
    }
}

impl Output for FileOutput {
    fn kind(&self) -> &'static str {
        "file"
    }
    fn status(&mut self, now: LocalTime) -> OutputStatus {
        self.clock.status(now)
    }
    fn write(&mut self, _now: LocalTime, frames: &[i16]) -> Result<(), OutputError> {
        let w = self
            .writer
            .as_mut()
            .ok_or_else(|| OutputError::Other(format!("{} is closed", self.path)))?;
        for s in frames {
            w.write_sample(*s)
                .map_err(|e| OutputError::Other(format!("cannot write {}: {e}", self.path)))?;
        }
        self.clock.wrote(frames);
        Ok(())
    }
    fn paced_by_local_clock(&self) -> bool {
        true
    }

    fn take_markers(&mut self) -> Vec<LocalTime> {
        self.clock.take_markers()
    }
    fn counters(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("frames", self.clock.written_frames()),
            ("underruns", self.clock.underruns),
        ]
    }
    fn close(&mut self) -> Result<(), OutputError> {
        if let Some(w) = self.writer.take() {
            w.finalize()
                .map_err(|e| OutputError::Other(format!("cannot finish {}: {e}", self.path)))?;
        }
        Ok(())
    }
}
