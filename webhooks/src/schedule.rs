//! When a failed delivery is tried again.

use chrono::{DateTime, Duration, Utc};

/// Delays between attempts; after the last one fails the delivery is failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

impl Default for RetrySchedule {
    /// About 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h: eight attempts over a day and a half.
    fn default() -> Self {
        let s = Duration::seconds;
        Self::new(vec![
            s(5),
            s(5 * 60),
            s(30 * 60),
            s(2 * 3600),
            s(5 * 3600),
            s(10 * 3600),
            s(10 * 3600),
        ])
    }
}

/// How far a delay may move either way, so retries of many deliveries spread out.
pub const JITTER: f64 = 0.1;

impl RetrySchedule {
    /// A schedule with these delays between attempts.
    pub fn new(delays: Vec<Duration>) -> Self {
        Self { delays }
    }

    /// The delays, before jitter.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// When to try again after the `attempts_made`-th attempt failed at `now`,
    /// or `None` when none are left. `jitter` in [-1, 1] moves the delay by up
    /// to [`JITTER`] of itself.
    pub fn next_attempt(
        &self,
        attempts_made: u32,
        now: DateTime<Utc>,
        jitter: f64,
    ) -> Option<DateTime<Utc>> {
        let index = usize::try_from(attempts_made.checked_sub(1)?).ok()?;
        let base = *self.delays.get(index)?;
        let factor = 1.0 + JITTER * jitter.clamp(-1.0, 1.0);
        let ms = (base.num_milliseconds() as f64 * factor).round() as i64;
        Some(now + Duration::milliseconds(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_spaces_eight_attempts() {
        let s = RetrySchedule::default();
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let expected = [5, 300, 1800, 7200, 18000, 36000, 36000];
        for (i, secs) in expected.iter().enumerate() {
            let next = s.next_attempt(i as u32 + 1, t0, 0.0).unwrap();
            assert_eq!((next - t0).num_seconds(), *secs, "after attempt {}", i + 1);
        }
        assert_eq!(s.next_attempt(8, t0, 0.0), None);
        assert_eq!(s.next_attempt(0, t0, 0.0), None);
    }

    #[test]
    fn jitter_stays_within_a_tenth() {
        let s = RetrySchedule::default();
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let early = s.next_attempt(2, t0, -1.0).unwrap();
        let late = s.next_attempt(2, t0, 1.0).unwrap();
        let wild = s.next_attempt(2, t0, 7.0).unwrap();
        assert_eq!((early - t0).num_seconds(), 270);
        assert_eq!((late - t0).num_seconds(), 330);
        assert_eq!(wild, late);
    }
}
