//! The webhook delivery outbox: one row per (endpoint, event) to deliver, with
//! every HTTP attempt kept beside it.
//!
//! Deliveries are made from the event log by [`Deliveries::fan_out`], which
//! moves the `webhooks` consumer cursor in the same transaction, so an event
//! is queued for each endpoint exactly once however often it runs (and a
//! unique index backs that up when two nodes race). Senders take due
//! deliveries with a lease ([`Deliveries::claim`]): a node that dies mid-send
//! lets its lease lapse and another attempt follows, so every delivery is made
//! at least once and receivers deduplicate by event id.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use switchboard_core::event::EventPayload;
use switchboard_core::{AttemptId, DeliveryId, Event, EventId, ProjectId, WebhookId};

use crate::error::corrupt;
use crate::time::{from_micros, stored, to_micros};
use crate::webhooks;
use crate::{cursors, turns};
use crate::{Store, StoreError};

mod attempts;

pub(crate) use attempts::{Completions, COMPLETIONS_PER_ROUND};

/// The event log consumer name of webhook fan-out.
pub const CONSUMER: &str = "webhooks";

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or in flight).
    Pending,
    /// An attempt got a 2xx.
    Succeeded,
    /// Every scheduled attempt failed.
    Failed,
}

impl DeliveryStatus {
    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(Self::Pending),
            "succeeded" => Ok(Self::Succeeded),
            "failed" => Ok(Self::Failed),
            other => Err(StoreError::Corrupt(format!("delivery status `{other}`"))),
        }
    }
}

/// One event to deliver to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its id.
    pub id: DeliveryId,
    /// The project.
    pub project_id: ProjectId,
    /// The endpoint.
    pub webhook_id: WebhookId,
    /// The event (also the `webhook-id` header, the receiver's deduplication key).
    pub event_id: EventId,
    /// The event's type.
    pub event_type: String,
    /// `event` (from the log) or `replay` (asked for).
    pub origin: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// One HTTP attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// Its id.
    pub id: AttemptId,
    /// The delivery.
    pub delivery_id: DeliveryId,
    /// When the request was sent.
    pub attempted_at: DateTime<Utc>,
    /// The response status, if a response came.
    pub status_code: Option<u16>,
    /// Time from sending to the response (or the failure), in milliseconds.
    pub latency_ms: u64,
    /// The first 2 KiB of the response body.
    pub response_body: String,
    /// Why no 2xx came, when none did.
    pub error: Option<String>,
    /// Whether it counted as delivered.
    pub succeeded: bool,
}

/// A due delivery with what the sender needs to make the request.
#[derive(Debug, Clone)]
pub struct Due {
    /// The delivery.
    pub delivery: Delivery,
    /// The endpoint URL.
    pub url: String,
    /// The event as stored in the log (the request body is made from it).
    pub event: Event,
    /// The endpoint's signing secrets when it was read: the current one, then
    /// the previous one while it is still honoured.
    pub secrets: Vec<String>,
}

/// What became of an attempt, as the sender decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered.
    Succeeded,
    /// Not delivered; try again at this time.
    RetryAt(DateTime<Utc>),
    /// Not delivered and no attempts are left.
    Failed,
}

/// The outbox tables.
pub struct Deliveries<'a>(&'a Store);

impl Store {
    /// The webhook delivery outbox.
    pub fn deliveries(&self) -> Deliveries<'_> {
        Deliveries(self)
    }
}

const COLUMNS: &str =
    "d.id, d.project_id, d.webhook_id, d.event_id, d.event_type, d.origin, d.status, \
                       d.attempts, d.next_attempt_at, d.created_at, d.updated_at";

