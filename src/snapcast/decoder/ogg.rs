//! `ogg`: Vorbis in Ogg. The header is the Ogg pages holding the three Vorbis header packets; each chunk is one or
//! more whole Ogg pages of audio packets.
//!
//! The Ogg layer is parsed here ([`OggPackets`], a small page parser with CRC check and bounded packet
//! reassembly) and the Vorbis packets go to lewton's packet-level API, so no reader state is ever left waiting
//! for bytes that have not arrived. A packet may continue from one page (and chunk) into the next.

use super::{chunk_limit_frames, DecodeError, Decoder};
use crate::snapcast::proto::MAX_PAYLOAD_SIZE;
use crate::timeline::AudioFormat;
use lewton::audio::{read_audio_packet_generic, PreviousWindowRight};
use lewton::header::{read_header_comment, read_header_ident, read_header_setup, IdentHeader, SetupHeader};
use lewton::samples::InterleavedSamples;

const CODEC: &str = "ogg";
/// Bytes in a page header before the segment table.
const PAGE_HEADER_LEN: usize = 27;
/// Largest packet we reassemble, in bytes (a chunk is at most this big anyway).
const MAX_PACKET_LEN: usize = MAX_PAYLOAD_SIZE as usize;

/// CRC-32 of Ogg pages: polynomial 0x04c11db7, not reflected, initial value 0, no final xor.
fn ogg_crc(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut r = (i as u32) << 24;
            let mut b = 0;
            while b < 8 {
                r = if r & 0x8000_0000 != 0 {
                    (r << 1) ^ 0x04c1_1db7
                } else {
                    r << 1
                };
                b += 1;
            }
            t[i] = r;
            i += 1;
        }
        t
    };
    data.iter()
        .fold(0u32, |crc, &b| (crc << 8) ^ TABLE[((crc >> 24) as u8 ^ b) as usize])
}

/// Splits whole Ogg pages into packets, carrying an unfinished packet over to the next call.
#[derive(Default)]
pub(super) struct OggPackets {
    partial: Vec<u8>,
    serial: Option<u32>,
}

impl OggPackets {
    /// Appends the packets completed by the pages in `data` (which must be whole pages) to `packets`.
    pub(super) fn push(&mut self, data: &[u8], packets: &mut Vec<Vec<u8>>) -> Result<(), String> {
        let mut pos = 0;
        while pos < data.len() {
            let page = &data[pos..];
            if page.len() < PAGE_HEADER_LEN {
                return Err(format!("{} trailing bytes are not a whole Ogg page", page.len()));
            }
            if &page[0..4] != b"OggS" {
                return Err(format!("no OggS capture pattern at byte {pos}"));
            }
            if page[4] != 0 {
                return Err(format!("Ogg stream structure version {} is not 0", page[4]));
            }
            let serial = u32::from_le_bytes([page[14], page[15], page[16], page[17]]);
            if *self.serial.get_or_insert(serial) != serial {
                return Err(format!(
                    "page of logical stream {serial:#x} in stream {:#x}",
                    self.serial.unwrap_or(0)
                ));
            }
            let n_segments = page[26] as usize;
            let table = page
                .get(PAGE_HEADER_LEN..PAGE_HEADER_LEN + n_segments)
                .ok_or_else(|| format!("Ogg page at byte {pos} is cut inside its segment table"))?;
            let body_len: usize = table.iter().map(|&l| l as usize).sum();
            let page_len = PAGE_HEADER_LEN + n_segments + body_len;
            let page = page.get(..page_len).ok_or_else(|| {
                format!(
                    "Ogg page at byte {pos} needs {page_len} bytes, only {} left",
                    data.len() - pos
                )
            })?;
            let stored_crc = u32::from_le_bytes([page[22], page[23], page[24], page[25]]);
            let mut zeroed = page.to_vec();
            zeroed[22..26].fill(0);
            if ogg_crc(&zeroed) != stored_crc {
                return Err(format!("Ogg page at byte {pos} fails its CRC"));
            }
            let continued = page[5] & 1 != 0;
            if !continued && !self.partial.is_empty() {
                return Err("Ogg packet left unfinished by the previous page".to_string());
            }
            let mut body = &page[PAGE_HEADER_LEN + n_segments..];
            for &lacing in table {
                let (segment, rest) = body.split_at(lacing as usize);
                body = rest;
                if self.partial.len() + segment.len() > MAX_PACKET_LEN {
                    return Err(format!("Ogg packet grows beyond {MAX_PACKET_LEN} bytes"));
                }
                self.partial.extend_from_slice(segment);
                if lacing < 255 {
                    packets.push(std::mem::take(&mut self.partial));
                }
            }
            pos += page_len;
        }
        Ok(())
    }
}

