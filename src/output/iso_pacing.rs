//! Following the Bluetooth controller's ISO clock: what the kernel's ISO socket lets us observe of it, an
//! estimator of its rate against our clock, and the pacer that turns both into a send schedule for the
//! `broadcast` output. Pure logic: samples in, decisions out, no I/O.
//!
//! # What can be observed (Linux 6.12)
//!
//! An SDU written to an ISO socket becomes an skb charged to the socket's send buffer (`bt_skb_sendmsg` →
//! `bt_skb_send_alloc` → `sock_alloc_send_skb`, include/net/bluetooth/bluetooth.h) and waits in the
//! connection's `data_q` until the controller has a free ISO buffer: `hci_sched_iso` (net/bluetooth/hci_core.c)
//! only dequeues while the adapter's `iso_cnt` credits last, and `hci_num_comp_pkts_evt`
//! (net/bluetooth/hci_event.c) gives them back when the controller reports Number Of Completed Packets. The charge
//! ends in `hci_send_frame`, which orphans the skb just before handing it to the driver. So
//! `ioctl(TIOCOUTQ)` — `bt_sock_ioctl` (net/bluetooth/af_bluetooth.c) returns `sk_sndbuf − sk_wmem_alloc`, the
//! *free* space — tells how many bytes of SDUs wait in the kernel for credits; divided by one SDU's charge, how
//! many SDUs. That count moves only while the controller's own buffer is full: then the controller takes one SDU
//! per BIS per ISO interval on its clock, and `sent − backlog` counts what it took (plus the constant size of its
//! buffer). Neither the controller's buffer nor the air time of an SDU is visible on 6.12: TX completion
//! timestamps (`SOF_TIMESTAMPING_TX_COMPLETION` on ISO sockets, `hci_conn_tx_queue`/`hci_conn_tx_dequeue`) came in
//! 6.15, `BT_PKT_STATUS` is about received packets, and HCI LE Read ISO TX Sync is not reachable from a socket
//! in mainline (only an out-of-tree `SIOCBTISOTXINFO` branch has it). The observable used here is therefore the
//! kernel backlog, and it only says something once the controller's buffer has been filled on purpose.
//!
//! # The pacer
//!
//! 1. **Probing.** At the start of a BIG the pacer sends one extra SDU per BIS every [`PROBE_STEP_NS`] (the send
//!    schedule moves ahead of the render schedule by one more SDU interval) until the kernel holds a backlog in
//!    at least half the samples of a step. SDUs sent early do not play early: a BIS carries one SDU per ISO
//!    event, first in first out, so only the queue grows. If no backlog shows after [`MAX_PROBE_SDUS`] — the
//!    controller's buffer is larger, or it returns credits at once (BlueZ's emulator does: `btdev.c`
//!    `send_iso` sends Number Of Completed Packets for every ISO packet as it arrives) — the pacer says
//!    [`PacerState::NoSignal`], takes the extra SDUs back and leaves pacing on the local clock.
//! 2. **Following.** The [`ControllerRateEstimator`] regresses `sent − backlog` (what the controller took) on
//!    time, using only samples with a backlog (with none, the controller's buffer may not be full and the count
//!    says nothing); the slope is the controller's consumption rate, independent of our own pacing. The render
//!    schedule then runs at `estimate − LEVEL_GAIN·(level − target)`: the feed-forward makes it follow the
//!    controller, the level term keeps the kernel backlog around [`TARGET_BACKLOG_SDUS`] (between 1 and 2, so it
//!    stays observable and the controller never runs dry). Holding the backlog holds the play time: the backlog
//!    minus the send-ahead is how far the controller's consumption is from our schedule, in SDU intervals.
//!    Should the backlog vanish for [`TOPUP_AFTER_NS`], one more SDU is sent ahead (again without moving the play
//!    time).

use crate::timeline::LocalTime;

