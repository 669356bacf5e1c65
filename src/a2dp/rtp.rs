//! RTP packetisation of SBC for A2DP: a 12-byte RTP header, a 1-byte SBC payload header, then whole SBC frames.

/// RTP header length.
pub const RTP_HEADER_LEN: usize = 12;
/// SBC media payload header length.
pub const SBC_HEADER_LEN: usize = 1;
/// The SBC payload header counts frames in 4 bits.
pub const MAX_FRAMES_PER_PACKET: usize = 15;
/// Dynamic payload type used by BlueZ's peers (bluez-alsa, PipeWire).
pub const PAYLOAD_TYPE: u8 = 96;

/// How many SBC frames of `frame_len` bytes fit one packet of at most `mtu` bytes (0 if none fits).
pub fn frames_per_packet(mtu: usize, frame_len: usize) -> usize {
    if frame_len == 0 {
        return 0;
    }
    (mtu.saturating_sub(RTP_HEADER_LEN + SBC_HEADER_LEN) / frame_len).min(MAX_FRAMES_PER_PACKET)
}

/// RTP state of one stream: sequence number and timestamp (in PCM frames at the codec rate).
#[derive(Debug, Clone)]
pub struct RtpPacketizer {
    seq: u16,
    timestamp: u32,
    ssrc: u32,
}

impl RtpPacketizer {
    /// A stream starting at `seq` and `timestamp` (random starts are customary).
    pub fn new(seq: u16, timestamp: u32, ssrc: u32) -> Self {
        Self { seq, timestamp, ssrc }
    }

    /// Builds one packet around `frames` (concatenated SBC frames, `n_frames` of them, each `pcm_frames_per_frame`
    /// PCM frames long) into `out` (cleared first); advances the sequence number and timestamp.
    pub fn packet(&mut self, frames: &[u8], n_frames: usize, pcm_frames_per_frame: usize, out: &mut Vec<u8>) {
        debug_assert!((1..=MAX_FRAMES_PER_PACKET).contains(&n_frames));
        out.clear();
        out.push(0x80); // V=2, P=0, X=0, CC=0
        out.push(PAYLOAD_TYPE & 0x7f); // M=0
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.push(n_frames as u8 & 0x0f); // not fragmented
        out.extend_from_slice(frames);
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add((n_frames * pcm_frames_per_frame) as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_per_packet_follows_the_mtu() {
        assert_eq!(frames_per_packet(895, 115), 7);
        assert_eq!(frames_per_packet(672, 115), 5);
        assert_eq!(frames_per_packet(3000, 115), 15);
        assert_eq!(frames_per_packet(100, 115), 0);
        assert_eq!(frames_per_packet(128, 115), 1);
    }

    #[test]
    fn packets_carry_header_count_and_advance_seq_and_timestamp() {
        let mut p = RtpPacketizer::new(0xfffe, 1000, 1);
        let mut out = vec![];
        p.packet(&[0xaa; 230], 2, 128, &mut out);
        assert_eq!(&out[..13], &[0x80, 96, 0xff, 0xfe, 0, 0, 0x03, 0xe8, 0, 0, 0, 1, 2]);
        assert_eq!(out.len(), 13 + 230);
        p.packet(&[0xaa; 115], 1, 128, &mut out);
        assert_eq!(&out[2..8], &[0xff, 0xff, 0, 0, 0x04, 0xe8]);
        p.packet(&[0xaa; 115], 1, 128, &mut out);
        assert_eq!(&out[2..4], &[0, 0]); // sequence wraps
    }
}
