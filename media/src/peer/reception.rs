//! What a client reports of the media it receives from the node: the RTCP
//! reception report blocks (RFC 3550 6.4) of its receiver and sender reports,
//! kept per stream. webrtc-rs's statistics do not read them (its remote
//! inbound loss stays 0), so the node keeps the loss it is told itself.

use std::time::{Duration, Instant};

use rtc::rtcp::reception_report::ReceptionReport;

/// Most streams a connection's reports are kept for: a client can name any
/// SSRC, and blocks about streams beyond these are ignored.
const MAX_STREAMS: usize = 64;
/// How long a stream's last report counts: a stream the client stopped
/// receiving (an unsubscribed track) is reported on no more, and its last
/// loss must not stand for the connection for ever. Clients report every
/// few seconds (browsers every 1 s for video, 5 s or so for audio).
const STALE: Duration = Duration::from_secs(12);

/// The latest fraction lost each stream's reports gave, out of 256, and when.
#[derive(Debug, Default, Clone)]
pub struct ReportedLoss {
    latest: Vec<(u32, u8, Instant)>,
}

impl ReportedLoss {
    /// Notes the blocks of one report, received at `now`.
    pub fn note(&mut self, now: Instant, blocks: &[ReceptionReport]) {
        for block in blocks {
            if let Some(entry) = self.latest.iter_mut().find(|e| e.0 == block.ssrc) {
                *entry = (block.ssrc, block.fraction_lost, now);
                continue;
            }
            if self.latest.len() >= MAX_STREAMS {
                self.latest
                    .retain(|e| now.saturating_duration_since(e.2) < STALE);
            }
            if self.latest.len() < MAX_STREAMS {
                self.latest.push((block.ssrc, block.fraction_lost, now));
            }
        }
    }

    /// The worst loss among the streams reported on recently, 0.0 to 1.0
    /// (0 when none was).
    pub fn worst(&self, now: Instant) -> f64 {
        self.worst_of(|at| now.saturating_duration_since(at) < STALE)
            .unwrap_or(0.0)
    }

    /// The worst loss among the reports received after `since`, if any was.
    pub fn worst_since(&self, since: Instant) -> Option<f64> {
        self.worst_of(|at| at > since)
    }

    /// The worst loss among the reports received at an instant `keep` accepts.
    fn worst_of(&self, keep: impl Fn(Instant) -> bool) -> Option<f64> {
        self.latest
            .iter()
            .filter(|e| keep(e.2))
            .map(|e| f64::from(e.1) / 256.0)
            .reduce(f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(ssrc: u32, fraction_lost: u8) -> ReceptionReport {
        ReceptionReport {
            ssrc,
            fraction_lost,
            ..ReceptionReport::default()
        }
    }

    #[test]
    fn the_latest_report_of_each_stream_counts_and_the_worst_stream_wins() {
        let t = Instant::now();
        let mut loss = ReportedLoss::default();
        assert_eq!(loss.worst(t), 0.0);
        loss.note(t, &[block(1, 64), block(2, 0)]);
        assert_eq!(loss.worst(t), 0.25);
        // Stream 1 recovered; stream 2 now loses an eighth.
        loss.note(t, &[block(1, 0)]);
        loss.note(t, &[block(2, 32)]);
        assert_eq!(loss.worst(t), 0.125);
    }

    #[test]
    fn a_stream_no_longer_reported_on_stops_counting() {
        let t = Instant::now();
        let mut loss = ReportedLoss::default();
        loss.note(t, &[block(1, 128), block(2, 0)]);
        // Stream 1 ends while lossy; stream 2 goes on, clean.
        loss.note(t + Duration::from_secs(6), &[block(2, 0)]);
        assert_eq!(loss.worst(t + Duration::from_secs(6)), 0.5);
        loss.note(t + STALE, &[block(2, 0)]);
        assert_eq!(loss.worst(t + STALE), 0.0);
    }

    #[test]
    fn a_client_naming_endless_streams_is_bounded() {
        let t = Instant::now();
        let mut loss = ReportedLoss::default();
        for ssrc in 0..10_000 {
            loss.note(t, &[block(ssrc, 0)]);
        }
        assert_eq!(loss.latest.len(), MAX_STREAMS);
        // Streams beyond the bound are not counted while the others are fresh...
        loss.note(t, &[block(20_000, 255)]);
        assert_eq!(loss.worst(t), 0.0);
        // ...and take the place of stale ones.
        loss.note(t + STALE, &[block(20_000, 255)]);
        assert_eq!(loss.latest.len(), 1);
        assert_eq!(loss.worst(t + STALE), 255.0 / 256.0);
    }
}