/// Kernel backlog per BIS the pacer keeps while following. A half-integer: the quantised backlog then alternates
/// between 1 and 2, which keeps the schedule at the transition (the phase is known to a fraction of an interval)
/// and never lets it reach 0.
pub const TARGET_BACKLOG_SDUS: f64 = 1.5;
/// Send-rate correction per SDU of (filtered) backlog off the target, ppm. Until the rate estimate is trusted a
/// controller off by ε ppm leaves the backlog at `target + ε / gain` (2.5 SDUs at 50 ppm).
pub const LEVEL_GAIN_PPM_PER_SDU: f64 = 50.0;
/// Time constant of the backlog level filter.
pub const LEVEL_TAU_NS: i64 = 2_000_000_000;
/// Memory of the rate regression (exponential forgetting): a minute of samples.
pub const RATE_TAU_NS: i64 = 60_000_000_000;
/// Time constant of the fraction of samples that had a backlog.
pub const SIGNAL_TAU_NS: i64 = 10_000_000_000;
/// The rate estimate is used once samples with a backlog span this long…
pub const MIN_SIGNAL_SPAN_NS: i64 = 10_000_000_000;
/// …and at least this fraction of recent samples had one.
pub const MIN_SIGNAL_FRACTION: f64 = 0.5;
/// A controller clock further off than this is not believed (Bluetooth allows ±50 ppm; a stall or a controller
/// that returns credits irregularly would look like this): the estimator then says no signal.
pub const MAX_CONTROLLER_PPM: f64 = 500.0;
/// Largest correction applied to the send schedule, ppm (the player's drift control follows up to ±1000 ppm).
pub const MAX_PACING_PPM: f64 = 500.0;
/// While probing, one more SDU is sent ahead this often.
pub const PROBE_STEP_NS: i64 = 100_000_000;
/// Probing gives up after this many SDUs ahead without a backlog.
pub const MAX_PROBE_SDUS: u32 = 8;
/// While following, a backlog of 0 for this long sends one more SDU ahead.
pub const TOPUP_AFTER_NS: i64 = 1_000_000_000;
/// Most SDUs per BIS ever sent ahead of their render time.
pub const MAX_AHEAD_SDUS: u32 = 12;

/// What the estimator says about the controller's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ControllerRate {
    /// Not enough samples with a backlog to tell (or an implausible result): pace on the local clock.
    NoSignal,
    /// The controller consumes this much faster than nominal, on our clock, in ppm.
    Ppm(f64),
}

/// Estimates the controller's consumption rate from periodic samples of SDUs sent and SDUs waiting in the
/// kernel. Exponentially weighted least squares of `consumed = (sent − backlog) / bis` on time, fed only
/// samples with a backlog; quantisation (a backlog is whole SDUs) averages out over the regression's memory.
#[derive(Debug, Clone)]
pub struct ControllerRateEstimator {
    interval_s: f64,
    bis: f64,
    origin: Option<LocalTime>,
    last_signal_s: Option<f64>,
    first_signal_s: Option<f64>,
    last_sample_s: Option<f64>,
    /// Weighted regression state: total weight, means, co-moments.
    w: f64,
    mean_t: f64,
    mean_c: f64,
    ctt: f64,
    ctc: f64,
    /// Exponentially weighted fraction of samples with a backlog.
    signal_fraction: f64,
}

impl ControllerRateEstimator {
    /// An estimator for SDUs of `sdu_interval_ns`, `bis` of them per interval (one per BIS).
    pub fn new(sdu_interval_ns: i64, bis: u32) -> Self {
        Self {
            interval_s: sdu_interval_ns as f64 * 1e-9,
            bis: bis.max(1) as f64,
            origin: None,
            last_signal_s: None,
            first_signal_s: None,
            last_sample_s: None,
            w: 0.0,
            mean_t: 0.0,
            mean_c: 0.0,
            ctt: 0.0,
            ctc: 0.0,
            signal_fraction: 0.0,
        }
    }

    /// One sample at `now`: `sent` SDUs written so far (all BISes), `backlog` of them still in the kernel.
    pub fn sample(&mut self, now: LocalTime, sent: u64, backlog: u32) {
        let origin = *self.origin.get_or_insert(now);
        let t = now.ns_since(origin) as f64 * 1e-9;
        let has = backlog > 0;
        if let Some(last) = self.last_sample_s {
            let a = (-(t - last).max(0.0) / (SIGNAL_TAU_NS as f64 * 1e-9)).exp();
            self.signal_fraction = a * self.signal_fraction + (1.0 - a) * has as u8 as f64;
        }
        self.last_sample_s = Some(t);
        if !has {
            return;
        }
        let c = (sent.saturating_sub(backlog as u64)) as f64 / self.bis;
        let decay = match self.last_signal_s {
            Some(last) => (-(t - last).max(0.0) / (RATE_TAU_NS as f64 * 1e-9)).exp(),
            None => 0.0,
        };
        self.first_signal_s.get_or_insert(t);
        self.last_signal_s = Some(t);
        // Weighted incremental (West's) update with forgetting.
        self.w = decay * self.w + 1.0;
        self.ctt *= decay;
        self.ctc *= decay;
        let dt = t - self.mean_t;
        let dc = c - self.mean_c;
        self.mean_t += dt / self.w;
        self.mean_c += dc / self.w;
        self.ctt += dt * (t - self.mean_t);
        self.ctc += dt * (c - self.mean_c);
    }

