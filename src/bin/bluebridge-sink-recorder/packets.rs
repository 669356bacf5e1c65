//! The sink recorder's pure parts: parsing what arrives on an A2DP transport (RTP header + the SBC media payload
//! header), counting sequence gaps, timing decoded positions from packet arrivals, and the Delay schedule. No
//! sockets and no D-Bus, so all of it is unit-tested here.

use crate::sbc_frame::FrameHeader;
use std::collections::VecDeque;
use std::time::Duration;

/// Length of the fixed RTP header.
pub const RTP_FIXED_LEN: usize = 12;
/// The default half window over which a position's stream time is taken: 1 s.
pub const STREAM_WINDOW: Duration = Duration::from_secs(1);

/// One A2DP media packet, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPacket<'a> {
    /// RTP sequence number.
    pub seq: u16,
    /// RTP timestamp (PCM frames at the codec rate).
    pub timestamp: u32,
    /// RTP payload type (96 from BlueZ's peers and bluebridge).
    pub payload_type: u8,
    /// SBC frames in the payload (the media payload header's low 4 bits).
    pub frames: u8,
    /// The SBC frames, after the 1-byte media payload header.
    pub sbc: &'a [u8],
}

/// Why a packet could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than the headers it declares.
    #[error("packet of {len} bytes is shorter than its headers ({need} bytes)")]
    Short {
        /// Bytes received.
        len: usize,
        /// Bytes the headers need.
        need: usize,
    },
    /// Not RTP version 2.
    #[error("RTP version {0}, want 2")]
    Version(u8),
    /// The RTP padding count is impossible.
    #[error("RTP padding of {0} bytes does not fit the packet")]
    Padding(u8),
    /// A fragmented SBC frame (only used when one frame exceeds the MTU; bluebridge never sends it).
    #[error("fragmented SBC payload (media payload header 0x{0:02x}) is not supported")]
    Fragmented(u8),
    /// The media payload header counts no frames.
    #[error("the SBC media payload header counts no frames")]
    NoFrames,
}

/// Parses an A2DP SBC media packet: the RTP header (12 bytes, CSRCs, an optional extension, optional padding),
/// then the 1-byte SBC media payload header (F S L RFA, frame count in the low 4 bits), then SBC frames.
pub fn parse(pkt: &[u8]) -> Result<MediaPacket<'_>, PacketError> {
    let short = |need: usize| PacketError::Short { len: pkt.len(), need };
    if pkt.len() < RTP_FIXED_LEN {
        return Err(short(RTP_FIXED_LEN));
    }
    let version = pkt[0] >> 6;
    if version != 2 {
        return Err(PacketError::Version(version));
    }
    let padding = pkt[0] & 0x20 != 0;
    let extension = pkt[0] & 0x10 != 0;
    let csrc_count = (pkt[0] & 0x0f) as usize;
    let mut header = RTP_FIXED_LEN + 4 * csrc_count;
    if extension {
        if pkt.len() < header + 4 {
            return Err(short(header + 4));
        }
        let words = u16::from_be_bytes([pkt[header + 2], pkt[header + 3]]) as usize;
        header += 4 + 4 * words;
    }
    let mut end = pkt.len();
    if padding {
        let pad = pkt[pkt.len() - 1];
        if pad == 0 || pad as usize > pkt.len().saturating_sub(header) {
            return Err(PacketError::Padding(pad));
        }
        end -= pad as usize;
    }
    if end < header + 1 {
        return Err(short(header + 1));
    }
    let media_header = pkt[header];
    if media_header & 0x80 != 0 {
        return Err(PacketError::Fragmented(media_header));
    }
    let frames = media_header & 0x0f;
    if frames == 0 {
        return Err(PacketError::NoFrames);
    }
    Ok(MediaPacket {
        seq: u16::from_be_bytes([pkt[2], pkt[3]]),
        timestamp: u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]),
        payload_type: pkt[1] & 0x7f,
        frames,
        sbc: &pkt[header + 1..end],
    })
}

