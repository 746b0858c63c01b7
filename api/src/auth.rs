//! API key authentication for `/v1`.
//!
//! Accepted forms: `Authorization: Bearer <secret>` and HTTP Basic with
//! `key_id:secret` (what `curl -u` sends). The resolved [`Caller`] is put in
//! the request's extensions, and its project id on the request's log span.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use switchboard_core::ProjectId;

use crate::error::ApiError;
use crate::AppState;

/// The authenticated API key a request came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key id.
    pub key_id: String,
    /// The project the key belongs to: every resource is looked up within it.
    pub project_id: ProjectId,
}

enum Credentials {
    Bearer(String),
    Basic { key_id: String, secret: String },
}

fn parse(header: &str) -> Result<Credentials, ApiError> {
    let (scheme, value) = header.trim().split_once(' ').unwrap_or((header, ""));
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !value.is_empty() {
        return Ok(Credentials::Bearer(value.to_owned()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = B64
            .decode(value)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "the Basic credentials are not valid base64 of `key_id:secret`",
                )
            })?;
        let (key_id, secret) = decoded
            .split_once(':')
            .ok_or_else(|| ApiError::unauthorized("Basic credentials must be `key_id:secret`"))?;
        return Ok(Credentials::Basic {
            key_id: key_id.to_owned(),
            secret: secret.to_owned(),
        });
    }
    Err(ApiError::unauthorized(
        "use `Authorization: Bearer <api key secret>` or HTTP Basic with `key_id:secret`",
    ))
}

/// Middleware: refuses requests without a valid API key, records the caller otherwise.
pub async fn require_api_key(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(|| {
            ApiError::unauthorized(
                "missing Authorization header: send `Authorization: Bearer <api key secret>`",
            )
        })?
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not valid text"))?;
    let keys = state.store.api_keys();
    let found = match parse(header)? {
        Credentials::Bearer(secret) => keys.authenticate_secret(&secret).await?,
        Credentials::Basic { key_id, secret } => keys.authenticate_pair(&key_id, &secret).await?,
    };
    let key = found.ok_or_else(|| ApiError::unauthorized("the API key is unknown or revoked"))?;
    tracing::Span::current().record("project_id", tracing::field::display(key.project_id));
    req.extensions_mut().insert(Caller {
        key_id: key.key_id,
        project_id: key.project_id,
    });
    Ok(next.run(req).await)
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("this endpoint needs an API key"))
    }
}
