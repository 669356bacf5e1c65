//! What a Broadcast Assistant does next for one receiver, pure: given what the receiver's Broadcast Receive State
//! characteristics say (and whether we are connected), it decides when to connect, add our broadcast as a source,
//! hand over the Broadcast_Code, ask again for a sync that was lost, or wait — with backoff, on an injected clock
//! (nanoseconds of any monotonic clock). No GATT here: [`crate::bluez`]'s assistant carries the actions out and
//! feeds back what it saw.
//!
//! Source matching follows BlueZ's delegator (`profiles/audio/bass.c` `handle_add_src_req`, 5.87): a receiver
//! knows a source by advertiser address and Advertising_SID; the Broadcast_ID is compared only when both sides
//! know one (an assistant on a BlueZ without identity advertising cannot know the kernel's random one).

use super::{
    BigEncryption, Operation, PaSync, PaSyncState, ReceiveState, SourceAddress, SubgroupRequest, BIS_SYNC_FAILED,
    BIS_SYNC_NO_PREFERENCE, PA_INTERVAL_UNKNOWN,
};

/// First retry after a failure; doubled up to [`BACKOFF_MAX_NS`].
pub const BACKOFF_MIN_NS: u64 = 1_000_000_000;
/// Longest wait between retries.
pub const BACKOFF_MAX_NS: u64 = 60_000_000_000;
/// How long the receiver may take to sync after being told (PA sync, BIGInfo, BIG sync) before it is told again.
pub const SYNC_GRACE_NS: u64 = 15_000_000_000;

/// How the receiver is doing with our broadcast, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverState {
    /// Not connected (connecting, or waiting to retry).
    Disconnected,
    /// Connected; our broadcast is not among its sources (yet).
    NoSource,
    /// Told; not synced to the periodic advertising yet.
    Told,
    /// Synced to the PA, not (yet) to any BIS.
    PaSynced,
    /// Needs the Broadcast_Code (and we have none to give).
    CodeRequired,
    /// Synced to the PA and to these BISes (bit n = BIS n+1): it plays.
    BisSynced(u32),
    /// It says the code it has is wrong.
    BadCode,
    /// It failed to sync (PA or BIG).
    Failed(&'static str),
}

impl ReceiverState {
    /// One word for `status` and the log.
    pub fn word(&self) -> String {
        match self {
            Self::Disconnected => "disconnected".into(),
            Self::NoSource => "no-source".into(),
            Self::Told => "told".into(),
            Self::PaSynced => "pa-synced".into(),
            Self::CodeRequired => "code-required".into(),
            Self::BisSynced(b) => format!("bis-synced {b:#x}"),
            Self::BadCode => "bad-code".into(),
            Self::Failed(what) => format!("failed ({what})"),
        }
    }

    /// Whether it plays our broadcast.
    pub fn playing(&self) -> bool {
        matches!(self, Self::BisSynced(_))
    }
}

/// What to do now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Connect to the receiver (and subscribe to its receive states).
    Connect,
    /// Write this to the control point.
    Write(Operation),
    /// Nothing until this time (ns) or the next event.
    WaitUntil(u64),
}

/// What we broadcast, as a source for the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OurBroadcast {
    /// Address, type, SID, Broadcast_ID (0: unknown).
    pub source: SourceAddress,
    /// The Broadcast_Code, when the BIG is encrypted.
    pub code: Option<[u8; 16]>,
}

/// One receiver's assistant logic.
#[derive(Debug)]
pub struct Keeper {
    ours: OurBroadcast,
    connected: bool,
    /// Each receive state characteristic's last value (`None`: empty).
    states: Vec<Option<ReceiveState>>,
    /// No action before this (ns).
    not_before: u64,
    backoff_ns: u64,
    /// When we last told it (Add or Modify Source), ns.
    told_at: Option<u64>,
    /// The source id we last handed the code for.
    code_sent_for: Option<u8>,
    /// How long to let it sync after telling it (grows while it does not).
    grace_ns: u64,
}

impl Keeper {
    /// A keeper for `ours`, disconnected.
    pub fn new(ours: OurBroadcast) -> Self {
        Self {
            ours,
            connected: false,
            states: Vec::new(),
            not_before: 0,
            backoff_ns: BACKOFF_MIN_NS,
            told_at: None,
            code_sent_for: None,
            grace_ns: SYNC_GRACE_NS,
        }
    }

    /// Our broadcast as the receiver knows it, if it does.
    fn ours_at_receiver(&self) -> Option<&ReceiveState> {
        let o = &self.ours.source;
        self.states.iter().flatten().find(|s| {
            s.source.address == o.address
                && s.source.address_type == o.address_type
                && s.source.adv_sid == o.adv_sid
                && (o.broadcast_id == 0 || s.source.broadcast_id == 0 || s.source.broadcast_id == o.broadcast_id)
        })
    }

