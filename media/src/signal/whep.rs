//! WHEP playback: `POST /v1/whep/rooms/{room}/participants/{identity}` with an
//! SDP offer plays what that participant publishes in any WHEP player.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use switchboard_core::event::LeaveReason;

use super::single::{admit_single, apply_offer, complete_answer, drive, Admitted};
use super::whip::{
    check_offer_request, created, resource_location, CheckedOffer, Needs, OfferRequest,
};
use crate::http::{error, join_room};
use crate::room::manager::RoomManager;

/// Handles a WHEP offer for `identity`'s tracks in `room`.
pub async fn offer(
    manager: Arc<RoomManager>,
    room: String,
    identity: String,
    request: OfferRequest,
) -> Response {
    let CheckedOffer {
        project,
        claims,
        room: room_name,
        token,
    } = match check_offer_request(&manager, &room, &request, Needs::Subscribe).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if claims.sub.as_str() == identity {
        return error(
            StatusCode::CONFLICT,
            "same_identity",
            "a viewer needs an identity of its own, not the publisher's",
        );
    }
    let redirect = Some(request.redirect(&token));
    let room = match join_room(&manager, project, &room_name, &claims, redirect).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    let Some(publisher) = room.find(&identity) else {
        return error(
            StatusCode::NOT_FOUND,
            "participant_not_found",
            format!("participant `{identity}` is not connected to room `{room_name}`"),
        );
    };
    // A WHEP viewer receives exactly the tracks chosen here; without renegotiation it takes no others.
    let mut grants = claims.grants.clone();
    grants.can_publish = false;
    grants.can_subscribe = false;
    grants.can_publish_data = false;
    let Admitted {
        single,
        p: viewer,
        inbox,
    } = match admit_single(&manager, &room, &claims, grants).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let answer = async {
        apply_offer(&manager, &single.pc, &request.body).await?;
        if room.subscribe_to_participant(&viewer, &publisher).await == 0 {
            return Err(format!("participant `{identity}` publishes nothing yet"));
        }
        let sdp = complete_answer(&single).await?;
        room.adopt_offered_payload_types(&viewer, &request.body);
        Ok(sdp)
    }
    .await;
    match answer {
        Ok(sdp) => {
            let location = resource_location("whep", &viewer);
            let ice_servers = manager.rtc.ice_servers_for(claims.sub.as_str());
            drive(manager, room, viewer, single, inbox);
            created(location, sdp, &ice_servers)
        }
        Err(e) => {
            room.remove(&viewer, LeaveReason::ConnectionLost).await;
            error(StatusCode::BAD_REQUEST, "invalid_offer", e)
        }
    }
}
