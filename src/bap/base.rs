//! The BASE (Broadcast Audio Source Endpoint structure, BAP v1.0.1 §3.7.2.2): what a broadcast's periodic
//! advertising tells receivers about its BISes.
//!
//! Layout (all little endian), as BlueZ writes it (`src/shared/bap.c` `generate_base`, HEAD 690c16df):
//! ```text
//! Presentation_Delay u24 µs | Num_Subgroups u8 |
//!   per subgroup: Num_BIS u8 | Codec_ID (format u8, company u16, vendor u16) |
//!                 Codec_Specific_Configuration_Length u8 + LTVs | Metadata_Length u8 + LTVs |
//!     per BIS:    BIS_index u8 | Codec_Specific_Configuration_Length u8 + LTVs (overrides the subgroup's)
//! ```
//! BlueZ builds and advertises the BASE itself from the per-BIS `SetConfiguration` values (the kernel wraps it in
//! 0x1851 service data); a broadcast source through BlueZ never sends one. This module encodes the BASE a source
//! *means* ([`super::broadcast::BroadcastConfig::base`]), parses BASEs (e.g. what a sink receives), and reproduces
//! BlueZ's own grouping ([`Base::bluez_layout`]) so tests can check that both describe the same streams.

use super::ltv::{parse_ltvs, LtvError, LC3_CODING_FORMAT};

/// BlueZ's upper bound for a generated BASE, bytes (`BASE_MAX_LENGTH`, src/shared/bap.c).
pub const BASE_MAX_LEN: usize = 248;

/// Largest Presentation_Delay a BASE can carry (24 bits), µs.
pub const MAX_PRESENTATION_DELAY_US: u32 = 0xFF_FFFF;

/// Valid BIS_index values (Core: 1..=31).
pub const BIS_INDEX_RANGE: std::ops::RangeInclusive<u8> = 1..=31;

/// A Codec_ID: coding format, company ID, vendor codec ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecId {
    /// Coding_Format (0x06 = LC3, 0xFF = vendor specific).
    pub coding_format: u8,
    /// Company ID (0 unless vendor specific).
    pub company_id: u16,
    /// Vendor-defined codec ID (0 unless vendor specific).
    pub vendor_codec_id: u16,
}

impl CodecId {
    /// LC3: `06 0000 0000`.
    pub const LC3: Self = Self {
        coding_format: LC3_CODING_FORMAT,
        company_id: 0,
        vendor_codec_id: 0,
    };
}

/// One BIS in a BASE subgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseBis {
    /// BIS_index, 1..=31.
    pub index: u8,
    /// BIS-level codec configuration LTVs (may be empty); they override the subgroup's of the same type.
    pub codec_config: Vec<u8>,
}

/// A BASE subgroup: BISes sharing codec and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subgroup {
    /// The codec.
    pub codec_id: CodecId,
    /// Subgroup-level codec configuration LTVs.
    pub codec_config: Vec<u8>,
    /// Metadata LTVs.
    pub metadata: Vec<u8>,
    /// The BISes, at least one.
    pub bises: Vec<BaseBis>,
}

/// A whole BASE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    /// Presentation_Delay, µs (24 bits).
    pub presentation_delay_us: u32,
    /// The subgroups, at least one.
    pub subgroups: Vec<Subgroup>,
}