/// Vorbis via lewton.
pub(super) struct VorbisDecoder {
    ident: IdentHeader,
    setup: SetupHeader,
    pwr: PreviousWindowRight,
    ogg: OggPackets,
    packets: Vec<Vec<u8>>,
}

impl VorbisDecoder {
    pub(super) fn new(header: &[u8]) -> Result<Self, DecodeError> {
        let bad = |reason: String| DecodeError::BadHeader { codec: CODEC, reason };
        let mut ogg = OggPackets::default();
        let mut packets = Vec::new();
        ogg.push(header, &mut packets).map_err(&bad)?;
        if packets.len() < 3 {
            return Err(bad(format!("{} Vorbis header packets, expected 3", packets.len())));
        }
        let ident = read_header_ident(&packets[0]).map_err(|e| bad(format!("identification header: {e}")))?;
        if ident.audio_channels == 0 || ident.audio_channels as u16 > super::MAX_CHANNELS {
            return Err(bad(format!(
                "{} channels is outside 1..={}",
                ident.audio_channels,
                super::MAX_CHANNELS
            )));
        }
        if ident.audio_sample_rate == 0 || ident.audio_sample_rate > super::MAX_RATE_HZ {
            return Err(bad(format!(
                "sample rate {} Hz is outside 1..={}",
                ident.audio_sample_rate,
                super::MAX_RATE_HZ
            )));
        }
        read_header_comment(&packets[1]).map_err(|e| bad(format!("comment header: {e}")))?;
        let setup = read_header_setup(
            &packets[2],
            ident.audio_channels,
            (ident.blocksize_0, ident.blocksize_1),
        )
        .map_err(|e| bad(format!("setup header: {e}")))?;
        // Any packets after the three headers are audio; they are decoded with the first chunk.
        packets.drain(..3);
        Ok(Self {
            ident,
            setup,
            pwr: PreviousWindowRight::new(),
            ogg,
            packets,
        })
    }
}

