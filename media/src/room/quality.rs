//! Connection quality: each participant's media loss, round-trip time and
//! bitrates, sampled from its peer connections' statistics, scored the way
//! the SDK reports it (`excellent`, `good`, `poor`, `lost`).

use std::time::Instant;

use switchboard_core::room::ConnectionStats;
use switchboard_core::signal::ConnectionQuality as Quality;

/// One sample of a participant's connection, as cumulative counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// When it was taken.
    pub at: Option<Instant>,
    /// Media bytes received from it.
    pub bytes_in: u64,
    /// Media bytes sent to it.
    pub bytes_out: u64,
    /// Whether any of its peer connections is connected.
    pub connected: bool,
    /// Packets received from it, over all published tracks.
    pub received: u64,
    /// Packets it sent that never arrived.
    pub lost: u64,
    /// Loss the participant reports on what it receives, 0.0 to 1.0 (latest RTCP).
    pub downlink_loss: f64,
    /// Round trip in seconds, if measured.
    pub rtt_s: Option<f64>,
}

/// Loss between two samples, 0.0 to 1.0: the worse of what the participant
/// sent us and what it reports of what we sent it.
fn loss(previous: &Sample, now: &Sample) -> f64 {
    let received = now.received.saturating_sub(previous.received);
    let lost = now.lost.saturating_sub(previous.lost);
    let uplink_loss = if received + lost == 0 {
        0.0
    } else {
        lost as f64 / (received + lost) as f64
    };
    uplink_loss.max(now.downlink_loss)
}

/// Scores a participant from its previous and current sample.
pub fn score(previous: &Sample, now: &Sample) -> Quality {
    if !now.connected {
        return Quality::Lost;
    }
    let loss = loss(previous, now);
    let rtt = now.rtt_s.unwrap_or(0.0);
    if loss < 0.02 && rtt < 0.3 {
        Quality::Excellent
    } else if loss < 0.08 && rtt < 0.6 {
        Quality::Good
    } else {
        Quality::Poor
    }
}

/// The connection between two samples: quality, bitrates, loss and round trip.
pub fn measure(previous: &Sample, now: &Sample) -> ConnectionStats {
    let secs = match (previous.at, now.at) {
        (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    let bps = |bytes: u64| {
        if secs > 0.0 {
            (bytes as f64 * 8.0 / secs).round() as u64
        } else {
            0
        }
    };
    ConnectionStats {
        quality: score(previous, now),
        publish_bps: bps(now.bytes_in.saturating_sub(previous.bytes_in)),
        subscribe_bps: bps(now.bytes_out.saturating_sub(previous.bytes_out)),
        loss_per_mille: (loss(previous, now) * 1000.0).round().clamp(0.0, 1000.0) as u32,
        rtt_ms: now
            .rtt_s
            .map(|s| (s * 1000.0).round().clamp(0.0, u32::MAX as f64) as u32),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(received: u64, lost: u64) -> Sample {
        Sample {
            connected: true,
            received,
            lost,
            ..Sample::default()
        }
    }

    #[test]
    fn loss_in_the_interval_decides() {
        let start = sample(10_000, 5_000);
        // Old loss does not count; 1% in this interval is excellent.
        assert_eq!(score(&start, &sample(10_990, 5_010)), Quality::Excellent);
        assert_eq!(score(&start, &sample(10_950, 5_050)), Quality::Good);
        assert_eq!(score(&start, &sample(10_800, 5_200)), Quality::Poor);
    }

    #[test]
    fn bitrates_are_bytes_between_samples_over_the_time_between_them() {
        let t0 = Instant::now();
        let before = Sample {
            at: Some(t0),
            bytes_in: 1_000_000,
            bytes_out: 0,
            ..sample(1000, 0)
        };
        let after = Sample {
            at: Some(t0 + std::time::Duration::from_secs(2)),
            bytes_in: 1_250_000,
            bytes_out: 500_000,
            rtt_s: Some(0.0424),
            ..sample(1980, 20)
        };
        let m = measure(&before, &after);
        assert_eq!(m.publish_bps, 1_000_000);
        assert_eq!(m.subscribe_bps, 2_000_000);
        assert_eq!(m.loss_per_mille, 20);
        assert_eq!(m.rtt_ms, Some(42));
        assert_eq!(m.quality, Quality::Good);
        // The first sample has nothing to compare with: no rate, not a huge one.
        assert_eq!(measure(&Sample::default(), &after).publish_bps, 0);
    }

    #[test]
    fn downlink_loss_rtt_and_disconnection_count_too() {
        let s = Sample::default();
        let mut now = sample(0, 0);
        assert_eq!(score(&s, &now), Quality::Excellent);
        now.downlink_loss = 0.05;
        assert_eq!(score(&s, &now), Quality::Good);
        now.downlink_loss = 0.0;
        now.rtt_s = Some(0.9);
        assert_eq!(score(&s, &now), Quality::Poor);
        now.connected = false;
        assert_eq!(score(&s, &now), Quality::Lost);
    }
}