/// Splits an SBC media payload into its `count` frames, each with its header; None if the frames do not parse or
/// the payload ends early.
pub fn split_frames(sbc: &[u8], count: usize) -> Option<Vec<(FrameHeader, &[u8])>> {
    let mut off = 0;
    let mut frames = Vec::with_capacity(count);
    for _ in 0..count {
        let h = FrameHeader::parse(sbc.get(off..)?)?;
        frames.push((h, sbc.get(off..off + h.len)?));
        off += h.len;
    }
    Some(frames)
}

/// Counts RTP sequence gaps: packets that never arrived (or arrived out of order).
#[derive(Debug, Default, Clone)]
pub struct SeqTracker {
    last: Option<u16>,
    /// Places where the sequence jumped forward.
    pub gaps: u64,
    /// Packets skipped by those jumps.
    pub lost: u64,
    /// Packets that came again or too late (sequence went backwards); they are dropped.
    pub late: u64,
}

impl SeqTracker {
    /// Accounts for `seq`; returns how many packets are missing right before it, or None for a duplicate or a
    /// packet older than the last one (drop it).
    pub fn push(&mut self, seq: u16) -> Option<u16> {
        let Some(last) = self.last else {
            self.last = Some(seq);
            return Some(0);
        };
        let step = seq.wrapping_sub(last);
        if step == 0 || step >= 0x8000 {
            self.late += 1;
            return None;
        }
        self.last = Some(seq);
        if step > 1 {
            self.gaps += 1;
            self.lost += (step - 1) as u64;
        }
        Some(step - 1)
    }

    /// Forgets the last sequence number (a new stream starts its own numbering).
    pub fn restart(&mut self) {
        self.last = None;
    }
}

/// One received packet, placed on the decoded timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketArrival {
    /// Packets received before it (all transports of the run).
    pub index: u64,
    /// Its RTP sequence number.
    pub seq: u16,
    /// Index of its first decoded frame on the recorder's timeline.
    pub first_frame: u64,
    /// Decoded frames it carried.
    pub frames: u32,
    /// When it arrived, CLOCK_MONOTONIC ns.
    pub arrival_ns: i64,
    /// The arrival is the kernel's receive stamp (else the recorder's own, taken after `recvmsg`).
    pub kernel_stamp: bool,
    /// From the arrival to the recorder's own stamp, ns (how late the recorder read it).
    pub wake_ns: i64,
}

/// Recent packets, to time positions found in the decoded stream.
///
/// A sink that plays each packet as it arrives renders decoded frame `p` of a packet that arrived at `A` with
/// first frame `F` at `A + (p − F) / rate`: that is the *arrival time* of position `p`. The recorder reports it
/// for every click; a real speaker would render it its reported Delay later.
#[derive(Debug, Clone)]
pub struct Arrivals {
    rate_hz: u32,
    /// Half the stream-time window, frames.
    window_frames: u64,
    recent: VecDeque<PacketArrival>,
}

impl Arrivals {
    /// Nothing received yet, audio at `rate_hz`; stream times over ± `window` ([`STREAM_WINDOW`] by default).
    pub fn new(rate_hz: u32, window: Duration) -> Self {
        Self {
            rate_hz,
            window_frames: (window.as_secs_f64() * rate_hz as f64).round() as u64,
            recent: VecDeque::new(),
        }
    }

    /// Half the stream-time window, frames: a position's stream time is final once packets this far after it
    /// have arrived.
    pub fn window_frames(&self) -> u64 {
        self.window_frames
    }

    /// Remembers a packet (in arrival order); forgets those older than two stream windows of audio (a click is
    /// found a few frames after its peak, and its stream time needs a window either side of it).
    pub fn push(&mut self, p: PacketArrival) {
        let keep = 2 * self.window_frames + self.rate_hz as u64;
        while self
            .recent
            .front()
            .is_some_and(|f| p.first_frame.saturating_sub(f.first_frame) > keep)
        {
            self.recent.pop_front();
        }
        self.recent.push_back(p);
    }

    /// The first decoded frame of the newest packet.
    pub fn newest_frame(&self) -> Option<u64> {
        self.recent.back().map(|p| p.first_frame)
    }

