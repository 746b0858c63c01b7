//! `/v1/rooms/{name}/recordings` and `/v1/recordings`: start and stop
//! recordings, list them, download their files (directly with the API key,
//! or through a time-limited signed URL) and delete them.

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_core::recording::{Recording, RecordingSpec};
use switchboard_core::{ProjectId, RecordingId};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::page_size;
use super::rooms::{find_room, parse_room_name};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::AppState;
use switchboard_recording::control;

/// Longest a signed download URL may live.
pub const MAX_URL_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a signed download URL lives when no `expires_in_s` is given.
pub const DEFAULT_URL_TTL: Duration = Duration::from_secs(3600);
/// Where signed downloads are served (outside `/v1`: they carry no API key).
pub const SIGNED_PATH: &str = "/recordings";

/// The recordings routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start_recording))
        .routes(routes!(list_recordings))
        .routes(routes!(get_recording, delete_recording))
        .routes(routes!(stop_recording))
        .routes(routes!(download_file))
        .routes(routes!(sign_file_url))
}

/// The signed-download route, served without an API key.
pub fn signed_router() -> axum::Router<AppState> {
    axum::Router::new().route(
        &format!("{SIGNED_PATH}/{{id}}/files/{{file}}"),
        axum::routing::get(signed_download),
    )
}

/// Query of `GET /v1/recordings`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListRecordings {
    /// Only this room's recordings.
    pub room: Option<String>,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of recordings.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordingList {
    /// The recordings, oldest first.
    pub data: Vec<Recording>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Body of `POST /v1/recordings/{id}/files/{file}/url`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUrl {
    /// Seconds the URL works for: 1 to 604800 (a week); default 3600.
    pub expires_in_s: Option<u64>,
}

/// A time-limited download URL.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignedUrl {
    /// The path and query to GET on this server, without credentials.
    pub url: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// Query of a signed download.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Signature {
    expires: Option<i64>,
    signature: Option<String>,
}

fn parse_id(id: &str) -> Result<RecordingId, ApiError> {
    id.parse().map_err(|e: switchboard_core::id::IdError| {
        ApiError::bad_request("invalid_recording_id", e.to_string())
    })
}

fn not_found(id: RecordingId) -> ApiError {
    ApiError::not_found(
        "recording_not_found",
        format!("there is no recording `{id}` in this project"),
    )
}

async fn find(
    state: &AppState,
    project: ProjectId,
    id: RecordingId,
) -> Result<Recording, ApiError> {
    state
        .store
        .recordings()
        .get(project, id)
        .await?
        .ok_or_else(|| not_found(id))
}

/// Start recording a room.
///
/// The recording is handed to the media node hosting the room; a room no one
/// has joined yet starts recording when it goes live. `tracks` mode writes
/// each selected track, as received, to its own WebM file; `composite` mode
/// also mixes them, once the recording ends, into one MP4 (a grid of the
/// videos, the audio mixed).
#[utoipa::path(post, path = "/v1/rooms/{name}/recordings", tag = "recordings", request_body = RecordingSpec,
    params(("name" = String, Path, description = "Room name")),
    responses(
        (status = 201, description = "Created", body = Recording),
        (status = 400, description = "Invalid request", body = ErrorBody),
        (status = 404, description = "No such room", body = ErrorBody),
        (status = 503, description = "The media node hosting the room did not answer", body = ErrorBody),
    ))]
async fn start_recording(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(spec): ApiJson<RecordingSpec>,
) -> Result<(StatusCode, Json<Recording>), ApiError> {
    let name = parse_room_name(name)?;
    spec.validate()
        .map_err(|m| ApiError::bad_request("invalid_recording", m))?;
    let room = find_room(&state, &caller, &name).await?;
    let quotas = state.config.quotas;
    let (in_project, in_room) = state
        .store
        .recordings()
        .count_open(caller.project_id, &name)
        .await?;
    if in_room >= quotas.recordings_per_room {
        return Err(crate::quota_exceeded(
            "this room already runs as many recordings as it may",
            quotas.recordings_per_room,
            "recordings_per_room",
        ));
    }
    if in_project >= quotas.recordings_per_project {
        return Err(crate::quota_exceeded(
            "this project already runs as many recordings as it may",
            quotas.recordings_per_project,
            "recordings_per_project",
        ));
    }
    let reference = switchboard_core::event::RoomRef {
        sid: room.sid,
        name: room.name.clone(),
    };
    let rec = control::start(
        &state.store,
        state.recorders.as_ref(),
        caller.project_id,
        reference,
        spec,
        state.clock.now(),
    )
    .await?;
    tracing::info!(room = %name, recording = %rec.id, "recording requested");
    Ok((StatusCode::CREATED, Json(rec)))
}

