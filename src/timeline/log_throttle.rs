//! Log lines for events a peer can make happen as often as it likes (audio dropped, a flood of messages): at most one
//! per interval, each saying how many events it stands for. Pure: the caller passes the time, so it tests without
//! waiting.

use std::time::{Duration, Instant};

/// At most one line per `interval`; counts the events between lines.
#[derive(Debug, Clone)]
pub struct LogThrottle {
    interval: Duration,
    /// When the last line was due, and the event count then.
    last: Option<(Instant, u64)>,
}

impl LogThrottle {
    /// One line per `interval` at most.
    pub const fn new(interval: Duration) -> Self {
        Self { interval, last: None }
    }

    /// An event at `now`, `total` events so far (this one included). Some(the events since the last line, this one
    /// included) when a line is due now; None while the interval since the last line runs.
    pub fn due(&mut self, now: Instant, total: u64) -> Option<u64> {
        let since = match self.last {
            Some((at, _)) if now.duration_since(at) < self.interval => return None,
            Some((_, n)) => n,
            None => 0,
        };
        self.last = Some((now, total));
        Some(total - since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_counting_what_it_stands_for() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut t = LogThrottle::new(s);
        assert_eq!(t.due(t0, 1), Some(1), "the first event is logged");
        assert_eq!(t.due(t0 + s / 2, 2), None);
        assert_eq!(t.due(t0 + s / 2, 5), None);
        assert_eq!(
            t.due(t0 + s, 6),
            Some(5),
            "a second later: the five since the last line"
        );
        assert_eq!(t.due(t0 + s + s / 10, 7), None);
        assert_eq!(t.due(t0 + 3 * s, 8), Some(2));
    }
}
