//! What a participant's connections tell its session: tracks starting and
//! ending, and data channel messages, turned into the room's publications
//! and data.

use std::sync::Arc;

use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use switchboard_core::event::{TrackKind, TrackSource};
use switchboard_core::room::TrackInfo;
use switchboard_core::signal::ServerMessage;
use switchboard_core::TrackSid;

use crate::room::live::Room;
use crate::room::participant::Participant;
use crate::sdp::extmap_id;
use crate::sfu::audio_level::AUDIO_LEVEL_URI;
use crate::sfu::keyframe::Codec;
use crate::worker::{TrackReceiver, TrackRef};

/// A track the client started sending, as its worker reports it.
pub(crate) struct Opened {
    /// How the worker names it.
    pub track: TrackRef,
    /// Audio or video.
    pub kind: RtpCodecKind,
    /// Its codec's MIME type.
    pub mime: String,
    /// Its codec's clock rate.
    pub clock_rate: u32,
}

/// Publishes a track the client started sending, if it may; its worker
/// forwards it to whoever the room subscribes.
pub(crate) async fn publish_track(room: &Room, p: &Arc<Participant>, opened: Opened) {
    if !p.permissions().can_publish {
        tracing::warn!("dropping media from a participant without can_publish");
        return;
    }
    // Counted as published, not as announced: a client can offer tracks it never announced.
    let Some(slot) = p.budget.claim_track() else {
        let max_tracks = p.budget.max_tracks();
        tracing::warn!(max_tracks, "dropping a track over the participant's limit");
        p.signal(ServerMessage::Error {
            code: "too_many_tracks".into(),
            message: format!("a participant may publish at most {max_tracks} tracks at once"),
        });
        return;
    };
    let Opened {
        track,
        kind,
        mime,
        clock_rate,
    } = opened;
    let cid = track.track.clone();
    let pending = p.pending.lock().remove(&cid);
    let kind = match kind {
        RtpCodecKind::Audio => TrackKind::Audio,
        _ => TrackKind::Video,
    };
    let source = pending.as_ref().map(|t| t.source).unwrap_or(match kind {
        TrackKind::Audio => TrackSource::Microphone,
        TrackKind::Video => TrackSource::Camera,
    });
    let simulcast = pending.as_ref().is_some_and(|t| t.simulcast);
    let info = TrackInfo {
        sid: TrackSid::new(),
        kind,
        source,
        mime_type: Some(mime.clone()),
        muted: false,
        simulcast,
    };
    let receiver = TrackReceiver::new(
        info.sid,
        track,
        p.publisher.worker().clone(),
        Codec::from_mime(&mime),
        clock_rate,
    );
    if kind == TrackKind::Audio {
        let offer = p.publisher.remote_description();
        if let Some(id) = offer.and_then(|sdp| extmap_id(&sdp, AUDIO_LEVEL_URI)) {
            receiver.set_audio_level_extension(id);
        }
    }
    tracing::info!(track = %info.sid, %mime, simulcast, "track published");
    room.publish(p, Some(cid), info, receiver, Some(slot)).await;
}

/// Unpublishes the track the client stopped sending (its worker says which).
pub(crate) async fn end_track(room: &Room, p: &Arc<Participant>, track: &TrackRef) {
    let sid = p
        .published
        .lock()
        .iter()
        .find(|(_, t)| t.receiver.track() == track)
        .map(|(sid, _)| *sid);
    if let Some(sid) = sid {
        room.unpublish(p, sid).await;
    }
}

/// Hands a message from one of the client's data channels to the room.
pub(crate) async fn data_received(room: &Room, p: &Arc<Participant>, reliable: bool, data: &[u8]) {
    if let Err(e) = room.forward_data(p, reliable, data).await {
        p.signal(ServerMessage::Error {
            code: "data_rejected".into(),
            message: e,
        });
    }
}
