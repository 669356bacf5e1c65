//! The rig speaker's schedule (pure): when each packet of a stream sounds, from the packets' arrival times alone.
//!
//! A speaker plays from a buffer on the schedule the source sent on: frame `n` sounds at `base + n / 48 kHz` (plus
//! the speaker's latency, which [`super::Speaker`] adds). `base` starts as the lower envelope of
//! `arrival − first_frame / 48 kHz`: the earliest a packet came, which is where the emulated link did not hold it
//! back. The envelope only moves earlier (a faster packet: the link's floor found), never later, so a stretch of
//! slow packets does not move the room; a packet that comes later than its place is played from the buffer at its
//! place all the same.
//!
//! **Underrun and resume.** A packet more than the speaker's buffer (`buffer_ns`) behind the schedule cannot be
//! played at its place: the buffer ran dry, and what it holds does not sound (the mixer drops it; a click in it is
//! not heard). Such packets do not change the schedule: a packet the link held and the ones queued behind it, or a
//! sender that stalled and caught up, arrive together and the packets after them are on time again. When *every*
//! packet for [`RESUME_AFTER_NS`] of arrivals is behind, the stream has moved (bluebridge restarts its output's
//! schedule ≥ 290 ms later after a stall over 250 ms, `output/local_clocked.rs`): the speaker resumes on it, with
//! the lower envelope of that run as its base, as a real speaker resumes after an underrun (silence, then the
//! stream from where it now is). In a loaded rig guest the emulated link also delivers late for a few hundred ms
//! at a time (seen: runs of packets 140–390 ms behind, then on time again), which a resume cannot tell from a
//! move; so the base before a resume is kept, and the first packet on time against it again puts it back exactly
//! (the stream had not moved, the link had only been slow). A single late packet can thus never move the room.

use super::RATE_HZ;

/// Packets all behind for this long (by arrival) are a moved schedule, not a held packet; ns. A held packet and
/// the ones queued behind it arrive together, within a few ms; a moved sender's packets keep coming at its pace.
/// (100 ms resumed on the loaded link's slow stretches 7 times in one run.)
pub const RESUME_AFTER_NS: i64 = 300_000_000;
/// A resume not undone within this long (by arrival) stands: the next one keeps its own base to go back to, ns.
/// (Seen: a stream that moved for good 3 s after its start, then slow stretches of the link a minute later.)
pub const CONFIRM_AFTER_NS: i64 = 5_000_000_000;

/// How long `frames` frames of the stream last, ns (fractional frames: a click's position).
pub fn frames_ns(frames: f64) -> i64 {
    (frames * 1e9 / RATE_HZ).round() as i64
}

/// A packet's offset: when frame 0 would have sounded had the packet come on schedule.
fn offset_ns(first_frame: u64, arrival_ns: i64) -> i64 {
    arrival_ns - frames_ns(first_frame as f64)
}

/// A run of packets all behind the schedule.
#[derive(Debug, Clone, Copy)]
struct Behind {
    /// Arrival of its first packet.
    since_ns: i64,
    /// The lower envelope of its offsets.
    floor_ns: i64,
}

/// Where a packet was placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// The base in force for it: its first frame sounds at `base_ns + first_frame / 48 kHz` (+ latency).
    pub base_ns: i64,
    /// The packet came more than the buffer behind its place.
    pub behind: bool,
    /// The speaker resumed on a moved schedule with this packet; by how much the base moved, ns.
    pub resumed_by_ns: Option<i64>,
    /// This packet came on time against the base before the last resume: that base is back (the stream had not
    /// moved); by how much the base moved, ns.
    pub restored_by_ns: Option<i64>,
}

/// The speaker's schedule for one stream.
#[derive(Debug)]
pub struct Schedule {
    buffer_ns: i64,
    base_ns: Option<i64>,
    behind: Option<Behind>,
    /// The base before the last resume and when that resume was (until a packet is on time against that base
    /// again, or the resume stands, [`CONFIRM_AFTER_NS`]).
    before_resume_ns: Option<(i64, i64)>,
    /// Times the speaker resumed on a moved schedule.
    pub resumes: u64,
    /// Times a resume was undone (the stream came back on its old schedule).
    pub restores: u64,
}

impl Schedule {
    /// A speaker that can play a packet up to `buffer_ns` after its place on the schedule.
    pub fn new(buffer_ns: i64) -> Self {
        Self {
            buffer_ns,
            base_ns: None,
            behind: None,
            before_resume_ns: None,
            resumes: 0,
            restores: 0,
        }
    }

    /// Forgets the stream (a new one: its frames restart from 0).
    pub fn restart(&mut self) {
        self.base_ns = None;
        self.behind = None;
        self.before_resume_ns = None;
    }

    /// The base in force (None before the first packet).
    pub fn base_ns(&self) -> Option<i64> {
        self.base_ns
    }

