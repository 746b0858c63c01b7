//! `/healthz` (the process is up), `/readyz` (it can serve: the database answers) and `/metrics`
//! (behind a bearer token when `--metrics-token` is set).

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::AppState;

/// The operational endpoints: open to probes, `/metrics` optionally behind a token.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "database": "ok" })),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                // The cause is in the log; a probe learns only that the database does not answer.
                Json(json!({ "status": "not_ready", "database": "unavailable" })),
            )
        }
    }
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(expected) = &state.config.metrics_token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(switchboard_core::token::from_bearer)
            .unwrap_or_default();
        if !bool::from(expected.as_bytes().ct_eq(sent.as_bytes())) {
            return crate::error::ApiError::unauthorized(
                "send the metrics token (--metrics-token) as Authorization: Bearer <token>",
            )
            .into_response();
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::observability::prometheus().render(),
    )
        .into_response()
}