    /// The fraction of recent samples that had a backlog (exponentially weighted over [`SIGNAL_TAU_NS`]).
    pub fn signal_fraction(&self) -> f64 {
        self.signal_fraction
    }

    /// The controller's rate against our clock, if the samples tell it.
    pub fn estimate(&self) -> ControllerRate {
        let (Some(first), Some(last)) = (self.first_signal_s, self.last_signal_s) else {
            return ControllerRate::NoSignal;
        };
        if last - first < MIN_SIGNAL_SPAN_NS as f64 * 1e-9
            || self.signal_fraction < MIN_SIGNAL_FRACTION
            || self.ctt <= 0.0
        {
            return ControllerRate::NoSignal;
        }
        let sdus_per_s = self.ctc / self.ctt;
        let ppm = (sdus_per_s * self.interval_s - 1.0) * 1e6;
        if !ppm.is_finite() || ppm.abs() > MAX_CONTROLLER_PPM {
            return ControllerRate::NoSignal;
        }
        ControllerRate::Ppm(ppm)
    }
}

/// Where the pacer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacerState {
    /// Control switched off: the local clock paces, nothing is sent ahead (what the output did before).
    Off,
    /// Filling the controller's buffer to make its consumption visible.
    Probing,
    /// Following the controller's clock.
    Following,
    /// The controller's consumption cannot be observed (no backlog ever builds, or the sink cannot report one):
    /// the local clock paces.
    NoSignal,
}

impl PacerState {
    /// The name shown in status.
    pub fn name(self) -> &'static str {
        match self {
            PacerState::Off => "off",
            PacerState::Probing => "probing",
            PacerState::Following => "following",
            PacerState::NoSignal => "no-signal",
        }
    }
}

/// Turns backlog samples into the send schedule of one BIG: how far ahead of their render time SDUs are sent, and
/// at what rate (ppm against the local clock) the render schedule runs.
#[derive(Debug, Clone)]
pub struct IsoPacer {
    state: PacerState,
    interval_ns: i64,
    bis: u32,
    estimator: ControllerRateEstimator,
    ahead_sdus: u32,
    ahead_at_lock: u32,
    /// Probing: when the current step began, its samples and those with a backlog.
    step_start: Option<LocalTime>,
    step_samples: u32,
    step_with_backlog: u32,
    /// Following: filtered backlog per BIS, when it was last updated, since when it has been 0.
    level: f64,
    level_at: Option<LocalTime>,
    empty_since: Option<LocalTime>,
    ppm: f64,
    last_backlog: Option<u32>,
}

impl IsoPacer {
    /// A pacer for a BIG of `bis` BISes with SDUs every `sdu_interval_ns`; it starts probing at the first sample.
    pub fn new(sdu_interval_ns: i64, bis: u32) -> Self {
        Self {
            state: PacerState::Probing,
            interval_ns: sdu_interval_ns,
            bis: bis.max(1),
            estimator: ControllerRateEstimator::new(sdu_interval_ns, bis),
            ahead_sdus: 0,
            ahead_at_lock: 0,
            step_start: None,
            step_samples: 0,
            step_with_backlog: 0,
            level: 0.0,
            level_at: None,
            empty_since: None,
            ppm: 0.0,
            last_backlog: None,
        }
    }

    /// A pacer that never moves the schedule (for comparison: the output as it was without this module).
    pub fn off(sdu_interval_ns: i64, bis: u32) -> Self {
        Self {
            state: PacerState::Off,
            ..Self::new(sdu_interval_ns, bis)
        }
    }

    /// Where it is.
    pub fn state(&self) -> PacerState {
        self.state
    }

    /// SDUs per BIS sent ahead of their render time.
    pub fn ahead_sdus(&self) -> u32 {
        self.ahead_sdus
    }

    /// [`ahead_sdus`](Self::ahead_sdus) as time.
    pub fn ahead_ns(&self) -> i64 {
        self.ahead_sdus as i64 * self.interval_ns
    }

    /// The render schedule's rate against the local clock, ppm (0 unless following).
    pub fn pacing_ppm(&self) -> f64 {
        self.ppm
    }

