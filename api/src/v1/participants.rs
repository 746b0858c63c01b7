//! `/v1/rooms/{name}/participants`: the live participants of a room.
//!
//! Participants live on the media tier; these handlers ask the
//! [`ParticipantDirectory`](switchboard_core::directory::ParticipantDirectory).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use switchboard_core::directory::ParticipantUpdate;
use switchboard_core::room::ParticipantInfo;
use switchboard_core::{Identity, RoomName, TrackSid};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::rooms::{find_room, parse_room_name};
use super::{check_metadata, check_text};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::AppState;
use switchboard_core::name::MAX_NAME_BYTES;

/// The participants routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_participants))
        .routes(routes!(
            get_participant,
            update_participant,
            remove_participant
        ))
        .routes(routes!(mute_track))
}

/// The participants of a room.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParticipantList {
    /// Everyone connected now.
    pub data: Vec<ParticipantInfo>,
}

/// Body of `POST .../{identity}/mute`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MuteTrack {
    /// The track to mute or unmute.
    pub track_sid: TrackSid,
    /// True to mute.
    pub muted: bool,
}

/// Resolves the room (404 if unknown in the caller's project) and the identity.
async fn target(
    state: &AppState,
    caller: &Caller,
    room: String,
    identity: String,
) -> Result<(RoomName, Identity), ApiError> {
    let room = parse_room_name(room)?;
    let identity = Identity::new(identity)
        .map_err(|e| ApiError::bad_request("invalid_identity", e.to_string()))?;
    find_room(state, caller, &room).await?;
    Ok((room, identity))
}

/// List the participants connected to a room.
#[utoipa::path(get, path = "/v1/rooms/{name}/participants", tag = "participants",
    params(("name" = String, Path, description = "Room name")),
    responses((status = 200, body = ParticipantList),
        (status = 400, body = ErrorBody, description = "Not a valid room name"),
        (status = 404, body = ErrorBody)))]
async fn list_participants(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<ParticipantList>, ApiError> {
    let name = parse_room_name(name)?;
    find_room(&state, &caller, &name).await?;
    let data = state.directory.list(caller.project_id, &name).await?;
    Ok(Json(ParticipantList { data }))
}

/// Get one connected participant.
#[utoipa::path(get, path = "/v1/rooms/{name}/participants/{identity}", tag = "participants",
    params(("name" = String, Path, description = "Room name"), ("identity" = String, Path, description = "Participant identity")),
    responses((status = 200, body = ParticipantInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_participant(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((room, identity)): ApiPath<(String, String)>,
) -> Result<Json<ParticipantInfo>, ApiError> {
    let (room, identity) = target(&state, &caller, room, identity).await?;
    state
        .directory
        .get(caller.project_id, &room, &identity)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::not_found(
                "participant_not_found",
                format!("participant `{identity}` is not connected to room `{room}`"),
            )
        })
}

/// Disconnect a participant from the room.
#[utoipa::path(delete, path = "/v1/rooms/{name}/participants/{identity}", tag = "participants",
    params(("name" = String, Path, description = "Room name"), ("identity" = String, Path, description = "Participant identity")),
    responses((status = 204, description = "Removed"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_participant(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((room, identity)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (room, identity) = target(&state, &caller, room, identity).await?;
    state
        .directory
        .remove(caller.project_id, &room, &identity)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change a participant's metadata, name or permissions.
#[utoipa::path(patch, path = "/v1/rooms/{name}/participants/{identity}", tag = "participants", request_body = ParticipantUpdate,
    params(("name" = String, Path, description = "Room name"), ("identity" = String, Path, description = "Participant identity")),
    responses((status = 200, body = ParticipantInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_participant(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((room, identity)): ApiPath<(String, String)>,
    ApiJson(update): ApiJson<ParticipantUpdate>,
) -> Result<Json<ParticipantInfo>, ApiError> {
    if let Some(m) = &update.metadata {
        check_metadata(m)?;
    }
    if let Some(n) = &update.name {
        check_text("name", n, MAX_NAME_BYTES)?;
    }
    let (room, identity) = target(&state, &caller, room, identity).await?;
    Ok(Json(
        state
            .directory
            .update(caller.project_id, &room, &identity, update)
            .await?,
    ))
}

/// Mute or unmute one of a participant's tracks.
#[utoipa::path(post, path = "/v1/rooms/{name}/participants/{identity}/mute", tag = "participants", request_body = MuteTrack,
    params(("name" = String, Path, description = "Room name"), ("identity" = String, Path, description = "Participant identity")),
    responses((status = 200, body = ParticipantInfo), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn mute_track(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((room, identity)): ApiPath<(String, String)>,
    ApiJson(req): ApiJson<MuteTrack>,
) -> Result<Json<ParticipantInfo>, ApiError> {
    let (room, identity) = target(&state, &caller, room, identity).await?;
    Ok(Json(
        state
            .directory
            .mute_track(
                caller.project_id,
                &room,
                &identity,
                req.track_sid,
                req.muted,
            )
            .await?,
    ))
}