fn decode(r: &AnyRow) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: r.try_get::<String, _>("id")?.parse().map_err(corrupt)?,
        project_id: r
            .try_get::<String, _>("project_id")?
            .parse()
            .map_err(corrupt)?,
        webhook_id: r
            .try_get::<String, _>("webhook_id")?
            .parse()
            .map_err(corrupt)?,
        event_id: r
            .try_get::<String, _>("event_id")?
            .parse()
            .map_err(corrupt)?,
        event_type: r.try_get("event_type")?,
        origin: r.try_get("origin")?,
        status: DeliveryStatus::parse(&r.try_get::<String, _>("status")?)?,
        attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).map_err(corrupt)?,
        next_attempt_at: r
            .try_get::<Option<i64>, _>("next_attempt_at")?
            .map(from_micros)
            .transpose()?,
        created_at: from_micros(r.try_get("created_at")?)?,
        updated_at: from_micros(r.try_get("updated_at")?)?,
    })
}

fn decode_attempt(r: &AnyRow) -> Result<Attempt, StoreError> {
    Ok(Attempt {
        id: r.try_get::<String, _>("id")?.parse().map_err(corrupt)?,
        delivery_id: r
            .try_get::<String, _>("delivery_id")?
            .parse()
            .map_err(corrupt)?,
        attempted_at: from_micros(r.try_get("attempted_at")?)?,
        status_code: r
            .try_get::<Option<i64>, _>("status_code")?
            .map(|c| u16::try_from(c).map_err(corrupt))
            .transpose()?,
        latency_ms: u64::try_from(r.try_get::<i64, _>("latency_ms")?).map_err(corrupt)?,
        response_body: r.try_get("response_body")?,
        error: r.try_get("error")?,
        succeeded: r.try_get::<i64, _>("succeeded")? != 0,
    })
}

fn event_body(r: &AnyRow) -> Result<Event, StoreError> {
    serde_json::from_str(&r.try_get::<String, _>("body")?)
        .map_err(|e| corrupt(format!("event body: {e}")))
}

/// The endpoint an event is meant for regardless of subscriptions (`webhook.test`).
fn addressed_to(event: &Event) -> Option<&str> {
    match &event.payload {
        EventPayload::WebhookTest { webhook_id } => Some(webhook_id),
        _ => None,
    }
}

/// What a delivery waits behind before its first attempt: earlier events of
/// the same participant (joined, tracks, left), or for an event about no
/// participant, earlier ones of its room (started, recordings, finished).
/// Keyed by participant rather than room so that a large event's join storm
/// goes out in parallel instead of one request at a time.
fn order_key(event: &Event) -> String {
    match (event.payload.participant(), event.room()) {
        (Some(p), _) => p.sid.to_string(),
        (None, Some(room)) => room.sid.to_string(),
        (None, None) => String::new(),
    }
}

/// Rows per multi-row `INSERT` of deliveries (13 values each).
const INSERT_ROWS: usize = 40;

/// Queues `event` for each of `webhooks`; returns how many were new.
async fn insert(
    conn: &mut AnyConnection,
    rows: &[(WebhookId, &Event)],
    origin: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let mut queued = 0;
    for chunk in rows.chunks(INSERT_ROWS) {
        let sql = format!(
            "INSERT INTO webhook_deliveries (id, project_id, webhook_id, event_id, event_seq, event_type, \
             order_key, origin, status, attempts, next_attempt_at, created_at, updated_at) \
             VALUES {} ON CONFLICT DO NOTHING",
            crate::sql::values(chunk.len(), 13)
        );
        let mut query = sqlx::query(&sql);
        for (webhook, event) in chunk {
            query = query
                .bind(DeliveryId::new().to_string())
                .bind(event.project_id.to_string())
                .bind(webhook.to_string())
                .bind(event.id.to_string())
                .bind(event.seq)
                .bind(event.event_type())
                .bind(order_key(event))
                .bind(origin)
                .bind("pending")
                .bind(0i64)
                .bind(now)
                .bind(now)
                .bind(now);
        }
        queued += query.execute(&mut *conn).await?.rows_affected();
    }
    Ok(queued)
}

