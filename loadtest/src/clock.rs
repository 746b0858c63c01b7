//! The load tester's clock: microseconds since the run started, shared by
//! publishers (who stamp packets) and subscribers (who receive them), so
//! latency needs no clock synchronisation: both ends live in this process.

use std::time::Instant;

/// The instant a run started.
#[derive(Debug, Clone, Copy)]
pub struct Epoch(Instant);

impl Epoch {
    /// An epoch starting now.
    pub fn start() -> Self {
        Self(Instant::now())
    }

    /// Microseconds since the epoch.
    pub fn now_us(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }

    /// Microseconds from the epoch to `at` (0 before it).
    pub fn us_at(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.0).as_micros() as u64
    }
}
