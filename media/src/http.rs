//! The media node's HTTP surface: the signaling WebSocket, the JS SDK and the dev demo page.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::json;
use switchboard_core::event::LeaveReason;
use switchboard_core::token::{self, Claims, Grants, TokenError};
use switchboard_core::{Identity, ProjectId, RoomName};
use switchboard_store::api_keys::AccessTokenError;
use tower_http::cors::{Any, CorsLayer};

use crate::room::live::Room;
use crate::room::manager::{RoomLookupError, RoomManager};
use crate::signal::resume::Resumes;
use crate::signal::whip::{find_resource, OfferRequest};
use switchboard_core::signal::MAX_FRAME_BYTES;

/// The browser SDK, served at `/sdk/switchboard.js`.
pub const SDK_JS: &str = include_str!("../../sdk/js/switchboard.js");
/// The demo meeting page, served at `/demo` in dev mode.
pub const DEMO_HTML: &str = include_str!("../../examples/meeting/index.html");

/// The key the dev demo page's tokens are signed with.
#[derive(Debug, Clone)]
pub struct DemoKey {
    /// Key id.
    pub key_id: String,
    /// Secret.
    pub secret: String,
}

#[derive(Clone)]
struct MediaState {
    manager: Arc<RoomManager>,
    demo: Option<Arc<DemoKey>>,
    resumes: Arc<Resumes>,
}

/// Routes of the media node; `demo` enables `/demo` (dev mode only).
pub fn router(manager: Arc<RoomManager>, demo: Option<DemoKey>) -> Router {
    // WHIP and WHEP are called from browsers on other origins (players, studio pages).
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::POST, Method::DELETE, Method::PATCH, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
        ])
        .expose_headers([header::LOCATION, header::LINK, header::ETAG]);
    let endpoints = Router::new()
        .route("/v1/whip/rooms/{room}", post(whip_offer).options(preflight))
        .route(
            "/v1/whep/rooms/{room}/participants/{identity}",
            post(whep_offer).options(preflight),
        )
        .layer(cors.clone())
        // Outside the CORS layer, which answers every OPTIONS itself.
        .layer(axum::middleware::map_response(accept_post));
    let sessions = Router::new()
        .route(
            "/v1/whip/sessions/{sid}",
            delete(end_whip_session)
                .patch(patch_whip_session)
                .options(preflight),
        )
        .route(
            "/v1/whep/sessions/{sid}",
            delete(end_whep_session)
                .patch(patch_whep_session)
                .options(preflight),
        )
        .layer(cors);
    let mut router = Router::new()
        .route("/rtc", get(rtc))
        .route("/sdk/switchboard.js", get(sdk))
        .merge(endpoints)
        .merge(sessions);
    if demo.is_some() {
        router = router
            .route("/demo", get(demo_page))
            .route("/demo/token", get(demo_token));
    }
    router.with_state(MediaState {
        manager,
        demo: demo.map(Arc::new),
        resumes: Arc::new(Resumes::default()),
    })
}

/// A JSON error in the REST API's shape.
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "message": message.into() } })),
    )
        .into_response()
}

/// Verifies an access token against the key it names; returns the project and claims.
pub(crate) async fn authorize(
    manager: &RoomManager,
    token: &str,
) -> Result<(ProjectId, Claims), Response> {
    manager
        .store
        .api_keys()
        .verify_access_token(token, chrono::Utc::now())
        .await
        .map_err(|e| match e {
            AccessTokenError::Store(e) => {
                tracing::error!(error = %e, "key lookup failed");
                error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "cannot verify tokens right now",
                )
            }
            AccessTokenError::Token(TokenError::Expired(_)) => {
                error(StatusCode::UNAUTHORIZED, "token_expired", e.to_string())
            }
            e => error(StatusCode::UNAUTHORIZED, "invalid_token", e.to_string()),
        })
}

/// The token of an `Authorization: Bearer` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    token::from_bearer(value).map(str::to_owned)
}

/// What a signaling socket reads into at first: most frames are far
/// smaller, a larger one takes a few reads, and the default of 128 KiB per
/// participant was the largest share of a room's memory.
const READ_BUFFER_BYTES: usize = 4096;