/// List recordings, oldest first.
#[utoipa::path(get, path = "/v1/recordings", tag = "recordings", params(ListRecordings),
    responses((status = 200, body = RecordingList), (status = 400, body = ErrorBody)))]
async fn list_recordings(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListRecordings>,
) -> Result<Json<RecordingList>, ApiError> {
    let limit = page_size(q.limit)?;
    let room = q.room.map(parse_room_name).transpose()?;
    let after = q
        .cursor
        .map(|c| {
            c.parse::<RecordingId>().map_err(|_| {
                ApiError::bad_request("invalid_cursor", "cursor is not one this API returned")
            })
        })
        .transpose()?;
    let mut data = state
        .store
        .recordings()
        .list(caller.project_id, room.as_ref(), after, limit + 1)
        .await?;
    let next_cursor = if data.len() > limit as usize {
        data.truncate(limit as usize);
        data.last().map(|r| r.id.to_string())
    } else {
        None
    };
    Ok(Json(RecordingList { data, next_cursor }))
}

/// Get a recording: its status, files and length.
#[utoipa::path(get, path = "/v1/recordings/{id}", tag = "recordings",
    params(("id" = String, Path, description = "Recording id")),
    responses((status = 200, body = Recording), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_recording(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Recording>, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(find(&state, caller.project_id, id).await?))
}

/// Stop a recording: its files are closed and it ends `finished` (or
/// `failed`, if nothing was recorded). Stopping an ended recording changes nothing.
#[utoipa::path(post, path = "/v1/recordings/{id}/stop", tag = "recordings",
    params(("id" = String, Path, description = "Recording id")),
    responses((status = 200, body = Recording), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn stop_recording(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Recording>, ApiError> {
    let id = parse_id(&id)?;
    let rec = find(&state, caller.project_id, id).await?;
    if rec.status.is_final() {
        return Ok(Json(rec));
    }
    control::stop(
        &state.store,
        state.recorders.as_ref(),
        caller.project_id,
        id,
        state.clock.now(),
    )
    .await?;
    Ok(Json(find(&state, caller.project_id, id).await?))
}

/// Delete an ended recording and its files.
#[utoipa::path(delete, path = "/v1/recordings/{id}", tag = "recordings",
    params(("id" = String, Path, description = "Recording id")),
    responses((status = 204, description = "Deleted"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Still recording", body = ErrorBody)))]
async fn delete_recording(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let rec = find(&state, caller.project_id, id).await?;
    if !rec.status.is_final() {
        return Err(ApiError::conflict(
            "recording_in_progress",
            format!(
                "recording `{id}` is {}: stop it and wait for it to finish before deleting it",
                rec.status.as_str()
            ),
        ));
    }
    if let Some(why) = state.store.recordings().uploads_pending(id).await? {
        return Err(ApiError::conflict("recording_in_progress", why));
    }
    // Files first: if that fails, the recording is still there to delete again.
    if let Some(storage) = &state.recording_storage {
        storage
            .remove(caller.project_id, id)
            .await
            .map_err(ApiError::internal)?;
    }
    match state.store.recordings().delete(caller.project_id, id).await {
        Err(switchboard_store::StoreError::Conflict(m)) => {
            Err(ApiError::conflict("recording_in_progress", m))
        }
        Ok(None) => Err(not_found(id)),
        other => other.map(|_| StatusCode::NO_CONTENT).map_err(Into::into),
    }
}

/// Download one file of a recording (HTTP range requests are honoured).
#[utoipa::path(get, path = "/v1/recordings/{id}/files/{file}", tag = "recordings",
    params(("id" = String, Path, description = "Recording id"), ("file" = String, Path, description = "File name, from the recording's `files`")),
    responses(
        (status = 200, description = "The file", content_type = "application/octet-stream"),
        (status = 206, description = "The requested range"),
        (status = 307, description = "The file is in the bucket: follow the presigned URL"),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ))]
async fn download_file(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, file)): ApiPath<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let rec = find(&state, caller.project_id, id).await?;
    serve(
        &state,
        caller.project_id,
        &rec,
        &file,
        BUCKET_URL_TTL,
        request,
    )
    .await
}

