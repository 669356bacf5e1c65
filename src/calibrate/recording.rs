//! A recording of the played sequence made with any recorder (a phone): decoding it (WAV, FLAC through
//! symphonia, from bytes already read), resampling it to the measurement rate, and the analysis that needs
//! neither the recorder's start time nor its clock.
//!
//! The sequence: a reference burst (played by the reference speaker) at 0, then speaker k's burst at
//! `(k + 1) · spacing`, then the reference burst again at `(n + 1) · spacing`. The two reference bursts are
//! `(n + 1) · spacing` apart on our clock; on the recorder's they are `ratio` times that, and dividing every
//! interval in the recording by `ratio` puts it back on our clock. A 100 ppm recorder over a 20 s sequence would
//! otherwise be 2 ms off at its end. Speaker k's offset is then `(t_k − t_ref) / ratio − (k + 1) · spacing`:
//! how much later than the reference speaker it is heard, at the place the recording was made.

use super::detect::{cross_correlate, first_arrival};
use super::measure::check_pnr;
use super::signal::RATE_HZ;
use super::CalibrateError;
use rubato::{Resampler, SincFixedIn, SincInterpolationParameters, SincInterpolationType, WindowFunction};
use serde::Serialize;

/// Resamples mono `x` by `ratio` (output rate / input rate) with a windowed-sinc resampler (rubato); the
/// resampler's own delay is removed, so sample positions map by `ratio` alone.
pub fn resample(x: &[f32], ratio: f64) -> Vec<f32> {
    const CHUNK: usize = 4096;
    let params = SincInterpolationParameters {
        sinc_len: 256,
        f_cutoff: 0.95,
        interpolation: SincInterpolationType::Cubic,
        oversampling_factor: 256,
        window: WindowFunction::BlackmanHarris2,
    };
    let mut r = SincFixedIn::<f32>::new(ratio, 1.0, params, CHUNK, 1).expect("valid resampler parameters");
    let delay = r.output_delay();
    let want = (x.len() as f64 * ratio).round() as usize;
    let mut out = Vec::with_capacity(want + delay + CHUNK);
    let mut pos = 0;
    while out.len() < want + delay {
        let mut chunk = vec![0.0f32; CHUNK];
        if pos < x.len() {
            let n = CHUNK.min(x.len() - pos);
            chunk[..n].copy_from_slice(&x[pos..pos + n]);
        }
        pos += CHUNK;
        let y = r.process(&[chunk], None).expect("chunk of the configured size");
        out.extend_from_slice(&y[0]);
    }
    out.drain(..delay);
    out.truncate(want);
    out
}

/// Decodes a recording (WAV or FLAC; the `hint` is its file extension, if any) to mono f32 and its rate.
pub fn decode(bytes: Vec<u8>, hint: Option<&str>) -> Result<(Vec<f32>, u32), CalibrateError> {
    use symphonia::core::{
        audio::SampleBuffer, codecs::DecoderOptions, errors::Error as SymErr, formats::FormatOptions,
        io::MediaSourceStream, meta::MetadataOptions, probe::Hint,
    };
    let err = |e: SymErr| CalibrateError::Decode(e.to_string());
    let mss = MediaSourceStream::new(Box::new(std::io::Cursor::new(bytes)), Default::default());
    let mut h = Hint::new();
    if let Some(ext) = hint {
        h.with_extension(ext);
    }
    let probed = symphonia::default::get_probe()
        .format(&h, mss, &FormatOptions::default(), &MetadataOptions::default())
        .map_err(err)?;
    let mut format = probed.format;
    let track = format
        .default_track()
        .ok_or_else(|| CalibrateError::Decode("no audio track".into()))?
        .clone();
    let rate = track
        .codec_params
        .sample_rate
        .ok_or_else(|| CalibrateError::Decode("no sample rate".into()))?;
    let mut dec = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(err)?;
    let mut mono = vec![];
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymErr::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(err(e)),
        };
        if packet.track_id() != track.id {
            continue;
        }
        let decoded = dec.decode(&packet).map_err(err)?;
        let spec = *decoded.spec();
        let ch = spec.channels.count().max(1);
        let mut buf = SampleBuffer::<f32>::new(decoded.capacity() as u64, spec);
        buf.copy_interleaved_ref(decoded);
        mono.extend(buf.samples().chunks(ch).map(|f| f.iter().sum::<f32>() / ch as f32));
    }
    Ok((mono, rate))
}

/// The sequence a recording holds.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceLayout {
    /// The speakers in the order they played, between the two reference bursts.
    pub speakers: Vec<String>,
    /// The name of the speaker that played the reference bursts.
    pub reference: String,
    /// From one burst to the next, on our clock, ns.
    pub spacing_ns: i64,
}

/// One speaker's offset from a recording.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RelativeOffset {
    /// The output.
    pub speaker: String,
    /// How much later than the reference speaker it is heard, ms (positive: later).
    pub offset_ms: f64,
    /// Peak-to-noise ratio of its burst, dB.
    pub pnr_db: f64,
}

