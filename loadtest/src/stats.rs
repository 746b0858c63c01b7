//! What one subscriber measures on one track, from the [`Stamp`]s in the
//! payloads: packets, bytes, loss, latency and RFC 3550 interarrival jitter.

use serde::Serialize;

use crate::synth::Stamp;

/// Latency histogram resolution: 0.1 ms buckets up to 1 s, one overflow bucket.
const BUCKET_US: u64 = 100;
const BUCKETS: usize = 10_000;

/// Receive statistics of one track at one subscriber.
#[derive(Debug, Clone)]
pub struct StreamStats {
    first_counter: Option<u32>,
    highest_counter: u32,
    packets: u64,
    bytes: u64,
    first_at_us: u64,
    last_at_us: u64,
    last_transit_us: Option<i64>,
    jitter_us: f64,
    latency: Histogram,
}

impl Default for StreamStats {
    fn default() -> Self {
        Self {
            first_counter: None,
            highest_counter: 0,
            packets: 0,
            bytes: 0,
            first_at_us: 0,
            last_at_us: 0,
            last_transit_us: None,
            jitter_us: 0.0,
            latency: Histogram::default(),
        }
    }
}

impl StreamStats {
    /// Records a packet of `payload_bytes` carrying `stamp`, received at `now_us`.
    pub fn on_packet(&mut self, now_us: u64, payload_bytes: usize, stamp: Stamp) {
        if self.first_counter.is_none() {
            self.first_counter = Some(stamp.counter);
            self.first_at_us = now_us;
        }
        self.highest_counter = self.highest_counter.max(stamp.counter);
        self.packets += 1;
        self.bytes += payload_bytes as u64;
        self.last_at_us = now_us;
        let transit = now_us as i64 - stamp.sent_us as i64;
        if let Some(last) = self.last_transit_us {
            let d = (transit - last).unsigned_abs() as f64;
            self.jitter_us += (d - self.jitter_us) / 16.0;
        }
        self.last_transit_us = Some(transit);
        self.latency.record(transit.max(0) as u64);
    }

    /// Packets received.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// When the first packet arrived, if one did.
    pub fn first_at_us(&self) -> Option<u64> {
        self.first_counter.map(|_| self.first_at_us)
    }

    /// Packets expected from the first one received up to the publisher's `sent` total.
    pub fn expected(&self, sent: u32) -> u64 {
        match self.first_counter {
            Some(first) => u64::from(sent.max(self.highest_counter + 1) - first),
            None => 0,
        }
    }

    /// Summarizes against the publisher's count of packets sent on the track.
    pub fn summary(&self, sent: u32) -> StreamSummary {
        let expected = self.expected(sent);
        let lost = expected.saturating_sub(self.packets);
        let span_s = (self.last_at_us.saturating_sub(self.first_at_us)) as f64 / 1e6;
        StreamSummary {
            packets: self.packets,
            expected,
            lost,
            loss_pct: loss_pct(lost, expected),
            bitrate_kbps: if span_s > 0.0 {
                self.bytes as f64 * 8.0 / span_s / 1000.0
            } else {
                0.0
            },
            packets_per_s: if span_s > 0.0 {
                self.packets as f64 / span_s
            } else {
                0.0
            },
            jitter_ms: self.jitter_us / 1000.0,
            latency_p50_ms: self.latency.quantile_ms(0.50),
            latency_p99_ms: self.latency.quantile_ms(0.99),
            latency_max_ms: self.latency.max_us as f64 / 1000.0,
        }
    }

    /// Adds `other`'s latency samples to this one's (for aggregates).
    pub fn merge_latency(&mut self, other: &StreamStats) {
        self.latency.merge(&other.latency);
    }
}

/// One track at one subscriber, or an aggregate of them.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StreamSummary {
    /// Packets received.
    pub packets: u64,
    /// Packets the publisher sent since the first one received.
    pub expected: u64,
    /// `expected - packets`, never negative.
    pub lost: u64,
    /// Loss in percent of `expected`.
    pub loss_pct: f64,
    /// Received payload bitrate.
    pub bitrate_kbps: f64,
    /// Packets received per second, from the first to the last.
    pub packets_per_s: f64,
    /// RFC 3550 interarrival jitter.
    pub jitter_ms: f64,
    /// Median publisher-to-subscriber latency through the SFU.
    pub latency_p50_ms: f64,
    /// 99th percentile of the same.
    pub latency_p99_ms: f64,
    /// Largest latency seen.
    pub latency_max_ms: f64,
}

/// `lost` in percent of `expected` (0 when nothing was expected).
fn loss_pct(lost: u64, expected: u64) -> f64 {
    if expected == 0 {
        0.0
    } else {
        lost as f64 * 100.0 / expected as f64
    }
}

/// Fixed-bucket latency histogram: recording allocates nothing.
#[derive(Debug, Clone)]
struct Histogram {
    counts: Vec<u32>,
    total: u64,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS + 1],
            total: 0,
            max_us: 0,
        }
    }
}

