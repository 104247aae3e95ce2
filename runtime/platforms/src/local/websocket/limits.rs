//! The gateway's own limits on WebSocket clients: open connections per client address, and each
//! connection's message rate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Open connections per client address, for one WebSocket function (`max_connections_per_ip`).
pub(super) struct PerIp {
    max: u32,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

/// One open connection counted against its address; released on drop, however the connection ends.
pub(super) struct IpSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

fn lock(m: &Mutex<HashMap<IpAddr, u32>>) -> MutexGuard<'_, HashMap<IpAddr, u32>> {
    // The map holds plain counters: a panic elsewhere cannot leave it half-updated.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl PerIp {
    /// At most `max` connections per address.
    pub(super) fn new(max: u32) -> PerIp {
        PerIp {
            max,
            open: Arc::default(),
        }
    }

    /// The limit.
    pub(super) fn max(&self) -> u32 {
        self.max
    }

    /// Counts one more connection from `ip`, or `None` when it already has `max`.
    pub(super) fn acquire(&self, ip: IpAddr) -> Option<IpSlot> {
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

/// A token bucket: `rate` messages per second with a burst of `rate` (`messages_per_second`).
pub(super) struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(super) fn new(rate: u32) -> TokenBucket {
        let rate = f64::from(rate.max(1));
        TokenBucket {
            rate,
            tokens: rate,
            last: Instant::now(),
        }
    }

    /// Takes one token at `now`; `false` when the bucket is empty (the client is too fast).
    pub(super) fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn per_ip_counts_open_connections_and_releases_on_drop() {
        let limit = PerIp::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = limit.acquire(a).unwrap();
        let _s2 = limit.acquire(a).unwrap();
        assert!(limit.acquire(a).is_none());
        assert!(limit.acquire(b).is_some(), "another address has its own count");
        drop(s1);
        assert!(limit.acquire(a).is_some());
    }

    #[test]
    fn token_bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(5);
        bucket.last = t0;
        assert!((0..5).all(|_| bucket.take(t0)), "a burst of 5");
        assert!(!bucket.take(t0));
        assert!(bucket.take(t0 + Duration::from_millis(200)), "one token per 200 ms");
        assert!(!bucket.take(t0 + Duration::from_millis(200)));
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        assert!((0..5).all(|_| bucket.take(later)));
        assert!(!bucket.take(later));
    }
}
