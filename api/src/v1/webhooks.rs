//! `/v1/webhooks`: endpoints that receive the project's events, their
//! signing secrets, and the log of every delivery and attempt.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_core::event::EventPayload;
use switchboard_core::webhook::{EventTypes, WebhookError};
use switchboard_core::{DeliveryId, Event, WebhookId};
use switchboard_store::deliveries::{Attempt, Delivery};
use switchboard_store::webhooks::{NewWebhook, Webhook, WebhookPatch, PREVIOUS_SECRET_GRACE};
use switchboard_store::StoreError;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{check_text, page_size, Page};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::AppState;

/// Most events one replay may queue.
pub const MAX_REPLAY: u32 = 10_000;

/// The webhook routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(rotate_secret))
        .routes(routes!(send_test))
        .routes(routes!(list_deliveries))
        .routes(routes!(retry_delivery))
        .routes(routes!(replay))
}

/// A webhook endpoint (without its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Its id (`wh_...`).
    pub id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Event types it receives: names, `prefix.*` or `*`.
    pub events: Vec<String>,
    /// What it is for.
    pub description: String,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Why the server disabled it (after five days of failures), if it did.
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed, if the last one did.
    pub failing_since: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        Self {
            id: w.id.to_string(),
            url: w.url,
            events: w.events.patterns().to_vec(),
            description: w.description,
            enabled: w.enabled,
            disabled_reason: w.disabled_reason,
            failing_since: w.failing_since,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// A new endpoint with its signing secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    /// The endpoint.
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// The Standard Webhooks signing secret (`whsec_...`): store it now.
    pub secret: String,
}

/// Body of `POST /v1/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where to POST events: `https://...` (`http://` only in dev mode).
    pub url: String,
    /// Event types to receive, such as `["participant.joined", "room.*"]`; `["*"]` for all.
    pub events: Vec<String>,
    /// What it is for, up to 512 bytes.
    pub description: Option<String>,
    /// Start enabled (default true).
    pub enabled: Option<bool>,
}

/// Body of `PATCH /v1/webhooks/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    /// New URL.
    pub url: Option<String>,
    /// New event types.
    pub events: Option<Vec<String>>,
    /// New description.
    pub description: Option<String>,
    /// Enable or disable; enabling a disabled endpoint clears its failure record.
    pub enabled: Option<bool>,
}

/// A page of endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// Endpoints, oldest first.
    pub data: Vec<WebhookView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A new secret after a rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The new signing secret: store it now.
    pub secret: String,
    /// Until when the previous secret also signs every delivery.
    pub previous_secret_expires_at: DateTime<Utc>,
}

/// The event a test sends.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestSent {
    /// The `webhook.test` event queued for this endpoint.
    pub event_id: String,
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptView {
    /// Its id.
    pub id: String,
    /// When the request was sent.
    pub attempted_at: DateTime<Utc>,
    /// The response status, if a response came.
    pub status_code: Option<u16>,
    /// From sending to the answer or the failure, in milliseconds.
    pub latency_ms: u64,
    /// The first 2 KiB of the response body.
    pub response_body: String,
    /// Why it did not count as delivered.
    pub error: Option<String>,
    /// Whether a 2xx came back.
    pub succeeded: bool,
}

impl From<Attempt> for AttemptView {
    fn from(a: Attempt) -> Self {
        Self {
            id: a.id.to_string(),
            attempted_at: a.attempted_at,
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            response_body: a.response_body,
            error: a.error,
            succeeded: a.succeeded,
        }
    }
}

/// One event's delivery to one endpoint, with its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Its id (`whd_...`).
    pub id: String,
    /// The endpoint.
    pub webhook_id: String,
    /// The event; also the `webhook-id` header receivers deduplicate on.
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// `event` (from the log) or `replay`.
    pub origin: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Every attempt, oldest first.
    pub attempts: Vec<AttemptView>,
}

/// A page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Deliveries, newest first.
    pub data: Vec<DeliveryView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Body of `POST /v1/webhooks/{id}/replay`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// Resend every subscribed event at or after this time (RFC 3339).
    pub since: DateTime<Utc>,
}

/// What a replay queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    /// Deliveries queued.
    pub queued: u64,
}

fn webhook_error(e: WebhookError) -> ApiError {
    let code = match e {
        WebhookError::InvalidUrl { .. } => "invalid_url",
        WebhookError::InsecureUrl => "insecure_url",
        WebhookError::ForbiddenAddress(_) => "forbidden_address",
        WebhookError::UnknownEventType(_) | WebhookError::PatternCount => "invalid_event_types",
    };
    ApiError::bad_request(code, e.to_string())
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "webhook_not_found",
        format!(
            "there is no webhook `{}` in this project",
            id.chars().take(64).collect::<String>()
        ),
    )
}

