//! `/v1/rooms`: create, list, read, change and delete rooms.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use switchboard_core::event::RoomFinishReason;
use switchboard_core::room::{
    Room, DEFAULT_EMPTY_TIMEOUT_S, MAX_EMPTY_TIMEOUT_S, MAX_PARTICIPANTS_LIMIT,
};
use switchboard_core::{RoomName, RoomSid};
use switchboard_store::rooms::{NewRoom, RoomPatch};
use switchboard_store::StoreError;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{check_metadata, page_size};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::AppState;

/// The rooms routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_room, list_rooms))
        .routes(routes!(get_room, update_room, delete_room))
}

/// Body of `POST /v1/rooms`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoom {
    /// Name, unique in the project; generated when absent.
    pub name: Option<RoomName>,
    /// Seconds the room stays open after its last participant leaves (default 300, at most 86400).
    pub empty_timeout_s: Option<u32>,
    /// Most participants at once; 0 or absent means no limit.
    pub max_participants: Option<u32>,
    /// Free-form data for the app, up to 64 KiB.
    pub metadata: Option<String>,
    /// Preferred region of the media node, such as `eu-west`.
    pub region: Option<String>,
    /// Record every track (`tracks` mode) from the first one published (default false).
    #[serde(default)]
    pub record: bool,
}

/// Body of `PATCH /v1/rooms/{name}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoom {
    /// New metadata, up to 64 KiB.
    pub metadata: Option<String>,
    /// New empty timeout in seconds.
    pub empty_timeout_s: Option<u32>,
    /// New participant limit; 0 means no limit.
    pub max_participants: Option<u32>,
}

