//! Time points and the injected clock.
//!
//! [`LocalTime`] is a point on this machine's `CLOCK_MONOTONIC`; [`ServerTime`] a point on a source's clock (for
//! Snapcast, the server's `CLOCK_MONOTONIC`). Both are integer nanoseconds so arithmetic is exact; keeping them as
//! distinct types makes it impossible to mix them up. Code never reads the system clock directly: it is handed a
//! [`Clock`], so tests run in virtual time with [`ManualClock`].

use nix::sys::time::TimeSpec;
use nix::time::ClockId;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

macro_rules! time_point {
    ($name:ident, $what:literal) => {
        #[doc = $what]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name(i64);

        impl $name {
            /// The point `ns` nanoseconds after the clock's origin.
            pub const fn from_ns(ns: i64) -> Self {
                Self(ns)
            }
            /// Nanoseconds since the clock's origin.
            pub const fn as_ns(self) -> i64 {
                self.0
            }
            /// This point moved by a signed number of nanoseconds.
            pub const fn add_ns(self, ns: i64) -> Self {
                Self(self.0 + ns)
            }
            /// Signed nanoseconds from `earlier` to `self`.
            pub const fn ns_since(self, earlier: Self) -> i64 {
                self.0 - earlier.0
            }
            /// Seconds since the origin, for display.
            pub fn as_secs_f64(self) -> f64 {
                self.0 as f64 / 1e9
            }
        }
    };
}

time_point!(LocalTime, "A point on the local monotonic clock, in nanoseconds.");
time_point!(ServerTime, "A point on a source's (server's) clock, in nanoseconds.");

/// Something that tells the local monotonic time. Object-safe, shared across threads.
pub trait Clock: Send + Sync {
    /// The current local time.
    fn now(&self) -> LocalTime;
}

/// Nanoseconds on clock `id`. CLOCK_MONOTONIC and the thread CPU clock always exist on Linux, so a failure here
/// can only be a broken kernel: it reads as 0 rather than panicking in the real-time loop.
fn read_ns(id: ClockId) -> i64 {
    let ts = nix::time::clock_gettime(id).unwrap_or_else(|_| TimeSpec::new(0, 0));
    ts.tv_sec() * 1_000_000_000 + ts.tv_nsec()
}

/// The real clock: `CLOCK_MONOTONIC`, the same clock Snapcast stamps its messages with on Linux.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> LocalTime {
        LocalTime::from_ns(read_ns(ClockId::CLOCK_MONOTONIC))
    }
}

impl SystemClock {
    /// Makes [`SystemClock::sleep_until`] on the calling thread end on time: sets its timer slack to 1 ns. A
    /// thread at normal priority otherwise has the kernel's default slack of 50 µs, and every sleep ends up to that
    /// late: `bench snapcast` measured bluebridge's pipe output a constant +48 µs late from this alone. (Real-time
    /// threads have no slack; this matters where that priority is refused, and for helper threads.) Returns
    /// whether the kernel took it.
    pub fn precise_wakeups() -> bool {
        nix::sys::prctl::set_timerslack(1).is_ok()
    }

    /// Asks for SCHED_FIFO at `priority` on the calling thread. Allowed for root, or under systemd with
    /// `RestrictRealtime=no` and `LimitRTPRIO=` (the shipped unit); the error says why not. (libc: nix 0.29 has no
    /// sched_setscheduler/pthread_setschedparam.)
    pub fn realtime_priority(priority: i32) -> std::io::Result<()> {
        let param = libc::sched_param {
            sched_priority: priority,
        };
        // SAFETY: pthread_self() is always valid; param is a valid sched_param.
        match unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) } {
            0 => Ok(()),
            rc => Err(std::io::Error::from_raw_os_error(rc)),
        }
    }

    /// The calling thread's timer slack, ns.
    pub fn timer_slack_ns() -> i64 {
        nix::sys::prctl::get_timerslack().map_or(-1, i64::from)
    }

    /// The calling thread's CPU time, ns (the real-time loop's load and the benchmarks' CPU figures).
    pub fn thread_cpu_ns() -> i64 {
        read_ns(ClockId::CLOCK_THREAD_CPUTIME_ID)
    }

    /// Sleeps until the monotonic clock reads `t` (returns at once if it has passed).
    pub fn sleep_until(t: LocalTime) {
        let ts = TimeSpec::new(t.as_ns().div_euclid(1_000_000_000), t.as_ns().rem_euclid(1_000_000_000));
        let flags = nix::time::ClockNanosleepFlags::TIMER_ABSTIME;
        while let Err(nix::errno::Errno::EINTR) = nix::time::clock_nanosleep(ClockId::CLOCK_MONOTONIC, flags, &ts) {}
    }
}

#[cfg(test)]
mod system_clock_tests {
    use super::SystemClock;

    #[test]
    fn precise_wakeups_set_the_threads_timer_slack_to_1_ns() {
        std::thread::spawn(|| {
            assert!(SystemClock::precise_wakeups());
            assert_eq!(SystemClock::timer_slack_ns(), 1);
        })
        .join()
        .unwrap();
    }
}

/// The real-time priority (SCHED_FIFO) of the threads that put audio out on time: the engine's loop and an
/// output's writer thread. Low: above ordinary work, below the kernel's own real-time threads and audio servers.
pub const REALTIME_PRIORITY: i32 = 10;

/// A virtual clock that moves only when told to. Cloning shares the same time.
#[derive(Debug, Default, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: LocalTime) -> Self {
        Self(Arc::new(AtomicI64::new(start.as_ns())))
    }
    /// Moves the clock forward by `ns` nanoseconds.
    pub fn advance_ns(&self, ns: i64) {
        self.0.fetch_add(ns, Ordering::SeqCst);
    }
    /// Sets the clock to `t`.
    pub fn set(&self, t: LocalTime) {
        self.0.store(t.as_ns(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> LocalTime {
        LocalTime::from_ns(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_monotonic() {
        let c = SystemClock;
        let a = c.now();
        let b = c.now();
        assert!(b >= a);
        assert!(a.as_ns() > 0);
    }

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share() {
        let c = ManualClock::new(LocalTime::from_ns(5));
        let d = c.clone();
        assert_eq!(c.now(), LocalTime::from_ns(5));
        d.advance_ns(10);
        assert_eq!(c.now(), LocalTime::from_ns(15));
        c.set(LocalTime::from_ns(-3));
        assert_eq!(d.now().as_ns(), -3);
        assert_eq!(LocalTime::from_ns(10).ns_since(LocalTime::from_ns(4)), 6);
    }
}