    /// How the receiver is doing.
    pub fn state(&self) -> ReceiverState {
        if !self.connected {
            return ReceiverState::Disconnected;
        }
        let Some(s) = self.ours_at_receiver() else {
            return ReceiverState::NoSource;
        };
        if let BigEncryption::BadCode(_) = s.encryption {
            return ReceiverState::BadCode;
        }
        if s.pa_sync == PaSyncState::Failed {
            return ReceiverState::Failed("PA sync");
        }
        if s.subgroups.iter().any(|g| g.bis_sync == BIS_SYNC_FAILED) {
            return ReceiverState::Failed("BIG sync");
        }
        let bis = s.subgroups.iter().fold(0u32, |a, g| a | g.bis_sync);
        if s.pa_sync == PaSyncState::Synced && bis != 0 {
            return ReceiverState::BisSynced(bis);
        }
        if s.encryption == BigEncryption::CodeRequired && self.ours.code.is_none() {
            return ReceiverState::CodeRequired;
        }
        if s.pa_sync == PaSyncState::Synced {
            ReceiverState::PaSynced
        } else {
            ReceiverState::Told
        }
    }

    /// The link came up (`true`, with the receive states read) or went down.
    pub fn connection(&mut self, now: u64, up: bool, states: Vec<Option<ReceiveState>>) {
        self.connected = up;
        self.states = states;
        self.told_at = None;
        self.code_sent_for = None;
        if up {
            self.not_before = now;
        } else {
            self.fail(now);
        }
    }

    /// Receive state characteristic `index` now holds `state` (a notification or read).
    pub fn receive_state(&mut self, index: usize, state: Option<ReceiveState>) {
        if self.states.len() <= index {
            self.states.resize(index + 1, None);
        }
        let was_playing = self.state().playing();
        self.states[index] = state;
        if !was_playing && self.state().playing() {
            self.backoff_ns = BACKOFF_MIN_NS;
        }
    }

    /// Connecting or a write failed: try again after the backoff.
    pub fn fail(&mut self, now: u64) {
        self.not_before = now + self.backoff_ns;
        self.backoff_ns = (self.backoff_ns * 2).min(BACKOFF_MAX_NS);
    }

    /// The next action at `now`. A returned write is taken as done (call [`Keeper::fail`] if it was not).
    pub fn next(&mut self, now: u64) -> Action {
        if now < self.not_before {
            return Action::WaitUntil(self.not_before);
        }
        if !self.connected {
            return Action::Connect;
        }
        let ours = self.ours_at_receiver().cloned();
        let Some(s) = ours else {
            // Not there: add it, unless we just did and it has not shown yet.
            if let Some(t) = self.told_at {
                if now < t + self.grace_ns {
                    return Action::WaitUntil(t + self.grace_ns);
                }
                self.fail(now);
                self.told_at = None;
                return Action::WaitUntil(self.not_before);
            }
            self.told_at = Some(now);
            return Action::Write(self.add_source());
        };
        if let (BigEncryption::CodeRequired, Some(code)) = (s.encryption, self.ours.code) {
            if self.code_sent_for != Some(s.source_id) {
                self.code_sent_for = Some(s.source_id);
                return Action::Write(Operation::SetBroadcastCode {
                    source_id: s.source_id,
                    code,
                });
            }
        }
        let state = self.state();
        if state.playing() {
            self.told_at = None;
            self.grace_ns = SYNC_GRACE_NS;
            return Action::WaitUntil(u64::MAX);
        }
        if state == ReceiverState::BadCode && self.code_sent_for == Some(s.source_id) {
            // Our code is the one it calls bad: telling it again will not help; try at the longest interval.
            self.not_before = now + BACKOFF_MAX_NS;
            self.code_sent_for = None;
            return Action::WaitUntil(self.not_before);
        }
        // Told and not synced: give it time, then tell it again (Modify Source, PA and BIS sync on), waiting
        // twice as long each round. Not told on this connection (it kept the source over a reconnect or power
        // cycle, unsynced): tell it now.
        if let Some(since) = self.told_at {
            if now < since + self.grace_ns {
                return Action::WaitUntil(since + self.grace_ns);
            }
            self.grace_ns = (self.grace_ns * 2).min(BACKOFF_MAX_NS);
        }
        self.told_at = Some(now);
        self.code_sent_for = None;
        Action::Write(Operation::ModifySource {
            source_id: s.source_id,
            pa_sync: PaSync::SyncPastNotAvailable,
            pa_interval: PA_INTERVAL_UNKNOWN,
            subgroups: Self::subgroups(&s),
        })
    }

    /// Add Source for our broadcast: sync to its PA (no PAST) and to any BIS.
    pub fn add_source(&self) -> Operation {
        Operation::AddSource {
            source: self.ours.source,
            pa_sync: PaSync::SyncPastNotAvailable,
            pa_interval: PA_INTERVAL_UNKNOWN,
            subgroups: vec![SubgroupRequest {
                bis_sync: BIS_SYNC_NO_PREFERENCE,
                metadata: Vec::new(),
            }],
        }
    }

    fn subgroups(s: &ReceiveState) -> Vec<SubgroupRequest> {
        let n = s.subgroups.len().max(1);
        (0..n)
            .map(|_| SubgroupRequest {
                bis_sync: BIS_SYNC_NO_PREFERENCE,
                metadata: Vec::new(),
            })
            .collect()
    }
}

#[cfg(test)]
#[path = "keeper_tests.rs"]
mod tests;