/// Query of `GET /v1/rooms`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListRooms {
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of rooms.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomList {
    /// The rooms, oldest first.
    pub data: Vec<Room>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Parses a room name from a path.
pub(crate) fn parse_room_name(name: String) -> Result<RoomName, ApiError> {
    RoomName::new(name).map_err(|e| ApiError::bad_request("invalid_room_name", e.to_string()))
}

/// The 404 for a room the caller's project does not have.
pub(crate) fn room_not_found(name: &RoomName) -> ApiError {
    ApiError::not_found(
        "room_not_found",
        format!("there is no room named `{name}` in this project"),
    )
}

/// The caller's room `name`, or 404.
pub(crate) async fn find_room(
    state: &AppState,
    caller: &Caller,
    name: &RoomName,
) -> Result<Room, ApiError> {
    state
        .store
        .rooms()
        .get(caller.project_id, name)
        .await?
        .ok_or_else(|| room_not_found(name))
}

fn check_limits(
    empty_timeout_s: Option<u32>,
    max_participants: Option<u32>,
) -> Result<(), ApiError> {
    if let Some(t) = empty_timeout_s.filter(|t| *t > MAX_EMPTY_TIMEOUT_S) {
        return Err(ApiError::invalid(format!(
            "empty_timeout_s must be at most {MAX_EMPTY_TIMEOUT_S}, got {t}"
        )));
    }
    if let Some(n) = max_participants.filter(|n| *n > MAX_PARTICIPANTS_LIMIT) {
        return Err(ApiError::invalid(format!(
            "max_participants must be at most {MAX_PARTICIPANTS_LIMIT}, got {n}"
        )));
    }
    Ok(())
}

/// A valid region the project may host rooms in.
async fn check_region(state: &AppState, caller: &Caller, region: &str) -> Result<(), ApiError> {
    let region = switchboard_core::node::Region::new(region)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    match state.store.projects().regions(caller.project_id).await? {
        Some(allowed) if !allowed.contains(&region) => Err(ApiError::bad_request(
            "region_not_allowed",
            format!(
                "region `{region}` is outside the project's regions ({}); see PATCH /v1/project",
                allowed
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

async fn with_participant_count(
    state: &AppState,
    caller: &Caller,
    mut room: Room,
) -> Result<Room, ApiError> {
    room.num_participants = state
        .directory
        .list(caller.project_id, &room.name)
        .await?
        .len() as u32;
    Ok(room)
}

/// Create a room.
#[utoipa::path(post, path = "/v1/rooms", tag = "rooms", request_body = CreateRoom,
    responses(
        (status = 201, description = "Created", body = Room),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 409, description = "A room with this name exists", body = ErrorBody),
    ))]
async fn create_room(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateRoom>,
) -> Result<(StatusCode, Json<Room>), ApiError> {
    check_limits(req.empty_timeout_s, req.max_participants)?;
    let metadata = req.metadata.unwrap_or_default();
    check_metadata(&metadata)?;
    if let Some(region) = &req.region {
        check_region(&state, &caller, region).await?;
    }
    let name = req.name.unwrap_or_else(RoomName::generate);
    let new = NewRoom {
        name,
        empty_timeout_s: req.empty_timeout_s.unwrap_or(DEFAULT_EMPTY_TIMEOUT_S),
        max_participants: req.max_participants.unwrap_or(0),
        metadata,
        region: req.region,
        record: req.record,
    };
    match state
        .store
        .rooms()
        .create(caller.project_id, new, state.clock.now())
        .await
    {
        Ok((room, _)) => {
            tracing::info!(room = %room.name, room_sid = %room.sid, "room created");
            Ok((StatusCode::CREATED, Json(room)))
        }
        Err(StoreError::Conflict(m)) => Err(ApiError::conflict("room_exists", m)),
        Err(e) => Err(e.into()),
    }
}

/// List rooms, oldest first.
#[utoipa::path(get, path = "/v1/rooms", tag = "rooms", params(ListRooms),
    responses((status = 200, body = RoomList), (status = 400, body = ErrorBody)))]
async fn list_rooms(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListRooms>,
) -> Result<Json<RoomList>, ApiError> {
    let limit = page_size(q.limit)?;
    let after = q
        .cursor
        .map(|c| {
            c.parse::<RoomSid>().map_err(|_| {
                ApiError::bad_request("invalid_cursor", "cursor is not one this API returned")
            })
        })
        .transpose()?;
    let mut rooms = state
        .store
        .rooms()
        .list(caller.project_id, after, limit + 1)
        .await?;
    let next_cursor = if rooms.len() > limit as usize {
        rooms.truncate(limit as usize);
        rooms.last().map(|r| r.sid.to_string())
    } else {
        None
    };
    let mut data = Vec::with_capacity(rooms.len());
    for room in rooms {
        data.push(with_participant_count(&state, &caller, room).await?);
    }
    Ok(Json(RoomList { data, next_cursor }))
}

/// Get a room.
#[utoipa::path(get, path = "/v1/rooms/{name}", tag = "rooms", params(("name" = String, Path, description = "Room name")),
    responses((status = 200, body = Room), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_room(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<Room>, ApiError> {
    let name = parse_room_name(name)?;
    let room = find_room(&state, &caller, &name).await?;
    Ok(Json(with_participant_count(&state, &caller, room).await?))
}

/// Change a room's metadata or limits.
#[utoipa::path(patch, path = "/v1/rooms/{name}", tag = "rooms", request_body = UpdateRoom,
    params(("name" = String, Path, description = "Room name")),
    responses((status = 200, body = Room), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_room(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateRoom>,
) -> Result<Json<Room>, ApiError> {
    let name = parse_room_name(name)?;
    check_limits(req.empty_timeout_s, req.max_participants)?;
    if let Some(m) = &req.metadata {
        check_metadata(m)?;
    }
    let patch = RoomPatch {
        metadata: req.metadata,
        empty_timeout_s: req.empty_timeout_s,
        max_participants: req.max_participants,
    };
    let room = state
        .store
        .rooms()
        .update(caller.project_id, &name, patch)
        .await?
        .ok_or_else(|| room_not_found(&name))?;
    Ok(Json(with_participant_count(&state, &caller, room).await?))
}

/// Delete a room, disconnecting everyone in it.
#[utoipa::path(delete, path = "/v1/rooms/{name}", tag = "rooms", params(("name" = String, Path, description = "Room name")),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn delete_room(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let name = parse_room_name(name)?;
    if state
        .store
        .rooms()
        .get(caller.project_id, &name)
        .await?
        .is_none()
    {
        return Err(room_not_found(&name));
    }
    // The live room ends first: if its node cannot be reached, nothing is
    // deleted and a retry finds the room as it was, rather than a live room
    // the API calls gone.
    state.directory.close_room(caller.project_id, &name).await?;
    let deleted = state
        .store
        .rooms()
        .delete(
            caller.project_id,
            &name,
            RoomFinishReason::Deleted,
            state.clock.now(),
        )
        .await?;
    if deleted.is_none() {
        return Err(room_not_found(&name));
    }
    tracing::info!(room = %name, "room deleted");
    Ok(StatusCode::NO_CONTENT)
}
