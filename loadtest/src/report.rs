//! The outcome of a run: one line per published track, summed over its
//! subscribers, plus join times and totals; printed as a table or as JSON.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use switchboard_core::event::TrackKind;

use crate::client::{PublishedTrack, Received};
use crate::reconnect::Reconnect;
use crate::stats::{aggregate, StreamStats, StreamSummary};
use crate::Config;

/// A whole run, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Simulated publishers.
    pub publishers: usize,
    /// Simulated subscribers.
    pub subscribers: usize,
    /// Requested VP8 bitrate per publisher (bit/s).
    pub video_bitrate: u32,
    /// Requested Opus bitrate per publisher (bit/s).
    pub audio_bitrate: u32,
    /// How long media was measured after everyone joined, including the drain.
    pub measured_s: f64,
    /// Each published track over all its subscribers.
    pub tracks: Vec<TrackReport>,
    /// Subscriber join times: token request to first media packet.
    pub join_ms: Percentiles,
    /// Subscriptions (subscriber × track) that never received a packet.
    pub missing_streams: usize,
    /// Every stream of every track together.
    pub total: StreamSummary,
    /// Payload bitrate the subscribers received altogether.
    pub received_mbps: f64,
    /// Packets per second the subscribers received altogether.
    pub received_packets_per_s: f64,
    /// What the server spent while everyone was joined and media flowed (with `--server-pid`).
    pub server_cpu: Option<ServerCpu>,
    /// Datagrams per second the node sent meanwhile (with `--server-metrics-url`).
    pub server_datagrams_per_s: Option<f64>,
    /// How many subscribers joined through each node (by signaling URL).
    pub nodes: BTreeMap<String, usize>,
    /// The largest loss of one subscriber, all its streams together, among
    /// those that stayed on the node they joined.
    pub worst_subscriber_loss_pct: f64,
    /// Subscribers that lost their node and joined again (with `--reconnect`).
    pub reconnects: Vec<Reconnect>,
}

/// The server's CPU time over the steady part of a run.
#[derive(Debug, Clone, Serialize)]
pub struct ServerCpu {
    /// CPU seconds spent.
    pub seconds: f64,
    /// Over how long.
    pub window_s: f64,
    /// Share of one core.
    pub core_pct: f64,
    /// CPU seconds per million packets delivered in that time.
    pub seconds_per_million_packets: f64,
}

impl ServerCpu {
    /// `seconds` of CPU over `window`, against the packets `report` says were delivered per second.
    pub fn over(seconds: f64, window: Duration, report: &Report) -> Self {
        let window_s = window.as_secs_f64();
        let packets = report.received_packets_per_s * window_s;
        Self {
            seconds,
            window_s,
            core_pct: seconds / window_s.max(f64::MIN_POSITIVE) * 100.0,
            seconds_per_million_packets: seconds * 1e6 / packets.max(1.0),
        }
    }
}

/// One published track.
#[derive(Debug, Clone, Serialize)]
pub struct TrackReport {
    /// Who published it.
    pub publisher: String,
    /// The server's track id.
    pub track_sid: String,
    /// `audio` or `video`.
    pub kind: TrackKind,
    /// Packets the publisher sent.
    pub sent_packets: u32,
    /// Subscribers that received at least one packet of it.
    pub receiving_subscribers: usize,
    /// Summed over those subscribers (bitrate and jitter averaged).
    pub received: StreamSummary,
}

/// A distribution in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    fn of(mut values: Vec<f64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let at =
            |q: f64| values[((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1];
        Self {
            p50: at(0.5),
            p95: at(0.95),
            max: values[values.len() - 1],
        }
    }
}