async fn rtc(
    State(state): State<MediaState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Some(token) = query
        .get("access_token")
        .cloned()
        .or_else(|| bearer(&headers))
    else {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "pass the access token as ?access_token= or Authorization: Bearer",
        );
    };
    let (project, claims) = match authorize(&state.manager, &token).await {
        Ok(v) => v,
        Err(response) => return response,
    };
    let Some(room_name) = claims.grants.room.clone() else {
        return error(
            StatusCode::FORBIDDEN,
            "no_room_grant",
            "the access token grants no room",
        );
    };
    let room = match join_room(&state.manager, project, &room_name, &claims, None).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    if room.is_full_for(claims.sub.as_str()) {
        return error(
            StatusCode::CONFLICT,
            "room_full",
            format!("room `{room_name}` is full"),
        );
    }
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "websocket_required",
                format!("connect with a WebSocket: {e}"),
            )
        }
    };
    let manager = state.manager.clone();
    let resumes = state.resumes.clone();
    // A token that names no waiting session of this identity is ignored: the
    // client joins afresh, as it would without one.
    let resume = query
        .get("reconnect")
        .filter(|t| resumes.is_waiting(t, room.sid, claims.sub.as_str()))
        .cloned();
    upgrade
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| async move {
            let socket = match resume {
                Some(token) => {
                    match resumes.resume(&token, room.sid, claims.sub.as_str(), socket) {
                        Ok(_) => return,
                        // The session gave up between the check and the upgrade.
                        Err(socket) => *socket,
                    }
                }
                None => socket,
            };
            crate::signal::session::run(socket, manager, resumes, room, claims).await
        })
}

/// Where a WHIP or WHEP offer goes when its room is live on another node:
/// the same path there, with the access token as `?access_token=` (HTTP
/// clients drop an `Authorization` header when a redirect changes host).
#[derive(Debug)]
pub(crate) struct Redirect<'a> {
    /// The path the offer was posted to.
    pub path: &'a str,
    /// The access token it carried.
    pub token: &'a str,
}

impl Redirect<'_> {
    /// The `307 Temporary Redirect` to the node at `node_url` (RFC 9725 §4.5:
    /// WHIP clients follow it with the same method and body).
    fn to(self, node_url: &str) -> Response {
        let Ok(mut location) = url::Url::parse(node_url) else {
            tracing::error!(node_url, "a node registered an unusable URL");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the room's node has no usable address",
            );
        };
        location.set_path(self.path);
        location
            .query_pairs_mut()
            .clear()
            .append_pair("access_token", self.token);
        (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, location.to_string())],
        )
            .into_response()
    }
}

/// The live room a token may join, or the error response. A room live on
/// another node is refused with its URL, or with `redirect` a `307` there.
pub(crate) async fn join_room(
    manager: &RoomManager,
    project: ProjectId,
    room_name: &RoomName,
    claims: &Claims,
    redirect: Option<Redirect<'_>>,
) -> Result<Arc<Room>, Response> {
    let named_here = claims.node == Some(manager.node);
    // The API names a node when it signs the token; a token signed offline
    // may say anything, and a time far from its issue would skew placement.
    let now_ms = chrono::Utc::now().timestamp_millis();
    let issued_ms = claims.iat.saturating_mul(1000);
    if let Some(at) = claims.named_at.filter(|at| {
        named_here && (issued_ms - 1_000..=issued_ms + 2_000).contains(at) && *at <= now_ms + 2_000
    }) {
        manager.named_join_arrived(at);
    }
    match manager
        .room_for_join(project, room_name, &claims.grants, named_here)
        .await
    {
        Ok(r) => Ok(r),
        Err(RoomLookupError::NotFound) => Err(error(
            StatusCode::NOT_FOUND,
            "room_not_found",
            format!("room `{room_name}` does not exist; create it with POST /v1/rooms or grant room_create"),
        )),
        Err(RoomLookupError::Elsewhere(url)) => Err(match redirect {
            Some(redirect) => redirect.to(&url),
            None => error(
                StatusCode::CONFLICT,
                "room_on_another_node",
                format!("room `{room_name}` is live on the node at {url}; ask POST /v1/tokens for its URL and connect there"),
            ),
        }),
        Err(RoomLookupError::OutsideRegions(why)) => Err(error(
            StatusCode::FORBIDDEN,
            "region_not_allowed",
            format!("this media node cannot host room `{room_name}`: {why}; ask POST /v1/tokens for the room's URL"),
        )),
        Err(RoomLookupError::Store(e)) => {
            tracing::error!(error = %e, "room lookup failed");
            Err(error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "cannot reach the room registry"))
        }
    }
}

