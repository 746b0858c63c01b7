//! A room's observer: a task that, while the room lives, tells its
//! participants who is speaking (every 250 ms, on change) and how everyone's
//! connection is doing (every 3 s, on change; the measures are kept on each
//! participant for the API and the dashboard, and recorded for the call's
//! page), and every 500 ms shares each subscriber's bandwidth estimate
//! among the video it receives (a link that shrinks must see a lower layer
//! within a second or two, not freeze while the estimate waits).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use rtc::statistics::report::RTCStatsReportEntry;
use switchboard_core::event::TrackKind;
use switchboard_core::signal::{ConnectionQuality, QualityUpdate, ServerMessage};
use switchboard_core::ParticipantSid;
use tokio::sync::oneshot;

use super::live::Room;
use super::participant::Participant;
use super::quality::{measure, Sample};
use super::speakers::SpeakerDetector;
use crate::sfu::allocation::video_share;
use crate::worker::{Command, Query};

/// How often speaker levels are looked at.
const SPEAKER_TICK: Duration = Duration::from_millis(250);
/// Connection quality is sampled every this many speaker ticks (3 s).
const QUALITY_EVERY: u32 = 12;
/// Bandwidth estimates are shared out every this many speaker ticks (500 ms).
const ESTIMATE_EVERY: u32 = 2;

