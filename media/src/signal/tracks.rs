//! What a participant sends the room: its tracks, and its data channels' messages.

use std::sync::Arc;

use switchboard_core::event::{TrackKind, TrackSource};
use switchboard_core::room::TrackInfo;
use switchboard_core::signal::ServerMessage;
use switchboard_core::TrackSid;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_remote::TrackRemote;

use crate::room::live::Room;
use crate::room::participant::{lock, Participant};
use crate::sdp::extmap_id;
use crate::sfu::audio_level::AUDIO_LEVEL_URI;
use crate::sfu::keyframe::Codec;
use crate::sfu::receiver::TrackReceiver;

/// Turns a track the client started sending into a published track, and forwards it until it ends.
pub(crate) async fn publish_track(
    room: Arc<Room>,
    p: Arc<Participant>,
    remote: Arc<dyn TrackRemote>,
) {
    if !p.permissions().can_publish {
        tracing::warn!("dropping media from a participant without can_publish");
        return;
    }
    // Counted as published, not as announced: a client can offer tracks it never announced.
    let budget = p.budget.clone();
    let Some(_slot) = budget.claim_track() else {
        let max_tracks = budget.max_tracks();
        tracing::warn!(max_tracks, "dropping a track over the participant's limit");
        p.signal(ServerMessage::Error {
            code: "too_many_tracks".into(),
            message: format!("a participant may publish at most {max_tracks} tracks at once"),
        });
        return;
    };
    let cid = remote.track_id().await.to_string();
    let pending = lock(&p.pending).remove(&cid);
    let kind = match remote.kind().await {
        rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Audio => TrackKind::Audio,
        _ => TrackKind::Video,
    };
    let ssrcs = remote.ssrcs().await;
    let Some(&first) = ssrcs.first() else { return };
    let Some(codec) = remote.codec(first).await else {
        tracing::warn!(cid, "track without a negotiated codec");
        return;
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
        mime_type: Some(codec.mime_type.clone()),
        muted: false,
        simulcast,
    };
    let receiver = TrackReceiver::new(
        info.sid,
        remote.clone(),
        Codec::from_mime(&codec.mime_type),
        codec.clock_rate,
        p.budget.clone(),
    );
    for ssrc in ssrcs {
        let rid = remote.rid(ssrc).await;
        receiver.add_layer(ssrc, rid.as_deref());
    }
    if kind == TrackKind::Audio {
        let offer = p.publisher.remote_description().await;
        if let Some(id) = offer.and_then(|d| extmap_id(&d.sdp, AUDIO_LEVEL_URI)) {
            receiver.set_audio_level_extension(id);
        }
    }
    let track_sid = info.sid;
    tracing::info!(track = %track_sid, mime = %codec.mime_type, simulcast, "track published");
    room.publish(&p, Some(cid), info, receiver.clone()).await;
    receiver.run().await;
    room.unpublish(&p, track_sid).await;
}

/// Forwards messages from one of the client's data channels.
pub(crate) async fn read_data(room: Arc<Room>, p: Arc<Participant>, channel: Arc<dyn DataChannel>) {
    let reliable = channel
        .label()
        .await
        .map(|l| l == "_reliable")
        .unwrap_or(false);
    while let Some(event) = channel.poll().await {
        match event {
            DataChannelEvent::OnMessage(m) => {
                if let Err(e) = room.forward_data(&p, reliable, &m.data).await {
                    p.signal(ServerMessage::Error {
                        code: "data_rejected".into(),
                        message: e,
                    });
                }
            }
            DataChannelEvent::OnClose => break,
            _ => {}
        }
    }
}