/// A BASE that cannot be encoded or does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseError {
    /// Presentation delay beyond 24 bits.
    #[error("BASE presentation delay {0} µs exceeds the 24-bit maximum {MAX_PRESENTATION_DELAY_US} µs")]
    PresentationDelay(u32),
    /// No subgroup, or a subgroup without BISes.
    #[error("BASE {0}")]
    Empty(&'static str),
    /// A BIS index outside 1..=31 or used twice.
    #[error("BASE BIS index {index} {problem}")]
    BisIndex {
        /// The index.
        index: u8,
        /// "out of range 1..=31" or "used twice".
        problem: &'static str,
    },
    /// A length-prefixed field over 255 bytes, or a whole BASE over [`BASE_MAX_LEN`].
    #[error("BASE {what} is {len} bytes, at most {max} allowed")]
    TooLong {
        /// Which field.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The data ended inside a field.
    #[error("BASE truncated at byte {offset}: {what} needs {need} bytes, {left} left")]
    Truncated {
        /// Byte offset of the field.
        offset: usize,
        /// Which field.
        what: &'static str,
        /// Bytes the field needs.
        need: usize,
        /// Bytes left.
        left: usize,
    },
    /// Bytes after the last BIS.
    #[error("BASE has {0} trailing bytes")]
    Trailing(usize),
    /// A codec configuration or metadata field that is not valid LTV.
    #[error("BASE {what}: {error}")]
    Ltv {
        /// Which field.
        what: &'static str,
        /// The LTV problem.
        error: LtvError,
    },
}

fn push_sized(out: &mut Vec<u8>, what: &'static str, bytes: &[u8]) -> Result<(), BaseError> {
    let len = u8::try_from(bytes.len()).map_err(|_| BaseError::TooLong {
        what,
        len: bytes.len(),
        max: 255,
    })?;
    parse_ltvs(bytes).map_err(|error| BaseError::Ltv { what, error })?;
    out.push(len);
    out.extend_from_slice(bytes);
    Ok(())
}

impl Base {
    /// The BASE bytes, after checking every rule above (delay width, non-empty, BIS indices 1..=31 and unique,
    /// well-formed LTVs, total ≤ [`BASE_MAX_LEN`]).
    pub fn encode(&self) -> Result<Vec<u8>, BaseError> {
        if self.presentation_delay_us > MAX_PRESENTATION_DELAY_US {
            return Err(BaseError::PresentationDelay(self.presentation_delay_us));
        }
        if self.subgroups.is_empty() {
            return Err(BaseError::Empty("has no subgroup"));
        }
        let n_subgroups = u8::try_from(self.subgroups.len()).map_err(|_| BaseError::TooLong {
            what: "subgroup list",
            len: self.subgroups.len(),
            max: 255,
        })?;
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&self.presentation_delay_us.to_le_bytes()[..3]);
        out.push(n_subgroups);
        let mut used = Vec::new();
        for sg in &self.subgroups {
            if sg.bises.is_empty() {
                return Err(BaseError::Empty("subgroup has no BIS"));
            }
            out.push(sg.bises.len().min(255) as u8);
            out.push(sg.codec_id.coding_format);
            out.extend_from_slice(&sg.codec_id.company_id.to_le_bytes());
            out.extend_from_slice(&sg.codec_id.vendor_codec_id.to_le_bytes());
            push_sized(&mut out, "subgroup codec configuration", &sg.codec_config)?;
            push_sized(&mut out, "subgroup metadata", &sg.metadata)?;
            for bis in &sg.bises {
                if !BIS_INDEX_RANGE.contains(&bis.index) {
                    return Err(BaseError::BisIndex {
                        index: bis.index,
                        problem: "out of range 1..=31",
                    });
                }
                if used.contains(&bis.index) {
                    return Err(BaseError::BisIndex {
                        index: bis.index,
                        problem: "used twice",
                    });
                }
                used.push(bis.index);
                out.push(bis.index);
                push_sized(&mut out, "BIS codec configuration", &bis.codec_config)?;
            }
        }
        if out.len() > BASE_MAX_LEN {
            return Err(BaseError::TooLong {
                what: "structure",
                len: out.len(),
                max: BASE_MAX_LEN,
            });
        }
        Ok(out)
    }

    /// Parses BASE bytes (checking structure and LTV framing, not semantics).
    pub fn parse(bytes: &[u8]) -> Result<Self, BaseError> {
        let mut r = Reader { bytes, pos: 0 };
        let pd = r.take(3, "Presentation_Delay")?;
        let presentation_delay_us = u32::from_le_bytes([pd[0], pd[1], pd[2], 0]);
        let n_subgroups = r.u8("Num_Subgroups")?;
        if n_subgroups == 0 {
            return Err(BaseError::Empty("has no subgroup"));
        }
        let mut subgroups = Vec::with_capacity(usize::from(n_subgroups));
        for _ in 0..n_subgroups {
            let n_bis = r.u8("Num_BIS")?;
            if n_bis == 0 {
                return Err(BaseError::Empty("subgroup has no BIS"));
            }
            let id = r.take(5, "Codec_ID")?;
            let codec_id = CodecId {
                coding_format: id[0],
                company_id: u16::from_le_bytes([id[1], id[2]]),
                vendor_codec_id: u16::from_le_bytes([id[3], id[4]]),
            };
            let codec_config = r.sized("subgroup codec configuration")?;
            let metadata = r.sized("subgroup metadata")?;
            let mut bises = Vec::with_capacity(usize::from(n_bis));
            for _ in 0..n_bis {
                let index = r.u8("BIS_index")?;
                let codec_config = r.sized("BIS codec configuration")?;
                bises.push(BaseBis { index, codec_config });
            }
            subgroups.push(Subgroup {
                codec_id,
                codec_config,
                metadata,
                bises,
            });
        }
        if r.pos != bytes.len() {
            return Err(BaseError::Trailing(bytes.len() - r.pos));
        }
        Ok(Self {
            presentation_delay_us,
            subgroups,
        })
    }

    /// The effective codec configuration of BIS `index`: its subgroup's LTVs with the BIS's LTVs replacing those
    /// of the same type (BAP §3.7.2.2), in subgroup order then BIS-only types. `None` if there is no such BIS.
    pub fn bis_codec_config(&self, index: u8) -> Option<Result<Vec<u8>, LtvError>> {
        let (sg, bis) = self
            .subgroups
            .iter()
            .find_map(|sg| sg.bises.iter().find(|b| b.index == index).map(|b| (sg, b)))?;
        Some((|| {
            let level3 = parse_ltvs(&bis.codec_config)?;
            let mut out = Vec::new();
            for l2 in parse_ltvs(&sg.codec_config)? {
                let v = level3.iter().find(|l| l.ty == l2.ty).map_or(l2.value, |l| l.value);
                super::ltv::push_ltv(&mut out, l2.ty, v)?;
            }
            let level2 = parse_ltvs(&sg.codec_config)?;
            for l3 in level3.iter().filter(|l| level2.iter().all(|l2| l2.ty != l.ty)) {
                super::ltv::push_ltv(&mut out, l3.ty, l3.value)?;
            }
            Ok(out)
        })())
    }

    /// The BASE BlueZ generates from per-BIS `SetConfiguration` values of one BIG (`src/shared/bap.c`
    /// `bt_bap_stream_get_base` / `set_base_subgroup`, HEAD 690c16df): BISes are numbered 1.. in configuration
    /// order; a BIS whose metadata equals an existing subgroup's joins it, carrying only the LTVs that differ from
    /// that subgroup's configuration (its first BIS's, verbatim), otherwise it opens a new subgroup with an empty
    /// BIS-level configuration. The largest presentation delay wins. Used to predict what receivers see.
    pub fn bluez_layout(bises: &[(Vec<u8>, Vec<u8>)], presentation_delay_us: u32) -> Result<Self, LtvError> {
        let mut subgroups: Vec<Subgroup> = Vec::new();
        for (i, (config, metadata)) in bises.iter().enumerate() {
            let index = i as u8 + 1;
            match subgroups.iter_mut().find(|sg| same_ltvs(&sg.metadata, metadata)) {
                Some(sg) => {
                    let level2 = parse_ltvs(&sg.codec_config)?;
                    let mut diff = Vec::new();
                    for l in parse_ltvs(config)? {
                        if !level2.iter().any(|l2| l2.ty == l.ty && l2.value == l.value) {
                            super::ltv::push_ltv(&mut diff, l.ty, l.value)?;
                        }
                    }
                    sg.bises.push(BaseBis {
                        index,
                        codec_config: diff,
                    });
                }
                None => subgroups.push(Subgroup {
                    codec_id: CodecId::LC3,
                    codec_config: config.clone(),
                    metadata: metadata.clone(),
                    bises: vec![BaseBis {
                        index,
                        codec_config: Vec::new(),
                    }],
                }),
            }
        }
        Ok(Self {
            presentation_delay_us,
            subgroups,
        })
    }
}