/// Publish to a room over WHIP (RFC 9725): an SDP offer in, `201` with the SDP answer and `Location` out.
#[utoipa::path(post, path = "/v1/whip/rooms/{room}", tag = "media",
    params(("room" = String, Path, description = "Room name"), OfferQuery),
    request_body(content = String, content_type = "application/sdp", description = "SDP offer"),
    security(("access_token" = [])),
    responses(
        (status = 201, description = "SDP answer; the Location header is the session to DELETE", content_type = "application/sdp", body = String),
        (status = 307, description = "The room is live on another node: post the same offer to Location"),
        (status = 400, description = "Not a usable SDP offer"),
        (status = 401, description = "Missing, invalid or expired access token"),
        (status = 403, description = "The token grants another room, or not can_publish"),
        (status = 409, description = "The room is full"),
        (status = 415, description = "Content-Type is not application/sdp"),
    ))]
async fn whip_offer(
    State(state): State<MediaState>,
    Path(room): Path<String>,
    uri: OriginalUri,
    Query(query): Query<OfferQuery>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let request = offer_request(uri, query, headers, body);
    crate::signal::whip::offer(state.manager, room, request).await
}

/// Play a participant's tracks over WHEP: an SDP offer in, `201` with the SDP answer and `Location` out.
#[utoipa::path(post, path = "/v1/whep/rooms/{room}/participants/{identity}", tag = "media",
    params(("room" = String, Path, description = "Room name"), ("identity" = String, Path, description = "Publisher identity"), OfferQuery),
    request_body(content = String, content_type = "application/sdp", description = "SDP offer with receive-only transceivers"),
    security(("access_token" = [])),
    responses(
        (status = 201, description = "SDP answer; the Location header is the session to DELETE", content_type = "application/sdp", body = String),
        (status = 307, description = "The room is live on another node: post the same offer to Location"),
        (status = 400, description = "Not a usable SDP offer, or the participant publishes nothing"),
        (status = 401, description = "Missing, invalid or expired access token"),
        (status = 403, description = "The token grants another room"),
        (status = 404, description = "The participant is not connected"),
    ))]
async fn whep_offer(
    State(state): State<MediaState>,
    Path((room, identity)): Path<(String, String)>,
    uri: OriginalUri,
    Query(query): Query<OfferQuery>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let request = offer_request(uri, query, headers, body);
    crate::signal::whep::offer(state.manager, room, identity, request).await
}

/// Query of a WHIP or WHEP offer.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
pub(crate) struct OfferQuery {
    /// The access token, when no `Authorization: Bearer` header carries it
    /// (as after a redirect to the room's node).
    access_token: Option<String>,
}

fn offer_request(
    OriginalUri(uri): OriginalUri,
    query: OfferQuery,
    headers: HeaderMap,
    body: String,
) -> OfferRequest {
    OfferRequest {
        path: uri.path().to_owned(),
        query_token: query.access_token,
        headers,
        body,
    }
}

/// End a WHIP session.
#[utoipa::path(delete, path = "/v1/whip/sessions/{sid}", tag = "media", params(("sid" = String, Path, description = "The last segment of the offer's Location")),
    security(("access_token" = [])), responses((status = 200, description = "Ended"), (status = 401, description = "No access token, or not a valid one"), (status = 403, description = "The token is neither the session's identity nor a room_admin of its room"), (status = 404, description = "No such session")))]
async fn end_whip_session(
    state: State<MediaState>,
    sid: Path<String>,
    headers: HeaderMap,
) -> Response {
    end_session(state, sid, headers).await
}

/// End a WHEP session.
#[utoipa::path(delete, path = "/v1/whep/sessions/{sid}", tag = "media", params(("sid" = String, Path, description = "The last segment of the offer's Location")),
    security(("access_token" = [])), responses((status = 200, description = "Ended"), (status = 401, description = "No access token, or not a valid one"), (status = 403, description = "The token is neither the session's identity nor a room_admin of its room"), (status = 404, description = "No such session")))]
