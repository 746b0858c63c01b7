//! Sign-in rate limiting: failures counted per key (the address tried, and
//! the client's IP) over a sliding window; a key with too many is refused
//! until the oldest ages out. Sans-I/O: time is passed in, so the tests run
//! on a made-up clock.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per key within [`WINDOW`].
pub const MAX_FAILURES: usize = 5;
/// How long a failure counts.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Keys tracked at most; beyond it the stalest are dropped (bounded memory
/// under a spray of addresses).
const MAX_KEYS: usize = 100_000;

/// Failed sign-ins by key.
#[derive(Debug, Default)]
pub struct Limiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Limiter {
    /// How long `key` must wait before trying again at `now`; `None` if it may try.
    pub fn wait(&self, key: &str, now: Instant) -> Option<Duration> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let times = map.get_mut(key)?;
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            times.pop_front();
        }
        if times.len() < MAX_FAILURES {
            return None;
        }
        let oldest = *times.front()?;
        Some(WINDOW.saturating_sub(now.saturating_duration_since(oldest)))
    }

    /// Counts a failure of `key` at `now`.
    pub fn failed(&self, key: &str, now: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
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
        if times.len() > MAX_FAILURES {
            times.pop_front();
        }
    }

    /// Takes back `key`'s failure counted at `at` (an attempt that succeeded).
    pub fn forgive(&self, key: &str, at: Instant) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(times) = map.get_mut(key) {
            if let Some(i) = times.iter().rposition(|t| *t == at) {
                times.remove(i);
            }
        }
    }

    /// Forgets `key`'s failures (it signed in).
    pub fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_refused_after_its_failures_until_they_age_out() {
        let l = Limiter::default();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES as u64 {
            assert_eq!(l.wait("ann@x", t0), None);
            l.failed("ann@x", t0 + Duration::from_secs(i));
        }
        let wait = l.wait("ann@x", t0 + Duration::from_secs(10)).unwrap();
        assert_eq!(wait, WINDOW - Duration::from_secs(10));
        assert_eq!(l.wait("bob@x", t0), None, "other keys are not affected");
        // The first failure ages out: one more try.
        assert_eq!(l.wait("ann@x", t0 + WINDOW), None);
        l.failed("ann@x", t0 + WINDOW);
        assert!(l.wait("ann@x", t0 + WINDOW).is_some());
        l.succeeded("ann@x");
        assert_eq!(l.wait("ann@x", t0 + WINDOW), None);
        // A failure counted ahead of a check that then succeeds is taken back.
        let t1 = t0 + WINDOW * 3;
        for i in 0..MAX_FAILURES as u32 - 1 {
            l.failed("ip:x", t1 + Duration::from_millis(u64::from(i)));
        }
        l.failed("ip:x", t1 + WINDOW / 2);
        assert!(l.wait("ip:x", t1 + WINDOW / 2).is_some());
        l.forgive("ip:x", t1 + WINDOW / 2);
        assert_eq!(l.wait("ip:x", t1 + WINDOW / 2), None);
    }
}
