//! `ogg`: Vorbis in Ogg. The header is the Ogg pages holding the three Vorbis header packets; each chunk is one or
//! more whole Ogg pages of audio packets.
//!
//! The Ogg layer is the `ogg` crate's push parser (its [`PageParser`] checks each page's CRC, its
//! [`BasePacketReader`] reassembles packets across pages) wrapped in [`OggPackets`], which adds what a network
//! feed needs: pages must be whole and of one logical stream, and a packet is bounded in size. The Vorbis packets
//! go to lewton's packet-level API, so no reader state is ever left waiting for bytes that have not arrived. A
//! packet may continue from one page (and chunk) into the next.

use super::{chunk_limit_frames, DecodeError, Decoder};
use crate::snapcast::proto::MAX_PAYLOAD_SIZE;
use crate::timeline::AudioFormat;
use lewton::audio::{read_audio_packet_generic, PreviousWindowRight};
use lewton::header::{read_header_comment, read_header_ident, read_header_setup, IdentHeader, SetupHeader};
use lewton::samples::InterleavedSamples;
use ogg::reading::{BasePacketReader, OggReadError, PageParser};

const CODEC: &str = "ogg";
/// Bytes in a page header before the segment table.
const PAGE_HEADER_LEN: usize = 27;
/// Largest packet we reassemble, in bytes (a chunk is at most this big anyway).
const MAX_PACKET_LEN: usize = MAX_PAYLOAD_SIZE as usize;

/// Splits whole Ogg pages into packets, carrying an unfinished packet over to the next call.
pub(super) struct OggPackets {
    reader: BasePacketReader,
    serial: Option<u32>,
    /// Bytes of the packet left unfinished by the last page (what `reader` holds back), for the size bound.
    partial_len: usize,
}

impl Default for OggPackets {
    fn default() -> Self {
        Self {
            reader: BasePacketReader::new(),
            serial: None,
            partial_len: 0,
        }
    }
}

