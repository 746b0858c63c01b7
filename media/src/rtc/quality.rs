//! Connection quality: each participant's media loss and round-trip time,
//! sampled from its peer connections' statistics, scored the way the SDK
//! reports it (`excellent`, `good`, `poor`, `lost`).

use switchboard_core::signal::ConnectionQuality as Quality;

/// One sample of a participant's connection, as cumulative counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
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

/// Scores a participant from its previous and current sample.
pub fn score(previous: &Sample, now: &Sample) -> Quality {
    if !now.connected {
        return Quality::Lost;
    }
    let received = now.received.saturating_sub(previous.received);
    let lost = now.lost.saturating_sub(previous.lost);
    let uplink_loss = if received + lost == 0 {
        0.0
    } else {
        lost as f64 / (received + lost) as f64
    };
    let loss = uplink_loss.max(now.downlink_loss);
    let rtt = now.rtt_s.unwrap_or(0.0);
    if loss < 0.02 && rtt < 0.3 {
        Quality::Excellent
    } else if loss < 0.08 && rtt < 0.6 {
        Quality::Good
    } else {
        Quality::Poor
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
