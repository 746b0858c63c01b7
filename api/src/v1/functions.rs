//! `/v1/functions`: deploy WebAssembly components, choose the version that
//! runs, read their invocations and logs, and test them on sample events.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_core::function::{
    check_name, FunctionSettingsError, InvokeReport, InvokeRequest, LogLine, RunnerError, Triggers,
};
use switchboard_core::InvocationId;
use switchboard_store::functions::{Function, Invocation, NewVersion, Version};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{page_size, Page};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::AppState;

/// The function routes (the upload route takes bodies up to 32 MiB).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_functions))
        .routes(routes!(get_function, delete_function))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(deploy_version, list_versions))
                .layer(axum::extract::DefaultBodyLimit::max(
                    switchboard_core::function::MAX_COMPONENT_BYTES,
                )),
        )
        .routes(routes!(activate))
        .routes(routes!(list_invocations))
        .routes(routes!(list_logs))
        .routes(routes!(invoke))
}

/// A function as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FunctionView {
    /// Its id (`fn_...`).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The version that runs; null runs nothing.
    pub active_version: Option<u32>,
    /// The newest version.
    pub latest_version: u32,
    /// When it was first deployed.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Function> for FunctionView {
    fn from(f: Function) -> Self {
        Self {
            id: f.id.to_string(),
            name: f.name,
            active_version: f.active_version,
            latest_version: f.latest_version,
            created_at: f.created_at,
            updated_at: f.updated_at,
        }
    }
}

/// One uploaded version.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    /// 1, 2, ...
    pub version: u32,
    /// The events that run it.
    pub events: Vec<String>,
    /// SHA-256 of the component, hex.
    pub digest: String,
    /// Component size in bytes.
    pub size_bytes: u64,
    /// Whether it is the version that runs.
    pub active: bool,
    /// When it was uploaded.
    pub created_at: DateTime<Utc>,
}

fn version_view(v: Version, active: Option<u32>) -> VersionView {
    VersionView {
        version: v.version,
        events: v.triggers.to_list(),
        digest: v.digest,
        size_bytes: v.size_bytes,
        active: active == Some(v.version),
        created_at: v.created_at,
    }
}

/// A deployed version and its function.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deployment {
    /// The function after the deployment.
    pub function: FunctionView,
    /// The new version.
    pub version: VersionView,
}

/// Query of `POST /v1/functions/{name}/versions`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeployQuery {
    /// Comma-separated events: `participant.joining` (the synchronous join hook) and/or
    /// event types from the catalogue (`participant.joined`, `room.*`, `*`).
    pub events: String,
    /// Make it the active version (default true).
    pub activate: Option<bool>,
}

/// A page of functions.
#[derive(Debug, Serialize, ToSchema)]
pub struct FunctionList {
    /// Functions by name.
    pub data: Vec<FunctionView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A function with its versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct FunctionDetail {
    /// The function.
    #[serde(flatten)]
    pub function: FunctionView,
    /// Its versions, newest first.
    pub versions: Vec<VersionView>,
}

/// Every version of a function.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionList {
    /// Newest first.
    pub data: Vec<VersionView>,
}

/// Body of `POST /v1/functions/{name}/activate`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Activate {
    /// The version to run (an older one rolls back); null stops running any.
    pub version: Option<u32>,
}

/// One run of a function.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvocationView {
    /// Its id (`fni_...`).
    pub id: String,
    /// The version that ran.
    pub version: u32,
    /// `joining` (the join hook), `event` (an asynchronous handler) or `invoke` (a test run).
    pub trigger: String,
    /// The event it ran on, if it came from the log.
    pub event_id: Option<String>,
    /// The event type.
    pub event_type: String,
    /// `ok`, `error`, `trap`, `timeout`, `out_of_fuel`, `out_of_memory`, `stack_overflow` or `busy`.
    pub outcome: String,
    /// The join hook's decision: `allow`, `deny` or `admit`.
    pub decision: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
    /// Wall time in microseconds.
    pub duration_us: u64,
    /// WebAssembly fuel consumed.
    pub fuel_used: u64,
    /// What it logged.
    pub logs: Vec<LogLine>,
    /// When it started.
    pub created_at: DateTime<Utc>,
}

impl From<Invocation> for InvocationView {
    fn from(i: Invocation) -> Self {
        Self {
            id: i.id.to_string(),
            version: i.version,
            trigger: i.trigger,
            event_id: i.event_id.map(|e| e.to_string()),
            event_type: i.event_type,
            outcome: i.outcome,
            decision: i.decision,
            error: i.error,
            duration_us: i.duration_us,
            fuel_used: i.fuel_used,
            logs: i.logs,
            created_at: i.created_at,
        }
    }
}

/// A page of invocations.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvocationList {
    /// Newest first.
    pub data: Vec<InvocationView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// One logged line with the invocation it came from.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogEntry {
    /// The invocation.
    pub invocation_id: String,
    /// When the invocation started.
    pub at: DateTime<Utc>,
    /// The version that logged it.
    pub version: u32,
    /// `debug`, `info`, `warn`, `error`, or `stdout` for console output.
    pub level: String,
    /// The text.
    pub message: String,
}

