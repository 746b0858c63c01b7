//! `/v1/rtc/route`: the media node a participant's access token connects to
//! now. Clients ask it when their node stopped answering: once the node is
//! taken for dead, its rooms move to a healthy node of the same region.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use switchboard_core::node::{Region, RouteError};
use switchboard_core::token::{self, TokenError};
use switchboard_store::api_keys::AccessTokenError;
use tower_http::cors::{Any, CorsLayer};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::AppState;

/// The route lookup and its OpenAPI description, callable from browsers on
/// any origin (the SDK asks it).
pub fn router() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, spec) = OpenApiRouter::new()
        .routes(routes!(route))
        .split_for_parts();
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET])
        .allow_headers([header::AUTHORIZATION]);
    // The token travels in a header, so browsers ask first (a preflight);
    // the CORS layer answers it, but only on a method the route has.
    let router = router
        .route(
            PATH,
            axum::routing::options(|| async { StatusCode::NO_CONTENT }),
        )
        .layer(cors);
    (router, spec)
}

const PATH: &str = "/v1/rtc/route";

/// Query of `GET /v1/rtc/route`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RouteQuery {
    /// The access token, when it is not in an `Authorization: Bearer` header.
    pub access_token: Option<String>,
    /// Region to host the room in when it is not placed yet (as for `POST
    /// /v1/tokens`); without it, the region nearest the caller's IP address
    /// by the server's map.
    #[param(value_type = Option<String>, example = "eu-west")]
    pub region: Option<Region>,
}

/// Where to connect.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteResponse {
    /// The WebSocket URL of the media node that hosts the room now.
    pub url: String,
    /// That node's region.
    pub region: String,
}

/// Find the media node a participant's access token connects to now (the
/// room's node, or a healthy node of its region once that one is dead).
/// Authenticated by the access token itself, not by an API key.
#[utoipa::path(get, path = "/v1/rtc/route", tag = "tokens", params(RouteQuery),
    security(()),
    responses((status = 200, body = RouteResponse),
        (status = 401, body = ErrorBody, description = "No, a malformed, an expired or a revoked token"),
        (status = 403, body = ErrorBody, description = "The token grants no room"),
        (status = 503, body = ErrorBody, description = "No media node can take the room")))]
async fn route(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
    ApiQuery(q): ApiQuery<RouteQuery>,
) -> Result<Json<RouteResponse>, ApiError> {
    let token = q.access_token.or_else(|| bearer(&headers)).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "pass the access token as ?access_token= or Authorization: Bearer",
        )
    })?;
    let (project, claims) = state
        .store
        .api_keys()
        .verify_access_token(&token, state.clock.now())
        .await
        .map_err(|e| match e {
            AccessTokenError::Store(e) => ApiError::from(e),
            AccessTokenError::Token(TokenError::Expired(_)) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "token_expired", e.to_string())
            }
            e => ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", e.to_string()),
        })?;
    let room = claims.grants.room.ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "no_room_grant",
            "the access token grants no room",
        )
    })?;
    let nearest = client_ip(&state, &headers, &extensions)
        .and_then(|ip| state.config.client_regions.region_of(ip));
    let node = state
        .rooms_router
        .route(project, &room, q.region.as_ref().or(nearest))
        .await
        .map_err(route_error)?;
    Ok(Json(RouteResponse {
        url: signaling_url(&node.url),
        region: node.region.to_string(),
    }))
}

/// The answer to a room that could not be given a node.
pub(super) fn route_error(e: RouteError) -> ApiError {
    match e {
        RouteError::NoNode(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_media_node",
            e.to_string(),
        ),
        RouteError::Unavailable(e) => ApiError::internal(e),
    }
}

/// The signaling WebSocket URL under a node's base URL.
pub(super) fn signaling_url(node_url: &str) -> String {
    let ws = if let Some(rest) = node_url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = node_url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        node_url.to_owned()
    };
    format!("{}/rtc", ws.trim_end_matches('/'))
}

/// The caller's IP address: the last entry of the configured proxy header,
/// else the connection's peer.
fn client_ip(
    state: &AppState,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> Option<IpAddr> {
    match &state.config.client_ip_header {
        Some(name) => switchboard_core::node::last_forwarded_ip(
            headers.get_all(name).iter().filter_map(|v| v.to_str().ok()),
        ),
        None => extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
    }
}

/// The token of an `Authorization: Bearer` header.
fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    token::from_bearer(value).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_nodes_url_becomes_its_signaling_url() {
        assert_eq!(
            super::signaling_url("https://eu1.example.com/"),
            "wss://eu1.example.com/rtc"
        );
        assert_eq!(
            super::signaling_url("http://127.0.0.2:7880"),
            "ws://127.0.0.2:7880/rtc"
        );
    }
}