fn parse_id(id: &str) -> Result<WebhookId, ApiError> {
    id.parse().map_err(|_| not_found(id))
}

fn check_url(state: &AppState, url: &str) -> Result<(), ApiError> {
    state
        .config
        .webhook_policy
        .check_url(url)
        .map(drop)
        .map_err(webhook_error)
}

/// Deliveries with their attempts, as the API shows them.
pub(crate) async fn with_attempts(
    state: &AppState,
    deliveries: Vec<Delivery>,
) -> Result<Vec<DeliveryView>, ApiError> {
    let ids: Vec<DeliveryId> = deliveries.iter().map(|d| d.id).collect();
    let mut attempts: HashMap<DeliveryId, Vec<Attempt>> =
        state.store.deliveries().attempts(&ids).await?;
    Ok(deliveries
        .into_iter()
        .map(|d| DeliveryView {
            id: d.id.to_string(),
            webhook_id: d.webhook_id.to_string(),
            event_id: d.event_id.to_string(),
            event_type: d.event_type,
            origin: d.origin,
            status: d.status.as_str().to_owned(),
            next_attempt_at: d.next_attempt_at,
            created_at: d.created_at,
            updated_at: d.updated_at,
            attempts: attempts
                .remove(&d.id)
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
        })
        .collect())
}

async fn find(state: &AppState, caller: &Caller, id: &str) -> Result<Webhook, ApiError> {
    let id = parse_id(id)?;
    state
        .store
        .webhooks()
        .get(caller.project_id, id)
        .await?
        .ok_or_else(|| not_found(&id.to_string()))
}

/// Create a webhook endpoint; the answer carries its signing secret.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses((status = 201, body = CreatedWebhook), (status = 400, body = ErrorBody)))]
async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<CreatedWebhook>), ApiError> {
    check_url(&state, &req.url)?;
    let events = EventTypes::new(req.events).map_err(webhook_error)?;
    let quota = state.config.quotas.webhook_endpoints_per_project;
    if state.store.webhooks().count(caller.project_id).await? >= quota {
        return Err(crate::quota_exceeded(
            "this project has as many webhook endpoints as it may",
            quota,
            "webhook_endpoints_per_project",
        ));
    }
    let description = req.description.unwrap_or_default();
    check_text("description", &description, 512)?;
    let (webhook, secret) = state
        .store
        .webhooks()
        .create(
            caller.project_id,
            NewWebhook {
                url: req.url,
                description,
                events,
                enabled: req.enabled.unwrap_or(true),
            },
            state.clock.now(),
        )
        .await?;
    tracing::info!(webhook_id = %webhook.id, "webhook created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook {
            webhook: webhook.into(),
            secret,
        }),
    ))
}

/// List the project's webhook endpoints.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", params(Page),
    responses((status = 200, body = WebhookList), (status = 400, body = ErrorBody)))]
async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<Page>,
) -> Result<Json<WebhookList>, ApiError> {
    let limit = page_size(q.limit)?;
    let after = q
        .cursor
        .map(|c| c.parse::<WebhookId>().map_err(|_| invalid_cursor()))
        .transpose()?;
    let mut list = state
        .store
        .webhooks()
        .list(caller.project_id, after, limit + 1)
        .await?;
    let next_cursor = if list.len() > limit as usize {
        list.truncate(limit as usize);
        list.last().map(|w| w.id.to_string())
    } else {
        None
    };
    Ok(Json(WebhookList {
        data: list.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

fn invalid_cursor() -> ApiError {
    ApiError::bad_request("invalid_cursor", "cursor is not one this API returned")
}

/// Get a webhook endpoint.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = WebhookView), (status = 404, body = ErrorBody)))]
async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(find(&state, &caller, &id).await?.into()))
}

/// Change a webhook endpoint.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", request_body = UpdateWebhook,
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = WebhookView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn update_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateWebhook>,
) -> Result<Json<WebhookView>, ApiError> {
    let webhook_id = parse_id(&id)?;
    if let Some(url) = &req.url {
        check_url(&state, url)?;
    }
    let events = req
        .events
        .map(EventTypes::new)
        .transpose()
        .map_err(webhook_error)?;
    if let Some(d) = &req.description {
        check_text("description", d, 512)?;
    }
    let patch = WebhookPatch {
        url: req.url,
        description: req.description,
        events,
        enabled: req.enabled,
    };
    let webhook = state
        .store
        .webhooks()
        .update(caller.project_id, webhook_id, patch, state.clock.now())
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(webhook.into()))
}