    /// A packet whose first frame is `first_frame` (frames since the stream began) arrived at `arrival_ns`.
    pub fn push(&mut self, first_frame: u64, arrival_ns: i64) -> Placed {
        let off = offset_ns(first_frame, arrival_ns);
        let mut placed = Placed {
            base_ns: off,
            behind: false,
            resumed_by_ns: None,
            restored_by_ns: None,
        };
        let Some(base) = self.base_ns else {
            self.base_ns = Some(off);
            return placed;
        };
        if self
            .before_resume_ns
            .is_some_and(|(_, at)| arrival_ns - at > CONFIRM_AFTER_NS)
        {
            self.before_resume_ns = None;
        }
        if let Some((old, _)) = self.before_resume_ns.filter(|&(old, _)| off - old <= self.buffer_ns) {
            // On time against the schedule before the resume: the stream had not moved.
            self.before_resume_ns = None;
            self.behind = None;
            self.restores += 1;
            let back = old.min(off);
            self.base_ns = Some(back);
            placed.base_ns = back;
            placed.restored_by_ns = Some(back - base);
            return placed;
        }
        if off - base <= self.buffer_ns {
            self.behind = None;
            let base = base.min(off);
            self.base_ns = Some(base);
            placed.base_ns = base;
            return placed;
        }
        let run = self.behind.get_or_insert(Behind {
            since_ns: arrival_ns,
            floor_ns: off,
        });
        run.floor_ns = run.floor_ns.min(off);
        if arrival_ns - run.since_ns < RESUME_AFTER_NS {
            placed.base_ns = base;
            placed.behind = true;
            return placed;
        }
        let new = run.floor_ns;
        self.behind = None;
        self.base_ns = Some(new);
        self.before_resume_ns.get_or_insert((base, arrival_ns));
        self.resumes += 1;
        placed.base_ns = new;
        placed.resumed_by_ns = Some(new - base);
        placed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;
    /// 960 frames = 20 ms per packet.
    const PKT: u64 = 960;

    /// Feeds packets `k` (first frame k × 960) arriving at `at(k)`; returns each placement.
    fn feed(s: &mut Schedule, ks: std::ops::Range<u64>, at: impl Fn(u64) -> i64) -> Vec<Placed> {
        ks.map(|k| s.push(k * PKT, at(k))).collect()
    }

    #[test]
    fn the_base_is_the_earliest_arrival_and_never_moves_later() {
        let mut s = Schedule::new(100 * MS);
        // Sent on a 20 ms pace from t = 1000 ms; the link adds 2–9 ms, once only 1 ms (packet 7).
        let link = |k: u64| if k == 7 { MS } else { 2 * MS + (k as i64 * 37 % 8) * MS };
        let p = feed(&mut s, 0..50, |k| 1000 * MS + k as i64 * 20 * MS + link(k));
        assert_eq!(p[0].base_ns, 1002 * MS);
        assert!(p[1..7].iter().all(|p| p.base_ns <= 1002 * MS));
        assert!(
            p[7..].iter().all(|p| p.base_ns == 1001 * MS && !p.behind),
            "{:?}",
            &p[7..]
        );
        // Ten seconds of a slower link (30 ms more): the schedule stays where it was.
        let p = feed(&mut s, 50..550, |k| 1000 * MS + k as i64 * 20 * MS + 32 * MS);
        assert!(p.iter().all(|p| p.base_ns == 1001 * MS && !p.behind));
        assert_eq!(s.resumes, 0);
    }

    #[test]
    fn a_held_packet_and_a_stalled_sender_do_not_move_the_schedule() {
        let mut s = Schedule::new(100 * MS);
        let on_time = |k: u64| 1000 * MS + k as i64 * 20 * MS + 3 * MS;
        feed(&mut s, 0..20, on_time);
        // The link holds packet 20 for 180 ms; 20–28 then arrive together, 29 on time.
        let held = |k: u64| {
            if k < 29 {
                on_time(20) + 180 * MS + (k - 20) as i64 * MS / 4
            } else {
                on_time(k)
            }
        };
        let p = feed(&mut s, 20..40, held);
        assert!(p[..2].iter().all(|p| p.behind), "{:?}", &p[..2]);
        assert!(
            p.iter().all(|p| p.base_ns == 1003 * MS && p.resumed_by_ns.is_none()),
            "{p:?}"
        );
        // The sender stalls 240 ms (no packet) and then sends what is due at once.
        let stall = |k: u64| if k < 52 { on_time(40) + 240 * MS } else { on_time(k) };
        let p = feed(&mut s, 40..70, stall);
        assert!(p[0].behind);
        assert!(
            p.iter().all(|p| p.base_ns == 1003 * MS && p.resumed_by_ns.is_none()),
            "{p:?}"
        );
        assert_eq!(s.resumes, 0);
    }

    #[test]
    fn a_moved_schedule_is_followed_after_300_ms_of_late_packets() {
        let mut s = Schedule::new(100 * MS);
        feed(&mut s, 0..100, |k| 1000 * MS + k as i64 * 20 * MS + 3 * MS);
        // The sender stalls and restarts its schedule 300 ms later; its packets keep their 20 ms pace, the link
        // adds 3–6 ms to each.
        let moved = |k: u64| 1300 * MS + k as i64 * 20 * MS + 3 * MS + (k as i64 % 4) * MS;
        let p = feed(&mut s, 100..160, moved);
        // Packets 100–114 (arrivals 0–283 ms into the run) are behind and keep the old base (they do not sound);
        // packet 115, 303 ms into the run, resumes on the run's floor, and the speaker stays there.
        assert!(
            p[..15].iter().all(|p| p.behind && p.base_ns == 1003 * MS),
            "{:?}",
            &p[..16]
        );
        assert_eq!(p[15].resumed_by_ns, Some(300 * MS), "{:?}", p[15]);
        assert!(
            p[15..].iter().all(|p| !p.behind && p.base_ns == 1303 * MS),
            "{:?}",
            &p[15..]
        );
        assert!(p.iter().all(|p| p.restored_by_ns.is_none()));
        assert_eq!((s.resumes, s.restores), (1, 0));
    }

    #[test]
    fn a_slow_stretch_of_the_link_that_looked_like_a_move_is_undone_exactly() {
        let mut s = Schedule::new(100 * MS);
        let on_time = |k: u64| 1000 * MS + k as i64 * 20 * MS + 3 * MS;
        feed(&mut s, 0..100, on_time);
        // For 500 ms the link delivers every packet 150 ms late (the speaker resumes on that), then on time
        // again, 2 ms slower than its floor.
        let slow = |k: u64| {
            if k < 125 {
                on_time(k) + 150 * MS
            } else {
                on_time(k) + 2 * MS
            }
        };
        let p = feed(&mut s, 100..140, slow);
        assert_eq!(p[15].resumed_by_ns, Some(150 * MS), "{:?}", p[15]);
        assert!(p[15..25].iter().all(|p| p.base_ns == 1153 * MS && !p.behind));
        // Back on time: the base is the old one exactly, not the first packet's 1005 ms.
        assert_eq!(p[25].restored_by_ns, Some(-150 * MS), "{:?}", p[25]);
        assert!(
            p[25..].iter().all(|p| p.base_ns == 1003 * MS && !p.behind),
            "{:?}",
            &p[25..]
        );
        assert_eq!((s.resumes, s.restores), (1, 1));
    }

    #[test]
    fn a_run_of_late_packets_broken_by_one_on_time_does_not_resume() {
        let mut s = Schedule::new(100 * MS);
        let on_time = |k: u64| 1000 * MS + k as i64 * 20 * MS + 3 * MS;
        feed(&mut s, 0..20, on_time);
        // A slow link: 150 ms behind, except every fourth packet (60 ms between on-time ones).
        let p = feed(&mut s, 20..80, |k| on_time(k) + if k % 4 == 0 { 0 } else { 150 * MS });
        assert!(p.iter().all(|p| p.base_ns == 1003 * MS && p.resumed_by_ns.is_none()));
        assert_eq!(p.iter().filter(|p| p.behind).count(), 45);
        // A new stream starts over.
        s.restart();
        assert_eq!(s.base_ns(), None);
        assert_eq!(s.push(0, 5000 * MS).base_ns, 5000 * MS);
    }

    #[test]
    fn a_resume_that_stood_for_5_s_is_not_undone_and_a_later_false_one_goes_back_to_its_own_base() {
        let mut s = Schedule::new(100 * MS);
        // The first packets came 1 s early (seen at a stream's start), then the stream runs 1 s later for good.
        feed(&mut s, 0..50, |k| 1000 * MS + k as i64 * 20 * MS);
        let p = feed(&mut s, 50..400, |k| 2000 * MS + k as i64 * 20 * MS + 3 * MS);
        assert_eq!(p[15].resumed_by_ns, Some(1003 * MS));
        // 6 s later the link is slow for 400 ms (the speaker resumes on it), then on time again.
        let p = feed(&mut s, 400..440, |k| {
            2003 * MS + k as i64 * 20 * MS + if k < 420 { 150 * MS } else { 0 }
        });
        assert_eq!(p[15].resumed_by_ns, Some(150 * MS), "{:?}", p[15]);
        assert_eq!(p[20].restored_by_ns, Some(-150 * MS), "{:?}", p[20]);
        assert!(p[20..].iter().all(|p| p.base_ns == 2003 * MS));
        assert_eq!((s.resumes, s.restores), (2, 1));
    }
}