    /// True when the schedule follows the controller (so the output is not paced by the local clock).
    pub fn following(&self) -> bool {
        self.state == PacerState::Following
    }

    /// The controller's rate as estimated so far.
    pub fn controller_rate(&self) -> ControllerRate {
        match self.state {
            PacerState::Following => self.estimator.estimate(),
            _ => ControllerRate::NoSignal,
        }
    }

    /// The last backlog sampled (all BISes), if the sink reports one.
    pub fn last_backlog(&self) -> Option<u32> {
        self.last_backlog
    }

    /// One sample at `now`: `sent` SDUs written so far on this BIG (all BISes), `backlog` of them waiting in the
    /// kernel for controller buffers (None: the sink cannot tell).
    pub fn sample(&mut self, now: LocalTime, sent: u64, backlog: Option<u32>) {
        self.last_backlog = backlog;
        if self.state == PacerState::Off || self.state == PacerState::NoSignal {
            return;
        }
        let Some(backlog) = backlog else {
            self.give_up();
            return;
        };
        match self.state {
            PacerState::Probing => self.probe(now, backlog),
            PacerState::Following => self.follow(now, sent, backlog),
            PacerState::Off | PacerState::NoSignal => {}
        }
    }

    fn give_up(&mut self) {
        self.state = PacerState::NoSignal;
        self.ahead_sdus = 0;
        self.ppm = 0.0;
    }

    fn probe(&mut self, now: LocalTime, backlog: u32) {
        let start = *self.step_start.get_or_insert(now);
        self.step_samples += 1;
        self.step_with_backlog += (backlog > 0) as u32;
        if now.ns_since(start) < PROBE_STEP_NS {
            return;
        }
        if self.step_with_backlog * 2 >= self.step_samples && self.step_with_backlog > 0 {
            self.state = PacerState::Following;
            self.ahead_at_lock = self.ahead_sdus;
            self.level = backlog as f64 / self.bis as f64;
            self.level_at = Some(now);
            return;
        }
        if self.ahead_sdus >= MAX_PROBE_SDUS {
            self.give_up();
            return;
        }
        self.ahead_sdus += 1;
        self.step_start = Some(now);
        self.step_samples = 0;
        self.step_with_backlog = 0;
    }