impl Deliveries<'_> {
    /// Whether `project` has an endpoint taking deliveries (a cheap read that
    /// spares projects without webhooks a fan-out transaction per event).
    pub async fn wanted(&self, project: ProjectId) -> Result<bool, StoreError> {
        webhooks::any_active(self.0.reader(), project).await
    }

    /// Projects whose log has events the fan-out has not read yet.
    pub async fn projects_behind(&self) -> Result<Vec<ProjectId>, StoreError> {
        cursors::projects_behind(self.0.reader(), CONSUMER).await
    }

    /// Queues deliveries for up to `batch` unread events of `project` and moves
    /// the cursor past them, in one transaction. Returns how many events were
    /// read (0 when the project has no endpoints and the cursor skipped to the end
    /// of the log); fewer than `batch` means the cursor reached the end.
    pub async fn fan_out(
        &self,
        project: ProjectId,
        batch: u32,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let mut tx = self.0.writer().begin().await?;
        self.0.skip_flush_wait(&mut tx).await?;
        let after = cursors::lock(&mut tx, CONSUMER, project).await?;
        let endpoints = webhooks::active(&mut tx, project).await?;
        if endpoints.is_empty() {
            // Nothing to queue: skip the unread events without reading them. An
            // endpoint created later starts after its own `from_seq`, and its
            // creation takes this cursor's lock, so none of its events is skipped.
            cursors::skip_to_end(&mut tx, CONSUMER, project).await?;
            tx.commit().await?;
            return Ok(0);
        }
        let events = crate::events::after(&mut tx, project, after, batch).await?;
        if events.is_empty() {
            return Ok(0);
        }
        let now = to_micros(now);
        let mut last = after;
        let mut rows = Vec::new();
        for event in &events {
            last = event.seq;
            let target = addressed_to(event);
            for (endpoint, from_seq) in &endpoints {
                let wanted = match target {
                    Some(id) => endpoint.id.to_string() == id,
                    None => event.seq > *from_seq && endpoint.events.matches(event.event_type()),
                };
                if wanted {
                    rows.push((endpoint.id, event));
                }
            }
        }
        insert(&mut tx, &rows, "event", now).await?;
        cursors::advance(&mut tx, CONSUMER, project, last).await?;
        tx.commit().await?;
        Ok(events.len())
    }

    /// Up to `limit` deliveries due at `now` that nobody holds, at most
    /// `per_endpoint(endpoint)` of each endpoint, taken in turns: every endpoint's
    /// oldest due delivery comes before any endpoint's second. One project
    /// whose endpoint fails with thousands of retries due therefore takes a
    /// few places of the batch, not all of them, and a quiet project's fresh
    /// delivery is in the next batch. A delivery waits while an earlier event
    /// for the same room and endpoint has not had its first attempt, so a
    /// healthy endpoint gets each participant's events, and each room's events
    /// about no participant, in order ([`order_key`]).
    ///
    /// That wait is checked with a scalar subquery, which PostgreSQL runs as
    /// one probe of the `webhook_deliveries_heads` index per candidate; as
    /// `NOT EXISTS` it became an anti-join that, with the statistics of a
    /// table that grew in seconds, scanned the endpoint's whole backlog for
    /// each candidate (99 ms against 0.5 ms at 18,000 pending).
    ///
    /// Endpoints in `busy_endpoints` and projects in `busy_projects` (the
    /// caller can send none of theirs now) are left out, and the others'
    /// backlogs are read only as far as their turns ([`crate::turns`]), so a
    /// stuck endpoint's thousands of retries cost the query next to nothing.
    pub async fn due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        per_endpoint: impl Fn(WebhookId) -> u32,
        busy_endpoints: &[WebhookId],
        busy_projects: &[ProjectId],
    ) -> Result<Vec<Due>, StoreError> {
        let busy: Vec<String> = busy_endpoints.iter().map(ToString::to_string).collect();
        let mut endpoints =
            turns::pending_keys(self.0.reader(), "webhook_deliveries", "webhook_id").await?;
        endpoints.retain(|e| !busy.contains(e));
        let select = |endpoint: usize| {
            format!(
                "SELECT {COLUMNS}, d.event_seq AS seq, w.url, e.body, \
                 w.sealed_secret, w.previous_sealed_secret, w.previous_expires_at \
                 FROM webhook_deliveries d \
                 JOIN webhooks w ON w.id = d.webhook_id \
                 JOIN events e ON e.id = d.event_id \
                 WHERE d.status = 'pending' AND d.webhook_id = ${endpoint} \
                 AND d.next_attempt_at <= $1 AND (d.locked_until IS NULL OR d.locked_until < $1) \
                 AND w.enabled = 1 AND w.deleted_at IS NULL \
                 AND d.event_seq <= COALESCE((SELECT MIN(p.event_seq) FROM webhook_deliveries p \
                     WHERE p.webhook_id = d.webhook_id AND p.order_key = d.order_key \
                     AND p.status = 'pending' AND p.attempts = 0), d.event_seq) \
                 ORDER BY d.next_attempt_at, d.event_seq LIMIT $2"
            )
        };
        turns::take(
            self.0.reader(),
            &endpoints,
            to_micros(now),
            (
                // A key that is not an id matches nothing; 1 reads it cheaply.
                |key: &str| key.parse().map_or(1, &per_endpoint),
                limit,
            ),
            select,
            |r| {
                let delivery = decode(r)?;
                if busy_projects.contains(&delivery.project_id) {
                    return Ok(None);
                }
                let order = (
                    r.try_get::<i64, _>("next_attempt_at")?,
                    r.try_get::<i64, _>("seq")?,
                );
                let endpoint = delivery.webhook_id;
                let due = Due {
                    delivery,
                    url: r.try_get("url")?,
                    event: event_body(r)?,
                    secrets: webhooks::signing_secrets(&self.0.master_key, r, now)?,
                };
                Ok(Some((due, endpoint, order)))
            },
        )
        .await
    }

    /// Takes those of `ids` that are pending and that no other sender holds,
    /// until `now + lease`, in one transaction; returns the ones taken.
    pub async fn claim_all(
        &self,
        ids: &[DeliveryId],
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<DeliveryId>, StoreError> {
        let mut taken = Vec::with_capacity(ids.len());
        if ids.is_empty() {
            return Ok(taken);
        }
        let mut tx = self.0.writer().begin().await?;
        // A claim lost in a crash lets the delivery be sent again, as the
        // lease lapsing would: receivers deduplicate.
        self.0.skip_flush_wait(&mut tx).await?;
        for chunk in ids.chunks(200) {
            // Joined to the ids as a VALUES list rather than `id IN (...)`: with
            // the statistics of an outbox that grew in seconds, PostgreSQL
            // planned the IN list against the status index too, reading every
            // pending row (7 ms at 80,000 pending, against 1 ms this way).
            let n = chunk.len();
            let sql = format!(
                "UPDATE webhook_deliveries SET locked_until = ${} FROM (VALUES {}) AS v \
                 WHERE webhook_deliveries.id = v.column1 AND webhook_deliveries.status = 'pending' \
                 AND (webhook_deliveries.locked_until IS NULL OR webhook_deliveries.locked_until < ${}) \
                 RETURNING webhook_deliveries.id",
                n + 1,
                crate::sql::values(n, 1),
                n + 2
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.to_string());
            }
            let query = query.bind(to_micros(now + lease)).bind(to_micros(now));
            for row in query.fetch_all(&mut *tx).await? {
                taken.push(row.try_get::<String, _>("id")?.parse().map_err(corrupt)?);
            }
        }
        tx.commit().await?;
        Ok(taken)
    }

    /// The delivery `id` of `project`.
    pub async fn get(
        &self,
        project: ProjectId,
        id: DeliveryId,
    ) -> Result<Option<Delivery>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhook_deliveries d WHERE d.project_id = $1 AND d.id = $2"
        ))
        .bind(project.to_string())
        .bind(id.to_string())
        .fetch_optional(self.0.reader())
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Up to `limit` deliveries to endpoint `webhook`, newest first, before `before`.
    pub async fn list_for_webhook(
        &self,
        project: ProjectId,
        webhook: WebhookId,
        before: Option<DeliveryId>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhook_deliveries d WHERE d.project_id = $1 AND d.webhook_id = $2 \
             AND ($3 IS NULL OR d.id < $3) ORDER BY d.id DESC LIMIT $4"
        ))
        .bind(project.to_string())
        .bind(webhook.to_string())
        .bind(before.map(|b| b.to_string()))
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Every delivery of event `event`, oldest first.
    pub async fn list_for_event(
        &self,
        project: ProjectId,
        event: EventId,
    ) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhook_deliveries d WHERE d.project_id = $1 AND d.event_id = $2 ORDER BY d.id"
        ))
        .bind(project.to_string())
        .bind(event.to_string())
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// The attempts of each of `deliveries`, oldest first.
    pub async fn attempts(
        &self,
        deliveries: &[DeliveryId],
    ) -> Result<HashMap<DeliveryId, Vec<Attempt>>, StoreError> {
        let mut out: HashMap<DeliveryId, Vec<Attempt>> = HashMap::new();
        for chunk in deliveries.chunks(100) {
            let placeholders: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT id, delivery_id, attempted_at, status_code, latency_ms, response_body, error, succeeded \
                 FROM webhook_attempts WHERE delivery_id IN ({}) ORDER BY attempted_at, id",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.to_string());
            }
            for row in query.fetch_all(self.0.reader()).await? {
                let attempt = decode_attempt(&row)?;
                out.entry(attempt.delivery_id).or_default().push(attempt);
            }
        }
        Ok(out)
    }

    /// Makes delivery `id` due again now (one more attempt, whatever its status).
    pub async fn retry(
        &self,
        project: ProjectId,
        id: DeliveryId,
        now: DateTime<Utc>,
    ) -> Result<Option<Delivery>, StoreError> {
        let row = sqlx::query(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $1, updated_at = $1 \
             WHERE project_id = $2 AND id = $3 RETURNING id",
        )
        .bind(to_micros(stored(now)))
        .bind(project.to_string())
        .bind(id.to_string())
        .fetch_optional(self.0.writer())
        .await?;
        match row {
            Some(_) => self.get(project, id).await,
            None => Ok(None),
        }
    }

    /// Queues again, for endpoint `webhook`, every event since `since` that it
    /// subscribes to, up to `max`; returns how many were queued.
    pub async fn replay(
        &self,
        project: ProjectId,
        webhook: &webhooks::Webhook,
        since: DateTime<Utc>,
        max: u32,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.0.writer().begin().await?;
        let mut after = 0i64;
        let mut queued = 0u64;
        let now = to_micros(stored(now));
        loop {
            let rows = sqlx::query(
                "SELECT body FROM events WHERE project_id = $1 AND created_at >= $2 AND seq > $3 \
                 ORDER BY seq LIMIT 500",
            )
            .bind(project.to_string())
            .bind(to_micros(since))
            .bind(after)
            .fetch_all(&mut *tx)
            .await?;
            if rows.is_empty() {
                break;
            }
            let mut wanted = Vec::new();
            for row in &rows {
                let event = event_body(row)?;
                after = event.seq;
                let matches = match addressed_to(&event) {
                    Some(id) => webhook.id.to_string() == id,
                    None => webhook.events.matches(event.event_type()),
                };
                if matches {
                    if queued + wanted.len() as u64 >= u64::from(max) {
                        return Err(StoreError::Conflict(format!(
                            "more than {max} events match since {}; replay a shorter period",
                            since.to_rfc3339()
                        )));
                    }
                    wanted.push(event);
                }
            }
            let rows: Vec<(WebhookId, &Event)> = wanted.iter().map(|e| (webhook.id, e)).collect();
            queued += insert(&mut tx, &rows, "replay", now).await?;
        }
        tx.commit().await?;
        Ok(queued)
    }
}
