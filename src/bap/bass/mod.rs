//! Broadcast Audio Scan Service (BASS), the assistant's side, pure: the Broadcast Audio Scan Control Point
//! operations a Broadcast Assistant writes (Add Source, Modify Source, Set Broadcast Code, Remove Source, remote
//! scan started/stopped), and the Broadcast Receive State a receiver (scan delegator) reports, decoded. No GATT
//! or D-Bus here: whoever talks to the receiver writes and reads these bytes.
//!
//! Layouts checked against BlueZ 5.87 (tag `5.87`), the scan delegator a Linux receiver runs:
//! `src/shared/bass.h:62-94` (the packed `bt_bass_add_src_params`, `_mod_src_params`, `_set_bcast_code_params`,
//! `_remove_src_params`; opcodes 0x00..0x05 at `:43-90`; `bdaddr_t` is least significant byte first), the
//! delegator's checks `src/shared/bass.c:712-764` (`bass_validate_bis_sync`: no BIS in two subgroups;
//! `bass_validate_add_src_params`: `PA_Sync` ≤ 2, address type ≤ 1, `Advertising_SID` ≤ 0x0F; an Add Source that
//! fails them is acknowledged and then *silently ignored*, which is why [`Operation::encode`] refuses them), and its
//! Broadcast Receive State parser and builder (`bass.c:261-429` `bass_build_bcast_src`, `:431-494`
//! `bass_parse_bcast_src`: id, address type, address, SID, Broadcast_ID LE24, PA sync state, encryption, the bad
//! code only when encryption = 3, subgroups of LE32 BIS sync + metadata). Bumble's `bumble/profiles/bass.py`
//! (`AddSourceOperation`: `struct.pack("<B6sB3sBH", …)` + subgroups) agrees.

/// Control point opcodes.
pub mod opcode {
    /// Remote Scan Stopped.
    pub const REMOTE_SCAN_STOPPED: u8 = 0x00;
    /// Remote Scan Started.
    pub const REMOTE_SCAN_STARTED: u8 = 0x01;
    /// Add Source.
    pub const ADD_SOURCE: u8 = 0x02;
    /// Modify Source.
    pub const MODIFY_SOURCE: u8 = 0x03;
    /// Set Broadcast Code.
    pub const SET_BROADCAST_CODE: u8 = 0x04;
    /// Remove Source.
    pub const REMOVE_SOURCE: u8 = 0x05;
}

/// `BIS_Sync` value: sync to any BIS, no preference.
pub const BIS_SYNC_NO_PREFERENCE: u32 = 0xFFFF_FFFF;
/// `BIS_Sync_State` value: the receiver failed to sync to the BIG.
pub const BIS_SYNC_FAILED: u32 = 0xFFFF_FFFF;
/// `PA_Interval` value: unknown.
pub const PA_INTERVAL_UNKNOWN: u16 = 0xFFFF;
/// Largest `Advertising_SID` (4 bits; BlueZ's delegator ignores an Add Source with more, `bass.c:756`).
pub const ADV_SID_MAX: u8 = 0x0F;
/// Largest address type: 0 public, 1 random (`bass.c:753`).
pub const ADDRESS_TYPE_MAX: u8 = 0x01;

/// Whether the receiver should sync to the source's periodic advertising.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaSync {
    /// Do not sync (or stop).
    DoNotSync = 0x00,
    /// Sync; the assistant can transfer the sync (PAST).
    SyncPastAvailable = 0x01,
    /// Sync; no PAST: the receiver scans for it itself.
    SyncPastNotAvailable = 0x02,
}

/// One subgroup of an Add/Modify Source: which BISes to sync (bit n = BIS n+1) and its metadata (LTVs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubgroupRequest {
    /// `BIS_Sync` bitmap, or [`BIS_SYNC_NO_PREFERENCE`].
    pub bis_sync: u32,
    /// Metadata LTVs.
    pub metadata: Vec<u8>,
}

/// The broadcast a source operation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceAddress {
    /// 0 public, 1 random.
    pub address_type: u8,
    /// The advertiser's address, most significant byte first as printed (`AA:BB:…` → `[0xAA, 0xBB, …]`).
    pub address: [u8; 6],
    /// Advertising_SID.
    pub adv_sid: u8,
    /// Broadcast_ID (24 bits).
    pub broadcast_id: u32,
}