impl OggPackets {
    /// Appends the packets completed by the pages in `data` (which must be whole pages) to `packets`.
    pub(super) fn push(&mut self, data: &[u8], packets: &mut Vec<Vec<u8>>) -> Result<(), String> {
        let mut pos = 0;
        while pos < data.len() {
            let page = &data[pos..];
            let Some(header) = page.first_chunk::<PAGE_HEADER_LEN>() else {
                return Err(format!("{} trailing bytes are not a whole Ogg page", page.len()));
            };
            // The crate's page parser leaves finding the capture pattern to its caller.
            if &header[0..4] != b"OggS" {
                return Err(format!("no OggS capture pattern at byte {pos}"));
            }
            let (mut parser, n_segments) = PageParser::new(*header).map_err(|e| match e {
                OggReadError::InvalidStreamStructVer(v) => format!("Ogg stream structure version {v} is not 0"),
                e => format!("Ogg page header at byte {pos}: {e}"),
            })?;
            let serial = u32::from_le_bytes([header[14], header[15], header[16], header[17]]);
            if *self.serial.get_or_insert(serial) != serial {
                return Err(format!(
                    "page of logical stream {serial:#x} in stream {:#x}",
                    self.serial.unwrap_or(0)
                ));
            }
            let table = page
                .get(PAGE_HEADER_LEN..PAGE_HEADER_LEN + n_segments)
                .ok_or_else(|| format!("Ogg page at byte {pos} is cut inside its segment table"))?;
            // The packet still open after this page: the trailing run of 255-byte segments (plus what earlier
            // pages left, if it continues one).
            let mut open_len = self.partial_len;
            for &lacing in table {
                open_len += lacing as usize;
                if open_len > MAX_PACKET_LEN {
                    return Err(format!("Ogg packet grows beyond {MAX_PACKET_LEN} bytes"));
                }
                if lacing < 255 {
                    open_len = 0;
                }
            }
            let body_len = parser.parse_segments(table.to_vec());
            let page_len = PAGE_HEADER_LEN + n_segments + body_len;
            let body = data
                .get(pos + PAGE_HEADER_LEN + n_segments..pos + page_len)
                .ok_or_else(|| {
                    format!(
                        "Ogg page at byte {pos} needs {page_len} bytes, only {} left",
                        data.len() - pos
                    )
                })?;
            let page = parser.parse_packet_data(body.to_vec()).map_err(|e| match e {
                OggReadError::HashMismatch(..) => format!("Ogg page at byte {pos} fails its CRC"),
                e => format!("Ogg page at byte {pos}: {e}"),
            })?;
            // The reader refuses a first page without the beginning-of-stream flag, a later one with it, and a
            // page whose continuation flag disagrees with the end of the previous one.
            self.reader.push_page(page).map_err(|e| match e {
                OggReadError::InvalidData => format!(
                    "Ogg page at byte {pos} does not follow the previous page (beginning-of-stream or \
                     continued-packet flag)"
                ),
                e => format!("Ogg page at byte {pos}: {e}"),
            })?;
            while let Some(packet) = self.reader.read_packet() {
                packets.push(packet.data);
            }
            self.partial_len = open_len;
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

    /// CRC-32 of Ogg pages (polynomial 0x04c11db7, not reflected, initial value 0, no final xor), to build pages.
    fn ogg_crc(data: &[u8]) -> u32 {
        data.iter().fold(0u32, |mut crc, &b| {
            crc ^= (b as u32) << 24;
            for _ in 0..8 {
                crc = if crc & 0x8000_0000 != 0 {
                    (crc << 1) ^ 0x04c1_1db7
                } else {
                    crc << 1
                };
            }
            crc
        })
    }

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
        let p1 = page(1, 0, 2, 0, &[b"abc", &big]);
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
        let good = page(1, 0, 2, 0, &[b"abc"]);
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

    /// The page order the `ogg` crate enforces, and the packet bound this wrapper adds.
    #[test]
    fn pages_out_of_order_and_oversized_packets_are_errors() {
        let flags = |e: String| assert!(e.contains("beginning-of-stream or continued-packet"), "{e}");
        // The first page must begin the stream, and only the first.
        flags(
            OggPackets::default()
                .push(&page(1, 0, 0, 0, &[b"a"]), &mut Vec::new())
                .unwrap_err(),
        );
        let mut ogg = OggPackets::default();
        ogg.push(&page(1, 0, 2, 0, &[b"a"]), &mut Vec::new()).unwrap();
        flags(ogg.push(&page(1, 1, 2, 0, &[b"b"]), &mut Vec::new()).unwrap_err());
        // A packet left open must be continued, and a continuation must follow an open packet.
        let mut open = page(1, 1, 0, 0, &[&[1u8; 255]]);
        open.remove(PAGE_HEADER_LEN + 1);
        open[26] = 1;
        open[22..26].fill(0);
        let crc = ogg_crc(&open);
        open[22..26].copy_from_slice(&crc.to_le_bytes());
        let mut ogg = OggPackets::default();
        ogg.push(&page(1, 0, 2, 0, &[b"a"]), &mut Vec::new()).unwrap();
        flags(ogg.push(&page(1, 1, 1, 0, &[b"b"]), &mut Vec::new()).unwrap_err());
        let mut ogg = OggPackets::default();
        ogg.push(&page(1, 0, 2, 0, &[b"a"]), &mut Vec::new()).unwrap();
        ogg.push(&open, &mut Vec::new()).unwrap();
        flags(ogg.push(&page(1, 2, 0, 0, &[b"b"]), &mut Vec::new()).unwrap_err());
        // A packet continued page after page is cut off at MAX_PACKET_LEN.
        let mut run = b"OggS\0\x01".to_vec();
        run.extend([0; 20]);
        run.push(255);
        run.extend([255; 255]);
        run.extend(vec![9u8; 255 * 255]);
        let mut ogg = OggPackets::default();
        ogg.push(&page(1, 0, 2, 0, &[b"a"]), &mut Vec::new()).unwrap();
        ogg.push(&open, &mut Vec::new()).unwrap();
        let mut sent = 255;
        let err = (2u32..)
            .find_map(|seq| {
                let mut pg = run.clone();
                pg[6..14].fill(0);
                pg[14..18].copy_from_slice(&1u32.to_le_bytes());
                pg[18..22].copy_from_slice(&seq.to_le_bytes());
                pg[22..26].fill(0);
                let crc = ogg_crc(&pg);
                pg[22..26].copy_from_slice(&crc.to_le_bytes());
                sent += 255 * 255;
                ogg.push(&pg, &mut Vec::new()).err()
            })
            .unwrap();
        assert!(err.contains("grows beyond"), "{err}");
        assert!(sent > MAX_PACKET_LEN && sent - 255 * 255 <= MAX_PACKET_LEN, "{sent}");
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