    /// The **stream time** of position `pos`: when it would arrive if no packet near it had waited on the way,
    /// i.e. the lower envelope of `arrival − first_frame / rate` over the packets within the window of it, plus
    /// `pos / rate`. Waiting in a queue only ever makes a packet later, so
    /// the earliest packets show the schedule the source sent on; a speaker with a buffer plays on that schedule
    /// and absorbs the waits. None if no packet of the window is remembered.
    pub fn stream_time_of(&self, pos: f64) -> Option<i64> {
        let lo = pos - self.window_frames as f64;
        let hi = pos + self.window_frames as f64;
        self.recent
            .iter()
            .filter(|p| (p.first_frame as f64) >= lo && (p.first_frame as f64) <= hi)
            .map(|p| p.arrival_ns - frames_to_ns(p.first_frame as f64, self.rate_hz))
            .min()
            .map(|offset| offset + frames_to_ns(pos, self.rate_hz))
    }

    /// The packet that carried decoded position `pos` (fractional frames), and the position's arrival time in
    /// ns. None if that packet is no longer remembered (or never existed: a lost packet's silence).
    pub fn time_of(&self, pos: f64) -> Option<(PacketArrival, i64)> {
        let frame = pos.floor();
        if frame < 0.0 {
            return None;
        }
        let frame = frame as u64;
        let p = *self
            .recent
            .iter()
            .rev()
            .find(|p| p.first_frame <= frame && frame < p.first_frame + p.frames as u64)?;
        Some((p, p.arrival_ns + frames_to_ns(pos - p.first_frame as f64, self.rate_hz)))
    }
}

/// `frames` at `rate_hz` in ns, rounded.
pub fn frames_to_ns(frames: f64, rate_hz: u32) -> i64 {
    (frames * 1e9 / rate_hz as f64).round() as i64
}

/// Two realtime reads around a monotonic one further apart than this: the thread was preempted in between, so the
/// reading says nothing about the clocks' offset.
pub const MAX_READ_GAP_NS: i64 = 100_000;

/// CLOCK_REALTIME − CLOCK_MONOTONIC, to move kernel receive stamps (`SO_TIMESTAMPNS`, CLOCK_REALTIME) to
/// CLOCK_MONOTONIC. It only changes when the wall clock is set (no NTP runs in the rig's guest), so readings
/// interrupted by preemption (under the rig's emulated CPU a thread can lose tens of ms between two clock reads)
/// are dropped and the last good offset is kept.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClockOffset {
    offset_ns: Option<i64>,
}

impl ClockOffset {
    /// Takes a reading: realtime, then monotonic, then realtime again, read back to back. Returns the offset in
    /// force (None until one good reading).
    pub fn update(&mut self, real_before_ns: i64, mono_ns: i64, real_after_ns: i64) -> Option<i64> {
        if (0..=MAX_READ_GAP_NS).contains(&(real_after_ns - real_before_ns)) {
            self.offset_ns = Some(real_before_ns + (real_after_ns - real_before_ns) / 2 - mono_ns);
        }
        self.offset_ns
    }

    /// A CLOCK_REALTIME stamp on CLOCK_MONOTONIC (None until one good reading).
    pub fn to_monotonic(self, stamp_real_ns: i64) -> Option<i64> {
        self.offset_ns.map(|o| stamp_real_ns - o)
    }
}

/// The largest Delay AVDTP can carry: 65535 × 1/10 ms.
pub const MAX_DELAY_MS: f64 = 6553.5;

/// A Delay in ms as BlueZ's unit, 1/10 ms (rounded); None outside 0..=[`MAX_DELAY_MS`].
pub fn delay_dms(ms: f64) -> Option<u16> {
    (0.0..=MAX_DELAY_MS).contains(&ms).then(|| (ms * 10.0).round() as u16)
}

/// A scheduled change of the reported Delay: `after` the first audio, report `delay_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DelayChange {
    /// From the first audio packet.
    pub after: Duration,
    /// The new Delay, ms.
    pub delay_ms: f64,
}

impl std::str::FromStr for DelayChange {
    type Err = String;

