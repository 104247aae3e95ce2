//! Open connections per client address: the HTTP listener's `max_connections_per_ip`, and each WebSocket
//! function's `websocket.max_connections_per_ip`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Open connections per client address, at most `max` each.
pub(crate) struct PerIp {
    max: u32,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

/// One open connection counted against its address; released on drop, however the connection ends (a
/// guard, so no exit path can leak a count).
pub(crate) struct IpSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

fn lock(m: &Mutex<HashMap<IpAddr, u32>>) -> MutexGuard<'_, HashMap<IpAddr, u32>> {
    // The map holds plain counters: a panic elsewhere cannot leave it half-updated.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl PerIp {
    /// At most `max` connections per address.
    pub(crate) fn new(max: u32) -> PerIp {
        PerIp {
            max,
            open: Arc::default(),
        }
    }

    /// The limit.
    pub(crate) fn max(&self) -> u32 {
        self.max
    }

    /// Counts one more connection from `ip`, or `None` when it already has `max`.
    pub(crate) fn acquire(&self, ip: IpAddr) -> Option<IpSlot> {
        let mut open = lock(&self.open);
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            ip,
            open: self.open.clone(),
        })
    }

    /// How many addresses have an open connection (the map never keeps an address with none).
    #[cfg(test)]
    fn addresses(&self) -> usize {
        lock(&self.open).len()
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_counts_open_connections_and_releases_on_drop() {
        let limit = PerIp::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = limit.acquire(a).unwrap();
        let s2 = limit.acquire(a).unwrap();
        assert!(limit.acquire(a).is_none());
        let s3 = limit.acquire(b).expect("another address has its own count");
        drop(s1);
        assert!(limit.acquire(a).is_some());
        drop((s2, s3));
        assert_eq!(limit.addresses(), 0, "an address with no connection is forgotten");
    }
}
