//! The append-only event log.
//!
//! Each project's events carry a gap-free sequence number (`seq`) handed out
//! under the project's row lock, so consumers keep a cursor per project and
//! read on from it after a restart. Rows are never updated or deleted (the
//! schema refuses it with a trigger).

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};
use switchboard_core::{Event, EventId, ProjectId};

use crate::time::to_micros;
use crate::{Store, StoreError};

pub(crate) mod group;

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only this type, such as `room.started`.
    pub event_type: Option<String>,
    /// Only events about the room with this name.
    pub room: Option<String>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
}

/// Appends `event` inside the caller's transaction, assigning its `seq`.
pub(crate) async fn append(
    conn: &mut AnyConnection,
    mut event: Event,
) -> Result<Event, StoreError> {
    group::append_all(conn, std::slice::from_mut(&mut event)).await?;
    Ok(event)
}

/// Up to `limit` events of `project` after sequence number `seq`, in log
/// order, inside the caller's transaction (a consumer holding its cursor).
pub(crate) async fn after(
    conn: &mut AnyConnection,
    project: ProjectId,
    seq: i64,
    limit: u32,
) -> Result<Vec<Event>, StoreError> {
    let rows = sqlx::query(
        "SELECT body FROM events WHERE project_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
    )
    .bind(project.to_string())
    .bind(seq)
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            serde_json::from_str(&r.try_get::<String, _>("body")?)
                .map_err(|e| StoreError::Corrupt(format!("event body: {e}")))
        })
        .collect()
}

/// The events table.
pub struct EventLog<'a>(&'a Store);

impl Store {
    /// The event log.
    pub fn events(&self) -> EventLog<'_> {
        EventLog(self)
    }

    /// Publishes events whose transaction has committed.
    pub(crate) async fn publish_committed(&self, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        if let Err(e) = self.bus.publish_all(events).await {
            // The events are durable; consumers catch up from the log.
            tracing::warn!(first_event_id = %events[0].id, events = events.len(), error = %e,
                "events persisted but not all published on the bus");
        }
    }
}

fn decode(body: String) -> Result<Event, StoreError> {
    serde_json::from_str(&body).map_err(|e| StoreError::Corrupt(format!("event body: {e}")))
}

impl EventLog<'_> {
    /// Persists `event`, then publishes it; returns it with its `seq`.
    /// Concurrent calls share a transaction ([`group`]).
    pub async fn record(&self, event: Event) -> Result<Event, StoreError> {
        group::record(self.0, event).await
    }

    /// Persists `event` in a transaction of its own, then publishes it.
    pub(crate) async fn record_alone(&self, event: Event) -> Result<Event, StoreError> {
        let mut tx = self.0.writer().begin().await?;
        let event = append(&mut tx, event).await?;
        tx.commit().await?;
        self.0.publish_committed(std::slice::from_ref(&event)).await;
        Ok(event)
    }

    /// The event `id` of `project`.
    pub async fn get(&self, project: ProjectId, id: EventId) -> Result<Option<Event>, StoreError> {
        let row = sqlx::query("SELECT body FROM events WHERE project_id = $1 AND id = $2")
            .bind(project.to_string())
            .bind(id.to_string())
            .fetch_optional(self.0.reader())
            .await?;
        row.map(|r| decode(r.try_get("body")?)).transpose()
    }

    /// Up to `limit` events of `project` after sequence `after_seq`, oldest first.
    pub async fn list(
        &self,
        project: ProjectId,
        filter: &EventFilter,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT body FROM events WHERE project_id = $1 AND seq > $2 \
             AND ($3 IS NULL OR type = $3) AND ($4 IS NULL OR room_name = $4) AND ($5 IS NULL OR created_at >= $5) \
             ORDER BY seq LIMIT $6",
        )
        .bind(project.to_string())
        .bind(after_seq)
        .bind(filter.event_type.clone())
        .bind(filter.room.clone())
        .bind(filter.since.map(to_micros))
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?;
        rows.into_iter()
            .map(|r| decode(r.try_get("body")?))
            .collect()
    }
}
