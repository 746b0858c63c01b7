//! Sessions with one peer connection and no socket (WHIP, WHEP): set up by
//! one HTTP offer/answer, ended by `DELETE`, a failed connection or the room.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use switchboard_core::event::LeaveReason;
use switchboard_core::token::{Claims, Grants};
use tokio::sync::mpsc;
use tracing::Instrument;
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};

use super::description::{answer, apply_remote, Kind};
use super::peer_events::{PcEvent, PcHandler};
use super::tracks::publish_track;
use crate::http::error;
use crate::peer::config::new_peer_connection;
use crate::room::live::{AdmitError, Room};
use crate::room::mailbox::{mailbox, Inbox, Mail};
use crate::room::manager::RoomManager;
use crate::room::participant::Participant;
use crate::MediaError;
use switchboard_core::signal::Target;

/// How long to wait for ICE candidates before answering without the rest.
const GATHER_TIMEOUT: Duration = Duration::from_secs(3);

/// A peer connection and its events.
pub(crate) struct SinglePc {
    pub pc: Arc<dyn PeerConnection>,
    pub events: mpsc::UnboundedReceiver<PcEvent>,
}

/// A new peer connection for a WHIP or WHEP session.
pub(crate) async fn new_single(manager: &RoomManager) -> Result<SinglePc, MediaError> {
    let (tx, events) = mpsc::unbounded_channel();
    let pc = new_peer_connection(
        &manager.rtc,
        Arc::new(PcHandler {
            target: Target::Publisher,
            events: tx,
        }),
    )
    .await?;
    Ok(SinglePc { pc, events })
}

/// A WHIP or WHEP participant admitted to its room.
pub(crate) struct Admitted {
    pub single: SinglePc,
    pub p: Arc<Participant>,
    pub inbox: Inbox,
}

/// Creates the peer connection and the participant (with `grants`, which the caller
/// narrows to what the session does) and admits it to `room`, or answers why not.
pub(crate) async fn admit_single(
    manager: &RoomManager,
    room: &Room,
    claims: &Claims,
    grants: Grants,
) -> Result<Admitted, Response> {
    let claims = &manager
        .gate_join(room, claims.clone())
        .await
        .map_err(|reason| error(StatusCode::FORBIDDEN, "join_denied", reason))?;
    let grants = Grants {
        can_publish: grants.can_publish && claims.grants.can_publish,
        can_subscribe: grants.can_subscribe && claims.grants.can_subscribe,
        can_publish_data: grants.can_publish_data && claims.grants.can_publish_data,
        ..grants
    };
    let single = new_single(manager).await.map_err(|e| match e {
        MediaError::PortsExhausted(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "media_ports_exhausted",
            e.to_string(),
        ),
        e => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            e.to_string(),
        ),
    })?;
    let (mailbox, inbox) = mailbox();
    let p = Participant::new(
        claims.sub.clone(),
        claims.name.clone().unwrap_or_default(),
        claims.metadata.clone().unwrap_or_default(),
        grants,
        single.pc.clone(),
        single.pc.clone(),
        mailbox,
        manager.rtc.publish_limits,
    );
    if let Err(e) = room.admit(&p).await {
        let _ = single.pc.close().await;
        return Err(match e {
            AdmitError::Full(n) => error(
                StatusCode::CONFLICT,
                "room_full",
                format!("the room is full ({n} participants)"),
            ),
            AdmitError::Closed => error(StatusCode::CONFLICT, "room_closed", "the room is closing"),
            AdmitError::Unavailable => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the join cannot be recorded right now; try again",
            ),
        });
    }
    Ok(Admitted { single, p, inbox })
}

/// Applies the client's offer.
pub(crate) async fn apply_offer(
    manager: &RoomManager,
    pc: &Arc<dyn PeerConnection>,
    sdp: &str,
) -> Result<(), String> {
    let loopback_ok = manager.rtc.bind_ip.is_loopback();
    apply_remote(pc, sdp, Kind::Offer, loopback_ok).await
}

/// Creates the answer and waits for ICE gathering, so the answer carries the candidates
/// (WHIP and WHEP clients need not trickle). Events that arrive meanwhile are kept.
pub(crate) async fn complete_answer(
    single: &mut SinglePc,
    early: &mut Vec<PcEvent>,
    node_ip: Option<std::net::IpAddr>,
) -> Result<String, String> {
    let sdp = answer(&single.pc, node_ip).await?;
    let deadline = tokio::time::Instant::now() + GATHER_TIMEOUT;
    loop {
        match tokio::time::timeout_at(deadline, single.events.recv()).await {
            Ok(Some(PcEvent::Gathered)) | Err(_) | Ok(None) => break,
            Ok(Some(other)) => early.push(other),
        }
    }
    // The description as gathered by now, candidates included.
    Ok(super::description::local(&single.pc, node_ip)
        .await
        .unwrap_or(sdp))
}

/// Runs the session in the background until it ends, then removes the participant.
pub(crate) fn drive(
    manager: Arc<RoomManager>,
    room: Arc<Room>,
    p: Arc<Participant>,
    mut single: SinglePc,
    mut inbox: Inbox,
    early: Vec<PcEvent>,
) {
    let span = tracing::info_span!("participant", project_id = %room.project, room = %room.name, participant = %p.sid, identity = %p.identity);
    tokio::spawn(
        async move {
            let mut connected = false;
            let deadline = tokio::time::Instant::now() + manager.rtc.connect_timeout;
            let mut pending = early.into_iter();
            let reason = loop {
                let event = match pending.next() {
                    Some(e) => Some(e),
                    None => tokio::select! {
                        e = single.events.recv() => match e { Some(e) => Some(e), None => break LeaveReason::ConnectionLost },
                        // No socket: what the room would tell the client has nowhere to go.
                        mail = inbox.recv() => match mail {
                            Some(Mail::Close(reason)) => break reason,
                            Some(Mail::Command(_) | Mail::FellBehind) => None,
                            None => break LeaveReason::ConnectionLost,
                        },
                        _ = tokio::time::sleep_until(deadline), if !connected => {
                            tracing::info!("media did not connect in time");
                            break LeaveReason::ConnectionLost;
                        }
                    },
                };
                match event {
                    Some(PcEvent::State(_, RTCPeerConnectionState::Connected)) if !connected => {
                        connected = true;
                        p.set_active();
                    }
                    Some(PcEvent::State(_, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed)) => {
                        break LeaveReason::ConnectionLost
                    }
                    Some(PcEvent::Track(track)) => {
                        tokio::spawn(publish_track(room.clone(), p.clone(), track).in_current_span());
                    }
                    _ => {}
                }
            };
            tracing::info!(?reason, "left");
            room.remove(&p, reason).await;
            manager.schedule_empty_close(&room);
        }
        .instrument(span),
    );
}