    /// `SECS:MS`, e.g. `12:250` = 12 s after the first audio, report 250 ms.
    fn from_str(s: &str) -> Result<Self, String> {
        let (secs, ms) = s
            .split_once(':')
            .ok_or_else(|| format!("\"{s}\": want SECONDS:MILLISECONDS, e.g. 12:250"))?;
        let secs: f64 = secs
            .trim()
            .parse()
            .map_err(|_| format!("\"{s}\": \"{secs}\" is not a number of seconds"))?;
        let delay_ms: f64 = ms
            .trim()
            .parse()
            .map_err(|_| format!("\"{s}\": \"{ms}\" is not a number of milliseconds"))?;
        if !(0.0..=86_400.0).contains(&secs) {
            return Err(format!("\"{s}\": seconds must be 0 to 86400"));
        }
        if delay_dms(delay_ms).is_none() {
            return Err(format!("\"{s}\": the Delay must be 0 to {MAX_DELAY_MS} ms"));
        }
        Ok(Self {
            after: Duration::from_secs_f64(secs),
            delay_ms,
        })
    }
}

/// The Delay in force over time: each step is (since, ms), in time order.
#[derive(Debug, Clone, Default)]
pub struct DelayHistory {
    steps: Vec<(i64, f64)>,
}

impl DelayHistory {
    /// From `since_ns` on, the Delay in force is `ms`.
    pub fn set(&mut self, since_ns: i64, ms: f64) {
        self.steps.push((since_ns, ms));
    }

