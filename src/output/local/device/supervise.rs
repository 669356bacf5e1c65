//! Keeping a device open: a thread that watches a running stream, drops it when it fails and reopens the device
//! (with backoff) until told to stop, handing each new link to the engine.

use super::{DeviceError, DeviceName};

/// How often [`supervise`] looks at a running stream (whether it failed, whether to stop).
const SUPERVISE_POLL: std::time::Duration = std::time::Duration::from_millis(50);
/// First and largest wait between attempts to reopen a vanished device.
const REOPEN_MIN: std::time::Duration = std::time::Duration::from_millis(500);
const REOPEN_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// Tells whether a running stream failed (its error callback set a flag).
pub type FailedCheck = Box<dyn Fn() -> bool + Send>;

/// Keeps device `name` open for `what` (an output or the capture source, for the log): watches the running stream
/// (`current`), drops it when it fails, and reopens it with `open` (backing off from 0.5 to 5 s) until `stop`;
/// each new link goes to the engine through `links`. Runs on a thread of its own, which owns the streams.
pub fn supervise<L>(
    what: &str,
    name: &DeviceName,
    mut current: Option<(cpal::Stream, FailedCheck)>,
    mut open: impl FnMut() -> Result<(cpal::Stream, L, FailedCheck), DeviceError>,
    links: std::sync::mpsc::SyncSender<L>,
    stop: &std::sync::atomic::AtomicBool,
) {
    use std::sync::atomic::Ordering;
    let mut backoff = REOPEN_MIN;
    let mut last_error = String::new();
    while !stop.load(Ordering::Relaxed) {
        if let Some((_, failed)) = &current {
            if failed() {
                tracing::warn!("{what}: sound device {name} failed or vanished; waiting for it to return");
                current = None; // drops (closes) the stream
                continue;
            }
            std::thread::sleep(SUPERVISE_POLL);
            continue;
        }
        match open() {
            Ok((stream, link, failed)) => {
                tracing::info!("{what}: sound device {name} is back");
                if links.send(link).is_err() {
                    return;
                }
                current = Some((stream, failed));
                backoff = REOPEN_MIN;
                last_error.clear();
            }
            Err(e) => {
                let msg = e.to_string();
                if msg != last_error {
                    tracing::info!("{what}: sound device not usable yet: {msg}");
                    last_error = msg;
                }
                let until = std::time::Instant::now() + backoff;
                while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(SUPERVISE_POLL);
                }
                backoff = (backoff * 2).min(REOPEN_MAX);
            }
        }
    }
}