/// What a recording says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordingAnalysis {
    /// The recorder's clock over ours (1.0001: it runs 100 ppm fast), from the two reference bursts.
    pub clock_ratio: f64,
    /// The same as ppm.
    pub clock_error_ppm: f64,
    /// Each speaker's offset from the reference, in the layout's order.
    pub speakers: Vec<RelativeOffset>,
}

/// Whether the analysis measures the recorder's clock (always, in use; `AssumeNominal` is the negative control
/// that shows what the measurement is worth).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecorderClock {
    /// Measure the ratio from the two reference bursts.
    Measure,
    /// Take the recorder's rate at its word.
    AssumeNominal,
}

/// One pass over a recording at the measurement rate: (clock ratio, offsets).
fn locate(
    x: &[f32],
    layout: &SequenceLayout,
    burst: &[f32],
    spacing: f64,
    clock: RecorderClock,
) -> Result<(f64, Vec<RelativeOffset>), CalibrateError> {
    let n = layout.speakers.len();
    let total = (n + 1) as f64 * spacing;
    let corr = cross_correlate(x, burst);
    // The first reference burst: the direct sound of the first event in the whole recording (the recorder
    // started before the sequence).
    let search_end = x.len().saturating_sub(total as usize);
    let first = first_arrival(&corr, 0..search_end.max(3)).ok_or_else(|| CalibrateError::SpeakerSilent {
        speaker: layout.reference.clone(),
        pnr_db: 0.0,
        heard_db: super::measure::HEARD_PNR_DB,
    })?;
    // Each event in its own window around where the layout puts it, narrow enough that no neighbouring burst
    // overlaps the template anywhere in it (their partial-overlap sidelobes would pass for a silent speaker's
    // arrival): half of what the spacing leaves beside one burst, at most half a spacing.
    let half = (((spacing - burst.len() as f64) / 2.0)
        .min(spacing / 2.0)
        .max(RATE_HZ as f64 * 0.1)) as usize;
    let find = |name: &str, at: f64| -> Result<(f64, f64), CalibrateError> {
        let c = at.round().max(0.0) as usize;
        let a =
            first_arrival(&corr, c.saturating_sub(half)..c + half).ok_or_else(|| CalibrateError::SpeakerSilent {
                speaker: name.into(),
                pnr_db: 0.0,
                heard_db: super::measure::HEARD_PNR_DB,
            })?;
        check_pnr(name, a.pnr_db)?;
        Ok((a.position_samples, a.pnr_db))
    };
    let (t_ref, _) = find(&layout.reference, first.position_samples)?;
    let (t_end, _) = find(&layout.reference, t_ref + total)?;
    let clock_ratio = match clock {
        RecorderClock::Measure => (t_end - t_ref) / total,
        RecorderClock::AssumeNominal => 1.0,
    };
    let mut speakers = Vec::with_capacity(n);
    for (k, name) in layout.speakers.iter().enumerate() {
        let nominal = (k + 1) as f64 * spacing;
        let (t, pnr_db) = find(name, t_ref + nominal * clock_ratio)?;
        let offset = (t - t_ref) / clock_ratio - nominal;
        speakers.push(RelativeOffset {
            speaker: name.clone(),
            offset_ms: offset * 1e3 / RATE_HZ as f64,
            pnr_db,
        });
    }
    Ok((clock_ratio, speakers))
}