impl Histogram {
    fn record(&mut self, us: u64) {
        let i = ((us / BUCKET_US) as usize).min(BUCKETS);
        self.counts[i] += 1;
        self.total += 1;
        self.max_us = self.max_us.max(us);
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// The upper edge of the bucket holding quantile `q`, in ms.
    fn quantile_ms(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((self.total as f64 * q).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += u64::from(*c);
            if seen >= rank {
                if i == BUCKETS {
                    return self.max_us as f64 / 1000.0;
                }
                return ((i as u64 + 1) * BUCKET_US) as f64 / 1000.0;
            }
        }
        self.max_us as f64 / 1000.0
    }
}

/// Combines per-subscriber summaries of one track: sums counts, averages rates.
pub fn aggregate(summaries: &[StreamSummary], latency: &StreamStats) -> StreamSummary {
    let n = summaries.len().max(1) as f64;
    let packets = summaries.iter().map(|s| s.packets).sum();
    let expected: u64 = summaries.iter().map(|s| s.expected).sum();
    let lost = summaries.iter().map(|s| s.lost).sum();
    let merged = latency.summary(0);
    StreamSummary {
        packets,
        expected,
        lost,
        loss_pct: loss_pct(lost, expected),
        bitrate_kbps: summaries.iter().map(|s| s.bitrate_kbps).sum::<f64>() / n,
        packets_per_s: summaries.iter().map(|s| s.packets_per_s).sum::<f64>() / n,
        jitter_ms: summaries.iter().map(|s| s.jitter_ms).sum::<f64>() / n,
        latency_p50_ms: merged.latency_p50_ms,
        latency_p99_ms: merged.latency_p99_ms,
        latency_max_ms: merged.latency_max_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(sent_us: u64, counter: u32) -> Stamp {
        Stamp { sent_us, counter }
    }

    #[test]
    fn loss_counts_from_the_first_packet_received() {
        let mut s = StreamStats::default();
        // Joined late: counters 0..10 were never meant for this subscriber.
        for c in 10..110u32 {
            if c % 10 != 3 {
                s.on_packet(
                    u64::from(c) * 1000 + 500,
                    100,
                    stamp(u64::from(c) * 1000, c),
                );
            }
        }
        let sum = s.summary(110);
        assert_eq!(sum.expected, 100);
        assert_eq!(sum.packets, 90);
        assert_eq!(sum.lost, 10);
        assert!((sum.loss_pct - 10.0).abs() < 1e-9);
        // Sent more than received at the tail: those count as lost too.
        assert_eq!(s.summary(120).lost, 20);
    }

    #[test]
    fn nothing_received_is_nothing_expected() {
        let s = StreamStats::default();
        assert_eq!(s.summary(500), StreamSummary::default());
        assert_eq!(s.first_at_us(), None);
    }

    #[test]
    fn constant_transit_has_no_jitter_and_exact_latency() {
        let mut s = StreamStats::default();
        for c in 0..100u32 {
            let sent = u64::from(c) * 20_000;
            s.on_packet(sent + 2_000, 125, stamp(sent, c));
        }
        let sum = s.summary(100);
        assert_eq!(sum.jitter_ms, 0.0);
        assert_eq!(sum.latency_p50_ms, 2.1);
        assert_eq!(sum.latency_p99_ms, 2.1);
        assert_eq!(sum.latency_max_ms, 2.0);
        // 125 bytes every 20 ms over 1.98 s.
        assert!((sum.bitrate_kbps - 100.0 * 125.0 * 8.0 / 1.98 / 1000.0).abs() < 1e-6);
    }

    #[test]
    fn alternating_transit_converges_to_its_jitter() {
        let mut s = StreamStats::default();
        for c in 0..1000u32 {
            let sent = u64::from(c) * 20_000;
            let transit = if c % 2 == 0 { 1_000 } else { 5_000 };
            s.on_packet(sent + transit, 100, stamp(sent, c));
        }
        let sum = s.summary(1000);
        assert!((sum.jitter_ms - 4.0).abs() < 0.01, "{}", sum.jitter_ms);
        assert_eq!(sum.latency_max_ms, 5.0);
    }

    #[test]
    fn aggregates_sum_counts_and_merge_latency() {
        let mut a = StreamStats::default();
        let mut b = StreamStats::default();
        for c in 0..100u32 {
            a.on_packet(
                u64::from(c) * 1000 + 1000,
                10,
                stamp(u64::from(c) * 1000, c),
            );
            if c != 50 {
                b.on_packet(
                    u64::from(c) * 1000 + 9000,
                    10,
                    stamp(u64::from(c) * 1000, c),
                );
            }
        }
        let mut all = StreamStats::default();
        all.merge_latency(&a);
        all.merge_latency(&b);
        let agg = aggregate(&[a.summary(100), b.summary(100)], &all);
        assert_eq!((agg.packets, agg.expected, agg.lost), (199, 200, 1));
        assert!((agg.loss_pct - 0.5).abs() < 1e-9);
        assert_eq!(agg.latency_p50_ms, 1.1);
        assert_eq!(agg.latency_max_ms, 9.0);
    }
}