/// Delete a webhook endpoint; its delivery log stays readable through events.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, description = "Webhook id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ErrorBody)))]
async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let webhook_id = parse_id(&id)?;
    if state
        .store
        .webhooks()
        .delete(caller.project_id, webhook_id, state.clock.now())
        .await?
    {
        tracing::info!(webhook_id = %webhook_id, "webhook deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found(&id))
    }
}

/// Give the endpoint a new signing secret; the old one keeps signing for 24 hours.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = RotatedSecret), (status = 404, body = ErrorBody)))]
async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RotatedSecret>, ApiError> {
    let webhook_id = parse_id(&id)?;
    let now = state.clock.now();
    let secret = state
        .store
        .webhooks()
        .rotate_secret(caller.project_id, webhook_id, now)
        .await?
        .ok_or_else(|| not_found(&id))?;
    tracing::info!(webhook_id = %webhook_id, "webhook secret rotated");
    Ok(Json(RotatedSecret {
        secret,
        previous_secret_expires_at: now + PREVIOUS_SECRET_GRACE,
    }))
}

/// Send a `webhook.test` event to this endpoint only.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 202, body = TestSent), (status = 404, body = ErrorBody)))]
async fn send_test(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<TestSent>), ApiError> {
    let webhook = find(&state, &caller, &id).await?;
    let event = state
        .store
        .events()
        .record(Event::new(
            caller.project_id,
            state.clock.now(),
            EventPayload::WebhookTest {
                webhook_id: webhook.id.to_string(),
            },
        ))
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TestSent {
            event_id: event.id.to_string(),
        }),
    ))
}

/// List deliveries to this endpoint with their attempts, newest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), Page),
    responses((status = 200, body = DeliveryList), (status = 404, body = ErrorBody)))]
async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<Page>,
) -> Result<Json<DeliveryList>, ApiError> {
    let webhook_id = parse_id(&id)?;
    // A deleted endpoint's deliveries stay listable: 404 only when there is
    // neither a live endpoint nor any delivery to it.
    let limit = page_size(q.limit)?;
    let before = q
        .cursor
        .map(|c| c.parse::<DeliveryId>().map_err(|_| invalid_cursor()))
        .transpose()?;
    let mut list = state
        .store
        .deliveries()
        .list_for_webhook(caller.project_id, webhook_id, before, limit + 1)
        .await?;
    if list.is_empty()
        && before.is_none()
        && state
            .store
            .webhooks()
            .get(caller.project_id, webhook_id)
            .await?
            .is_none()
    {
        return Err(not_found(&id));
    }
    let next_cursor = if list.len() > limit as usize {
        list.truncate(limit as usize);
        list.last().map(|d| d.id.to_string())
    } else {
        None
    };
    Ok(Json(DeliveryList {
        data: with_attempts(&state, list).await?,
        next_cursor,
    }))
}

/// Make a delivery due again now, whatever its status.
#[utoipa::path(post, path = "/v1/webhooks/deliveries/{id}/retry", tag = "webhooks",
    params(("id" = String, Path, description = "Delivery id")),
    responses((status = 202, body = DeliveryView), (status = 404, body = ErrorBody)))]
async fn retry_delivery(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<DeliveryView>), ApiError> {
    let missing = || {
        ApiError::not_found(
            "delivery_not_found",
            format!(
                "there is no delivery `{}` in this project",
                id.chars().take(64).collect::<String>()
            ),
        )
    };
    let delivery_id: DeliveryId = id.parse().map_err(|_| missing())?;
    let delivery = state
        .store
        .deliveries()
        .retry(caller.project_id, delivery_id, state.clock.now())
        .await?
        .ok_or_else(missing)?;
    let mut views = with_attempts(&state, vec![delivery]).await?;
    let view = views.pop().ok_or_else(missing)?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}

/// Resend every event since a time that this endpoint subscribes to.
#[utoipa::path(post, path = "/v1/webhooks/{id}/replay", tag = "webhooks", request_body = Replay,
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 202, body = Replayed), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<Replay>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let webhook = find(&state, &caller, &id).await?;
    let now = state.clock.now();
    if req.since > now {
        return Err(ApiError::invalid("since is in the future"));
    }
    let queued = state
        .store
        .deliveries()
        .replay(caller.project_id, &webhook, req.since, MAX_REPLAY, now)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(m) => ApiError::bad_request("replay_too_large", m),
            other => other.into(),
        })?;
    tracing::info!(webhook_id = %webhook.id, queued, "webhook replay queued");
    Ok((StatusCode::ACCEPTED, Json(Replayed { queued })))
}
