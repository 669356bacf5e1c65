//! Sending A2DP packets on time over a link that may stall.
//!
//! The transport socket's send buffer is capped at a few packets ([`SNDBUF_PACKETS`] write MTUs, as BlueALSA
//! does), so a stalled link cannot hide hundreds of milliseconds of audio in the kernel: what the link does not
//! take stays in our [`SendQueue`], where every packet still knows when it was due. When the socket is full
//! (`EAGAIN`) the packet waits and is tried again on the next tick; a packet that could not leave within
//! `stale_after_ns` of its due time is dropped (the speaker hears a gap) rather than sent later, because a
//! speaker plays what it receives from its buffer in order, so audio sent that late would be heard late and
//! shift everything after it off the group's timeline.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Send buffer asked for, in write MTUs. BlueALSA uses 3 (`ba-transport.c`: "tripled write MTU value, in order to
/// prevent tearing due to temporal heavy load"); PipeWire 4.
pub const SNDBUF_PACKETS: usize = 3;

/// Caps `fd`'s send buffer at `packets` × `write_mtu` bytes; returns what the kernel reports it set (Linux
/// doubles the request for its bookkeeping and enforces a minimum).
pub fn cap_send_buffer(fd: BorrowedFd<'_>, write_mtu: usize, packets: usize) -> io::Result<usize> {
    let want = libc::c_int::try_from(write_mtu.saturating_mul(packets)).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt/getsockopt on an fd we borrow, with a c_int option value of the right size.
    unsafe {
        if libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&want as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        let mut got: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        if libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&mut got as *mut libc::c_int).cast(),
            &mut len,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(got.max(0) as usize)
    }
}

/// What became of the packets that were due in one [`SendQueue::flush`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Handed to the socket.
    pub sent: u64,
    /// Dropped: more than `stale_after_ns` past their due time.
    pub dropped_stale: u64,
    /// The socket was full (`EAGAIN`): the rest waits for the next flush.
    pub link_busy: bool,
}

/// Encoded packets in send order, each with its first frame's output position.
#[derive(Debug)]
pub struct SendQueue {
    packets: VecDeque<(u64, Vec<u8>)>,
    early_ns: i64,
    stale_after_ns: i64,
}

impl SendQueue {
    /// Packets leave up to `early_ns` before their due time and are dropped once `stale_after_ns` past it.
    pub fn new(early_ns: i64, stale_after_ns: i64) -> Self {
        Self {
            packets: VecDeque::new(),
            early_ns,
            stale_after_ns,
        }
    }

    /// Queues a packet whose first frame is output frame `first_frame`.
    pub fn push(&mut self, first_frame: u64, packet: Vec<u8>) {
        self.packets.push_back((first_frame, packet));
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.packets.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }

