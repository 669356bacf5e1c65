//! What the `file` and `pipe` outputs share: a writer thread of their own, fed from a fixed pool of buffers made
//! when the output opens and handed back after each write, so steady state allocates nothing and the real-time
//! path never waits for the disk or the reader.

use super::OutputError;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

/// A pool of `blocks` buffers made by `make`, all in the channel: the sender the writer thread returns them on
/// and the receiver the real-time path takes them from.
pub fn buffer_pool<T>(blocks: usize, make: impl Fn() -> T) -> (SyncSender<T>, Receiver<T>) {
    let (free_tx, free_rx) = sync_channel(blocks);
    for _ in 0..blocks {
        free_tx.try_send(make()).expect("the pool fits its channel");
    }
    (free_tx, free_rx)
}

/// Starts the writer thread of `path`, named `name`, running `run`; a failure to start is an error naming `path`.
pub fn spawn<R: Send + 'static>(
    name: String,
    path: &str,
    run: impl FnOnce() -> R + Send + 'static,
) -> Result<JoinHandle<R>, OutputError> {
    std::thread::Builder::new()
        .name(name)
        .spawn(run)
        .map_err(|e| OutputError::Io {
            what: format!("cannot start the writer for {path}"),
            error: e,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_holds_every_buffer_and_the_thread_runs() {
        let (free_tx, free_rx) = buffer_pool(3, || Vec::<u8>::with_capacity(8));
        assert_eq!(free_rx.try_iter().map(|b| b.capacity()).collect::<Vec<_>>(), [8, 8, 8]);
        assert!(free_tx.try_send(Vec::new()).is_ok(), "room again once taken");
        let t = spawn("writer test".into(), "test", || 7).unwrap();
        assert_eq!(t.join().unwrap(), 7);
    }
}
