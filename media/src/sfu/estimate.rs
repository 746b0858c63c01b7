//! How much a subscriber's link carries, for choosing its layers: the
//! send-side estimate (GCC over transport-wide feedback), under a ceiling
//! that the subscriber's own loss reports set.
//!
//! The delay-based estimate alone keeps climbing while the node sends less
//! than it allows (tens of Mbit/s for a 1 Mbit/s stream), so when the link
//! shrinks it takes seconds to come down, and the video freezes meanwhile.
//! Loss says it sooner: a report of more than [`LOSS_BACKOFF`] lost sets a
//! ceiling at what got through (what was sent, less the loss), each further
//! one lowers it by half the loss (GCC's loss-based rule), and the ceiling
//! then rises by [`CEILING_GROWTH`] a second while the link loses next to
//! nothing, until the estimate is the lower again.

use std::time::Instant;

/// Reported loss above which the link is taken to carry less than it was sent.
pub const LOSS_BACKOFF: f64 = 0.10;
/// Reported loss below which the ceiling may rise.
pub const LOSS_CLEAR: f64 = 0.02;
/// How much the ceiling rises in a second without loss while well below
/// what got through when the link last lost: from the lowest simulcast
/// layer to the middle one in about five seconds.
pub const CEILING_GROWTH: f64 = 1.3;
/// How much it rises in a second from near that rate on: slowly, so a link
/// that has not grown is not flooded again as soon as it recovered.
pub const CEILING_GROWTH_NEAR: f64 = 1.05;
/// "Near": above this share of what got through at the last loss.
pub const NEAR: f64 = 0.85;

/// One subscriber connection's ceiling.
#[derive(Debug, Default, Clone)]
pub struct LossCeiling {
    ceiling: Option<f64>,
    /// What got through when the link last lost.
    limit: f64,
    at: Option<Instant>,
}

impl LossCeiling {
    /// The estimate to allocate by at `now`, given the send-side
    /// `estimate_bps` (0: none yet), what was sent since the last update
    /// (`sent_bps`) and the worst loss reported since then (`None`: no
    /// report came).
    pub fn update(
        &mut self,
        now: Instant,
        estimate_bps: u64,
        sent_bps: u64,
        loss: Option<f64>,
    ) -> u64 {
        let elapsed = self.at.replace(now).map_or(0.0, |at| {
            now.saturating_duration_since(at).as_secs_f64().min(1.0)
        });
        match loss {
            Some(loss) if loss > LOSS_BACKOFF && sent_bps > 0 => {
                // What got through; and a ceiling already set comes down
                // by half the loss each report, as GCC's does, since what
                // was sent (retransmissions too) lags the layers chosen.
                let delivered = sent_bps as f64 * (1.0 - loss);
                self.limit = delivered;
                self.ceiling = Some(
                    self.ceiling
                        .map_or(delivered, |c| c.min(delivered).min(c * (1.0 - loss / 2.0))),
                );
            }
            Some(loss) if loss > LOSS_CLEAR => {}
            _ => {
                if let Some(c) = &mut self.ceiling {
                    let growth = if *c < self.limit * NEAR {
                        CEILING_GROWTH
                    } else {
                        CEILING_GROWTH_NEAR
                    };
                    *c *= growth.powf(elapsed);
                }
            }
        }
        let Some(ceiling) = self.ceiling else {
            return estimate_bps;
        };
        if estimate_bps > 0 && ceiling >= estimate_bps as f64 {
            // The estimate is the lower again: the link is its business.
            self.ceiling = None;
            return estimate_bps;
        }
        (ceiling as u64).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn loss_caps_a_high_estimate_at_what_got_through() {
        let t0 = Instant::now();
        let mut c = LossCeiling::default();
        assert_eq!(c.update(t0, 29_000_000, 800_000, None), 29_000_000);
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(c.update(at(500), 29_000_000, 800_000, Some(0.5)), 400_000);
        // More loss at the same rate sent: lower by half of it.
        assert_eq!(c.update(at(1000), 29_000_000, 800_000, Some(0.2)), 360_000);
        // A little loss holds the ceiling; a lower estimate wins.
        assert_eq!(c.update(at(1500), 29_000_000, 600_000, Some(0.05)), 360_000);
        assert_eq!(c.update(at(2000), 300_000, 600_000, None), 300_000);
    }

    #[test]
    fn near_what_got_through_the_ceiling_rises_slowly_until_the_estimate_is_lower() {
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let mut c = LossCeiling::default();
        assert_eq!(c.update(t0, 10_000_000, 200_000, Some(0.5)), 100_000);
        let mut got = 0;
        for s in 1..=10 {
            got = c.update(at(s), 10_000_000, 100_000, None);
        }
        // 5% a second for ten seconds.
        assert!((160_000..=166_000).contains(&got), "{got}");
        // Once the estimate is lower, the ceiling is dropped for good.
        assert_eq!(c.update(at(11), 150_000, 100_000, None), 150_000);
        assert_eq!(c.update(at(12), 9_000_000, 100_000, None), 9_000_000);
    }

    #[test]
    fn far_below_what_got_through_the_ceiling_rises_fast() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut c = LossCeiling::default();
        assert_eq!(c.update(t0, 10_000_000, 1_000_000, Some(0.5)), 500_000);
        // 800 kbit/s got through at the next loss; the ceiling comes down by half of it.
        assert_eq!(c.update(at(500), 10_000_000, 1_000_000, Some(0.2)), 450_000);
        // Up to 85% of 800 kbit/s at 1.3x a second: under two seconds.
        let mut ms = 500;
        let mut got = 0;
        while got < 680_000 {
            ms += 250;
            got = c.update(at(ms), 10_000_000, 450_000, None);
        }
        assert!(ms <= 2_500, "{ms} ms");
        // Then 5% a second: 900 kbit/s is some five seconds away.
        let start = ms;
        while got < 900_000 {
            ms += 250;
            got = c.update(at(ms), 10_000_000, 450_000, None);
        }
        assert!(ms - start >= 4_500, "{} ms", ms - start);
    }

    #[test]
    fn loss_with_nothing_sent_or_no_estimate_yet() {
        let t0 = Instant::now();
        let mut c = LossCeiling::default();
        assert_eq!(
            c.update(t0, 2_000_000, 0, Some(0.5)),
            2_000_000,
            "nothing measured sent"
        );
        assert_eq!(
            c.update(t0, 0, 800_000, Some(0.5)),
            400_000,
            "no estimate yet"
        );
    }
}