    /// The Delay in force at `t_ns`, ms (None before the first one).
    pub fn at(&self, t_ns: i64) -> Option<f64> {
        self.steps.iter().rev().find(|(since, _)| *since <= t_ns).map(|s| s.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bluebridge::a2dp::rtp::RtpPacketizer;

    #[test]
    fn parses_what_the_packetizer_builds() {
        let mut p = RtpPacketizer::new(0xfffe, 1000, 1);
        let mut out = vec![];
        p.packet(&[0x9c; 230], 2, 128, &mut out);
        let m = parse(&out).unwrap();
        assert_eq!((m.seq, m.timestamp, m.payload_type, m.frames), (0xfffe, 1000, 96, 2));
        assert_eq!(m.sbc.len(), 230);
        p.packet(&[0x9c; 115], 1, 128, &mut out);
        let m = parse(&out).unwrap();
        assert_eq!((m.seq, m.timestamp, m.frames), (0xffff, 1256, 1));
    }

    #[test]
    fn skips_csrcs_extension_and_padding() {
        // V=2 P=1 X=1 CC=2; 2 CSRCs; extension of 1 word; media header 3 frames; 4 payload bytes; 3 pad bytes.
        let mut pkt = vec![0xb2, 96, 0, 7, 0, 0, 0, 9, 0, 0, 0, 1];
        pkt.extend_from_slice(&[1, 1, 1, 1, 2, 2, 2, 2]);
        pkt.extend_from_slice(&[0xbe, 0xde, 0, 1, 5, 5, 5, 5]);
        pkt.push(3);
        pkt.extend_from_slice(&[0x9c, 1, 2, 3]);
        pkt.extend_from_slice(&[0, 0, 3]);
        let m = parse(&pkt).unwrap();
        assert_eq!((m.seq, m.timestamp, m.frames), (7, 9, 3));
        assert_eq!(m.sbc, &[0x9c, 1, 2, 3]);
    }

    #[test]
    fn refuses_what_is_not_an_sbc_media_packet() {
        assert_eq!(parse(&[0x80; 5]), Err(PacketError::Short { len: 5, need: 12 }));
        assert_eq!(parse(&[0x40; 20]), Err(PacketError::Version(1)));
        let mut pkt = vec![0x80, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(parse(&pkt), Err(PacketError::Short { len: 12, need: 13 }));
        pkt.push(0x00);
        assert_eq!(parse(&pkt), Err(PacketError::NoFrames));
        pkt[12] = 0xc1;
        assert_eq!(parse(&pkt), Err(PacketError::Fragmented(0xc1)));
        let mut padded = vec![0xa0, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x9c, 40];
        assert_eq!(parse(&padded), Err(PacketError::Padding(40)));
        padded[14] = 0;
        assert_eq!(parse(&padded), Err(PacketError::Padding(0)));
        // One CSRC declared but absent.
        assert_eq!(
            parse(&[0x81, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            Err(PacketError::Short { len: 13, need: 17 })
        );
    }

    #[test]
    fn splits_a_payload_into_frames() {
        let mut enc = bluebridge::codec::sbc::Sbc::new_a2dp(&[0x11, 0x15, 2, 51]).unwrap();
        let mut payload = vec![];
        for _ in 0..3 {
            enc.encode_frame(&[0u8; 512], &mut payload).unwrap();
        }
        let frames = split_frames(&payload, 3).unwrap();
        assert_eq!(frames.len(), 3);
        assert!(frames
            .iter()
            .all(|(h, f)| h.len == 115 && f.len() == 115 && f[0] == 0x9c));
        assert!(split_frames(&payload, 4).is_none(), "one frame more than there is");
        assert!(split_frames(&payload[..200], 2).is_none(), "cut short");
        assert!(split_frames(&[0u8; 115], 1).is_none(), "no syncword");
    }

    #[test]
    fn counts_sequence_gaps_across_the_wrap() {
        let mut t = SeqTracker::default();
        assert_eq!(t.push(65_534), Some(0));
        assert_eq!(t.push(65_535), Some(0));
        assert_eq!(t.push(2), Some(2)); // 0 and 1 missing
        assert_eq!(t.push(2), None); // duplicate
        assert_eq!(t.push(1), None); // too late
        assert_eq!(t.push(3), Some(0));
        assert_eq!((t.gaps, t.lost, t.late), (1, 2, 2));
        t.restart();
        assert_eq!(t.push(100), Some(0));
        assert_eq!(t.gaps, 1);
    }

    #[test]
    fn a_click_is_timed_from_the_packet_that_carried_it() {
        let mut a = Arrivals::new(48_000, STREAM_WINDOW);
        // Packets of 896 frames (7 SBC frames of 128) arriving 18.67 ms apart, the second one 2 ms late.
        a.push(PacketArrival {
            index: 0,
            seq: 10,
            first_frame: 0,
            frames: 896,
            arrival_ns: 1_000_000_000,
            kernel_stamp: true,
            wake_ns: 0,
        });
        a.push(PacketArrival {
            index: 1,
            seq: 11,
            first_frame: 896,
            frames: 896,
            arrival_ns: 1_020_666_667,
            kernel_stamp: true,
            wake_ns: 0,
        });
        let (p, t) = a.time_of(100.5).unwrap();
        assert_eq!(p.seq, 10);
        assert_eq!(t, 1_000_000_000 + 2_093_750); // 100.5 / 48000 s
        let (p, t) = a.time_of(896.0 + 48.0).unwrap();
        assert_eq!(p.seq, 11);
        assert_eq!(t, 1_020_666_667 + 1_000_000); // 48 frames = 1 ms after that packet arrived
        assert!(a.time_of(2000.0).is_none(), "not received yet");
        assert!(a.time_of(-1.0).is_none());
    }

    #[test]
    fn arrivals_forget_old_packets() {
        // Kept: two half-second windows + 1 s = 2 s of audio.
        let mut a = Arrivals::new(48_000, Duration::from_millis(500));
        assert_eq!(a.window_frames(), 24_000);
        for i in 0..100u64 {
            a.push(PacketArrival {
                index: i,
                seq: i as u16,
                first_frame: i * 1024,
                frames: 1024,
                arrival_ns: i as i64,
                kernel_stamp: false,
                wake_ns: 0,
            });
        }
        assert!(a.time_of(10.0).is_none(), "older than 2 s of audio");
        assert_eq!(a.time_of(99.0 * 1024.0).unwrap().0.index, 99);
        assert_eq!(a.time_of(6_500.0 + 1024.0 * 6.0).unwrap().0.index, 12, "2 s back: kept");
        assert_eq!(a.newest_frame(), Some(99 * 1024));
    }

    #[test]
    fn stream_time_is_the_lower_envelope_of_nearby_packets() {
        // 1024-frame packets sent on schedule (frame n at 1 s + n/48000), arriving 2 ms later, except that
        // packets 10..=14 waited 80 ms more in a queue and packets from 60 on belong to a schedule 100 ms later
        // (a resync).
        let packet = |i: u64| {
            let sched = 1_000_000_000 + frames_to_ns((i * 1024) as f64, 48_000) + 2_000_000;
            let wait = if (10..=14).contains(&i) { 80_000_000 } else { 0 };
            let resync = if i >= 60 { 100_000_000 } else { 0 };
            PacketArrival {
                index: i,
                seq: i as u16,
                first_frame: i * 1024,
                frames: 1024,
                arrival_ns: sched + wait + resync,
                kernel_stamp: true,
                wake_ns: 0,
            }
        };
        let on_schedule = |pos: f64| 1_000_000_000 + frames_to_ns(pos, 48_000) + 2_000_000;
        let mut a = Arrivals::new(48_000, Duration::from_millis(500));
        (0..40).for_each(|i| a.push(packet(i)));
        let pos = 12.0 * 1024.0 + 100.0; // in a packet that waited
        assert_eq!(a.time_of(pos).unwrap().1, on_schedule(pos) + 80_000_000);
        assert_eq!(a.stream_time_of(pos), Some(on_schedule(pos)));
        (40..120).for_each(|i| a.push(packet(i)));
        // Far from the resync, each side has its own schedule; within the window of it the earlier one wins.
        let late = 100.0 * 1024.0;
        assert_eq!(a.stream_time_of(late), Some(on_schedule(late) + 100_000_000));
        let near = 62.0 * 1024.0;
        assert_eq!(a.stream_time_of(near), Some(on_schedule(near)));
        assert_eq!(a.stream_time_of(1e9), None);
    }

    #[test]
    fn kernel_stamps_move_to_the_monotonic_clock() {
        // Realtime runs 1000 s ahead of monotonic; the packet was stamped 300 µs before the clocks were read.
        let mut c = ClockOffset::default();
        assert_eq!(c.to_monotonic(1), None);
        // A reading interrupted for 26 ms between the clock reads is no reading.
        assert_eq!(c.update(1_005_000_000_000, 5_000_000_000, 1_005_026_000_000), None);
        assert_eq!(
            c.update(1_005_000_000_000, 5_000_000_010, 1_005_000_000_020),
            Some(1_000_000_000_000)
        );
        assert_eq!(
            c.to_monotonic(1_005_000_000_000 - 300_000),
            Some(5_000_000_000 - 300_000)
        );
        // The next interrupted reading keeps the good offset.
        assert_eq!(
            c.update(1_006_000_000_000, 6_000_000_000, 1_006_030_000_000),
            Some(1_000_000_000_000)
        );
    }

    #[test]
    fn delay_changes_parse_and_units_are_tenths_of_ms() {
        let c: DelayChange = "12:250".parse().unwrap();
        assert_eq!(c.after, Duration::from_secs(12));
        assert_eq!(c.delay_ms, 250.0);
        let c: DelayChange = "0.5:12.3".parse().unwrap();
        assert_eq!((c.after, c.delay_ms), (Duration::from_millis(500), 12.3));
        for bad in ["12", "x:250", "12:y", "-1:250", "12:-5", "12:7000"] {
            assert!(bad.parse::<DelayChange>().is_err(), "{bad}");
        }
        assert_eq!(delay_dms(150.0), Some(1500));
        assert_eq!(delay_dms(12.34), Some(123));
        assert_eq!(delay_dms(6553.5), Some(65535));
        assert_eq!(delay_dms(6553.6), None);
    }

    #[test]
    fn the_delay_in_force_follows_its_history() {
        let mut h = DelayHistory::default();
        assert_eq!(h.at(0), None);
        h.set(100, 150.0);
        h.set(200, 250.0);
        assert_eq!(h.at(99), None);
        assert_eq!(h.at(100), Some(150.0));
        assert_eq!(h.at(199), Some(150.0));
        assert_eq!(h.at(1_000), Some(250.0));
    }
}