impl Decoder for VorbisDecoder {
    fn format(&self) -> AudioFormat {
        AudioFormat {
            rate_hz: self.ident.audio_sample_rate,
            channels: self.ident.audio_channels as u16,
        }
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<f32>) -> Result<usize, DecodeError> {
        let bad = |reason: String| DecodeError::BadChunk { codec: CODEC, reason };
        self.ogg.push(payload, &mut self.packets).map_err(bad)?;
        let limit_frames = chunk_limit_frames(self.format());
        let mut frames = 0;
        for (i, packet) in std::mem::take(&mut self.packets).iter().enumerate() {
            let decoded: InterleavedSamples<f32> =
                read_audio_packet_generic(&self.ident, &self.setup, packet, &mut self.pwr)
                    .map_err(|e| bad(format!("Vorbis packet {i} of the chunk: {e}")))?;
            if decoded.channel_count != self.ident.audio_channels as usize {
                return Err(bad(format!("packet decoded to {} channels", decoded.channel_count)));
            }
            let n = decoded.samples.len() / decoded.channel_count;
            if frames + n > limit_frames {
                return Err(DecodeError::ChunkTooLong {
                    codec: CODEC,
                    limit_frames,
                });
            }
            frames += n;
            out.extend_from_slice(&decoded.samples[..n * decoded.channel_count]);
        }
        Ok(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds one Ogg page holding `packets` (each < 255 * 255 bytes), with a correct CRC.
    pub(crate) fn page(serial: u32, seq: u32, flags: u8, granule: u64, packets: &[&[u8]]) -> Vec<u8> {
        let mut table = Vec::new();
        let mut body = Vec::new();
        for p in packets {
            let mut left = p.len();
            while left >= 255 {
                table.push(255u8);
                left -= 255;
            }
            table.push(left as u8);
            body.extend_from_slice(p);
        }
        let mut pg = b"OggS".to_vec();
        pg.push(0);
        pg.push(flags);
        pg.extend(granule.to_le_bytes());
        pg.extend(serial.to_le_bytes());
        pg.extend(seq.to_le_bytes());
        pg.extend([0; 4]);
        pg.push(table.len() as u8);
        pg.extend(table);
        pg.extend(body);
        let crc = ogg_crc(&pg);
        pg[22..26].copy_from_slice(&crc.to_le_bytes());
        pg
    }

    #[test]
    fn crc_matches_the_reference_value() {
        // CRC-32/MPEG-2 without the initial all-ones is CRC-32/BZIP2-like with init 0: known check value.
        assert_eq!(ogg_crc(b"123456789"), 0x89a1_897f);
    }

    #[test]
    fn pages_split_into_packets_across_calls() {
        let big = vec![7u8; 600];
        let mut ogg = OggPackets::default();
        let mut out = Vec::new();
        let p1 = page(1, 0, 0, 0, &[b"abc", &big]);
        ogg.push(&p1, &mut out).unwrap();
        assert_eq!(out, vec![b"abc".to_vec(), big.clone()]);

        // A packet of exactly 255 bytes needs a terminating 0-length segment; split it over two pages by hand.
        let mut first = page(1, 1, 0, 0, &[&[1u8; 255]]);
        // Drop the terminating 0 lacing value so the packet continues on the next page.
        first.remove(PAGE_HEADER_LEN + 1);
        first[26] = 1;
        first[22..26].fill(0);
        let crc = ogg_crc(&first);
        first[22..26].copy_from_slice(&crc.to_le_bytes());
        let second = page(1, 2, 1, 0, &[b"z"]);
        out.clear();
        ogg.push(&first, &mut out).unwrap();
        assert!(out.is_empty());
        ogg.push(&second, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].len(), 256);
    }

    #[test]
    fn malformed_pages_are_errors() {
        let good = page(1, 0, 0, 0, &[b"abc"]);
        let mut ogg = OggPackets::default();
        for n in 1..good.len() {
            assert!(
                OggPackets::default().push(&good[..n], &mut Vec::new()).is_err(),
                "cut at {n}"
            );
        }
        let mut bad_crc = good.clone();
        *bad_crc.last_mut().unwrap() ^= 1;
        assert!(ogg.push(&bad_crc, &mut Vec::new()).unwrap_err().contains("CRC"));
        let other_stream = page(2, 0, 0, 0, &[b"x"]);
        ogg.push(&good, &mut Vec::new()).unwrap();
        assert!(ogg
            .push(&other_stream, &mut Vec::new())
            .unwrap_err()
            .contains("logical stream"));
        assert!(OggPackets::default().push(b"OggX", &mut Vec::new()).is_err());
    }

    #[test]
    fn header_without_vorbis_packets_is_an_error() {
        let h = [page(1, 0, 2, 0, &[b"\x01vorbis"]), page(1, 1, 0, 0, &[b"x", b"y"])].concat();
        let err = crate::snapcast::decoder::new_decoder("ogg", &h).err().unwrap();
        assert!(
            err.to_string()
                .starts_with("ogg header is invalid: identification header"),
            "{err}"
        );
        let err = crate::snapcast::decoder::new_decoder("ogg", &page(1, 0, 2, 0, &[b"a"]))
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "ogg header is invalid: 1 Vorbis header packets, expected 3"
        );
    }
}
