//! Reconnect delays for the network sources (Snapcast, Sendspin): exponential backoff, pure arithmetic on
//! milliseconds, so a client's policy tests without a socket or a timer.

/// Delays between reconnects: `min_ms` doubling to `max_ms`, back to `min_ms` after a healthy connection.
#[derive(Debug, Clone)]
pub struct Backoff {
    min_ms: u64,
    max_ms: u64,
    next_ms: u64,
}

impl Backoff {
    /// A backoff starting at `min_ms` and capped at `max_ms` (a `max_ms` below `min_ms` is raised to it).
    pub fn new(min_ms: u64, max_ms: u64) -> Self {
        Self {
            min_ms,
            max_ms: max_ms.max(min_ms),
            next_ms: min_ms,
        }
    }

    /// The delay after a failed connection, in ms. `healthy`: the connection had been up long enough to start
    /// over from the minimum. `longest`: wait the longest delay this time (a refused login), still doubling the
    /// next one.
    pub fn next_delay_ms(&mut self, healthy: bool, longest: bool) -> u64 {
        if healthy {
            self.next_ms = self.min_ms;
        }
        let delay = if longest { self.max_ms } else { self.next_ms };
        self.next_ms = self.next_ms.saturating_mul(2).min(self.max_ms);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_restarts_when_healthy_and_waits_longest_when_asked() {
        let mut b = Backoff::new(100, 700);
        let delays: Vec<u64> = (0..5).map(|_| b.next_delay_ms(false, false)).collect();
        assert_eq!(delays, [100, 200, 400, 700, 700]);
        assert_eq!(b.next_delay_ms(true, false), 100);
        assert_eq!(b.next_delay_ms(false, true), 700);
        assert_eq!(
            b.next_delay_ms(false, false),
            400,
            "the longest wait still doubled the next one"
        );
    }

    #[test]
    fn a_cap_below_the_start_is_raised_to_it() {
        let mut b = Backoff::new(500, 10);
        assert_eq!(b.next_delay_ms(false, false), 500);
        assert_eq!(b.next_delay_ms(false, true), 500);
    }
}
