//! What a client reports of the media it receives from the node: the RTCP
//! reception report blocks (RFC 3550 6.4) of its receiver and sender reports,
//! kept per stream. webrtc-rs's statistics do not read them (its remote
//! inbound loss stays 0), so the node keeps the loss it is told itself.

use rtc::rtcp::reception_report::ReceptionReport;

/// Most streams a connection's reports are kept for: a client can name any
/// SSRC, and blocks about streams beyond these are ignored.
const MAX_STREAMS: usize = 64;

/// The latest fraction lost each stream's reports gave, out of 256.
#[derive(Debug, Default, Clone)]
pub struct ReportedLoss {
    latest: Vec<(u32, u8)>,
}

impl ReportedLoss {
    /// Notes the blocks of one report.
    pub fn note(&mut self, blocks: &[ReceptionReport]) {
        for block in blocks {
            let full = self.latest.len() >= MAX_STREAMS;
            match self.latest.iter_mut().find(|(ssrc, _)| *ssrc == block.ssrc) {
                Some(entry) => entry.1 = block.fraction_lost,
                None if !full => self.latest.push((block.ssrc, block.fraction_lost)),
                None => {}
            }
        }
    }

    /// The worst of the streams' latest loss, 0.0 to 1.0 (0 before any report).
    pub fn worst(&self) -> f64 {
        self.latest
            .iter()
            .map(|(_, lost)| f64::from(*lost) / 256.0)
            .fold(0.0, f64::max)
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
        let mut loss = ReportedLoss::default();
        assert_eq!(loss.worst(), 0.0);
        loss.note(&[block(1, 64), block(2, 0)]);
        assert_eq!(loss.worst(), 0.25);
        // Stream 1 recovered; stream 2 now loses an eighth.
        loss.note(&[block(1, 0)]);
        loss.note(&[block(2, 32)]);
        assert_eq!(loss.worst(), 0.125);
    }

    #[test]
    fn a_client_naming_endless_streams_is_bounded() {
        let mut loss = ReportedLoss::default();
        for ssrc in 0..10_000 {
            loss.note(&[block(ssrc, 0)]);
        }
        assert_eq!(loss.latest.len(), MAX_STREAMS);
        // Streams beyond the bound are not counted.
        loss.note(&[block(20_000, 255)]);
        assert_eq!(loss.worst(), 0.0);
    }
}
