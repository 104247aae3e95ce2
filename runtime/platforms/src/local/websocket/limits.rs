//! The gateway's own limit on each WebSocket connection's message rate. (Open connections per client
//! address are counted by [`crate::listener::PerIp`], which the HTTP listener uses too.)

use std::time::Instant;

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
