//! Where the `broadcast` output's SDUs go: one [`SduSink`] per BIS. The real one is a kernel ISO socket
//! ([`IsoSocket`]); tests put a simulated controller behind the same trait.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use super::broadcast::BigLink;

/// One BIS as the real-time side sees it: SDUs go in, and it may say how many of them still wait for the
/// controller. Object-safe; no method may block.
pub trait SduSink: Send {
    /// Sends one SDU without blocking; [`io::ErrorKind::WouldBlock`] when the queue is full.
    fn send(&mut self, sdu: &[u8]) -> io::Result<()>;
    /// SDUs written but not yet handed to the controller (waiting for its buffers), if the sink can tell.
    fn backlog_sdus(&mut self) -> Option<u32>;
}

/// SDUs waiting in the kernel, from the socket's send buffer size `sndbuf`, what `ioctl(TIOCOUTQ)` returned
/// (`outq`: free space, `sk_sndbuf − sk_wmem_alloc` in `bt_sock_ioctl`) and the bytes one SDU is charged
/// (`unit`, its skb's truesize). Rounded: every waiting SDU is charged the same.
pub fn sdus_waiting(sndbuf: i64, outq: i64, unit: i64) -> u32 {
    let queued = (sndbuf - outq).max(0);
    if unit <= 0 {
        return 0;
    }
    ((queued as f64 / unit as f64).round()) as u32
}

/// A BIS socket of an acquired BIG. The backlog is read only from a Bluetooth socket (`SO_DOMAIN` is
/// `AF_BLUETOOTH`): other sockets (tests, `bench`) use `TIOCOUTQ` differently.
pub struct IsoSocket {
    link: Arc<BigLink>,
    index: usize,
    /// `SO_SNDBUF` when the socket is a Bluetooth one; None: no backlog is reported.
    sndbuf: Option<i64>,
    /// Bytes one SDU is charged: the least positive change seen across a send, or the least positive queue.
    unit: Option<i64>,
    sends_measured: u32,
}

/// Sends measured (before and after) to learn what one SDU is charged.
const UNIT_LEARNING_SENDS: u32 = 64;

impl IsoSocket {
    /// BIS `index` of `link`.
    pub fn new(link: Arc<BigLink>, index: usize) -> Self {
        let fd = link.fds[index].as_raw_fd();
        let sndbuf = (getsockopt_int(fd, libc::SO_DOMAIN) == Some(libc::AF_BLUETOOTH))
            .then(|| getsockopt_int(fd, libc::SO_SNDBUF))
            .flatten()
            .map(i64::from);
        Self {
            link,
            index,
            sndbuf,
            unit: None,
            sends_measured: 0,
        }
    }

    fn fd(&self) -> RawFd {
        self.link.fds[self.index].as_raw_fd()
    }

    /// Bytes charged to the socket now (None: not a Bluetooth socket, or the ioctl failed).
    fn queued_bytes(&self) -> Option<(i64, i64)> {
        let sndbuf = self.sndbuf?;
        let mut outq: libc::c_int = 0;
        // SAFETY: TIOCOUTQ writes one int through the pointer, which is valid for the call.
        let rc = unsafe { libc::ioctl(self.fd(), libc::TIOCOUTQ, &mut outq) };
        (rc == 0).then_some((sndbuf, outq as i64))
    }

    fn learn(&mut self, bytes: i64) {
        if bytes > 0 {
            self.unit = Some(self.unit.map_or(bytes, |u| u.min(bytes)));
        }
    }
}

fn getsockopt_int(fd: RawFd, opt: libc::c_int) -> Option<libc::c_int> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let ptr = (&mut v as *mut libc::c_int).cast();
    // SAFETY: an int-sized option read into a valid int (`ptr`) with its length.
    let rc = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, opt, ptr, &mut len) };
    (rc == 0).then_some(v)
}

impl SduSink for IsoSocket {
    fn send(&mut self, sdu: &[u8]) -> io::Result<()> {
        let before = if self.sends_measured < UNIT_LEARNING_SENDS {
            self.queued_bytes()
        } else {
            None
        };
        super::paced_sender::send_nonblocking(self.fd(), sdu)?;
        if let (Some((_, out0)), Some((_, out1))) = (before, self.queued_bytes()) {
            // The skb is charged before send() returns and stays charged until the HCI scheduler runs (a
            // work item): the drop in free space is one SDU's charge, unless the scheduler ran in between.
            self.sends_measured += 1;
            self.learn(out0 - out1);
        }
        Ok(())
    }

    fn backlog_sdus(&mut self) -> Option<u32> {
        let (sndbuf, outq) = self.queued_bytes()?;
        let queued = (sndbuf - outq).max(0);
        self.learn(queued);
        Some(sdus_waiting(sndbuf, outq, self.unit.unwrap_or(i64::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn free_space_converts_to_waiting_sdus() {
        // 212992-byte send buffer, SDUs charged 1280 bytes each.
        assert_eq!(sdus_waiting(212_992, 212_992, 1_280), 0);
        assert_eq!(sdus_waiting(212_992, 212_992 - 3 * 1_280, 1_280), 3);
        // TIOCOUTQ clamps at 0 when the buffer is over-committed: at least what fits is waiting.
        assert_eq!(sdus_waiting(212_992, 0, 1_280), 166);
        assert_eq!(sdus_waiting(212_992, 212_000, 0), 0, "unknown charge");
    }

    #[test]
    fn a_socket_that_is_not_bluetooth_sends_but_reports_no_backlog() {
        let (a, b) = UnixDatagram::pair().unwrap();
        b.set_nonblocking(true).unwrap();
        let link = Arc::new(BigLink {
            fds: vec![OwnedFd::from(a)],
            write_mtu: vec![100],
        });
        let mut s = IsoSocket::new(link, 0);
        s.send(&[1, 2, 3]).unwrap();
        assert_eq!(s.backlog_sdus(), None);
        let mut buf = [0u8; 8];
        assert_eq!(b.recv(&mut buf).unwrap(), 3);
    }
}