/// Analyses a decoded recording (`samples` at `rate_hz`) of the sequence in `layout` (see the module doc).
pub fn analyse(
    samples: &[f32],
    rate_hz: u32,
    layout: &SequenceLayout,
    burst: &[f32],
    clock: RecorderClock,
) -> Result<RecordingAnalysis, CalibrateError> {
    let x = if rate_hz == RATE_HZ {
        samples.to_vec()
    } else {
        resample(samples, RATE_HZ as f64 / rate_hz as f64)
    };
    let n = layout.speakers.len();
    let spacing = layout.spacing_ns as f64 * RATE_HZ as f64 / 1e9;
    let total = (n + 1) as f64 * spacing;
    let needed = total as usize + burst.len();
    if x.len() < needed {
        return Err(CalibrateError::RecordingTooShort {
            seconds: x.len() as f64 / RATE_HZ as f64,
            needed_s: needed as f64 / RATE_HZ as f64,
            speakers: n,
        });
    }
    let first = locate(&x, layout, burst, spacing, clock)?;
    // A recorder clock off by ε smears each 2.7 s burst over ε · 131 071 samples (13 at 100 ppm), lowering and
    // widening its correlation peak: once the ratio is known, undo it and measure again on the corrected
    // recording (its residual ratio is then ~1).
    let (clock_ratio, speakers) = if clock == RecorderClock::Measure && (first.0 - 1.0).abs() > 1e-6 {
        let y = resample(&x, 1.0 / first.0);
        let second = locate(&y, layout, burst, spacing, clock)?;
        (first.0 * second.0, second.1)
    } else {
        first
    };
    Ok(RecordingAnalysis {
        clock_ratio,
        clock_error_ppm: (clock_ratio - 1.0) * 1e6,
        speakers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::signal::burst;
    use crate::calibrate::sim_room::{SimRoom, SimSpeaker};

    const SPACING_NS: i64 = 4_000_000_000;

    fn room() -> SimRoom {
        let speakers = vec![
            SimSpeaker::new("kitchen", 150.0, 150.0 + 37.5, 2.0, 1),
            SimSpeaker::new("hall", 230.0, 230.0 - 52.25, 3.5, 2),
            SimSpeaker::new("porch", 40.0, 40.0 + 8.1, 1.2, 3),
            SimSpeaker::new("den", 10.0, 10.0 - 21.7, 4.0, 4),
        ];
        let mut r = SimRoom::new(speakers, 77);
        // A phone in a living room: −40 dBFS of noise, and links that wobble by ±50 µs from play to play.
        r.noise_rms = 0.01;
        r.speakers.iter_mut().for_each(|s| s.jitter_ms = 0.05);
        r
    }

    fn layout(r: &SimRoom) -> SequenceLayout {
        SequenceLayout {
            speakers: r.speakers.iter().map(|s| s.name.clone()).collect(),
            reference: r.speakers[0].name.clone(),
            spacing_ns: SPACING_NS,
        }
    }

    /// Worst |measured − true| over the speakers, ms, of each speaker's offset from the reference speaker.
    fn worst_relative_error_ms(r: &SimRoom, a: &RecordingAnalysis) -> f64 {
        let truth = |i: usize| r.speakers[i].late_at_listener_ms(0.0);
        a.speakers
            .iter()
            .enumerate()
            .map(|(i, s)| (s.offset_ms - (truth(i) - truth(0))).abs())
            .fold(0.0, f64::max)
    }

    fn recording(ppm: f64) -> (SimRoom, Vec<f32>) {
        let b = burst(1);
        let mut r = room();
        let rec = r.record_sequence(0, &[0, 1, 2, 3], &[0.0; 4], &b, SPACING_NS, 1_700.0, ppm, 44_100);
        (r, rec)
    }

    #[test]
    fn a_100_ppm_recorder_at_44_1_khz_gives_every_relative_offset_within_half_a_millisecond() {
        let b = burst(1);
        let (r, rec) = recording(100.0);
        let a = analyse(&rec, 44_100, &layout(&r), &b, RecorderClock::Measure).unwrap();
        // Against the offsets without jitter: the jitter (±0.05 ms per burst) is part of the error allowed.
        let worst = worst_relative_error_ms(&r, &a);
        eprintln!(
            "from-recording: clock {:.1} ppm, worst relative error {worst:.5} ms: {a:?}",
            a.clock_error_ppm
        );
        assert!((a.clock_error_ppm - 100.0).abs() < 5.0, "{a:?}");
        assert!(worst <= 0.5, "{worst} ms: {a:?}");
    }

    #[test]
    fn without_the_clock_ratio_the_100_ppm_recorder_is_off_by_more_than_a_millisecond() {
        let b = burst(1);
        let (r, rec) = recording(100.0);
        let a = analyse(&rec, 44_100, &layout(&r), &b, RecorderClock::AssumeNominal).unwrap();
        let worst = worst_relative_error_ms(&r, &a);
        eprintln!("negative control (nominal clock): worst relative error {worst:.4} ms");
        assert!(worst > 1.0, "{worst} ms: {a:?}");
    }

    #[test]
    fn a_silent_speaker_in_the_sequence_is_refused_by_name() {
        let b = burst(1);
        let mut r = room();
        r.speakers[2].plays = false;
        let rec = r.record_sequence(0, &[0, 1, 2, 3], &[0.0; 4], &b, SPACING_NS, 1_000.0, 0.0, 48_000);
        let e = analyse(&rec, 48_000, &layout(&r), &b, RecorderClock::Measure).unwrap_err();
        assert!(
            matches!(&e, CalibrateError::SpeakerSilent { speaker, .. } if speaker == "porch"),
            "{e}"
        );
    }

    #[test]
    fn wav_and_flac_decode_and_a_short_recording_is_refused() {
        // WAV written with hound (16-bit stereo), read back through symphonia as mono.
        let mut cur = std::io::Cursor::new(Vec::new());
        {
            let spec = hound::WavSpec {
                channels: 2,
                sample_rate: 44_100,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut w = hound::WavWriter::new(&mut cur, spec).unwrap();
            for i in 0..1000 {
                w.write_sample(((i % 100) * 100) as i16).unwrap();
                w.write_sample(((i % 100) * 100) as i16).unwrap();
            }
            w.finalize().unwrap();
        }
        let (x, rate) = decode(cur.into_inner(), Some("wav")).unwrap();
        assert_eq!(rate, 44_100);
        assert_eq!(x.len(), 1000);
        assert!((x[50] - 5000.0 / 32768.0).abs() < 1e-4);
        assert!(matches!(
            decode(b"not audio at all".to_vec(), None),
            Err(CalibrateError::Decode(_))
        ));
        let b = burst(1);
        let r = room();
        let e = analyse(&x, rate, &layout(&r), &b, RecorderClock::Measure).unwrap_err();
        assert!(
            matches!(e, CalibrateError::RecordingTooShort { speakers: 4, .. }),
            "{e}"
        );
    }
}