/// A control point operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// The assistant stopped scanning for the receiver.
    RemoteScanStopped,
    /// The assistant scans for the receiver.
    RemoteScanStarted,
    /// Add a broadcast source.
    AddSource {
        /// The broadcast.
        source: SourceAddress,
        /// Whether to sync to its PA.
        pa_sync: PaSync,
        /// Its PA interval (1.25 ms units) or [`PA_INTERVAL_UNKNOWN`].
        pa_interval: u16,
        /// Subgroups.
        subgroups: Vec<SubgroupRequest>,
    },
    /// Change what the receiver syncs to of a source it has.
    ModifySource {
        /// The receiver's Source_ID.
        source_id: u8,
        /// Whether to sync to its PA.
        pa_sync: PaSync,
        /// PA interval or [`PA_INTERVAL_UNKNOWN`].
        pa_interval: u16,
        /// Subgroups.
        subgroups: Vec<SubgroupRequest>,
    },
    /// Hand the receiver the code of an encrypted BIG.
    SetBroadcastCode {
        /// The receiver's Source_ID.
        source_id: u8,
        /// The 16-byte Broadcast_Code, as sent over the air.
        code: [u8; 16],
    },
    /// Forget a source.
    RemoveSource {
        /// The receiver's Source_ID.
        source_id: u8,
    },
}

/// Why bytes do not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BassError {
    /// Ran out of bytes.
    #[error("BASS value truncated: needed {needed} bytes at offset {at}, have {have}")]
    Truncated {
        /// Offset.
        at: usize,
        /// Bytes needed there.
        needed: usize,
        /// Bytes in all.
        have: usize,
    },
    /// A field outside its range.
    #[error("BASS value: {0}")]
    Bad(String),
}

fn push_subgroups(out: &mut Vec<u8>, subgroups: &[SubgroupRequest]) -> Result<(), BassError> {
    let n = u8::try_from(subgroups.len()).map_err(|_| BassError::Bad("more than 255 subgroups".into()))?;
    // A BIS may be asked for in one subgroup only (`bass.c:712-738`); "no preference" is exempt.
    let mut seen = 0u32;
    for s in subgroups.iter().filter(|s| s.bis_sync != BIS_SYNC_NO_PREFERENCE) {
        if seen & s.bis_sync != 0 {
            return Err(BassError::Bad(format!(
                "BIS_Sync {:#010x} names a BIS another subgroup already asks for",
                s.bis_sync
            )));
        }
        seen |= s.bis_sync;
    }
    out.push(n);
    for s in subgroups {
        out.extend_from_slice(&s.bis_sync.to_le_bytes());
        let len = u8::try_from(s.metadata.len()).map_err(|_| BassError::Bad("metadata over 255 bytes".into()))?;
        out.push(len);
        out.extend_from_slice(&s.metadata);
    }
    Ok(())
}

/// Over-the-air address order: least significant byte first.
fn push_address(out: &mut Vec<u8>, address: &[u8; 6]) {
    out.extend(address.iter().rev());
}

impl Operation {
    /// The bytes to write to the Broadcast Audio Scan Control Point.
    pub fn encode(&self) -> Result<Vec<u8>, BassError> {
        let mut out = Vec::new();
        match self {
            Self::RemoteScanStopped => out.push(opcode::REMOTE_SCAN_STOPPED),
            Self::RemoteScanStarted => out.push(opcode::REMOTE_SCAN_STARTED),
            Self::AddSource {
                source,
                pa_sync,
                pa_interval,
                subgroups,
            } => {
                if source.broadcast_id > 0xFF_FFFF {
                    return Err(BassError::Bad(format!(
                        "broadcast id {:#x} over 24 bits",
                        source.broadcast_id
                    )));
                }
                if source.address_type > ADDRESS_TYPE_MAX {
                    return Err(BassError::Bad(format!(
                        "address type {} is neither public (0) nor random (1)",
                        source.address_type
                    )));
                }
                if source.adv_sid > ADV_SID_MAX {
                    return Err(BassError::Bad(format!(
                        "advertising SID {:#04x} over {ADV_SID_MAX:#04x}",
                        source.adv_sid
                    )));
                }
                out.push(opcode::ADD_SOURCE);
                out.push(source.address_type);
                push_address(&mut out, &source.address);
                out.push(source.adv_sid);
                out.extend_from_slice(&source.broadcast_id.to_le_bytes()[..3]);
                out.push(*pa_sync as u8);
                out.extend_from_slice(&pa_interval.to_le_bytes());
                push_subgroups(&mut out, subgroups)?;
            }
            Self::ModifySource {
                source_id,
                pa_sync,
                pa_interval,
                subgroups,
            } => {
                out.extend_from_slice(&[opcode::MODIFY_SOURCE, *source_id, *pa_sync as u8]);
                out.extend_from_slice(&pa_interval.to_le_bytes());
                push_subgroups(&mut out, subgroups)?;
            }
            Self::SetBroadcastCode { source_id, code } => {
                out.extend_from_slice(&[opcode::SET_BROADCAST_CODE, *source_id]);
                out.extend_from_slice(code);
            }
            Self::RemoveSource { source_id } => out.extend_from_slice(&[opcode::REMOVE_SOURCE, *source_id]),
        }
        Ok(out)
    }
}

