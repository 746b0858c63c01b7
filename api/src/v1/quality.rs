//! `/v1/usage/sessions/{sid}/quality`: how one participant session's
//! connection went, every few seconds of it.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use switchboard_core::room::ConnectionStats;
use switchboard_core::ParticipantSid;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiPath;
use crate::AppState;

/// The quality route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(session_quality))
}

/// One interval of a session's connection.
#[derive(Debug, Serialize, ToSchema)]
pub struct QualitySample {
    /// When the interval ended (they are about 3 s long).
    pub at: DateTime<Utc>,
    /// The measures over it.
    #[serde(flatten)]
    pub stats: ConnectionStats,
}

/// A session's connection over time.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionQuality {
    /// The participant session.
    pub participant_sid: ParticipantSid,
    /// The room incarnation it was in.
    pub room_sid: String,
    /// Its intervals, oldest first (at most 9,600: eight hours).
    pub samples: Vec<QualitySample>,
}

/// A participant session's connection quality every few seconds: bitrates
/// both ways, packet loss, round trip and the quality score. Kept for the
/// retention period, like the session.
#[utoipa::path(get, path = "/v1/usage/sessions/{sid}/quality", tag = "usage",
    params(("sid" = String, Path, description = "Participant session id (`pa_...`)")),
    responses((status = 200, body = SessionQuality), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn session_quality(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(sid): ApiPath<String>,
) -> Result<Json<SessionQuality>, ApiError> {
    let sid: ParticipantSid = sid.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_sid",
            "that is not a participant session id; they look like pa_01J...",
        )
    })?;
    let session = state
        .store
        .usage()
        .session(caller.project_id, sid)
        .await?
        .ok_or_else(|| ApiError::not_found("session_not_found", format!("no session {sid}")))?;
    let samples = state
        .store
        .quality()
        .of_session(caller.project_id, sid)
        .await?
        .into_iter()
        .map(|s| QualitySample {
            at: s.at,
            stats: s.stats,
        })
        .collect();
    Ok(Json(SessionQuality {
        participant_sid: sid,
        room_sid: session.room_sid,
        samples,
    }))
}
