//! `/v1/api_keys`: the project's API keys. Secrets are shown once, on creation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_store::api_keys::ApiKey;
use switchboard_store::StoreError;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::check_text;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::AppState;

/// The API key routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_api_key, list_api_keys))
        .routes(routes!(revoke_api_key))
}

/// An API key, without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    /// The key id (`kid` of the tokens it signs, user of Basic auth).
    pub id: String,
    /// What it is for.
    pub description: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<ApiKey> for ApiKeyView {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id,
            description: k.description,
            created_at: k.created_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A new API key with its secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    /// The key id.
    pub id: String,
    /// The secret: store it now, it cannot be shown again.
    pub secret: String,
    /// What it is for.
    pub description: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Body of `POST /v1/api_keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// What the key is for, up to 256 bytes.
    pub description: Option<String>,
}

/// The project's API keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    /// Keys, newest first, revoked ones included.
    pub data: Vec<ApiKeyView>,
}

/// Create an API key.
#[utoipa::path(post, path = "/v1/api_keys", tag = "api_keys", request_body = CreateApiKey,
    responses((status = 201, body = CreatedApiKey), (status = 400, body = ErrorBody)))]
async fn create_api_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    let description = req.description.unwrap_or_default();
    check_text("description", &description, 256)?;
    let (key, secret) = state
        .store
        .api_keys()
        .create(caller.project_id, &description, state.clock.now())
        .await?;
    tracing::info!(key_id = %key.id, "API key created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKey {
            id: key.id,
            secret,
            description: key.description,
            created_at: key.created_at,
        }),
    ))
}

/// List the project's API keys.
#[utoipa::path(get, path = "/v1/api_keys", tag = "api_keys", responses((status = 200, body = ApiKeyList)))]
async fn list_api_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ApiKeyList>, ApiError> {
    let keys = state.store.api_keys().list(caller.project_id).await?;
    Ok(Json(ApiKeyList {
        data: keys.into_iter().map(Into::into).collect(),
    }))
}

/// Revoke an API key. The project's last active key cannot be revoked.
#[utoipa::path(delete, path = "/v1/api_keys/{id}", tag = "api_keys", params(("id" = String, Path, description = "Key id")),
    responses((status = 204, description = "Revoked"), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn revoke_api_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    match state
        .store
        .api_keys()
        .revoke(caller.project_id, &id, state.clock.now())
        .await
    {
        Ok(true) => {
            tracing::info!(key_id = %id, "API key revoked");
            Ok(StatusCode::NO_CONTENT)
        }
        Ok(false) => Err(ApiError::not_found(
            "api_key_not_found",
            format!("there is no active API key `{id}` in this project"),
        )),
        Err(StoreError::Conflict(m)) => Err(ApiError::conflict("last_api_key", m)),
        Err(e) => Err(e.into()),
    }
}
