//! Telemetry export is background work: the threads that encode and send
//! spans and metrics run at a lower CPU priority than the invocations they
//! describe, so on a busy machine an invocation never waits for an export.
//!
//! The span export thread lowers its own priority when it starts, before it
//! builds its HTTP client (whose I/O thread inherits it); the SDK starts the
//! metrics thread itself, and the first export on it lowers it (`nice` +10
//! on Linux, where a thread id names one thread).
//! A thread that idles still gets its share of the CPU: exports lag behind
//! a saturated host (the bounded queue absorbs that) but are not starved.
//! On Lambda the per-invocation flush waits for the export anyway, with the
//! invocation already done, so the lower priority costs nothing there.

use std::cell::Cell;

/// How much nicer than the invocations an export thread is.
const EXPORT_NICE: i32 = 10;

thread_local! {
    static LOWERED: Cell<bool> = const { Cell::new(false) };
}

/// Lowers the calling (export) thread's priority, once per thread. Public for export threads this crate
/// does not start (an SDK exporter's, whose first export calls it, as the metrics exporter here does).
pub fn yield_to_invocations() {
    if LOWERED.with(|l| l.replace(true)) {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain syscalls on the calling thread's own id; a failure
        // (e.g. a sandbox forbidding it) only leaves the priority as it was.
        let rc = unsafe {
            let tid = libc::gettid();
            let current = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, current + EXPORT_NICE)
        };
        if rc != 0 {
            tracing::debug!("telemetry: cannot lower the export thread's priority");
        }
    }
}
