//! `/v1/project`: the project the calling key belongs to.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_core::function::FailurePolicy;
use switchboard_core::ProjectId;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::AppState;

/// The project routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_project, update_project))
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
    /// What happens to a join when a `participant.joining` function fails or
    /// misses its deadline: `open` admits it, `closed` refuses it.
    pub function_failure_policy: FailurePolicy,
}

/// Body of `PATCH /v1/project`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    /// `open` or `closed`.
    pub function_failure_policy: Option<FailurePolicy>,
}

/// The caller's project.
#[utoipa::path(get, path = "/v1/project", tag = "project", responses((status = 200, body = ProjectView), (status = 401, body = ErrorBody)))]
async fn get_project(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ProjectView>, ApiError> {
    view(&state, &caller).await.map(Json)
}

/// Change the project's settings.
#[utoipa::path(patch, path = "/v1/project", tag = "project", request_body = UpdateProject,
    responses((status = 200, body = ProjectView), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn update_project(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<UpdateProject>,
) -> Result<Json<ProjectView>, ApiError> {
    if let Some(policy) = req.function_failure_policy {
        state
            .store
            .functions()
            .set_failure_policy(caller.project_id, policy)
            .await?;
    }
    view(&state, &caller).await.map(Json)
}

async fn view(state: &AppState, caller: &Caller) -> Result<ProjectView, ApiError> {
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
    Ok(ProjectView {
        id: p.id,
        name: p.name,
        created_at: p.created_at,
        function_failure_policy: state
            .store
            .functions()
            .failure_policy(caller.project_id)
            .await?,
    })
}
