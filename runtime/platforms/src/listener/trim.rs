//! Giving the memory of closed connections back to the system.
//!
//! A connection costs about 40 KiB of heap while hyper reads its request head (measured with heaptrack:
//! a 16 KiB read buffer, an 8 KiB write buffer, 11 KiB of connection state, 2 KiB of task), and all of it
//! is freed when the connection ends. glibc's allocator keeps freed memory for reuse, though, and only
//! returns what sits at the top of a heap: after a thousand slow clients left, the process stayed about
//! 20 MiB above its baseline, and grew a little more with each such burst as the pieces spread over the
//! per-thread arenas. `malloc_trim(0)` hands every free page back (measured: back to the baseline), so the
//! listener calls it after a burst: when at least [`BURST`] connections have closed since the busiest
//! moment of the last [`EVERY`]. Only glibc needs this; elsewhere it does nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// Connections that must have closed before a trim is worth its cost (about one millisecond per hundred
/// MiB of heap, taken on a blocking thread).
pub(super) const BURST: usize = 256;

/// How often the open-connection count is looked at.
pub(super) const EVERY: Duration = Duration::from_secs(5);

/// The most connections open at once since the last look.
#[derive(Default)]
pub(super) struct Peak(AtomicUsize);

impl Peak {
    /// Notes that `open` connections are open now.
    pub(super) fn saw(&self, open: usize) {
        self.0.fetch_max(open, Ordering::Relaxed);
    }

    /// The peak since the last call, which starts the next period at `open`.
    fn take(&self, open: usize) -> usize {
        self.0.swap(open, Ordering::Relaxed)
    }
}

/// Whether a period whose peak was `peak` and which ends with `open` connections freed enough to trim.
fn worth_it(peak: usize, open: usize) -> bool {
    peak.saturating_sub(open) >= BURST
}

/// Watches the open-connection count until it is dropped (the listener stopped), trimming the heap after
/// each burst of closed connections.
pub(super) async fn after_bursts(open: watch::Receiver<usize>, peak: Arc<Peak>) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if open.has_changed().is_err() {
            return;
        }
        let now = *open.borrow();
        if worth_it(peak.take(now), now) {
            let _ = tokio::task::spawn_blocking(release_free_memory).await;
        }
    }
}

/// Returns the allocator's free pages to the system.
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists, under its own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_follows_a_burst_of_closed_connections_only() {
        let peak = Peak::default();
        for open in [10, 400, 300] {
            peak.saw(open);
        }
        assert!(!worth_it(peak.take(300), 300), "only 100 closed");
        // The next period starts at the count of the last look, not at zero.
        peak.saw(20);
        assert!(worth_it(peak.take(20), 20), "280 closed");
        assert!(!worth_it(peak.take(20), 20), "nothing closed since");
    }
}