async fn end_whep_session(
    state: State<MediaState>,
    sid: Path<String>,
    headers: HeaderMap,
) -> Response {
    end_session(state, sid, headers).await
}

/// The OpenAPI description of the media node's `/v1` routes, merged into the API's document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(paths(
        whip_offer,
        whep_offer,
        end_whip_session,
        end_whep_session,
        patch_whip_session,
        patch_whep_session
    ))]
    struct MediaDoc;
    let mut doc = <MediaDoc as utoipa::OpenApi>::openapi();
    let scheme = utoipa::openapi::security::SecurityScheme::Http(
        utoipa::openapi::security::Http::builder()
            .scheme(utoipa::openapi::security::HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some("An access token from POST /v1/tokens."))
            .build(),
    );
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme("access_token", scheme);
    doc
}

/// The WHIP or WHEP session a resource URL names, with the claims of the
/// caller's token, which must be for the session's room.
async fn session_for(
    state: &MediaState,
    resource: &str,
    headers: &HeaderMap,
) -> Result<
    (
        Arc<Room>,
        Arc<crate::room::participant::Participant>,
        Claims,
    ),
    Response,
> {
    let Some(token) = bearer(headers) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "send the access token as Authorization: Bearer <token>",
        ));
    };
    let (project, claims) = authorize(&state.manager, &token).await?;
    let Some((room, p)) = find_resource(&state.manager, project, resource) else {
        return Err(error(
            StatusCode::NOT_FOUND,
            "session_not_found",
            "no such session (it may have ended already); use the Location the offer was answered with",
        ));
    };
    if claims.grants.room.as_ref() != Some(&room.name) {
        return Err(not_allowed());
    }
    Ok((room, p, claims))
}

fn not_allowed() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "not_allowed",
        "only the session's own identity (or, to end it, a room_admin of its room) may do this",
    )
}

/// `DELETE` on a WHIP or WHEP session's location ends it. It takes the key
/// of the location and a token of the session's own identity, or of a
/// `room_admin` of its room.
async fn end_session(
    State(state): State<MediaState>,
    Path(resource): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (room, p, claims) = match session_for(&state, &resource, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let own = claims.sub == p.identity;
    if !(own || claims.grants.room_admin) {
        return not_allowed();
    }
    let reason = if own {
        LeaveReason::ClientLeft
    } else {
        LeaveReason::Removed
    };
    room.end(&p, reason).await;
    StatusCode::OK.into_response()
}

/// Trickle candidates into, or restart ICE of, a WHIP session.
#[utoipa::path(patch, path = "/v1/whip/sessions/{sid}", tag = "media", params(("sid" = String, Path, description = "The last segment of the offer's Location")),
    request_body(content = String, content_type = "application/trickle-ice-sdpfrag", description = "Candidates (RFC 8840), or new ICE credentials and candidates for an ICE restart"),
    security(("access_token" = [])), responses((status = 200, description = "ICE restarted: the server's new credentials and candidates, and a new ETag"), (status = 204, description = "Candidates added"), (status = 400, description = "Not a fragment this session can take"), (status = 401, description = "No access token, or not a valid one"), (status = 403, description = "The token is not the session's own identity"), (status = 404, description = "No such session"), (status = 412, description = "If-Match does not match the session's ETag"), (status = 415, description = "Not application/trickle-ice-sdpfrag"), (status = 422, description = "New ICE credentials without If-Match: *"), (status = 428, description = "No If-Match")))]
async fn patch_whip_session(
    state: State<MediaState>,
    sid: Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    patch_session(state, sid, headers, body).await
}

/// Trickle candidates into, or restart ICE of, a WHEP session.
#[utoipa::path(patch, path = "/v1/whep/sessions/{sid}", tag = "media", params(("sid" = String, Path, description = "The last segment of the offer's Location")),
    request_body(content = String, content_type = "application/trickle-ice-sdpfrag", description = "Candidates (RFC 8840), or new ICE credentials and candidates for an ICE restart"),
    security(("access_token" = [])), responses((status = 200, description = "ICE restarted: the server's new credentials and candidates, and a new ETag"), (status = 204, description = "Candidates added"), (status = 400, description = "Not a fragment this session can take"), (status = 401, description = "No access token, or not a valid one"), (status = 403, description = "The token is not the session's own identity"), (status = 404, description = "No such session"), (status = 412, description = "If-Match does not match the session's ETag"), (status = 415, description = "Not application/trickle-ice-sdpfrag"), (status = 422, description = "New ICE credentials without If-Match: *"), (status = 428, description = "No If-Match")))]
