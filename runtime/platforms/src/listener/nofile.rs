//! The open-file limit (`RLIMIT_NOFILE`) the connection bound must fit under.
//!
//! Every connection holds a descriptor, and so do the rest of the process's needs (log and state files,
//! a guest's outbound connections, the runtime's own). When `accept` fails with `EMFILE` the server
//! cannot even refuse politely, so the listener raises the soft limit to the hard one at start (the
//! default soft limit, often 1024, is a relic of `select(2)`; the hard one is what the administrator
//! allows) and then keeps [`ListenerLimits::max_connections`](super::ListenerLimits) under it with room
//! to spare.

/// Descriptors kept for the rest of the process: a quarter of the limit, at least 64.
fn reserve(limit: u64) -> u64 {
    (limit / 4).max(64)
}

/// Raises the soft open-file limit to the hard one (once per process; later calls only read it) and
/// returns the soft limit now in force, or `None` where it cannot be read.
pub fn raise_open_file_limit() -> Option<u64> {
    static RAISED: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    *RAISED.get_or_init(raise)
}

#[cfg(unix)]
fn raise() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    // An unlimited hard limit is not a number of descriptors the kernel grants (`nr_open` caps it).
    const CAP: libc::rlim_t = 1 << 20;
    let target = if lim.rlim_max == libc::RLIM_INFINITY {
        CAP.max(lim.rlim_cur)
    } else {
        lim.rlim_max
    };
    if lim.rlim_cur < target {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = target;
        } else {
            tracing::debug!(
                "cannot raise the open-file limit from {} to {target}: {}",
                lim.rlim_cur,
                std::io::Error::last_os_error()
            );
        }
    }
    #[allow(clippy::unnecessary_cast)] // `rlim_t` is narrower than u64 on some 32-bit targets
    Some(lim.rlim_cur as u64)
}

#[cfg(not(unix))]
fn raise() -> Option<u64> {
    None
}

/// The connection bound that fits under `limit` open files: `wanted`, or less with [`reserve`]
/// descriptors left for the rest of the process.
pub(super) fn fit(wanted: u32, limit: Option<u64>) -> u32 {
    match limit {
        Some(limit) => {
            let room = limit.saturating_sub(reserve(limit)).max(1);
            u32::try_from(room).map_or(wanted, |room| wanted.min(room))
        }
        None => wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_keeps_a_quarter_of_the_descriptors_for_the_rest() {
        assert_eq!(fit(1024, Some(20_000)), 1024);
        assert_eq!(fit(1024, Some(1024)), 768);
        assert_eq!(fit(1024, Some(200)), 136);
        assert_eq!(fit(1024, Some(10)), 1, "never zero");
        assert_eq!(fit(1024, None), 1024);
        assert_eq!(fit(5, Some(u64::MAX)), 5);
    }

    #[cfg(unix)]
    #[test]
    fn raising_leaves_a_readable_limit() {
        let limit = raise_open_file_limit().expect("RLIMIT_NOFILE is readable on unix");
        assert!(limit >= 64, "{limit}");
        assert_eq!(raise_open_file_limit(), Some(limit), "raised once, then only read");
    }
}