impl Report {
    /// Sums up what `subscribers` (what each received, with the time its join started) received of `tracks`.
    pub fn build(
        config: &Config,
        measured: Duration,
        tracks: &[(String, PublishedTrack)],
        subscribers: &[(Received, u64)],
    ) -> Self {
        let snapshot: Vec<(u64, Vec<(String, StreamStats)>)> = subscribers
            .iter()
            .map(|(received, started)| {
                let received = received.lock().unwrap_or_else(|p| p.into_inner());
                let streams = received
                    .iter()
                    .map(|(sid, st)| {
                        (
                            sid.clone(),
                            st.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                        )
                    })
                    .collect();
                (*started, streams)
            })
            .collect();

        let mut missing_streams = 0;
        let mut all_latency = StreamStats::default();
        let mut all_summaries = Vec::new();
        let mut track_reports = Vec::new();
        for (publisher, track) in tracks {
            let mut latency = StreamStats::default();
            let mut summaries = Vec::new();
            for (_, streams) in &snapshot {
                match streams
                    .iter()
                    .find(|(sid, st)| *sid == track.sid && st.packets() > 0)
                {
                    Some((_, st)) => {
                        latency.merge_latency(st);
                        summaries.push(st.summary(track.sent));
                    }
                    None => missing_streams += 1,
                }
            }
            all_latency.merge_latency(&latency);
            all_summaries.extend(summaries.iter().cloned());
            track_reports.push(TrackReport {
                publisher: publisher.clone(),
                track_sid: track.sid.clone(),
                kind: track.kind,
                sent_packets: track.sent,
                receiving_subscribers: summaries.len(),
                received: aggregate(&summaries, &latency),
            });
        }
        let joins = snapshot
            .iter()
            .filter_map(|(started, streams)| {
                let first = streams.iter().filter_map(|(_, s)| s.first_at_us()).min()?;
                Some(first.saturating_sub(*started) as f64 / 1000.0)
            })
            .collect();
        let received_mbps = all_summaries.iter().map(|s| s.bitrate_kbps).sum::<f64>() / 1000.0;
        let received_packets_per_s = all_summaries.iter().map(|s| s.packets_per_s).sum();
        Self {
            publishers: config.publishers,
            subscribers: config.subscribers,
            video_bitrate: config.video_bitrate,
            audio_bitrate: config.audio_bitrate,
            measured_s: measured.as_secs_f64(),
            tracks: track_reports,
            join_ms: Percentiles::of(joins),
            missing_streams,
            total: aggregate(&all_summaries, &all_latency),
            received_mbps,
            received_packets_per_s,
            server_cpu: None,
            server_datagrams_per_s: None,
            nodes: BTreeMap::new(),
            worst_subscriber_loss_pct: 0.0,
            reconnects: Vec::new(),
        }
    }
}

/// The loss of one subscriber over every track in `tracks` it received,
/// all streams together, in percent of what it should have received from
/// its first packet of each (a stream never received counts in
/// [`Report::missing_streams`] instead).
pub fn subscriber_loss_pct(received: &Received, tracks: &[TrackReport]) -> f64 {
    let streams = received.lock().unwrap_or_else(|p| p.into_inner());
    let (mut lost, mut expected) = (0, 0);
    for track in tracks {
        if let Some(st) = streams.get(&track.track_sid) {
            let summary = st
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .summary(track.sent_packets);
            lost += summary.lost;
            expected += summary.expected;
        }
    }
    if expected == 0 {
        return 0.0;
    }
    lost as f64 * 100.0 / expected as f64
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} publisher(s) -> {} subscriber(s), measured {:.1} s",
            self.publishers, self.subscribers, self.measured_s
        )?;
        writeln!(
            f,
            "{:<28} {:<6} {:>5} {:>9} {:>7} {:>9} {:>9} {:>9}",
            "track", "kind", "subs", "kbps", "loss%", "jitter ms", "p50 ms", "p99 ms"
        )?;
        for t in &self.tracks {
            let kind = match t.kind {
                TrackKind::Audio => "audio",
                TrackKind::Video => "video",
            };
            writeln!(
                f,
                "{:<28} {:<6} {:>5} {:>9.1} {:>7.3} {:>9.2} {:>9.1} {:>9.1}",
                format!("{}/{}", t.publisher, &t.track_sid),
                kind,
                t.receiving_subscribers,
                t.received.bitrate_kbps,
                t.received.loss_pct,
                t.received.jitter_ms,
                t.received.latency_p50_ms,
                t.received.latency_p99_ms,
            )?;
        }
        writeln!(
            f,
            "total: {} packets received, {} lost ({:.3}%), {} stream(s) missing, {:.1} Mbps received",
            self.total.packets, self.total.lost, self.total.loss_pct, self.missing_streams, self.received_mbps
        )?;
        writeln!(
            f,
            "latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; join p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
            self.total.latency_p50_ms,
            self.total.latency_p99_ms,
            self.total.latency_max_ms,
            self.join_ms.p50,
            self.join_ms.p95,
            self.join_ms.max
        )?;
        if self.nodes.len() > 1 {
            let per: Vec<String> = self
                .nodes
                .iter()
                .map(|(u, n)| format!("{u}: {n}"))
                .collect();
            writeln!(f, "subscribers per node: {}", per.join(", "))?;
        }
        if !self.reconnects.is_empty() {
            let slowest = self
                .reconnects
                .iter()
                .map(|m| m.receiving_again_ms.unwrap_or(f64::INFINITY))
                .fold(0.0, f64::max);
            writeln!(
                f,
                "{} subscriber(s) lost their node and joined again; the slowest received again after {slowest:.0} ms",
                self.reconnects.len()
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Percentiles;

    #[test]
    fn percentiles_pick_ranks() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p95, p.max), (50.0, 95.0, 100.0));
        let p = Percentiles::of(vec![]);
        assert_eq!(p.max, 0.0);
    }
}
