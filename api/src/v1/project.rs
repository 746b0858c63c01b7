//! `/v1/project`: the project the calling key belongs to.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use switchboard_core::ProjectId;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::AppState;

/// The project routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_project))
}

/// A project.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectView {
    /// Its id.
    pub id: ProjectId,
    /// Its name.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// The caller's project.
#[utoipa::path(get, path = "/v1/project", tag = "project", responses((status = 200, body = ProjectView), (status = 401, body = ErrorBody)))]
async fn get_project(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ProjectView>, ApiError> {
    let p = state
        .store
        .projects()
        .get(caller.project_id)
        .await?
        .ok_or_else(|| {
            ApiError::internal(format!(
                "key {} names missing project {}",
                caller.key_id, caller.project_id
            ))
        })?;
    Ok(Json(ProjectView {
        id: p.id,
        name: p.name,
        created_at: p.created_at,
    }))
}