/// A page of log lines.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogList {
    /// Newest invocation first; lines of one invocation in order.
    pub data: Vec<LogEntry>,
    /// Pass as `cursor` for the next page (of invocations); absent on the last page.
    pub next_cursor: Option<String>,
}

/// Body of `POST /v1/functions/{name}/invoke`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Invoke {
    /// The version to run (default: the active one).
    pub version: Option<u32>,
    /// The sample event.
    pub event: SampleEvent,
}

/// An event to test a function with.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleEvent {
    /// `participant.joining` or a catalogue type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Its `data`, as webhooks receive it; for `participant.joining`:
    /// `{room, identity, name?, metadata?, permissions?}`.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(
        "function_not_found",
        format!(
            "there is no function `{}` in this project",
            name.chars().take(64).collect::<String>()
        ),
    )
}

fn settings_error(e: FunctionSettingsError) -> ApiError {
    let code = match e {
        FunctionSettingsError::InvalidName => "invalid_name",
        FunctionSettingsError::NoEvents | FunctionSettingsError::Events(_) => "invalid_event_types",
    };
    ApiError::bad_request(code, e.to_string())
}

fn runner_error(e: RunnerError) -> ApiError {
    match e {
        RunnerError::Rejected(m) => ApiError::bad_request("invalid_component", m),
        RunnerError::BadEvent(m) => ApiError::bad_request("invalid_event", m),
        RunnerError::Internal(m) => ApiError::internal(m),
        RunnerError::Busy(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "compiler_busy", m),
    }
}

async fn find(state: &AppState, caller: &Caller, name: &str) -> Result<Function, ApiError> {
    check_name(name).map_err(|_| not_found(name))?;
    state
        .store
        .functions()
        .get(caller.project_id, name)
        .await?
        .ok_or_else(|| not_found(name))
}

fn runner(
    state: &AppState,
) -> Result<&std::sync::Arc<dyn switchboard_core::function::FunctionRunner>, ApiError> {
    state.functions.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "functions_unavailable",
            "this server runs no function host",
        )
    })
}

/// Deploy a new version: the body is the WebAssembly component (up to 32 MiB).
#[utoipa::path(post, path = "/v1/functions/{name}/versions", tag = "functions",
    params(("name" = String, Path, description = "Function name"), DeployQuery),
    request_body(content = Vec<u8>, content_type = "application/wasm", description = "A WebAssembly component of the world switchboard:functions/function@0.1.0"),
    responses((status = 201, body = Deployment), (status = 400, body = ErrorBody), (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn deploy_version(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<DeployQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Deployment>), ApiError> {
    check_name(&name).map_err(settings_error)?;
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(content_type.starts_with("application/wasm")
        || content_type.starts_with("application/octet-stream"))
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the component bytes with Content-Type: application/wasm",
        ));
    }
    let events: Vec<String> = q
        .events
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    let triggers = Triggers::parse(events).map_err(settings_error)?;
    // Before the compile, which is what a flood of uploads would cost.
    let quota = state.config.quotas.function_versions_per_function;
    if let Some(existing) = state
        .store
        .functions()
        .get(caller.project_id, &name)
        .await?
    {
        let kept = state.store.functions().versions(existing.id).await?.len();
        if u64::try_from(kept).unwrap_or(u64::MAX) >= quota {
            return Err(crate::quota_exceeded(
                &format!("function `{name}` has as many versions as it may"),
                quota,
                "function_versions_per_function",
            ));
        }
    }
    let digest = runner(&state)?.check(&body).await.map_err(runner_error)?;
    let (function, version) = state
        .store
        .functions()
        .deploy(
            caller.project_id,
            &name,
            NewVersion {
                digest,
                triggers,
                component: body.to_vec(),
                activate: q.activate.unwrap_or(true),
            },
            state.clock.now(),
        )
        .await?;
    let active = function.active_version;
    Ok((
        StatusCode::CREATED,
        Json(Deployment {
            function: function.into(),
            version: version_view(version, active),
        }),
    ))
}

/// List functions.
#[utoipa::path(get, path = "/v1/functions", tag = "functions", params(Page),
    responses((status = 200, body = FunctionList), (status = 400, body = ErrorBody)))]
