//! Sessions with one peer connection and no socket (WHIP, WHEP): set up by
//! one HTTP offer/answer, ended by `DELETE`, a failed connection or the room.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use rtc::peer_connection::state::RTCPeerConnectionState;
use switchboard_core::event::LeaveReason;
use switchboard_core::token::{Claims, Grants};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::description::{parse, refused, Kind};
use super::tracks::{end_track, publish_track, Opened};
use crate::http::error;
use crate::peer::config::Direction;
use crate::room::live::{AdmitError, Room};
use crate::room::mailbox::{mailbox, Inbox, Mail};
use crate::room::manager::RoomManager;
use crate::room::participant::Participant;
use crate::sfu::rate_limit::PublishBudget;
use crate::worker::{Event, Peer};

/// A peer connection and its events.
pub(crate) struct SinglePc {
    pub pc: Peer,
    pub events: mpsc::Receiver<Event>,
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
    let worker = manager.worker_for(room);
    let budget = Arc::new(PublishBudget::new(manager.rtc.publish_limits));
    let (pc, events) =
        Peer::open(&worker, Some(budget.clone()), Direction::Both, false).map_err(|e| {
            tracing::error!(error = %e, "could not create a peer connection");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the media node cannot take a session now",
            )
        })?;
    let single = SinglePc { pc, events };
    let (mailbox, inbox) = mailbox();
    let p = Participant::new(
        claims.sub.clone(),
        claims.name.clone().unwrap_or_default(),
        claims.metadata.clone().unwrap_or_default(),
        grants,
        single.pc.clone(),
        single.pc.clone(),
        mailbox,
        budget,
    );
    if let Err(e) = room.admit(&p).await {
        single.pc.close();
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

/// Takes the client's offer, to be answered by [`complete_answer`] (WHEP
/// adds the outgoing tracks in between, on the transceivers it offered).
pub(crate) async fn apply_offer(manager: &RoomManager, pc: &Peer, sdp: &str) -> Result<(), String> {
    let loopback_ok = manager.rtc.bind_ip.is_loopback();
    let offer = parse(sdp, Kind::Offer, loopback_ok)?;
    pc.take_offer(offer)
        .await
        .map_err(|e| refused(Kind::Offer, &e))
}

/// The answer to the offer taken; it carries the node's one candidate, so
/// WHIP and WHEP clients need not wait for trickled ones.
pub(crate) async fn complete_answer(single: &SinglePc) -> Result<String, String> {
    single.pc.answer_taken().await.map_err(|e| {
        tracing::warn!(error = %e, "could not answer an offer");
        "cannot answer this offer".to_owned()
    })
}

/// Runs the session in the background until it ends, then removes the participant.
pub(crate) fn drive(
    manager: Arc<RoomManager>,
    room: Arc<Room>,
    p: Arc<Participant>,
    mut single: SinglePc,
    mut inbox: Inbox,
) {
    let span = tracing::info_span!("participant", project_id = %room.project, room = %room.name, participant = %p.sid, identity = %p.identity);
    tokio::spawn(
        async move {
            let mut connected = false;
            let deadline = tokio::time::Instant::now() + manager.rtc.connect_timeout;
            let reason = loop {
                let event = tokio::select! {
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
                };
                match event {
                    Some(Event::State(_, RTCPeerConnectionState::Connected)) if !connected => {
                        connected = true;
                        p.set_active();
                    }
                    Some(Event::State(_, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed)) => {
                        break LeaveReason::ConnectionLost
                    }
                    Some(Event::Track { track, kind, mime, clock_rate }) => {
                        publish_track(&room, &p, Opened { track, kind, mime, clock_rate }).await;
                    }
                    Some(Event::TrackEnded(track)) => end_track(&room, &p, &track).await,
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