/// Same length and every LTV of `a` found in `b` (BlueZ's `compare_ltv`: order-insensitive).
fn same_ltvs(a: &[u8], b: &[u8]) -> bool {
    match (parse_ltvs(a), parse_ltvs(b)) {
        (Ok(la), Ok(lb)) => {
            a.len() == b.len() && la.iter().all(|x| lb.iter().any(|y| y.ty == x.ty && y.value == x.value))
        }
        _ => a == b,
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, need: usize, what: &'static str) -> Result<&'a [u8], BaseError> {
        let left = self.bytes.len() - self.pos;
        if left < need {
            return Err(BaseError::Truncated {
                offset: self.pos,
                what,
                need,
                left,
            });
        }
        let s = &self.bytes[self.pos..self.pos + need];
        self.pos += need;
        Ok(s)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, BaseError> {
        Ok(self.take(1, what)?[0])
    }

    fn sized(&mut self, what: &'static str) -> Result<Vec<u8>, BaseError> {
        let len = usize::from(self.u8(what)?);
        let v = self.take(len, what)?;
        parse_ltvs(v).map_err(|error| BaseError::Ltv { what, error })?;
        Ok(v.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 48_2 codec configuration LTVs: 48 kHz, 10 ms, 100 octets.
    const CFG_48_2: [u8; 10] = [0x02, 0x01, 0x08, 0x02, 0x02, 0x01, 0x03, 0x04, 0x64, 0x00];

    #[test]
    fn golden_bytes_match_bluez_base_macros() {
        // BlueZ src/shared/lc3.h (HEAD 690c16df) spells out test BASEs: BASE_LC3_48_2 =
        // BASE_LC3(40000, 1, 1, LC3_CFG_48_2, 0x00, 0x01, 0x00) and BASE_LC3_48_2_MBIS adds 0x02, 0x00; i.e.
        // 40 9c 00 | 01 | 01 | 06 00 00 00 00 | 0a <CFG_48_2> | 00 (no metadata) | 01 00 (BIS 1, no config).
        let mut base = Base {
            presentation_delay_us: 40_000,
            subgroups: vec![Subgroup {
                codec_id: CodecId::LC3,
                codec_config: CFG_48_2.to_vec(),
                metadata: vec![],
                bises: vec![BaseBis {
                    index: 1,
                    codec_config: vec![],
                }],
            }],
        };
        let mut want = vec![0x40, 0x9c, 0x00, 0x01, 0x01, 0x06, 0x00, 0x00, 0x00, 0x00, 0x0a];
        want.extend_from_slice(&CFG_48_2);
        want.extend_from_slice(&[0x00, 0x01, 0x00]);
        assert_eq!(base.encode().unwrap(), want);
        assert_eq!(Base::parse(&want).unwrap(), base);

        // _MBIS: two BISes in the subgroup.
        base.subgroups[0].bises.push(BaseBis {
            index: 2,
            codec_config: vec![],
        });
        want[4] = 0x02;
        want.extend_from_slice(&[0x02, 0x00]);
        assert_eq!(base.encode().unwrap(), want);
        assert_eq!(Base::parse(&want).unwrap(), base);
    }

    #[test]
    fn vendor_codec_id_and_two_subgroups_round_trip() {
        let base = Base {
            presentation_delay_us: 0x12_3456,
            subgroups: vec![
                Subgroup {
                    codec_id: CodecId {
                        coding_format: 0xff,
                        company_id: 0x0102,
                        vendor_codec_id: 0x0304,
                    },
                    codec_config: vec![],
                    metadata: vec![0x03, 0x02, 0x04, 0x00],
                    bises: vec![BaseBis {
                        index: 3,
                        codec_config: vec![0x02, 0x05, 0x01],
                    }],
                },
                Subgroup {
                    codec_id: CodecId::LC3,
                    codec_config: CFG_48_2.to_vec(),
                    metadata: vec![],
                    bises: vec![BaseBis {
                        index: 31,
                        codec_config: vec![],
                    }],
                },
            ],
        };
        let bytes = base.encode().unwrap();
        assert_eq!(
            &bytes[..12],
            [0x56, 0x34, 0x12, 0x02, 0x01, 0xff, 0x02, 0x01, 0x04, 0x03, 0x00, 0x04]
        );
        assert_eq!(Base::parse(&bytes).unwrap(), base);
    }

    #[test]
    fn encode_refuses_bad_bases() {
        let ok = Base {
            presentation_delay_us: 40_000,
            subgroups: vec![Subgroup {
                codec_id: CodecId::LC3,
                codec_config: CFG_48_2.to_vec(),
                metadata: vec![],
                bises: vec![BaseBis {
                    index: 1,
                    codec_config: vec![],
                }],
            }],
        };
        let with = |f: &dyn Fn(&mut Base)| {
            let mut b = ok.clone();
            f(&mut b);
            b.encode().unwrap_err().to_string()
        };
        assert_eq!(
            with(&|b| b.presentation_delay_us = 0x100_0000),
            "BASE presentation delay 16777216 µs exceeds the 24-bit maximum 16777215 µs"
        );
        assert_eq!(with(&|b| b.subgroups.clear()), "BASE has no subgroup");
        assert_eq!(with(&|b| b.subgroups[0].bises.clear()), "BASE subgroup has no BIS");
        assert_eq!(
            with(&|b| b.subgroups[0].bises[0].index = 0),
            "BASE BIS index 0 out of range 1..=31"
        );
        assert_eq!(
            with(&|b| b.subgroups[0].bises[0].index = 32),
            "BASE BIS index 32 out of range 1..=31"
        );
        assert_eq!(
            with(&|b| b.subgroups[0].bises.push(BaseBis {
                index: 1,
                codec_config: vec![]
            })),
            "BASE BIS index 1 used twice"
        );
        assert_eq!(
            with(&|b| b.subgroups[0].metadata = vec![0x05, 0x02]),
            "BASE subgroup metadata: LTV at byte 0 claims 5 bytes but only 1 remain"
        );
        assert_eq!(
            with(&|b| b.subgroups[0].metadata = vec![0x01; 256]),
            "BASE subgroup metadata is 256 bytes, at most 255 allowed"
        );
        // 248 bytes fit, 249 do not: one subgroup with 200 bytes of metadata plus the rest.
        let program = |n: usize| [vec![n as u8 + 1, 0x03], vec![b'x'; n]].concat();
        let len_with = |n: usize| {
            let mut b = ok.clone();
            b.subgroups[0].metadata = program(n);
            b.encode().map(|v| v.len())
        };
        let fixed = ok.encode().unwrap().len(); // 21 bytes with empty metadata
        assert_eq!(len_with(BASE_MAX_LEN - fixed - 2), Ok(BASE_MAX_LEN));
        assert_eq!(
            len_with(BASE_MAX_LEN - fixed - 1).unwrap_err().to_string(),
            "BASE structure is 249 bytes, at most 248 allowed"
        );
    }

    #[test]
    fn parse_refuses_bad_bytes() {
        let good = {
            let mut v = vec![0x40, 0x9c, 0x00, 0x01, 0x01, 0x06, 0x00, 0x00, 0x00, 0x00, 0x0a];
            v.extend_from_slice(&CFG_48_2);
            v.extend_from_slice(&[0x00, 0x01, 0x00]);
            v
        };
        assert_eq!(
            Base::parse(&good[..2]).unwrap_err().to_string(),
            "BASE truncated at byte 0: Presentation_Delay needs 3 bytes, 2 left"
        );
        assert_eq!(
            Base::parse(&good[..good.len() - 1]).unwrap_err().to_string(),
            "BASE truncated at byte 23: BIS codec configuration needs 1 bytes, 0 left"
        );
        assert_eq!(
            Base::parse(&[&good[..], &[0xee]].concat()).unwrap_err(),
            BaseError::Trailing(1)
        );
        let mut zero_subgroups = good.clone();
        zero_subgroups[3] = 0;
        assert_eq!(
            Base::parse(&zero_subgroups).unwrap_err(),
            BaseError::Empty("has no subgroup")
        );
        let mut bad_ltv = good.clone();
        bad_ltv[11] = 0x0a; // the first LTV claims 10 bytes, only 9 follow it in the configuration
        assert!(matches!(
            Base::parse(&bad_ltv),
            Err(BaseError::Ltv {
                what: "subgroup codec configuration",
                ..
            })
        ));
    }

    #[test]
    fn effective_bis_config_merges_levels() {
        let fl = [0x05, 0x03, 0x01, 0x00, 0x00, 0x00];
        let fr = [0x05, 0x03, 0x02, 0x00, 0x00, 0x00];
        let base = Base {
            presentation_delay_us: 40_000,
            subgroups: vec![Subgroup {
                codec_id: CodecId::LC3,
                codec_config: [&CFG_48_2[..], &fl[..]].concat(),
                metadata: vec![],
                bises: vec![
                    BaseBis {
                        index: 1,
                        codec_config: vec![],
                    },
                    BaseBis {
                        index: 2,
                        codec_config: [&fr[..], &[0x03, 0x04, 0x78, 0x00][..]].concat(),
                    },
                ],
            }],
        };
        assert_eq!(
            base.bis_codec_config(1).unwrap().unwrap(),
            [&CFG_48_2[..], &fl[..]].concat()
        );
        // BIS 2 overrides the allocation and the octets (120), keeping the subgroup's order.
        assert_eq!(
            base.bis_codec_config(2).unwrap().unwrap(),
            [&CFG_48_2[..8], &[0x78, 0x00][..], &fr[..]].concat()
        );
        assert!(base.bis_codec_config(3).is_none());
    }
}