async fn list_functions(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<FunctionList>, ApiError> {
    let limit = page_size(page.limit)?;
    let mut data = state
        .store
        .functions()
        .list(caller.project_id, page.cursor.as_deref(), limit + 1)
        .await?;
    let next_cursor = if data.len() > limit as usize {
        data.truncate(limit as usize);
        data.last().map(|f| f.name.clone())
    } else {
        None
    };
    Ok(Json(FunctionList {
        data: data.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// Get a function with its versions.
#[utoipa::path(get, path = "/v1/functions/{name}", tag = "functions", params(("name" = String, Path, description = "Function name")),
    responses((status = 200, body = FunctionDetail), (status = 404, body = ErrorBody)))]
async fn get_function(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<FunctionDetail>, ApiError> {
    let f = find(&state, &caller, &name).await?;
    let versions = state.store.functions().versions(f.id).await?;
    let active = f.active_version;
    Ok(Json(FunctionDetail {
        function: f.into(),
        versions: versions
            .into_iter()
            .map(|v| version_view(v, active))
            .collect(),
    }))
}

/// Delete a function: nothing of it runs again; its invocation log stays readable until then.
#[utoipa::path(delete, path = "/v1/functions/{name}", tag = "functions", params(("name" = String, Path, description = "Function name")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)))]
async fn delete_function(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    check_name(&name).map_err(|_| not_found(&name))?;
    if state
        .store
        .functions()
        .delete(caller.project_id, &name, state.clock.now())
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&name))
    }
}

/// List a function's versions, newest first.
#[utoipa::path(get, path = "/v1/functions/{name}/versions", tag = "functions", params(("name" = String, Path, description = "Function name")),
    responses((status = 200, body = VersionList), (status = 404, body = ErrorBody)))]
async fn list_versions(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<VersionList>, ApiError> {
    let f = find(&state, &caller, &name).await?;
    let active = f.active_version;
    let versions = state.store.functions().versions(f.id).await?;
    Ok(Json(VersionList {
        data: versions
            .into_iter()
            .map(|v| version_view(v, active))
            .collect(),
    }))
}

/// Choose the version that runs: a newer one, an older one (rollback), or none.
#[utoipa::path(post, path = "/v1/functions/{name}/activate", tag = "functions", request_body = Activate,
    params(("name" = String, Path, description = "Function name")),
    responses((status = 200, body = FunctionView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn activate(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<Activate>,
) -> Result<Json<FunctionView>, ApiError> {
    let f = find(&state, &caller, &name).await?;
    let updated = state
        .store
        .functions()
        .set_active(caller.project_id, &name, req.version, state.clock.now())
        .await?
        .ok_or_else(|| match req.version {
            Some(v) => ApiError::not_found(
                "version_not_found",
                format!(
                    "function `{name}` has no version {v}; its versions are 1 to {}",
                    f.latest_version
                ),
            ),
            None => not_found(&name),
        })?;
    Ok(Json(updated.into()))
}

async fn invocations_page(
    state: &AppState,
    caller: &Caller,
    name: &str,
    page: Page,
) -> Result<(Vec<Invocation>, Option<String>), ApiError> {
    let f = find(state, caller, name).await?;
    let limit = page_size(page.limit)?;
    let before = page
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<InvocationId>()
                .map_err(|_| ApiError::invalid("cursor is not a `next_cursor` from this list"))
        })
        .transpose()?;
    let mut data = state
        .store
        .functions()
        .invocations(f.id, before, limit + 1)
        .await?;
    let next = if data.len() > limit as usize {
        data.truncate(limit as usize);
        data.last().map(|i| i.id.to_string())
    } else {
        None
    };
    Ok((data, next))
}

/// List a function's invocations, newest first.
#[utoipa::path(get, path = "/v1/functions/{name}/invocations", tag = "functions",
    params(("name" = String, Path, description = "Function name"), Page),
    responses((status = 200, body = InvocationList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_invocations(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<InvocationList>, ApiError> {
    let (data, next_cursor) = invocations_page(&state, &caller, &name, page).await?;
    Ok(Json(InvocationList {
        data: data.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// List the lines a function logged, newest invocation first.
#[utoipa::path(get, path = "/v1/functions/{name}/logs", tag = "functions",
    params(("name" = String, Path, description = "Function name"), Page),
    responses((status = 200, body = LogList), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_logs(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<LogList>, ApiError> {
    let (data, next_cursor) = invocations_page(&state, &caller, &name, page).await?;
    let data = data
        .into_iter()
        .flat_map(|i| {
            let (id, at, version) = (i.id.to_string(), i.created_at, i.version);
            i.logs.into_iter().map(move |l| LogEntry {
                invocation_id: id.clone(),
                at,
                version,
                level: l.level,
                message: l.message,
            })
        })
        .collect();
    Ok(Json(LogList { data, next_cursor }))
}

/// Run a version on a sample event: the invocation is recorded and reported; actions are listed, not applied.
#[utoipa::path(post, path = "/v1/functions/{name}/invoke", tag = "functions", request_body = Invoke,
    params(("name" = String, Path, description = "Function name")),
    responses((status = 200, body = InvokeReport), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn invoke(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<Invoke>,
) -> Result<Json<InvokeReport>, ApiError> {
    let f = find(&state, &caller, &name).await?;
    let Some(version) = req.version.or(f.active_version) else {
        return Err(ApiError::bad_request(
            "no_active_version",
            format!("function `{name}` has no active version; name one with `version`"),
        ));
    };
    let deployed = state
        .store
        .functions()
        .deployed(&f, Some(version))
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "version_not_found",
                format!("function `{name}` has no version {version}"),
            )
        })?;
    let report = runner(&state)?
        .invoke(InvokeRequest {
            project: caller.project_id,
            function_id: f.id,
            name: f.name,
            version,
            digest: deployed.digest,
            event_type: req.event.event_type,
            data: req.event.data,
        })
        .await
        .map_err(runner_error)?;
    Ok(Json(report))
}