/// The receiver's PA sync state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaSyncState {
    /// Not synchronized to the PA.
    NotSynced,
    /// Asks the assistant for SyncInfo (PAST).
    SyncInfoRequest,
    /// Synchronized.
    Synced,
    /// Failed to synchronize.
    Failed,
    /// No PAST.
    NoPast,
}

/// The receiver's view of the BIG's encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BigEncryption {
    /// Not encrypted.
    NotEncrypted,
    /// Needs the Broadcast_Code.
    CodeRequired,
    /// Decrypting.
    Decrypting,
    /// The code it has is wrong; the bad code.
    BadCode([u8; 16]),
}

/// One subgroup's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubgroupState {
    /// Synced BISes (bit n = BIS n+1), or [`BIS_SYNC_FAILED`].
    pub bis_sync: u32,
    /// Metadata LTVs.
    pub metadata: Vec<u8>,
}

/// A Broadcast Receive State characteristic value (one source the receiver knows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiveState {
    /// The receiver's Source_ID.
    pub source_id: u8,
    /// The broadcast.
    pub source: SourceAddress,
    /// PA sync.
    pub pa_sync: PaSyncState,
    /// Encryption.
    pub encryption: BigEncryption,
    /// Subgroups.
    pub subgroups: Vec<SubgroupState>,
}

impl ReceiveState {
    /// Decodes a Broadcast Receive State value; `Ok(None)` for an empty one (no source).
    pub fn decode(b: &[u8]) -> Result<Option<Self>, BassError> {
        if b.is_empty() {
            return Ok(None);
        }
        let mut r = Reader { b, at: 0 };
        let source_id = r.u8()?;
        let address_type = r.u8()?;
        let mut address: [u8; 6] = r.take(6)?.try_into().expect("6 bytes");
        address.reverse();
        let adv_sid = r.u8()?;
        let id = r.take(3)?;
        let broadcast_id = u32::from_le_bytes([id[0], id[1], id[2], 0]);
        let pa_sync = match r.u8()? {
            0 => PaSyncState::NotSynced,
            1 => PaSyncState::SyncInfoRequest,
            2 => PaSyncState::Synced,
            3 => PaSyncState::Failed,
            4 => PaSyncState::NoPast,
            v => return Err(BassError::Bad(format!("PA_Sync_State {v:#04x} is reserved"))),
        };
        let encryption = match r.u8()? {
            0 => BigEncryption::NotEncrypted,
            1 => BigEncryption::CodeRequired,
            2 => BigEncryption::Decrypting,
            3 => BigEncryption::BadCode(r.take(16)?.try_into().expect("16 bytes")),
            v => return Err(BassError::Bad(format!("BIG_Encryption {v:#04x} is reserved"))),
        };
        let n = r.u8()?;
        let mut subgroups = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let bis_sync = u32::from_le_bytes(r.take(4)?.try_into().expect("4 bytes"));
            let len = r.u8()? as usize;
            subgroups.push(SubgroupState {
                bis_sync,
                metadata: r.take(len)?.to_vec(),
            });
        }
        if r.at != b.len() {
            return Err(BassError::Bad(format!(
                "{} bytes after the last subgroup",
                b.len() - r.at
            )));
        }
        Ok(Some(Self {
            source_id,
            source: SourceAddress {
                address_type,
                address,
                adv_sid,
                broadcast_id,
            },
            pa_sync,
            encryption,
            subgroups,
        }))
    }

    /// The receiver plays: PA synced and some BIS synced (none failed).
    pub fn playing(&self) -> bool {
        self.pa_sync == PaSyncState::Synced
            && self
                .subgroups
                .iter()
                .any(|s| s.bis_sync != 0 && s.bis_sync != BIS_SYNC_FAILED)
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BassError> {
        let end = self.at + n;
        if end > self.b.len() {
            return Err(BassError::Truncated {
                at: self.at,
                needed: n,
                have: self.b.len(),
            });
        }
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, BassError> {
        Ok(self.take(1)?[0])
    }
}

pub mod keeper;
#[cfg(test)]
mod tests;
