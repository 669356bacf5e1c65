//! A WAV file as a live source: its frames are "captured" in real time from the moment the source starts, so it
//! plays exactly like a network stream. Plays once, or loops.

use super::{Source, SourceError};
use crate::timeline::buffer::{Chunk, SharedTimeline, TimelineBuffer};
use crate::timeline::{AudioFormat, LocalTime, ServerTime};
use std::io::BufReader;

/// Frames read per chunk (20 ms at 48 kHz).
const CHUNK_FRAMES: u64 = 960;

/// A WAV file read as it becomes due.
pub struct WavSource {
    path: String,
    samples: Vec<f32>,
    format: AudioFormat,
    timeline: SharedTimeline,
    start: LocalTime,
    next_frame: u64,
    looped: bool,
}

impl WavSource {
    /// Opens and decodes `path` (16/24/32-bit integer or 32-bit float PCM). Files up to a few minutes are held in
    /// memory; that keeps the real-time path free of file I/O.
    pub fn open(path: &str, looped: bool, start: LocalTime) -> Result<(Self, SharedTimeline), SourceError> {
        let err = |reason: String| SourceError::File {
            path: path.to_string(),
            reason,
        };
        let reader = hound::WavReader::open(path).map_err(|e| err(e.to_string()))?;
        let spec = reader.spec();
        if spec.channels == 0 || spec.channels > 8 || spec.sample_rate < 8_000 || spec.sample_rate > 192_000 {
            return Err(err(format!(
                "unsupported format: {} channels at {} Hz",
                spec.channels, spec.sample_rate
            )));
        }
        let samples = read_all(reader, spec).map_err(|e| err(e.to_string()))?;
        if samples.is_empty() {
            return Err(err("the file holds no audio".into()));
        }
        let format = AudioFormat {
            rate_hz: spec.sample_rate,
            channels: spec.channels,
        };
        let timeline = TimelineBuffer::shared(format);
        let me = Self {
            path: path.to_string(),
            samples,
            format,
            timeline: timeline.clone(),
            start,
            next_frame: 0,
            looped,
        };
        Ok((me, timeline))
    }

    /// The file's path.
    pub fn path(&self) -> &str {
        &self.path
    }
}

fn read_all(reader: hound::WavReader<BufReader<std::fs::File>>, spec: hound::WavSpec) -> hound::Result<Vec<f32>> {
    match spec.sample_format {
        hound::SampleFormat::Float => reader.into_samples::<f32>().collect(),
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1u64 << (spec.bits_per_sample - 1)) as f32;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect()
        }
    }
}

impl Source for WavSource {
    fn pump(&mut self, now: LocalTime) {
        let f = self.format;
        let ch = f.channels as usize;
        let total_frames = (self.samples.len() / ch) as u64;
        let due = f.ns_to_frames_f64(now.ns_since(self.start)).floor();
        if due < 0.0 {
            return;
        }
        let due = due as u64;
        while self.next_frame + CHUNK_FRAMES <= due + 1 {
            if !self.looped && self.next_frame >= total_frames {
                return;
            }
            let mut samples = Vec::with_capacity(CHUNK_FRAMES as usize * ch);
            for n in self.next_frame..self.next_frame + CHUNK_FRAMES {
                let idx = if self.looped { n % total_frames } else { n };
                if idx < total_frames {
                    samples.extend_from_slice(&self.samples[idx as usize * ch..(idx as usize + 1) * ch]);
                } else {
                    samples.extend(std::iter::repeat_n(0.0, ch));
                }
            }
            let start = ServerTime::from_ns(self.start.as_ns() + f.frames_to_ns(self.next_frame as i64));
            let _ = self.timeline.push(Chunk { start, samples });
            self.next_frame += CHUNK_FRAMES;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_16_bit_file_in_real_time_and_names_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&p, spec).unwrap();
        for i in 0..8000 {
            w.write_sample((i % 100) as i16 * 100).unwrap();
        }
        w.finalize().unwrap();
        let (mut s, tl) = WavSource::open(p.to_str().unwrap(), false, LocalTime::from_ns(0)).unwrap();
        s.pump(LocalTime::from_ns(2_000_000_000));
        let tl = tl.lock();
        let mut out = vec![0.0; 3];
        tl.read(ServerTime::from_ns(0), &mut out);
        assert_eq!(out, vec![0.0, 100.0 / 32768.0, 200.0 / 32768.0]);
        drop(tl);
        let bad = dir.path().join("bad.wav");
        std::fs::write(&bad, b"not a wav").unwrap();
        let e = WavSource::open(bad.to_str().unwrap(), false, LocalTime::from_ns(0))
            .err()
            .unwrap();
        assert!(e.to_string().contains("bad.wav"), "{e}");
    }
}
