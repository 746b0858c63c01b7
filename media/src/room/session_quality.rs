//! A session's connection summed up as it goes, for the
//! `participant.quality_summary` event at its end: running sums of the
//! measures the observer takes every few seconds, and a minute's window of
//! them for the worst minute. Constant memory however long the session.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use switchboard_core::room::{ConnectionStats, QualitySummary, WorstMinute};
use switchboard_core::signal::ConnectionQuality;

/// The span the worst minute is taken over, in seconds.
const MINUTE_S: f64 = 60.0;

/// One measured interval.
#[derive(Debug, Clone, Copy)]
struct Interval {
    /// When it ended.
    at: DateTime<Utc>,
    secs: f64,
    stats: ConnectionStats,
}

/// A window of intervals and what they add up to.
#[derive(Debug, Default, Clone)]
struct Window {
    secs: f64,
    /// Packets lost per thousand, times seconds.
    loss: f64,
    /// Round trip in milliseconds, times seconds, over `rtt_secs` seconds.
    rtt: f64,
    rtt_secs: f64,
}

impl Window {
    fn add(&mut self, i: &Interval, sign: f64) {
        self.secs += sign * i.secs;
        self.loss += sign * f64::from(i.stats.loss_per_mille) * i.secs;
        if let Some(rtt) = i.stats.rtt_ms {
            self.rtt += sign * f64::from(rtt) * i.secs;
            self.rtt_secs += sign * i.secs;
        }
    }

    fn loss_per_mille(&self) -> u32 {
        average(self.loss, self.secs).unwrap_or(0)
    }

    fn rtt_ms(&self) -> Option<u32> {
        average(self.rtt, self.rtt_secs)
    }
}

/// `sum / secs`, rounded, when `secs` holds anything.
fn average(sum: f64, secs: f64) -> Option<u32> {
    (secs > 1e-9).then(|| (sum / secs).round().clamp(0.0, f64::from(u32::MAX)) as u32)
}

/// A session's measures so far.
#[derive(Debug, Default, Clone)]
pub struct SessionQuality {
    whole: Window,
    publish_bits: f64,
    subscribe_bits: f64,
    poor_secs: f64,
    /// The last minute's intervals, oldest first.
    recent: VecDeque<Interval>,
    minute: Window,
    worst: Option<WorstMinute>,
}

impl SessionQuality {
    /// Adds the interval of `secs` seconds that ended at `at`, measured as `stats`.
    pub fn add(&mut self, at: DateTime<Utc>, secs: f64, stats: ConnectionStats) {
        if !(secs > 0.0 && secs.is_finite()) {
            return;
        }
        let interval = Interval { at, secs, stats };
        self.whole.add(&interval, 1.0);
        self.publish_bits += stats.publish_bps as f64 * secs;
        self.subscribe_bits += stats.subscribe_bps as f64 * secs;
        if matches!(
            stats.quality,
            ConnectionQuality::Poor | ConnectionQuality::Lost
        ) {
            self.poor_secs += secs;
        }
        self.minute.add(&interval, 1.0);
        self.recent.push_back(interval);
        while self.minute.secs - self.recent.front().map_or(0.0, |i| i.secs) >= MINUTE_S - 1e-9 {
            let Some(old) = self.recent.pop_front() else {
                break;
            };
            self.minute.add(&old, -1.0);
        }
        // Until the session is a minute long, the whole of it is its worst
        // minute; from then on each full minute competes.
        let candidate = WorstMinute {
            started_at: self.recent.front().map_or(at, |first| {
                first.at - chrono::Duration::milliseconds((first.secs * 1000.0) as i64)
            }),
            loss_per_mille: self.minute.loss_per_mille(),
            rtt_ms: self.minute.rtt_ms(),
        };
        let key = |w: &WorstMinute| (w.loss_per_mille, w.rtt_ms.unwrap_or(0));
        let replace = match &self.worst {
            None => true,
            Some(_) if self.whole.secs <= MINUTE_S + 1e-9 => true,
            Some(worst) => key(&candidate) > key(worst),
        };
        if replace {
            self.worst = Some(candidate);
        }
    }

    /// The summary so far, if anything was measured.
    pub fn summary(&self) -> Option<QualitySummary> {
        let worst_minute = self.worst?;
        let secs = self.whole.secs;
        Some(QualitySummary {
            measured_s: secs.round() as u32,
            publish_bps: (self.publish_bits / secs).round() as u64,
            subscribe_bps: (self.subscribe_bits / secs).round() as u64,
            loss_per_mille: self.whole.loss_per_mille(),
            rtt_ms: self.whole.rtt_ms(),
            poor_s: self.poor_secs.round() as u32,
            worst_minute,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(loss_per_mille: u32, rtt_ms: Option<u32>) -> ConnectionStats {
        let quality = match loss_per_mille {
            0..=19 => ConnectionQuality::Excellent,
            20..=79 => ConnectionQuality::Good,
            _ => ConnectionQuality::Poor,
        };
        ConnectionStats {
            quality,
            publish_bps: 1_000_000,
            subscribe_bps: 500_000,
            loss_per_mille,
            rtt_ms,
        }
    }

    #[test]
    fn nothing_measured_is_no_summary() {
        assert_eq!(SessionQuality::default().summary(), None);
    }

    #[test]
    fn averages_time_poor_and_the_worst_minute_of_a_call() {
        let t0 = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let mut q = SessionQuality::default();
        // Five minutes in 3 s intervals: clean, except 90 s of 20% loss
        // from minute 2 to 3:30.
        for i in 1..=100 {
            let at = t0 + chrono::Duration::seconds(3 * i);
            let lossy = (41..=70).contains(&i);
            q.add(
                at,
                3.0,
                stats(
                    if lossy { 200 } else { 0 },
                    Some(if lossy { 300 } else { 40 }),
                ),
            );
        }
        let s = q.summary().unwrap();
        assert_eq!(s.measured_s, 300);
        assert_eq!(s.publish_bps, 1_000_000);
        assert_eq!(s.subscribe_bps, 500_000);
        assert_eq!(s.loss_per_mille, 60, "90 s of 200 over 300 s");
        assert_eq!(s.poor_s, 90);
        assert_eq!(s.rtt_ms, Some(118));
        // The worst minute lies wholly inside the lossy stretch.
        assert_eq!(s.worst_minute.loss_per_mille, 200);
        assert_eq!(s.worst_minute.rtt_ms, Some(300));
        let start = s.worst_minute.started_at;
        assert!(
            start >= t0 + chrono::Duration::seconds(120)
                && start <= t0 + chrono::Duration::seconds(150),
            "{start}"
        );
    }

    #[test]
    fn a_session_shorter_than_a_minute_is_its_own_worst_minute() {
        let t0 = Utc::now();
        let mut q = SessionQuality::default();
        q.add(t0 + chrono::Duration::seconds(3), 3.0, stats(0, None));
        q.add(t0 + chrono::Duration::seconds(6), 3.0, stats(100, None));
        let s = q.summary().unwrap();
        assert_eq!(s.measured_s, 6);
        assert_eq!(s.loss_per_mille, 50);
        assert_eq!(s.worst_minute.loss_per_mille, 50);
        assert_eq!(s.worst_minute.started_at, t0);
        assert_eq!(s.rtt_ms, None);
        assert_eq!(s.poor_s, 3);
    }

    #[test]
    fn intervals_that_measured_no_time_are_ignored() {
        let mut q = SessionQuality::default();
        q.add(Utc::now(), 0.0, stats(500, None));
        q.add(Utc::now(), f64::NAN, stats(500, None));
        assert_eq!(q.summary(), None);
    }
}