    /// Sends the packets that are due, oldest first. `due_in_ns(first_frame)` says how far in the future a
    /// packet is due (negative: late; `None`: the clock has not started, so it is due now); `send` hands one
    /// packet to the socket. Stops at the first packet not yet due or when the socket is full; a send error other
    /// than `WouldBlock` is returned (the packet stays queued).
    pub fn flush(
        &mut self,
        due_in_ns: impl Fn(u64) -> Option<i64>,
        mut send: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<Flushed> {
        let mut out = Flushed::default();
        while let Some((first, packet)) = self.packets.front() {
            let due_in = due_in_ns(*first).unwrap_or(0);
            if due_in > self.early_ns {
                break;
            }
            if -due_in > self.stale_after_ns {
                self.packets.pop_front();
                out.dropped_stale += 1;
                continue;
            }
            match send(packet) {
                Ok(()) => {
                    self.packets.pop_front();
                    out.sent += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    out.link_busy = true;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    const MS: i64 = 1_000_000;

    /// A queue of packets 0, 1, 2, … (first frame = index), due at index × 10 ms after `start`.
    fn queue(n: u64) -> SendQueue {
        let mut q = SendQueue::new(2 * MS, 100 * MS);
        for i in 0..n {
            q.push(i, vec![i as u8]);
        }
        q
    }

    fn due_at(now_ms: i64) -> impl Fn(u64) -> Option<i64> {
        move |first| Some((first as i64 * 10 - now_ms) * MS)
    }

    #[test]
    fn sends_what_is_due_within_the_early_window_in_order() {
        let mut q = queue(5);
        let mut got = vec![];
        let f = q
            .flush(due_at(18), |p| {
                got.push(p[0]);
                Ok(())
            })
            .unwrap();
        // Due at 0, 10 and (within 2 ms early) 20; 30 and 40 wait.
        assert_eq!(got, [0, 1, 2]);
        assert_eq!(
            f,
            Flushed {
                sent: 3,
                dropped_stale: 0,
                link_busy: false
            }
        );
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn a_full_socket_keeps_the_packet_for_the_next_flush() {
        let mut q = queue(4);
        let accept = RefCell::new(1);
        let got = RefCell::new(vec![]);
        let send = |p: &[u8]| {
            let mut a = accept.borrow_mut();
            if *a == 0 {
                return Err(io::Error::from(io::ErrorKind::WouldBlock));
            }
            *a -= 1;
            got.borrow_mut().push(p[0]);
            Ok(())
        };
        let f = q.flush(due_at(35), send).unwrap();
        assert_eq!(
            f,
            Flushed {
                sent: 1,
                dropped_stale: 0,
                link_busy: true
            }
        );
        assert_eq!(q.len(), 3, "packets 1..3 wait, none lost");
        // The link takes packets again 50 ms later: the waiting ones go, still within the stale limit.
        *accept.borrow_mut() = 10;
        let f = q.flush(due_at(85), send).unwrap();
        assert_eq!(
            f,
            Flushed {
                sent: 3,
                dropped_stale: 0,
                link_busy: false
            }
        );
        assert_eq!(*got.borrow(), [0, 1, 2, 3]);
    }

    #[test]
    fn packets_past_the_stale_limit_are_dropped_not_sent_late() {
        let mut q = queue(20);
        let mut got = vec![];
        // The link stalled: at 150 ms, packets due before 50 ms are more than 100 ms late.
        let f = q
            .flush(due_at(150), |p| {
                got.push(p[0]);
                Ok(())
            })
            .unwrap();
        assert_eq!(f.dropped_stale, 5, "packets 0..=4 (due 0-40 ms) dropped");
        assert_eq!(got, (5..=15).collect::<Vec<u8>>(), "50 ms (100 ms late) still goes");
        assert_eq!(q.len(), 4);
    }

    #[test]
    fn before_the_clock_starts_everything_is_due_and_nothing_is_stale() {
        let mut q = queue(3);
        let f = q.flush(|_| None, |_| Ok(())).unwrap();
        assert_eq!(
            f,
            Flushed {
                sent: 3,
                dropped_stale: 0,
                link_busy: false
            }
        );
        assert!(q.is_empty());
    }

    #[test]
    fn a_send_error_is_returned_and_the_packet_kept() {
        let mut q = queue(2);
        let e = q
            .flush(due_at(20), |_| Err(io::Error::from_raw_os_error(libc::ENOTCONN)))
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTCONN));
        assert_eq!(q.len(), 2);
    }

    #[test]
    fn the_send_buffer_cap_bounds_what_a_socket_holds() {
        use std::os::fd::AsFd;
        // Nobody reads: a socket takes packets until its buffer is full, then says WouldBlock.
        fn fill(a: &std::os::unix::net::UnixDatagram, mtu: usize) -> usize {
            a.set_nonblocking(true).unwrap();
            let pkt = vec![0u8; mtu];
            let mut taken = 0;
            while a.send(&pkt).is_ok() {
                taken += 1;
                assert!(taken < 10_000);
            }
            assert_eq!(a.send(&pkt).unwrap_err().kind(), io::ErrorKind::WouldBlock);
            taken
        }
        let mtu = 895;
        let (a, _b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let uncapped = fill(&a, mtu);
        let (a, _b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let set = cap_send_buffer(a.as_fd(), mtu, SNDBUF_PACKETS).unwrap();
        assert!(set >= mtu * SNDBUF_PACKETS, "kernel reports {set}");
        let capped = fill(&a, mtu);
        assert!(
            (1..=2 * SNDBUF_PACKETS).contains(&capped) && capped < uncapped,
            "capped socket took {capped} packets, uncapped {uncapped}"
        );
    }
}
