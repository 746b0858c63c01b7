//! How far ahead of an endpoint the delivery loop claims: enough waiting
//! deliveries to keep a fast endpoint busy between passes over the outbox,
//! and no more than a slow one answers well inside its lease.
//!
//! Each pass over the outbox costs a query and a claim, so an endpoint that
//! answers in a millisecond, held to a few claimed deliveries per slot, gets
//! only as many requests a second as there are passes. Its pace (successes
//! over the last whole second) sets how many may wait: a quarter of a
//! second's worth, never fewer than the floor the caller gives. A failure
//! starts the count again from the floor.

use chrono::{DateTime, Duration, Utc};

/// The share of a second of an endpoint's pace that may wait claimed.
const AHEAD: f64 = 0.25;
/// The most claimed deliveries one endpoint may have waiting. At that
/// depth an endpoint still answering at its last second's pace clears
/// them in [`AHEAD`] of a second, far inside the lease margin.
pub const MAX_WAITING: usize = 2_000;

/// One endpoint's recent successes.
#[derive(Debug, Clone)]
pub struct Pace {
    /// Start of the second being counted.
    window_start: DateTime<Utc>,
    /// Successes in it so far.
    in_window: usize,
    /// Successes in the last whole second.
    last_second: usize,
}

impl Pace {
    /// A pace that has seen nothing yet, counting from `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            window_start: now,
            in_window: 0,
            last_second: 0,
        }
    }

    /// Counts an attempt that ended at `now`.
    pub fn record(&mut self, succeeded: bool, now: DateTime<Utc>) {
        self.roll(now);
        if succeeded {
            self.in_window += 1;
        } else {
            *self = Self::new(now);
        }
    }

    /// How many claimed deliveries may wait at `now`, at least `floor`.
    pub fn waiting(&mut self, floor: usize, now: DateTime<Utc>) -> usize {
        self.roll(now);
        let ahead = (self.last_second as f64 * AHEAD) as usize;
        ahead.clamp(floor, MAX_WAITING.max(floor))
    }

    /// Whether nothing succeeded in the last second or since, at `now`.
    pub fn is_idle(&mut self, now: DateTime<Utc>) -> bool {
        self.roll(now);
        self.last_second == 0 && self.in_window == 0
    }

    /// Moves the window on to the second holding `now`.
    fn roll(&mut self, now: DateTime<Utc>) {
        let second = Duration::seconds(1);
        if now - self.window_start < second {
            return;
        }
        // A second with nothing in it between says the pace is gone.
        self.last_second = if now - self.window_start < second * 2 {
            self.in_window
        } else {
            0
        };
        self.in_window = 0;
        self.window_start = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::milliseconds(ms)
    }

    #[test]
    fn a_new_endpoint_waits_at_the_floor() {
        let mut pace = Pace::new(at(0));
        assert_eq!(pace.waiting(24, at(0)), 24);
        assert_eq!(pace.waiting(24, at(5_000)), 24);
    }

    #[test]
    fn a_fast_endpoint_may_have_a_quarter_second_waiting() {
        let mut pace = Pace::new(at(0));
        for i in 0..4_000 {
            pace.record(true, at(i / 4));
        }
        assert_eq!(pace.waiting(24, at(1_000)), 1_000);
        // Capped, however fast.
        for i in 0..20_000 {
            pace.record(true, at(1_000 + i / 20));
        }
        assert_eq!(pace.waiting(24, at(2_000)), MAX_WAITING);
    }

    #[test]
    fn a_failure_or_a_quiet_second_drops_back_to_the_floor() {
        let mut pace = Pace::new(at(0));
        for i in 0..4_000 {
            pace.record(true, at(i / 4));
        }
        pace.record(false, at(1_100));
        assert_eq!(pace.waiting(24, at(1_100)), 24);
        assert_eq!(pace.waiting(24, at(2_200)), 24);

        let mut pace = Pace::new(at(0));
        for i in 0..4_000 {
            pace.record(true, at(i / 4));
        }
        assert_eq!(pace.waiting(24, at(2_500)), 24);
    }
}
