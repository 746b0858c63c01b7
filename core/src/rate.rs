//! Token buckets: how often something may happen, with room for a burst.
//!
//! Time is passed in, so a limiter tests on a made-up clock and the caller
//! decides which clock it follows.

use std::time::Instant;

/// Up to `burst` tokens, refilled continuously at `per_second`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self {
            per_second,
            burst,
            tokens: burst,
            last: None,
        }
    }

    /// Adds what accrued since the last call. Time never runs back: callers
    /// on several threads may pass slightly older instants.
    pub fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.per_second).min(self.burst);
        }
        self.last = Some(self.last.map_or(now, |l| l.max(now)));
    }

    /// Whether `n` tokens are there now (call [`Self::refill`] first).
    pub fn has(&self, n: f64) -> bool {
        self.tokens >= n
    }

    /// The tokens there now (call [`Self::refill`] first).
    pub fn available(&self) -> f64 {
        self.tokens
    }

    /// Takes `n` tokens, which [`Self::has`] said are there.
    pub fn take(&mut self, n: f64) {
        self.tokens -= n;
    }

    /// Refills, then takes `n` tokens if they are there.
    pub fn try_take(&mut self, now: Instant, n: f64) -> bool {
        self.refill(now);
        let ok = self.has(n);
        if ok {
            self.take(n);
        }
        ok
    }

    /// How long until `n` tokens are there, refilled as of the last call.
    pub fn wait_for(&self, n: f64) -> std::time::Duration {
        if self.tokens >= n || self.per_second <= 0.0 {
            return std::time::Duration::ZERO;
        }
        std::time::Duration::from_secs_f64((n - self.tokens) / self.per_second)
    }
}

#[cfg(test)]
mod tests {
    use super::TokenBucket;
    use std::time::{Duration, Instant};

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2.0, 5.0);
        assert!((0..5).all(|_| b.try_take(t0, 1.0)));
        assert!(!b.try_take(t0, 1.0), "the burst is spent");
        assert_eq!(b.wait_for(1.0), Duration::from_millis(500));
        assert!(!b.try_take(t0 + Duration::from_millis(400), 1.0));
        assert!(b.try_take(t0 + Duration::from_millis(500), 1.0));
        // A long pause refills no more than the burst.
        let later = t0 + Duration::from_secs(60);
        assert!((0..5).all(|_| b.try_take(later, 1.0)));
        assert!(!b.try_take(later, 1.0));
    }

    #[test]
    fn an_older_instant_neither_refills_nor_rewinds() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1.0, 1.0);
        assert!(b.try_take(t0 + Duration::from_secs(10), 1.0));
        assert!(!b.try_take(t0, 1.0));
        assert!(!b.try_take(t0 + Duration::from_millis(10_500), 1.0));
        assert!(b.try_take(t0 + Duration::from_secs(11), 1.0));
    }
}
