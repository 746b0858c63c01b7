//! Sign-in rate limiting: failures counted per key (the client, the
//! address tried from that client, and the address tried from anywhere)
//! over a sliding window. Past a key's free tries each further try waits
//! for a delay that doubles with every failure, up to a cap: guessing
//! slows to a crawl, yet nobody can lock a user out by failing in their
//! name, since the wait never exceeds the cap. Sans-I/O: time is passed in,
//! so the tests run on a made-up clock.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a failure counts.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures remembered per key: enough to reach any cap.
const REMEMBERED: usize = 64;
/// Keys tracked at most; beyond it the stalest are dropped (bounded memory
/// under a spray of addresses).
const MAX_KEYS: usize = 100_000;

/// How a kind of key backs off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Failures within [`WINDOW`] that cost nothing.
    pub free: usize,
    /// The wait after the first failure beyond them; it doubles with each one.
    pub first: Duration,
    /// The longest wait.
    pub cap: Duration,
}

impl Backoff {
    /// One client (an IPv4 address or an IPv6 /64), whatever it tries.
    pub const CLIENT: Backoff = Backoff {
        free: 4,
        first: Duration::from_secs(5),
        cap: Duration::from_secs(5 * 60),
    };
    /// One account from one client.
    pub const ACCOUNT_FROM_CLIENT: Backoff = Backoff {
        free: 4,
        first: Duration::from_secs(5),
        cap: Duration::from_secs(5 * 60),
    };
    /// One account from everywhere (guessing spread over many clients): a
    /// short cap, so failures in someone's name delay them, never lock them out.
    pub const ACCOUNT: Backoff = Backoff {
        free: 20,
        first: Duration::from_secs(1),
        cap: Duration::from_secs(30),
    };

    fn delay(&self, failures: usize) -> Option<Duration> {
        let over = failures.checked_sub(self.free + 1)?;
        let doublings = u32::try_from(over).unwrap_or(u32::MAX).min(30);
        Some(self.first.saturating_mul(1 << doublings).min(self.cap))
    }
}

/// Failed sign-ins by key.
#[derive(Debug, Default)]
pub struct Limiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Limiter {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        // Lists of instants: a panicked holder cannot leave one half-made.
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long `key` must wait before trying again at `now`; `None` if it may try.
    pub fn wait(&self, key: &str, backoff: Backoff, now: Instant) -> Option<Duration> {
        let mut map = self.lock();
        let times = map.get_mut(key)?;
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            times.pop_front();
        }
        let delay = backoff.delay(times.len())?;
        let last = *times.back()?;
        let waited = now.saturating_duration_since(last);
        (waited < delay).then(|| delay - waited)
    }

    /// Counts a failure of `key` at `now`.
    pub fn failed(&self, key: &str, now: Instant) {
        let mut map = self.lock();
        if map.len() >= MAX_KEYS && !map.contains_key(key) {
            map.retain(|_, t| {
                t.back()
                    .is_some_and(|t| now.saturating_duration_since(*t) < WINDOW)
            });
            if map.len() >= MAX_KEYS {
                // Still full of live keys: drop the tenth whose last failure is oldest.
                let mut last: Vec<Instant> =
                    map.values().filter_map(|t| t.back().copied()).collect();
                last.sort_unstable();
                if let Some(&cut) = last.get(MAX_KEYS / 10) {
                    map.retain(|_, t| t.back().is_some_and(|t| *t > cut));
                }
            }
        }
        let times = map.entry(key.to_owned()).or_default();
        times.push_back(now);
        if times.len() > REMEMBERED {
            times.pop_front();
        }
    }

    /// Takes back `key`'s failure counted at `at` (an attempt that succeeded).
    pub fn forgive(&self, key: &str, at: Instant) {
        if let Some(times) = self.lock().get_mut(key) {
            if let Some(i) = times.iter().rposition(|t| *t == at) {
                times.remove(i);
            }
        }
    }

    /// Forgets `key`'s failures (it signed in).
    pub fn succeeded(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        free: 3,
        first: Duration::from_secs(1),
        cap: Duration::from_secs(8),
    };

    #[test]
    fn free_tries_then_a_doubling_wait_up_to_the_cap() {
        let l = Limiter::default();
        let t0 = Instant::now();
        for i in 0..3 {
            assert_eq!(l.wait("k", B, t0), None);
            l.failed("k", t0 + Duration::from_millis(i));
        }
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // The fourth failure is the first beyond the free ones: 1 s, then 2, 4, 8, 8.
        let mut now = at(2);
        for expected in [1, 2, 4, 8, 8] {
            l.failed("k", now);
            assert_eq!(l.wait("k", B, now), Some(Duration::from_secs(expected)));
            now += Duration::from_secs(expected);
            assert_eq!(l.wait("k", B, now), None, "the wait is over");
        }
        assert_eq!(l.wait("other", B, now), None, "other keys are not affected");
        // Failures age out of the window: back to free tries.
        assert_eq!(l.wait("k", B, now + WINDOW), None);
        l.failed("k", now + WINDOW);
        assert_eq!(l.wait("k", B, now + WINDOW), None);
    }

    #[test]
    fn a_success_forgets_or_takes_back() {
        let l = Limiter::default();
        let t0 = Instant::now();
        for i in 0..5 {
            l.failed("k", t0 + Duration::from_millis(i));
        }
        assert!(l.wait("k", B, t0 + Duration::from_millis(5)).is_some());
        l.forgive("k", t0 + Duration::from_millis(4));
        l.forgive("k", t0 + Duration::from_millis(3));
        assert_eq!(l.wait("k", B, t0 + Duration::from_millis(5)), None);
        l.failed("k", t0);
        l.succeeded("k");
        assert_eq!(l.wait("k", B, t0), None);
    }

    #[test]
    fn the_wait_never_exceeds_the_cap_however_many_fail() {
        let l = Limiter::default();
        let t0 = Instant::now();
        for i in 0..10_000 {
            l.failed("k", t0 + Duration::from_micros(i));
        }
        let now = t0 + Duration::from_millis(10);
        let wait = l.wait("k", Backoff::ACCOUNT, now).unwrap();
        assert!(wait <= Backoff::ACCOUNT.cap, "{wait:?}");
        assert_eq!(
            l.wait("k", Backoff::ACCOUNT, now + Backoff::ACCOUNT.cap),
            None
        );
    }
}
