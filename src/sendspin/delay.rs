//! The `output_delay_ms` a player reports, from bluebridge's own delay accounting of its output.
//!
//! The spec (`roles/player/v1.md`, "Audio Chunks"): a client translates a chunk's timestamp to its clock and
//! subtracts its `output_delay_ms`; the server (aiosendspin `server/connection.py`, the late-drop check
//! `now − (timestamp − output_delay)`, and `server/push_stream.py`'s lead, `lead + output_delay`) only uses the
//! number to send that much earlier; it never moves the timestamps. bluebridge's player already hands each frame
//! to its output [total delay](crate::timeline::delay::OutputDelay::total_ns) before its play time, so reporting
//! that total is what makes the server's send deadline match the player's: the subtraction the spec asks for is
//! the one the player does, counted once.
//!
//! The total moves by a fraction of a millisecond every block (queue and transport fill), so the reported value is
//! debounced: a new value is reported once it has differed from the last report by at least [`REPORT_STEP_MS`]
//! for [`REPORT_SETTLE`] observations in a row (the spec asks clients to debounce timing parameters and report
//! sustained shifts). Pure: the caller observes once per status period and sends what this returns.

/// The spec's range for `output_delay_ms`.
pub const MAX_OUTPUT_DELAY_MS: u32 = 5_000;
/// A change smaller than this is not reported, ms.
pub const REPORT_STEP_MS: u32 = 2;
/// Observations in a row a change must last before it is reported.
pub const REPORT_SETTLE: u32 = 3;

/// `total_ns` as the spec's `output_delay_ms`: rounded, clamped to 0…[`MAX_OUTPUT_DELAY_MS`] (a negative total,
/// possible with a negative manual offset, reports 0: the spec has no negative delays).
pub fn output_delay_ms(total_ns: i64) -> u32 {
    (total_ns.max(0).saturating_add(500_000) / 1_000_000).min(MAX_OUTPUT_DELAY_MS as i64) as u32
}

/// Debounces the reported output delay.
#[derive(Debug, Clone, Default)]
pub struct DelayReporter {
    reported: Option<u32>,
    pending: Option<(u32, u32)>,
}

impl DelayReporter {
    /// The value last returned by [`DelayReporter::observe`].
    pub fn reported(&self) -> Option<u32> {
        self.reported
    }

    /// One observation of the output's total delay; returns the value to report when the report changes (the
    /// first observation is reported at once).
    pub fn observe(&mut self, total_ns: i64) -> Option<u32> {
        let ms = output_delay_ms(total_ns);
        let Some(last) = self.reported else {
            self.reported = Some(ms);
            return Some(ms);
        };
        if ms.abs_diff(last) < REPORT_STEP_MS {
            self.pending = None;
            return None;
        }
        let seen = match self.pending {
            Some((_, n)) => n + 1,
            None => 1,
        };
        if seen >= REPORT_SETTLE {
            self.pending = None;
            self.reported = Some(ms);
            return Some(ms);
        }
        self.pending = Some((ms, seen));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_is_rounded_and_clamped_to_the_specs_range() {
        assert_eq!(output_delay_ms(0), 0);
        assert_eq!(output_delay_ms(-30_000_000), 0);
        assert_eq!(output_delay_ms(12_499_999), 12);
        assert_eq!(output_delay_ms(12_500_000), 13);
        assert_eq!(output_delay_ms(9_000_000_000), 5_000);
        assert_eq!(output_delay_ms(i64::MAX), 5_000);
    }

    #[test]
    fn the_first_value_is_reported_and_later_ones_once_they_last() {
        let ms = 1_000_000;
        let mut r = DelayReporter::default();
        assert_eq!(r.observe(150 * ms), Some(150));
        // Jitter under the step: nothing.
        assert_eq!(r.observe(151 * ms), None);
        assert_eq!(r.observe(149 * ms + 600_000), None);
        // A blip that does not last: nothing.
        assert_eq!(r.observe(180 * ms), None);
        assert_eq!(r.observe(150 * ms), None);
        assert_eq!(r.observe(180 * ms), None);
        assert_eq!(r.observe(180 * ms), None);
        // A sustained change: reported on its third observation in a row.
        assert_eq!(r.observe(181 * ms), Some(181));
        assert_eq!(r.reported(), Some(181));
        assert_eq!(r.observe(181 * ms), None);
    }
}
