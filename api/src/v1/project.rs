//! `/v1/project`: the project the calling key belongs to.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_core::function::FailurePolicy;
use switchboard_core::node::Region;
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
    /// The regions its rooms may be hosted in (data residency); empty: any region.
    #[schema(value_type = Vec<String>, example = json!(["eu-west", "eu-central"]))]
    pub regions: Vec<Region>,
}

/// Most regions a project can be pinned to.
pub const MAX_PROJECT_REGIONS: usize = 16;

/// Body of `PATCH /v1/project`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProject {
    /// `open` or `closed`.
    pub function_failure_policy: Option<FailurePolicy>,
    /// Pin the project's rooms to these regions, first one preferred, for
    /// data residency (up to 16); `[]` lifts the restriction. Rooms already
    /// live stay where they are.
    #[schema(value_type = Option<Vec<String>>, example = json!(["eu-west"]))]
    pub regions: Option<Vec<Region>>,
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
    if let Some(regions) = &req.regions {
        if regions.len() > MAX_PROJECT_REGIONS {
            return Err(ApiError::invalid(format!(
                "regions lists {} regions; the limit is {MAX_PROJECT_REGIONS}",
                regions.len()
            )));
        }
        let mut unique = regions.clone();
        unique.sort();
        unique.dedup();
        if unique.len() != regions.len() {
            return Err(ApiError::invalid("regions lists a region twice"));
        }
        state
            .store
            .projects()
            .set_regions(caller.project_id, regions)
            .await?;
    }
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
        regions: state
            .store
            .projects()
            .regions(caller.project_id)
            .await?
            .unwrap_or_default(),
    })
}
