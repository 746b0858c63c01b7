//! WHIP ingest (RFC 9725): `POST /v1/whip/rooms/{room}` with an SDP offer
//! publishes a participant whose media comes from OBS, GStreamer, ffmpeg or a browser.

use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use switchboard_core::event::LeaveReason;
use switchboard_core::signal::IceServer;
use switchboard_core::token::Claims;
use switchboard_core::{ProjectId, RoomName};

use super::single::{admit_single, apply_offer, complete_answer, drive, Admitted};
use crate::http::{authorize, bearer, error, join_room, Redirect};
use crate::room::live::Room;
use crate::room::manager::RoomManager;
use crate::room::participant::Participant;
use crate::turn::link_headers;

/// Largest SDP offer accepted, in bytes.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// The grant a WHIP or WHEP session needs.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Needs {
    /// WHIP: `can_publish`.
    Publish,
    /// WHEP: `can_subscribe`.
    Subscribe,
}

/// A WHIP or WHEP offer as it arrived.
#[derive(Debug)]
pub struct OfferRequest {
    /// The path it was posted to, which a redirect to the room's node keeps.
    pub path: String,
    /// The access token of an `?access_token=` query (where a redirect puts it),
    /// used when no `Authorization` header carries one.
    pub query_token: Option<String>,
    /// Its headers.
    pub headers: HeaderMap,
    /// The SDP offer.
    pub body: String,
}

impl OfferRequest {
    /// Where to send the offer when the room is live on another node.
    pub(crate) fn redirect<'a>(&'a self, token: &'a str) -> Redirect<'a> {
        Redirect {
            path: &self.path,
            token,
        }
    }
}

/// What [`check_offer_request`] accepted.
pub(crate) struct CheckedOffer {
    pub project: ProjectId,
    pub claims: Claims,
    pub room: RoomName,
    /// The access token, which a redirect passes on.
    pub token: String,
}

/// Checks the parts of an offer request that do not need the room: token and its
/// grants, content type, body.
pub(crate) async fn check_offer_request(
    manager: &RoomManager,
    room: &str,
    request: &OfferRequest,
    needs: Needs,
) -> Result<CheckedOffer, Response> {
    let (headers, body) = (&request.headers, &request.body);
    let token = bearer(headers)
        .or_else(|| request.query_token.clone())
        .ok_or_else(|| {
            error(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "send the access token as Authorization: Bearer <token> (or as ?access_token=)",
            )
        })?;
    let (project, claims) = authorize(manager, &token).await?;
    let room = RoomName::new(room)
        .map_err(|e| error(StatusCode::BAD_REQUEST, "invalid_room_name", e.to_string()))?;
    if claims.grants.room.as_ref() != Some(&room) {
        return Err(error(
            StatusCode::FORBIDDEN,
            "wrong_room",
            format!("the access token does not grant room `{room}`"),
        ));
    }
    let (granted, name) = match needs {
        Needs::Publish => (claims.grants.can_publish, "can_publish"),
        Needs::Subscribe => (claims.grants.can_subscribe, "can_subscribe"),
    };
    if !granted {
        return Err(error(
            StatusCode::FORBIDDEN,
            "not_allowed",
            format!("the access token does not grant {name}"),
        ));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/sdp")
    {
        return Err(error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the offer with Content-Type: application/sdp",
        ));
    }
    if body.len() > MAX_OFFER_BYTES || !body.trim_start().starts_with("v=0") {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "invalid_offer",
            "the body must be an SDP offer (starting with v=0) of at most 64 KiB",
        ));
    }
    Ok(CheckedOffer {
        project,
        claims,
        room,
        token,
    })
}

/// The resource URL of a WHIP (`whip`) or WHEP (`whep`) session:
/// `/v1/{kind}/sessions/{sid}.{key}`, the key known only to the session's client.
pub(crate) fn resource_location(kind: &str, p: &Participant) -> String {
    format!("/v1/{kind}/sessions/{}.{}", p.sid, p.resource_key)
}

/// The session a resource URL's last segment names, if its key is right.
pub(crate) fn find_resource(
    manager: &RoomManager,
    project: ProjectId,
    resource: &str,
) -> Option<(Arc<Room>, Arc<Participant>)> {
    let (sid, key) = resource.split_once('.')?;
    let (room, p) = manager.find_session(project, sid.parse().ok()?)?;
    let key_matches = bool::from(p.resource_key.as_bytes().ct_eq(key.as_bytes()));
    key_matches.then_some((room, p))
}

/// The `201 Created` answer of WHIP and WHEP, announcing the ICE servers as
/// `Link` headers, with the session's entity tag for `PATCH`es.
pub(crate) fn created(location: String, sdp: String, ice_servers: &[IceServer]) -> Response {
    let etag = super::patch::etag(&sdp);
    let mut response = (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, location),
        ],
        sdp,
    )
        .into_response();
    if let Some(value) = etag.and_then(|e| HeaderValue::from_str(&e).ok()) {
        response.headers_mut().insert(header::ETAG, value);
    }
    for link in link_headers(ice_servers) {
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().append(header::LINK, value);
        }
    }
    response
}

/// Handles a WHIP offer.
pub async fn offer(manager: Arc<RoomManager>, room: String, request: OfferRequest) -> Response {
    let CheckedOffer {
        project,
        claims,
        room: room_name,
        token,
    } = match check_offer_request(&manager, &room, &request, Needs::Publish).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let redirect = Some(request.redirect(&token));
    let room = match join_room(&manager, project, &room_name, &claims, redirect).await {
        Ok(r) => r,
        Err(r) => return r,
    };
    // A WHIP session only publishes: it is never subscribed to anything.
    let mut grants = claims.grants.clone();
    grants.can_subscribe = false;
    grants.can_publish_data = false;
    let Admitted { single, p, inbox } = match admit_single(&manager, &room, &claims, grants).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let answer = match apply_offer(&manager, &single.pc, &request.body).await {
        Ok(()) => complete_answer(&single).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(sdp) => {
            let location = resource_location("whip", &p);
            let ice_servers = manager.rtc.ice_servers_for(claims.sub.as_str());
            drive(manager, room, p, single, inbox);
            created(location, sdp, &ice_servers)
        }
        Err(e) => {
            room.remove(&p, LeaveReason::ConnectionLost).await;
            error(StatusCode::BAD_REQUEST, "invalid_offer", e)
        }
    }
}