    fn follow(&mut self, now: LocalTime, sent: u64, backlog: u32) {
        self.estimator.sample(now, sent, backlog);
        let per_bis = backlog as f64 / self.bis as f64;
        if let Some(at) = self.level_at {
            let a = (-(now.ns_since(at).max(0) as f64) / LEVEL_TAU_NS as f64).exp();
            self.level = a * self.level + (1.0 - a) * per_bis;
        }
        self.level_at = Some(now);
        if backlog == 0 {
            let since = *self.empty_since.get_or_insert(now);
            if now.ns_since(since) >= TOPUP_AFTER_NS {
                if self.ahead_sdus >= MAX_AHEAD_SDUS {
                    // Everything sent ahead and still nothing waits: the backlog seen while probing was not the
                    // controller's (a passing hiccup); nothing can be observed.
                    self.give_up();
                    return;
                }
                self.ahead_sdus += 1;
                self.empty_since = Some(now);
            }
        } else {
            self.empty_since = None;
        }
        let target = TARGET_BACKLOG_SDUS + (self.ahead_sdus - self.ahead_at_lock) as f64;
        let feed_forward = match self.estimator.estimate() {
            ControllerRate::Ppm(p) => p,
            ControllerRate::NoSignal => 0.0,
        };
        self.ppm = (feed_forward - LEVEL_GAIN_PPM_PER_SDU * (self.level - target)).clamp(-MAX_PACING_PPM, MAX_PACING_PPM);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const I: i64 = 10_000_000;

    /// A controller consuming one SDU per BIS per interval at `ppm` with `credits` buffers (per BIS), fed on a
    /// schedule at `send_ppm` with `ahead` SDUs in flight: returns (sent, backlog) at `t`. Sends happen at
    /// interval boundaries of the sender's schedule; the controller takes at its own.
    fn counts(t_ns: f64, ctrl_ppm: f64, send_ppm: f64, ahead: f64, credits: f64, phase: f64) -> (u64, u32) {
        let sent = ((t_ns / I as f64) * (1.0 + send_ppm * 1e-6) + ahead).floor().max(0.0);
        let taken = ((t_ns / I as f64) * (1.0 + ctrl_ppm * 1e-6) + phase).floor().max(0.0);
        let in_flight = (sent - taken).max(0.0);
        let backlog = (in_flight - credits).max(0.0);
        (sent as u64, backlog as u32)
    }

    #[test]
    fn estimates_the_controller_rate_from_a_quantised_backlog() {
        for ctrl in [50.0, -50.0, 20.0, -3.0, 0.0] {
            let mut e = ControllerRateEstimator::new(I, 1);
            // Our schedule runs 30 ppm away from the controller (the backlog drifts, steps through several
            // values) with 4 controller buffers and 6 SDUs ahead.
            for k in 0..30_000 {
                let t = k as f64 * 10e6 + 3e6;
                let (sent, backlog) = counts(t, ctrl, ctrl + 30.0, 6.0, 4.0, 0.37);
                e.sample(LocalTime::from_ns(t as i64), sent, backlog);
            }
            match e.estimate() {
                ControllerRate::Ppm(p) => assert!((p - ctrl).abs() < 1.0, "controller {ctrl} ppm, estimate {p}"),
                other => panic!("controller {ctrl} ppm: {other:?}"),
            }
        }
    }

    #[test]
    fn two_bises_count_per_bis() {
        let mut e = ControllerRateEstimator::new(I, 2);
        for k in 0..20_000 {
            let t = k as f64 * 10e6;
            let (sent, backlog) = counts(t, 40.0, 70.0, 5.0, 3.0, 0.5);
            e.sample(LocalTime::from_ns(t as i64), 2 * sent, 2 * backlog);
        }
        let ControllerRate::Ppm(p) = e.estimate() else { panic!("{:?}", e.estimate()) };
        assert!((p - 40.0).abs() < 1.0, "{p}");
    }

    #[test]
    fn a_backlog_that_stays_zero_is_no_signal_not_a_drift() {
        // Credits come back at once (BlueZ's emulator): the kernel never holds anything.
        let mut e = ControllerRateEstimator::new(I, 1);
        for k in 0..100_000u64 {
            e.sample(LocalTime::from_ns(k as i64 * I), k, 0);
        }
        assert_eq!(e.estimate(), ControllerRate::NoSignal);
        assert_eq!(e.signal_fraction(), 0.0);
    }

    #[test]
    fn a_rare_backlog_is_no_signal_either() {
        // One sample in fifty catches a credit in flight: not a full controller buffer.
        let mut e = ControllerRateEstimator::new(I, 1);
        for k in 0..100_000u64 {
            e.sample(LocalTime::from_ns(k as i64 * I), k, (k % 50 == 0) as u32);
        }
        assert_eq!(e.estimate(), ControllerRate::NoSignal);
    }

    #[test]
    fn too_short_a_signal_is_not_trusted() {
        let mut e = ControllerRateEstimator::new(I, 1);
        for k in 0..500 {
            let t = k as f64 * 10e6;
            let (sent, backlog) = counts(t, 50.0, 50.0, 6.0, 4.0, 0.5);
            e.sample(LocalTime::from_ns(t as i64), sent, backlog);
        }
        assert_eq!(e.estimate(), ControllerRate::NoSignal, "5 s of samples");
    }

    #[test]
    fn an_implausible_rate_is_no_signal() {
        // Something that empties the kernel queue at 2 % over nominal is not a Bluetooth clock.
        let mut e = ControllerRateEstimator::new(I, 1);
        for k in 0..20_000 {
            let t = k as f64 * 10e6;
            let (sent, backlog) = counts(t, 20_000.0, 20_030.0, 6.0, 4.0, 0.5);
            e.sample(LocalTime::from_ns(t as i64), sent, backlog);
        }
        assert_eq!(e.estimate(), ControllerRate::NoSignal);
    }

    #[test]
    fn the_estimate_follows_a_changing_clock() {
        let mut e = ControllerRateEstimator::new(I, 1);
        // 10 min at +30 ppm, then the controller warms up to −10 ppm; the sender keeps a backlog.
        let mut taken = 0.0f64;
        let mut sent = 0u64;
        for k in 0..120_000 {
            let ppm = if k < 60_000 { 30.0 } else { -10.0 };
            taken += 1.0 + ppm * 1e-6;
            while (sent as f64) < taken.floor() + 6.0 {
                sent += 1;
            }
            let backlog = (sent as f64 - taken.floor() - 4.0).max(0.0) as u32;
            e.sample(LocalTime::from_ns(k * I), sent, backlog);
        }
        let ControllerRate::Ppm(p) = e.estimate() else { panic!() };
        assert!((p + 10.0).abs() < 1.0, "{p}");
    }

    /// Drives a pacer against a controller with `credits` buffers per BIS; `instant` returns credits at once.
    /// Returns the pacer and the backlogs seen.
    fn run_pacer(ctrl_ppm: f64, credits: u32, instant: bool, secs: i64) -> (IsoPacer, Vec<u32>) {
        let mut p = IsoPacer::new(I, 1);
        let mut schedule = 0.0f64; // our render position, SDUs
        let mut sent = 0u64;
        let mut taken = 0u64;
        let mut backlogs = vec![];
        for k in 0..(secs * 100) {
            let t = LocalTime::from_ns(k * I);
            // The controller's events.
            let events = ((k as f64) * (1.0 + ctrl_ppm * 1e-6)).floor() as u64;
            while taken < events.min(sent) {
                taken += 1;
            }
            let backlog = if instant { 0 } else { (sent - taken).saturating_sub(credits as u64) as u32 };
            backlogs.push(backlog);
            p.sample(t, sent, Some(backlog));
            schedule += 1.0 + p.pacing_ppm() * 1e-6;
            let due = (schedule.floor() as u64) + p.ahead_sdus() as u64;
            sent = sent.max(due);
            if instant {
                taken = sent;
            }
        }
        (p, backlogs)
    }

    #[test]
    fn probing_finds_the_controller_buffer_and_follows() {
        for ctrl in [50.0, -50.0] {
            let (p, backlogs) = run_pacer(ctrl, 4, false, 600);
            assert_eq!(p.state(), PacerState::Following, "{ctrl}");
            assert!(p.ahead_sdus() >= 5, "4 buffers + a backlog: {}", p.ahead_sdus());
            let ControllerRate::Ppm(est) = p.controller_rate() else { panic!("{ctrl}: no estimate") };
            assert!((est - ctrl).abs() < 2.0, "controller {ctrl}, estimate {est}");
            let tail = &backlogs[backlogs.len() - 30_000..];
            assert!(tail.iter().all(|&b| (1..=3).contains(&b)), "{ctrl}: {:?}", tail.iter().max());
        }
    }

    #[test]
    fn instant_credits_give_no_signal_and_take_the_probe_back() {
        let (p, _) = run_pacer(50.0, 4, true, 60);
        assert_eq!(p.state(), PacerState::NoSignal);
        assert_eq!((p.ahead_sdus(), p.pacing_ppm()), (0, 0.0));
        assert_eq!(p.controller_rate(), ControllerRate::NoSignal);
    }

    #[test]
    fn a_buffer_larger_than_the_probe_gives_no_signal() {
        let (p, _) = run_pacer(50.0, MAX_PROBE_SDUS + 4, false, 60);
        assert_eq!(p.state(), PacerState::NoSignal);
        assert_eq!(p.ahead_sdus(), 0);
    }

    #[test]
    fn a_sink_that_cannot_tell_gives_no_signal_at_once() {
        let mut p = IsoPacer::new(I, 2);
        p.sample(LocalTime::from_ns(0), 0, None);
        assert_eq!((p.state(), p.ahead_sdus(), p.pacing_ppm()), (PacerState::NoSignal, 0, 0.0));
    }

    #[test]
    fn off_never_moves_the_schedule() {
        let mut p = IsoPacer::off(I, 1);
        for k in 0..1000 {
            p.sample(LocalTime::from_ns(k * I), k as u64, Some(3));
        }
        assert_eq!((p.state(), p.ahead_sdus(), p.pacing_ppm()), (PacerState::Off, 0, 0.0));
    }

    #[test]
    fn the_level_term_corrects_before_the_estimate_is_trusted() {
        let mut p = IsoPacer::new(I, 1);
        // Probe until following (a backlog of 2 shows from the start).
        let mut k = 0;
        while p.state() != PacerState::Following {
            p.sample(LocalTime::from_ns(k * I), k as u64, Some(2));
            k += 1;
        }
        // A growing backlog (we are too fast) slows the schedule down, an empty one speeds it up.
        for _ in 0..300 {
            p.sample(LocalTime::from_ns(k * I), k as u64, Some(4));
            k += 1;
        }
        assert!(p.pacing_ppm() < -50.0, "{}", p.pacing_ppm());
        for _ in 0..300 {
            p.sample(LocalTime::from_ns(k * I), k as u64, Some(0));
            k += 1;
        }
        assert!(p.pacing_ppm() > 0.0, "{}", p.pacing_ppm());
    }
}