/// Observes `room` until it closes or is dropped.
pub async fn run(room: Weak<Room>) {
    let mut speakers = SpeakerDetector::default();
    // Who speaks here alone, for the room's other hosts.
    let mut speaking_here = SpeakerDetector::default();
    let mut samples: HashMap<ParticipantSid, Sample> = HashMap::new();
    let mut qualities: HashMap<ParticipantSid, ConnectionQuality> = HashMap::new();
    let mut tick = tokio::time::interval(SPEAKER_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut ticks = 0u32;
    loop {
        tick.tick().await;
        let Some(room) = room.upgrade() else { return };
        if room.is_closed() {
            return;
        }
        let participants = room.participants();
        let now = Instant::now();
        let mut levels = audio_levels(&participants).await;
        if let Some(here) = speaking_here.update(now, &levels) {
            room.remote.share_levels(here);
        }
        levels.extend(room.remote.levels(now));
        if let Some(list) = speakers.update(now, &levels) {
            broadcast(
                &participants,
                ServerMessage::ActiveSpeakers { speakers: list },
            );
        }
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(ESTIMATE_EVERY) {
            for p in &participants {
                share_bandwidth(p).await;
            }
        }
        if !ticks.is_multiple_of(QUALITY_EVERY) {
            continue;
        }
        let mut updates = Vec::new();
        let mut measured = Vec::with_capacity(participants.len());
        for p in &participants {
            let sample = sample(p).await;
            let previous = samples.insert(p.sid, sample).unwrap_or_default();
            let stats = measure(&previous, &sample);
            p.set_connection(stats);
            // The first sample has nothing to measure against; recorders
            // are not people.
            if let (Some(from), Some(to)) = (previous.at, sample.at) {
                if !p.grants.recorder {
                    measured.push((p.sid, stats));
                    let secs = to.saturating_duration_since(from).as_secs_f64();
                    p.note_quality(chrono::Utc::now(), secs, stats);
                }
            }
            let quality = stats.quality;
            if qualities.insert(p.sid, quality) != Some(quality) {
                updates.push(QualityUpdate {
                    sid: p.sid,
                    quality,
                });
            }
        }
        room.record_quality(chrono::Utc::now(), measured);
        // All of them, not just the changes: a host that linked since hears them.
        // (One lookup per participant: not a scan of them per quality.)
        let all = participants
            .iter()
            .filter(|p| !p.grants.recorder)
            .filter_map(|p| {
                let quality = *qualities.get(&p.sid)?;
                Some(QualityUpdate {
                    sid: p.sid,
                    quality,
                })
            });
        room.remote.share_quality(all.collect());
        samples.retain(|sid, _| participants.iter().any(|p| p.sid == *sid));
        qualities.retain(|sid, _| samples.contains_key(sid));
        if !updates.is_empty() {
            broadcast(&participants, ServerMessage::ConnectionQuality { updates });
        }
    }
}

fn broadcast(participants: &[Arc<Participant>], message: ServerMessage) {
    for p in participants {
        p.signal(message.clone());
    }
}

/// Each participant's loudest published audio track, asked of the room's
/// worker in one query.
async fn audio_levels(participants: &[Arc<Participant>]) -> Vec<(ParticipantSid, f32)> {
    let mut owners = Vec::new();
    let mut tracks = Vec::new();
    let mut worker = None;
    for p in participants {
        for t in p.published.lock().values() {
            if t.info.kind == TrackKind::Audio {
                worker.get_or_insert_with(|| t.receiver.worker().clone());
                owners.push(p.sid);
                tracks.push(t.receiver.track().clone());
            }
        }
    }
    let mut levels: Vec<(ParticipantSid, f32)> =
        participants.iter().map(|p| (p.sid, 0.0)).collect();
    let Some(worker) = worker else {
        return levels;
    };
    let (reply, rx) = oneshot::channel();
    worker.send(Command::Query(Query::AudioLevels(tracks, reply)));
    let Ok(heard) = rx.await else {
        return levels;
    };
    for (owner, level) in owners.iter().zip(heard) {
        if let Some(entry) = levels.iter_mut().find(|(sid, _)| sid == owner) {
            entry.1 = entry.1.max(level);
        }
    }
    levels
}

/// Splits the subscriber connection's bandwidth estimate among the
/// participant's video subscriptions, when it has any.
async fn share_bandwidth(p: &Participant) {
    let is_video = |mime: &str| mime.to_ascii_lowercase().starts_with("video/");
    let receives_video = p
        .subscriptions
        .lock()
        .values()
        .any(|s| is_video(&s.downtrack.mime));
    if !receives_video {
        return;
    }
    let Some(estimate_bps) = p.subscriber.estimate().await else {
        return;
    };
    let subscriptions = p.subscriptions.lock();
    let video = subscriptions
        .values()
        .filter(|s| is_video(&s.downtrack.mime))
        .count();
    let share = video_share(estimate_bps, subscriptions.len() - video, video);
    tracing::debug!(participant = %p.sid, estimate_bps, share, "bandwidth estimate shared");
    for sub in subscriptions
        .values()
        .filter(|s| is_video(&s.downtrack.mime))
    {
        sub.downtrack.set_bandwidth_share(share);
    }
}

/// Reads loss, round trip, bytes and connectivity from both of the participant's
/// peer connections.
async fn sample(p: &Participant) -> Sample {
    let mut s = Sample {
        at: Some(Instant::now()),
        ..Sample::default()
    };
    for (pc, sending) in [(&p.publisher, false), (&p.subscriber, true)] {
        let Some(stats) = pc.stats().await else {
            continue;
        };
        s.downlink_loss = s.downlink_loss.max(stats.reported_loss);
        for entry in stats.report.iter() {
            match entry {
                RTCStatsReportEntry::OutboundRtp(o) if sending => {
                    s.bytes_out += o.sent_rtp_stream_stats.bytes_sent;
                }
                RTCStatsReportEntry::Transport(t) => {
                    s.connected |= t.dtls_state
                        == rtc::peer_connection::transport::RTCDtlsTransportState::Connected;
                }
                RTCStatsReportEntry::InboundRtp(i) => {
                    s.bytes_in += i.bytes_received;
                    let r = &i.received_rtp_stream_stats;
                    s.received += r.packets_received;
                    s.lost += u64::try_from(r.packets_lost).unwrap_or(0);
                }
                // The round trip of the node's own connectivity checks (it
                // checks the subscriber connection every 2 s): the stack does
                // not read reception reports, so no RTCP round trip is known.
                RTCStatsReportEntry::IceCandidatePair(pair) if pair.responses_received > 0 => {
                    s.rtt_s = Some(s.rtt_s.unwrap_or(0.0).max(pair.current_round_trip_time));
                }
                _ => {}
            }
        }
    }
    s
}
