//! `/v1/kv`: the project's key-value store, which functions read and write
//! with `kv-get`, `kv-set` and `kv-delete` (to seed an allow-list, say).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::AppState;

/// Longest key, in bytes (as functions see it).
const MAX_KEY: usize = 256;
/// Largest value, in bytes (as functions see it).
const MAX_VALUE: usize = 64 * 1024;

/// The key-value routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_value, put_value, delete_value))
}

/// A stored value.
#[derive(Debug, Serialize, ToSchema)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// Body of `PUT /v1/kv/{key}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutValue {
    /// Up to 64 KiB of text.
    pub value: String,
}

fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(ApiError::bad_request(
            "invalid_key",
            format!("keys are 1 to {MAX_KEY} bytes"),
        ));
    }
    Ok(())
}

/// Read a value of the project's key-value store.
#[utoipa::path(get, path = "/v1/kv/{key}", tag = "functions", params(("key" = String, Path, description = "Key")),
    responses((status = 200, body = Entry), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_value(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
) -> Result<Json<Entry>, ApiError> {
    check_key(&key)?;
    let value = state
        .store
        .functions()
        .kv_get(caller.project_id, &key)
        .await?
        .ok_or_else(|| ApiError::not_found("key_not_found", "no value is stored under this key"))?;
    Ok(Json(Entry { key, value }))
}

/// Store a value in the project's key-value store.
#[utoipa::path(put, path = "/v1/kv/{key}", tag = "functions", request_body = PutValue, params(("key" = String, Path, description = "Key")),
    responses((status = 200, body = Entry), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn put_value(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
    ApiJson(req): ApiJson<PutValue>,
) -> Result<Json<Entry>, ApiError> {
    check_key(&key)?;
    if req.value.len() > MAX_VALUE {
        return Err(ApiError::bad_request(
            "value_too_large",
            format!("values are at most {MAX_VALUE} bytes"),
        ));
    }
    let stored = state
        .store
        .functions()
        .kv_set(caller.project_id, &key, &req.value, state.clock.now())
        .await?;
    if !stored {
        return Err(ApiError::conflict(
            "kv_full",
            format!(
                "the project's key-value store is full ({} keys); delete some first",
                switchboard_store::functions::MAX_KV_KEYS
            ),
        ));
    }
    Ok(Json(Entry {
        key,
        value: req.value,
    }))
}

/// Remove a value from the project's key-value store (a missing key is fine).
#[utoipa::path(delete, path = "/v1/kv/{key}", tag = "functions", params(("key" = String, Path, description = "Key")),
    responses((status = 204, description = "Removed"), (status = 400, body = ErrorBody)))]
async fn delete_value(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(key): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    check_key(&key)?;
    state
        .store
        .functions()
        .kv_delete(caller.project_id, &key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
