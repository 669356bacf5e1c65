//! sd_notify: READY, STATUS and WATCHDOG for systemd, fed only while the real-time loop ticks.

use super::status::status_line;
use super::{HEALTHY_TICK_AGE_NS, NOTIFY_PERIOD, STATUS_LINE_PERIOD};
use crate::control::server::{self};
use crate::engine::EngineHandle;
use crate::timeline::{Clock, SystemClock};
use std::time::Instant;
use tokio::sync::watch;

/// The watchdog interval systemd asks for, µs: `WATCHDOG_USEC`, if `WATCHDOG_PID` is unset or this process (as
/// `sd_watchdog_enabled(3)` reads them).
fn watchdog_usec(usec: Option<String>, pid: Option<String>) -> Option<u64> {
    let usec = usec?.parse::<u64>().ok().filter(|u| *u > 0)?;
    match pid {
        Some(p) if p.parse::<u32>().ok() != Some(std::process::id()) => None,
        _ => Some(usec),
    }
}

/// Tells systemd: READY=1 after the first tick, STATUS= every few seconds, WATCHDOG=1 only while the loop ticks.
/// Without `NOTIFY_SOCKET` (not under systemd) every call is a no-op.
pub(super) async fn notifier(engine: EngineHandle, mut shutdown: watch::Receiver<bool>) {
    let watchdog = watchdog_usec(std::env::var("WATCHDOG_USEC").ok(), std::env::var("WATCHDOG_PID").ok()).is_some();
    let mut ready = false;
    let mut last_line: Option<Instant> = None;
    let mut ticker = tokio::time::interval(NOTIFY_PERIOD);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = server::stopped(&mut shutdown) => return,
        }
        let age = engine.heartbeat().age_ns(SystemClock.now());
        let healthy = age.is_some_and(|a| a < HEALTHY_TICK_AGE_NS);
        if !ready && healthy {
            ready = true;
            let line = status_line(&engine.status().players, age);
            let _ = sd_notify::notify(
                false,
                &[sd_notify::NotifyState::Ready, sd_notify::NotifyState::Status(&line)],
            );
            last_line = Some(Instant::now());
            tracing::info!("ready: {line}");
        }
        if watchdog && healthy {
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        } else if watchdog && ready {
            tracing::error!("real-time loop stalled ({age:?} ns since its last tick): not feeding the watchdog");
        }
        if ready && last_line.is_none_or(|t| t.elapsed() >= STATUS_LINE_PERIOD) {
            let line = status_line(&engine.status().players, age);
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Status(&line)]);
            last_line = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_on_when_systemd_asks_this_process() {
        let me = Some(std::process::id().to_string());
        assert_eq!(watchdog_usec(Some("2000000".into()), None), Some(2_000_000));
        assert_eq!(watchdog_usec(Some("2000000".into()), me), Some(2_000_000));
        assert_eq!(watchdog_usec(Some("2000000".into()), Some("1".into())), None);
        assert_eq!(watchdog_usec(Some("0".into()), None), None);
        assert_eq!(watchdog_usec(Some("x".into()), None), None);
        assert_eq!(watchdog_usec(None, None), None);
    }
}
