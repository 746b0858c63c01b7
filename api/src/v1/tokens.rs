//! `/v1/tokens`: access tokens for end users to join rooms.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_core::node::Region;
use switchboard_core::token::{self, Claims, Grants, DEFAULT_TTL_S, MAX_TOKEN_METADATA_BYTES};
use switchboard_core::{Identity, RoomName};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::check_text;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::AppState;
use switchboard_core::name::MAX_NAME_BYTES;

/// The tokens routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_token))
}

/// Body of `POST /v1/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// The room the token joins.
    pub room: RoomName,
    /// The participant's identity, unique in the room.
    pub identity: Identity,
    /// Display name.
    pub name: Option<String>,
    /// Participant metadata, up to 4 KiB.
    pub metadata: Option<String>,
    /// What the participant may do (defaults: publish, subscribe and send data).
    pub grants: Option<Grants>,
    /// Lifetime in seconds, 1 to 86400 (default 21600).
    pub ttl_s: Option<u64>,
    /// Region to host the room in when it has none of its own and is not
    /// live yet, such as `eu-west` (usually the region nearest the user).
    #[schema(value_type = Option<String>, example = "eu-west")]
    pub region: Option<Region>,
    /// The end user's IP address: without `region`, the room goes to the
    /// region nearest it by the server's map (`[[placement.client_regions]]`).
    #[schema(value_type = Option<String>, example = "203.0.113.7")]
    pub client_ip: Option<std::net::IpAddr>,
}

/// A signed access token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// The JWT.
    pub token: String,
    /// The WebSocket URL of the media node that hosts the room, to connect to with the token.
    pub url: String,
    /// Where a client whose media node stopped answering asks, with the
    /// token, for the node that hosts the room now (`GET /v1/rtc/route`).
    pub route_url: String,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// Create an access token signed with the calling API key.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = TokenResponse), (status = 400, body = ErrorBody),
        (status = 503, body = ErrorBody, description = "No media node can take the room")))]
async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<TokenResponse>), ApiError> {
    let ttl_s = token::check_ttl(req.ttl_s.unwrap_or(DEFAULT_TTL_S))
        .map_err(|e| ApiError::bad_request("invalid_ttl", e.to_string()))?;
    let mut grants = req.grants.unwrap_or_default();
    match &grants.room {
        Some(r) if r != &req.room => {
            return Err(ApiError::invalid(format!(
                "grants.room `{r}` differs from room `{}`; leave grants.room out",
                req.room
            )))
        }
        _ => grants.room = Some(req.room.clone()),
    }
    if let Some(m) = req
        .metadata
        .as_ref()
        .filter(|m| m.len() > MAX_TOKEN_METADATA_BYTES)
    {
        return Err(ApiError::bad_request(
            "metadata_too_large",
            format!(
                "token metadata is {} bytes; the limit is {MAX_TOKEN_METADATA_BYTES}",
                m.len()
            ),
        ));
    }
    if let Some(n) = &req.name {
        check_text("name", n, MAX_NAME_BYTES)?;
    }
    let (_, secret) = state
        .store
        .api_keys()
        .signing_secret(&caller.key_id)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the API key was revoked"))?;
    let node = state
        .rooms_router
        .route(
            caller.project_id,
            &req.room,
            req.region.as_ref().or_else(|| {
                req.client_ip
                    .and_then(|ip| state.config.client_regions.region_of(ip))
            }),
        )
        .await
        .map_err(super::route::route_error)?;
    state.rooms_router.join_named(&node);
    let now = state.clock.now();
    let mut claims = Claims::new(&caller.key_id, req.identity, grants, now, ttl_s);
    claims.name = req.name;
    claims.metadata = req.metadata;
    claims.node = Some(node.id);
    claims.named_at = Some(now.timestamp_millis());
    let token = token::sign(&claims, &caller.key_id, &secret).map_err(ApiError::internal)?;
    let expires_at = DateTime::from_timestamp(claims.exp, 0).unwrap_or(now);
    Ok((
        StatusCode::CREATED,
        Json(TokenResponse {
            token,
            url: super::route::signaling_url(&node.url),
            route_url: format!(
                "{}/v1/rtc/route",
                state.config.public_url.trim_end_matches('/')
            ),
            expires_at,
        }),
    ))
}
