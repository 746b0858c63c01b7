//! `/v1/events`: the project's event log, read-only, and where each event was delivered.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_core::event::EventPayload;
use switchboard_core::{Event, EventId};
use switchboard_store::events::EventFilter;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::page_size;
use super::webhooks::{with_attempts, DeliveryList};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiPath, ApiQuery};
use crate::AppState;

/// The event log routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .routes(routes!(get_event))
        .routes(routes!(event_deliveries))
}

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListEvents {
    /// Only this event type, such as `participant.joined`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Only events about the room with this name.
    pub room: Option<String>,
    /// Only events at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    /// Events in log order (oldest first).
    pub data: Vec<Event>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "event_not_found",
        format!(
            "there is no event `{}` in this project",
            id.chars().take(64).collect::<String>()
        ),
    )
}

/// List the project's events in log order.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(ListEvents),
    responses((status = 200, body = EventList), (status = 400, body = ErrorBody)))]
async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListEvents>,
) -> Result<Json<EventList>, ApiError> {
    let limit = page_size(q.limit)?;
    if let Some(t) = q
        .event_type
        .as_deref()
        .filter(|t| !EventPayload::TYPES.contains(t))
    {
        return Err(ApiError::bad_request(
            "invalid_event_type",
            format!(
                "`{}` is not an event type; use one of {}",
                t.chars().take(64).collect::<String>(),
                EventPayload::TYPES.join(", ")
            ),
        ));
    }
    let after: i64 = match q.cursor {
        None => 0,
        Some(c) => c.parse().ok().filter(|n| *n >= 0).ok_or_else(|| {
            ApiError::bad_request("invalid_cursor", "cursor is not one this API returned")
        })?,
    };
    let filter = EventFilter {
        event_type: q.event_type,
        room: q.room,
        since: q.since,
    };
    let mut events = state
        .store
        .events()
        .list(caller.project_id, &filter, after, limit + 1)
        .await?;
    let next_cursor = if events.len() > limit as usize {
        events.truncate(limit as usize);
        events.last().map(|e| e.seq.to_string())
    } else {
        None
    };
    Ok(Json(EventList {
        data: events,
        next_cursor,
    }))
}

/// Get one event.
#[utoipa::path(get, path = "/v1/events/{id}", tag = "events", params(("id" = String, Path, description = "Event id")),
    responses((status = 200, body = Event), (status = 404, body = ErrorBody)))]
async fn get_event(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Event>, ApiError> {
    let event_id: EventId = id.parse().map_err(|_| not_found(&id))?;
    state
        .store
        .events()
        .get(caller.project_id, event_id)
        .await?
        .map(Json)
        .ok_or_else(|| not_found(&id))
}

/// Every delivery of one event to the project's endpoints, with their attempts.
#[utoipa::path(get, path = "/v1/events/{id}/deliveries", tag = "events",
    params(("id" = String, Path, description = "Event id")),
    responses((status = 200, body = DeliveryList), (status = 404, body = ErrorBody)))]
async fn event_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<DeliveryList>, ApiError> {
    let event_id: EventId = id.parse().map_err(|_| not_found(&id))?;
    if state
        .store
        .events()
        .get(caller.project_id, event_id)
        .await?
        .is_none()
    {
        return Err(not_found(&id));
    }
    let list = state
        .store
        .deliveries()
        .list_for_event(caller.project_id, event_id)
        .await?;
    Ok(Json(DeliveryList {
        data: with_attempts(&state, list).await?,
        next_cursor: None,
    }))
}