async fn patch_whep_session(
    state: State<MediaState>,
    sid: Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    patch_session(state, sid, headers, body).await
}

/// `PATCH` on a session's location, by its own client: candidates (`If-Match`
/// with the session's ETag) or an ICE restart (`If-Match: *` and new
/// credentials), per RFC 9725 section 4.4.
async fn patch_session(
    State(state): State<MediaState>,
    Path(resource): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    use crate::signal::patch::{self, Patched, Refused};
    use crate::signal::sdpfrag::SdpFrag;
    const FRAGMENT: &str = "application/trickle-ice-sdpfrag";
    let (_, p, claims) = match session_for(&state, &resource, &headers).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if claims.sub != p.identity {
        return not_allowed();
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.to_ascii_lowercase().starts_with(FRAGMENT) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send candidates or ICE credentials with Content-Type: {FRAGMENT}"),
        );
    }
    let Some(if_match) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) else {
        return error(
            StatusCode::PRECONDITION_REQUIRED,
            "if_match_required",
            "send If-Match with the ETag of the offer's answer (or * for an ICE restart)",
        );
    };
    let frag = match SdpFrag::parse(&body) {
        Ok(f) => f,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_fragment", e.to_string()),
    };
    let current = patch::current_etag(&p.publisher);
    let wildcard = if_match.trim() == "*";
    if !wildcard && Some(if_match.trim()) != current.as_deref() {
        return error(
            StatusCode::PRECONDITION_FAILED,
            "etag_mismatch",
            "If-Match is not the session's ETag: the ICE session restarted since; use the ETag of the last answer",
        );
    }
    let loopback_ok = state.manager.rtc.bind_ip.is_loopback();
    match patch::apply(&p.publisher, frag, wildcard, loopback_ok).await {
        Ok(Patched::Trickled) => StatusCode::NO_CONTENT.into_response(),
        Ok(Patched::Restarted { fragment, etag }) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, FRAGMENT.to_owned()),
                (header::ETAG, etag),
            ],
            fragment,
        )
            .into_response(),
        Err(Refused::NotARestart) => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "restart_needs_if_match_any",
            "these ICE credentials are not the session's: restart ICE with If-Match: *, then send candidates with the new ETag",
        ),
        Err(Refused::Invalid(message)) => {
            error(StatusCode::BAD_REQUEST, "invalid_fragment", message)
        }
    }
}

/// Preflight requests are answered by the CORS layer; this only gives the route an OPTIONS method for it to wrap.
async fn preflight() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// Tells a client what a WHIP or WHEP endpoint takes (RFC 9725 section 4.1).
async fn accept_post(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::HeaderName::from_static("accept-post"),
        axum::http::HeaderValue::from_static("application/sdp"),
    );
    response
}

async fn sdk() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        SDK_JS,
    )
}

async fn demo_page() -> Html<&'static str> {
    Html(DEMO_HTML)
}

async fn demo_token(
    State(state): State<MediaState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some(demo) = state.demo else {
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            "the demo runs only with --dev",
        );
    };
    let room = q.get("room").map(String::as_str).unwrap_or("demo");
    let identity = q.get("identity").map(String::as_str).unwrap_or("guest");
    let (Ok(room), Ok(identity)) = (RoomName::new(room), Identity::new(identity)) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "room and identity must be 1 to 128 bytes without control characters",
        );
    };
    let grants = Grants {
        room: Some(room),
        room_create: true,
        ..Grants::default()
    };
    let claims = Claims::new(&demo.key_id, identity, grants, chrono::Utc::now(), 3600);
    match token::sign(&claims, &demo.key_id, &demo.secret) {
        Ok(t) => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1:7880");
            Json(json!({ "token": t, "url": format!("ws://{host}/rtc") })).into_response()
        }
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            e.to_string(),
        ),
    }
}
