//! Switchboard's REST control plane.
//!
//! # Layout
//!
//! - [`v1`]: one module per resource (`rooms`, `participants`, `tokens`,
//!   `api_keys`, `project`, `webhooks`, `events`), each with a `router()` that also feeds the
//!   OpenAPI document, so a route cannot exist without being described.
//! - [`auth`]: API key authentication, giving handlers a [`auth::Caller`].
//! - [`rate_limit`]: requests per key and per project, answered `429` past them.
//! - [`idempotency`]: `Idempotency-Key` replay for `POST`s.
//! - [`error`], [`extract`]: one JSON error shape for everything that can go wrong.
//! - [`health`], [`observability`]: `/healthz`, `/readyz`, `/metrics`, request ids.
//!
//! [`app`] builds the whole [`axum::Router`] from an [`AppState`]; the server
//! binary serves it and tests drive it on a real socket.
//!
//! # Tenancy
//!
//! Every query is scoped by the caller's project id. A resource of another
//! project is indistinguishable from one that does not exist (404).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::Router;
use switchboard_core::directory::ParticipantDirectory;
use switchboard_core::Clock;
use switchboard_store::Store;
use tower::ServiceBuilder;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

pub mod auth;
pub mod error;
pub mod extract;
pub mod health;
pub mod idempotency;
pub mod observability;
pub mod openapi;
pub mod rate_limit;
pub mod v1;

use error::ApiError;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Settings the API needs beyond its collaborators.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Where webhook endpoints may point.
    pub webhook_policy: switchboard_core::webhook::AddressPolicy,
    /// The plans usage is priced by.
    pub plans: switchboard_core::billing::PlanBook,
    /// The base URL clients reach this API at.
    pub public_url: String,
    /// The region nearest each client network, for rooms asked for without a region.
    pub client_regions: switchboard_core::node::ClientRegions,
    /// The header a trusted proxy puts the client's IP in (its last entry
    /// counts); without one, the connection's peer address is the client's.
    pub client_ip_header: Option<axum::http::HeaderName>,
    /// The bearer token `/metrics` asks for, if any.
    pub metrics_token: Option<String>,
    /// How much of each resource one project may hold.
    pub quotas: Quotas,
}

/// How much of each resource one project may hold (`[limits]`); past a
/// quota the creating call is refused with `quota_exceeded`, naming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Webhook endpoints (not deleted).
    pub webhook_endpoints_per_project: u64,
    /// Recordings running at once in one room.
    pub recordings_per_room: u64,
    /// Recordings running at once over the project (each is a writer thread on a media node).
    pub recordings_per_project: u64,
    /// Versions kept of one function (each a stored component and a compiled artifact).
    pub function_versions_per_function: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            webhook_endpoints_per_project: 20,
            recordings_per_room: 5,
            recordings_per_project: 50,
            function_versions_per_function: 50,
        }
    }
}

/// The refusal of a call that would take a project past `quota`.
pub(crate) fn quota_exceeded(what: &str, quota: u64, setting: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "quota_exceeded",
        format!("{what}: the limit is {quota} ([limits] {setting}); delete or stop one first, or ask the operator for more"),
    )
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Live participants on the media tier.
    pub directory: Arc<dyn ParticipantDirectory>,
    /// Which media node hosts each room.
    pub rooms_router: Arc<dyn switchboard_core::node::RoomRouter>,
    /// Recordings on the media tier.
    pub recorders: Arc<dyn switchboard_core::directory::RecordingDirectory>,
    /// Where recordings' files are kept, if this server can read them.
    pub recording_storage: Option<switchboard_recording::Storage>,
    /// The function host (checks uploads, runs test invocations), if this server runs one.
    pub functions: Option<Arc<dyn switchboard_core::function::FunctionRunner>>,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Settings.
    pub config: Arc<ApiConfig>,
    /// Each key's and project's request budget.
    pub request_limits: Arc<rate_limit::RequestLimiter>,
}

/// Room for a multipart form's other fields and boundaries around a component.
pub const MULTIPART_OVERHEAD_BYTES: usize = 64 * 1024;

/// The largest body a request may carry: a function component upload takes
/// up to 32 MiB (the dashboard's form a little more), everything else
/// [`MAX_BODY_BYTES`].
pub(crate) fn body_limit(method: &axum::http::Method, path: &str) -> usize {
    use switchboard_core::function::MAX_COMPONENT_BYTES;
    if method != axum::http::Method::POST {
        return MAX_BODY_BYTES;
    }
    if path.starts_with("/v1/functions/") && path.ends_with("/versions") {
        MAX_COMPONENT_BYTES
    } else if path.starts_with("/dashboard/projects/") && path.ends_with("/functions") {
        MAX_COMPONENT_BYTES + MULTIPART_OVERHEAD_BYTES
    } else {
        MAX_BODY_BYTES
    }
}

/// Answers 413 before reading a body whose declared length is over the limit,
/// so the client gets the error instead of a reset connection mid-upload.
async fn refuse_declared_oversize(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = body_limit(req.method(), req.uri().path());
    match declared {
        Some(n) if n > limit as u64 => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the request body is {n} bytes; the limit is {} KiB",
                limit / 1024
            ),
        )
        .into_response(),
        _ => next.run(req).await,
    }
}

/// The complete HTTP application: `/v1`, health, metrics and the OpenAPI document.
pub fn app(state: AppState) -> Router {
    app_with(state, Router::new(), None)
}

/// [`app`] plus routes served beside it (the media node's signaling, SDK and demo),
/// under the same request ids, logging and fallbacks; `extra_spec` describes
/// those of them under `/v1` and joins the OpenAPI document.
pub fn app_with(
    state: AppState,
    extra: Router,
    extra_spec: Option<utoipa::openapi::OpenApi>,
) -> Router {
    observability::prometheus();
    let (v1, mut spec) = openapi::split(v1::router());
    // Authenticated by a participant's access token, not by an API key.
    let (route, route_spec) = v1::route::router();
    spec.merge(route_spec);
    if let Some(more) = extra_spec {
        spec.merge(more);
    }
    let v1 = v1
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotent_posts,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            rate_limit::limit_requests,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_api_key,
        ));
    let spec = Arc::new(spec);

    let api = Router::new()
        .merge(v1)
        .merge(route)
        .merge(v1::recordings::signed_router())
        .route(
            "/v1/openapi.json",
            axum::routing::get(move || {
                let spec = spec.clone();
                async move { axum::Json(spec.as_ref().clone()) }
            }),
        );
    served(api, state, extra)
}

/// A media-only node's HTTP application: health, metrics and `routes` (its
/// signaling, WHIP/WHEP and SDK), without the REST API, under the same
/// request ids, logging and fallbacks as [`app_with`].
pub fn media_node_app(state: AppState, routes: Router) -> Router {
    observability::prometheus();
    served(Router::new(), state, routes)
}

/// `own` routes with health and `extra`, under the shared layers.
fn served(own: Router<AppState>, state: AppState, extra: Router) -> Router {
    own.merge(health::router())
        .with_state(state)
        .merge(extra)
        .route_layer(axum::middleware::from_fn(observability::record_metrics))
        .fallback(|| async {
            ApiError::not_found("not_found", "no such endpoint; see /v1/openapi.json")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not accept that method",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(refuse_declared_oversize))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(
                    observability::REQUEST_ID_HEADER
                        .parse()
                        .expect("valid header name"),
                    observability::MakeRequestUlid,
                ))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(observability::request_span)
                        .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::new(
                    observability::REQUEST_ID_HEADER
                        .parse()
                        .expect("valid header name"),
                )),
        )
}
