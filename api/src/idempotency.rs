//! `Idempotency-Key` on `POST`: a retried request gets the first answer again.
//!
//! The key is reserved before the request runs, so two copies racing each
//! other cannot both act: the second is told to retry (409). The first
//! answer is stored unless it was a server error, which frees the key.

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use switchboard_store::idempotency::Reservation;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::AppState;

/// The request header that carries the key.
pub const HEADER: &str = "idempotency-key";
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// Middleware: replays stored answers to `POST`s that repeat an idempotency key.
pub async fn idempotent_posts(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if req.method() != Method::POST {
        return Ok(next.run(req).await);
    }
    let Some(key) = req.headers().get(HEADER) else {
        return Ok(next.run(req).await);
    };
    let key = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
            )
        })?
        .to_owned();
    let caller = req
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| ApiError::unauthorized("missing API key"))?;

    let limit = crate::body_limit(req.method(), req.uri().path());
    let (parts, body) = req.into_parts();
    let body = to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        )
    })?;
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str());
    hasher.update([0]);
    hasher.update(parts.uri.path());
    hasher.update([0]);
    hasher.update(&body);
    let request_hash = hasher.finalize();

    let idem = state.store.idempotency();
    match idem
        .reserve(caller.project_id, &key, &request_hash, state.clock.now())
        .await?
    {
        Reservation::Proceed => {}
        Reservation::Replay { status, body } => {
            let status = StatusCode::from_u16(status).map_err(ApiError::internal)?;
            let mut response = (status, body).into_response();
            let headers = response.headers_mut();
            headers.insert("content-type", HeaderValue::from_static("application/json"));
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
            return Ok(response);
        }
        Reservation::InFlight => {
            return Err(ApiError::conflict(
                "idempotency_key_in_use",
                "a request with this Idempotency-Key is still being handled; retry shortly",
            ))
        }
        Reservation::Mismatch => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was already used for a different request; use a new key",
            ))
        }
    }

    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let (parts, body) = response.into_parts();
    let body = match to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => {
            idem.release(caller.project_id, &key).await?;
            return Err(ApiError::internal(e));
        }
    };
    if parts.status.is_server_error() {
        idem.release(caller.project_id, &key).await?;
    } else {
        idem.complete(caller.project_id, &key, parts.status.as_u16(), &body)
            .await?;
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}