/// Make a time-limited URL that downloads one file without an API key.
#[utoipa::path(post, path = "/v1/recordings/{id}/files/{file}/url", tag = "recordings", request_body = SignUrl,
    params(("id" = String, Path, description = "Recording id"), ("file" = String, Path, description = "File name")),
    responses((status = 200, body = SignedUrl), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn sign_file_url(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, file)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<SignUrl>,
) -> Result<Json<SignedUrl>, ApiError> {
    let id = parse_id(&id)?;
    let rec = find(&state, caller.project_id, id).await?;
    file_of(&rec, &file)?;
    let ttl = match body.expires_in_s {
        None => DEFAULT_URL_TTL,
        Some(s @ 1..) if Duration::from_secs(s) <= MAX_URL_TTL => Duration::from_secs(s),
        Some(s) => {
            return Err(ApiError::invalid(format!(
                "expires_in_s must be between 1 and {}, got {s}",
                MAX_URL_TTL.as_secs()
            )))
        }
    };
    let expires_at =
        state.clock.now() + chrono::Duration::from_std(ttl).map_err(ApiError::internal)?;
    let expires = expires_at.timestamp();
    let signature = hex::encode(
        state
            .store
            .master_key()
            .sign(&signed_message(id, &file, expires)),
    );
    Ok(Json(SignedUrl {
        url: format!("{SIGNED_PATH}/{id}/files/{file}?expires={expires}&signature={signature}"),
        expires_at,
    }))
}

/// A download through a signed URL.
async fn signed_download(
    State(state): State<AppState>,
    axum::extract::Path((id, file)): axum::extract::Path<(String, String)>,
    ApiQuery(sig): ApiQuery<Signature>,
    request: Request,
) -> Result<Response, ApiError> {
    let refused = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "invalid_signature",
            "this download URL is not valid or has expired: ask the API for a new one",
        )
    };
    let id = parse_id(&id)?;
    let (Some(expires), Some(signature)) = (sig.expires, sig.signature) else {
        return Err(refused());
    };
    let valid = expires >= state.clock.now().timestamp()
        && hex::decode(&signature).is_ok_and(|s| {
            state
                .store
                .master_key()
                .verify(&signed_message(id, &file, expires), &s)
        });
    if !valid {
        return Err(refused());
    }
    let (project, rec) = state
        .store
        .recordings()
        .find_any(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    // The bucket's URL lives no longer than this one.
    let left = (expires - state.clock.now().timestamp()).max(1) as u64;
    serve(
        &state,
        project,
        &rec,
        &file,
        Duration::from_secs(left),
        request,
    )
    .await
}

/// What a signature covers: the recording, the file and the expiry.
fn signed_message(id: RecordingId, file: &str, expires: i64) -> Vec<u8> {
    format!("recording-file\n{id}\n{file}\n{expires}").into_bytes()
}

/// The listed file `name` of `rec`, or 404.
fn file_of<'a>(
    rec: &'a Recording,
    name: &str,
) -> Result<&'a switchboard_core::recording::RecordingFile, ApiError> {
    rec.files.iter().find(|f| f.name == name).ok_or_else(|| {
        ApiError::not_found(
            "file_not_found",
            format!(
                "recording `{}` has no file `{name}`; its files are listed in its `files`",
                rec.id
            ),
        )
    })
}

/// How long the bucket's presigned URL behind an API-key download lives.
const BUCKET_URL_TTL: Duration = Duration::from_secs(300);

/// Serves a listed file of `rec` (see `switchboard_recording::serve`).
async fn serve(
    state: &AppState,
    project: ProjectId,
    rec: &Recording,
    name: &str,
    ttl: Duration,
    request: Request,
) -> Result<Response, ApiError> {
    use switchboard_recording::serve::{file, ServeError};
    let storage = state.recording_storage.as_ref().ok_or_else(|| {
        ApiError::not_found("file_not_found", "this server keeps no recording files")
    })?;
    file(storage, project, rec, name, ttl, request)
        .await
        .map_err(|e| match e {
            ServeError::NotListed { .. } | ServeError::Gone { .. } => {
                ApiError::not_found("file_not_found", e.to_string())
            }
            ServeError::BadName(e) => ApiError::bad_request("invalid_file_name", e.to_string()),
            ServeError::Storage(e) => ApiError::internal(e),
            ServeError::Io(e) => ApiError::internal(e),
        })
}
