//! Retention: deleting what is older than the period a deployment keeps.
//!
//! The janitor calls [`Retention::purge`] now and then. It deletes, in
//! batches so no transaction grows large, events, finished webhook
//! deliveries with their attempts, finished function jobs, invocations with
//! their logs, finished participant sessions and connection quality samples
//! older than the cut-off, and
//! idempotency records past [`crate::idempotency::RETENTION_HOURS`]. Usage
//! totals (the ledger and its rollups) are kept: invoices of any past month
//! stay reproducible.
//!
//! An event is deleted only once every consumer of the log has read it and no
//! pending delivery or job still needs its body, so a consumer that fell
//! behind loses nothing.

use chrono::{DateTime, Duration, Utc};
use sqlx::AnyConnection;

use crate::time::to_micros;
use crate::{Store, StoreError};

/// Rows deleted by one statement; small enough to hold locks only briefly.
const BATCH: i64 = 1000;

/// What one purge deleted, by kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Purged {
    /// Events of the log.
    pub events: u64,
    /// Finished webhook deliveries (their attempts go with them).
    pub deliveries: u64,
    /// Attempts of those deliveries.
    pub attempts: u64,
    /// Finished function jobs.
    pub jobs: u64,
    /// Function invocations and their logs.
    pub invocations: u64,
    /// Idempotency records past their window.
    pub idempotency_keys: u64,
    /// Finished participant sessions.
    pub sessions: u64,
    /// Connection quality samples.
    pub quality_samples: u64,
}

impl Purged {
    /// Rows deleted in all.
    pub fn total(&self) -> u64 {
        self.events
            + self.deliveries
            + self.attempts
            + self.jobs
            + self.invocations
            + self.idempotency_keys
            + self.sessions
            + self.quality_samples
    }
}

/// Deleting old rows.
pub struct Retention<'a>(&'a Store);

impl Store {
    /// Deleting old rows.
    pub fn retention(&self) -> Retention<'_> {
        Retention(self)
    }
}

/// Events the janitor may delete: old, read by every consumer of their
/// project, and needed by no pending delivery or job.
const OLD_EVENTS: &str = "SELECT e.id FROM events e WHERE e.created_at < $1 \
     AND e.seq <= (SELECT COALESCE(MIN(c.seq), 0) FROM consumer_cursors c WHERE c.project_id = e.project_id) \
     AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id AND d.status = 'pending') \
     AND NOT EXISTS (SELECT 1 FROM function_jobs j WHERE j.event_id = e.id AND j.status = 'pending') \
     ORDER BY e.created_at LIMIT $2";

const OLD_DELIVERIES: &str = "SELECT id FROM webhook_deliveries \
     WHERE status <> 'pending' AND updated_at < $1 ORDER BY updated_at LIMIT $2";

impl Retention<'_> {
    /// Deletes what is older than `keep` before `now` (see the module docs).
    pub async fn purge(&self, keep: Duration, now: DateTime<Utc>) -> Result<Purged, StoreError> {
        let cutoff = to_micros(now - keep);
        let idempotency_cutoff =
            to_micros(now - Duration::hours(crate::idempotency::RETENTION_HOURS));
        let mut purged = Purged::default();
        loop {
            let mut tx = self.0.writer().begin().await?;
            let batch = purge_batch(&mut tx, cutoff, idempotency_cutoff, to_micros(now)).await?;
            tx.commit().await?;
            let done = batch.total() == 0;
            purged.events += batch.events;
            purged.deliveries += batch.deliveries;
            purged.attempts += batch.attempts;
            purged.jobs += batch.jobs;
            purged.invocations += batch.invocations;
            purged.idempotency_keys += batch.idempotency_keys;
            purged.sessions += batch.sessions;
            purged.quality_samples += batch.quality_samples;
            if done {
                return Ok(purged);
            }
        }
    }
}

/// One batch of each kind, in one transaction.
async fn purge_batch(
    conn: &mut AnyConnection,
    cutoff: i64,
    idempotency_cutoff: i64,
    now: i64,
) -> Result<Purged, StoreError> {
    let attempts = exec(
        conn,
        &format!("DELETE FROM webhook_attempts WHERE delivery_id IN ({OLD_DELIVERIES})"),
        cutoff,
    )
    .await?;
    let deliveries = exec(
        conn,
        &format!("DELETE FROM webhook_deliveries WHERE id IN ({OLD_DELIVERIES})"),
        cutoff,
    )
    .await?;
    let jobs = exec(
        conn,
        "DELETE FROM function_jobs WHERE id IN (SELECT id FROM function_jobs \
         WHERE status = 'done' AND updated_at < $1 ORDER BY updated_at LIMIT $2)",
        cutoff,
    )
    .await?;
    let invocations = exec(
        conn,
        "DELETE FROM function_invocations WHERE id IN (SELECT id FROM function_invocations \
         WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
        cutoff,
    )
    .await?;
    let sessions = exec(
        conn,
        "DELETE FROM usage_sessions WHERE id IN (SELECT id FROM usage_sessions \
         WHERE left_at IS NOT NULL AND left_at < $1 ORDER BY left_at LIMIT $2)",
        cutoff,
    )
    .await?;
    let quality_samples = exec(
        conn,
        "DELETE FROM quality_samples WHERE (participant_sid, at) IN (SELECT participant_sid, at \
         FROM quality_samples WHERE at < $1 ORDER BY at LIMIT $2)",
        cutoff,
    )
    .await?;
    let idempotency_keys = exec(
        conn,
        "DELETE FROM idempotency_keys WHERE (project_id, key) IN (SELECT project_id, key \
         FROM idempotency_keys WHERE created_at < $1 ORDER BY created_at LIMIT $2)",
        idempotency_cutoff,
    )
    .await?;

    // The log refuses deletes but from a transaction holding a purge mark
    // (migration 0013); the mark goes before the commit, so no one else sees it.
    sqlx::query("INSERT INTO log_purges (started_at) VALUES ($1)")
        .bind(now)
        .execute(&mut *conn)
        .await?;
    let events = exec(
        conn,
        &format!("DELETE FROM events WHERE id IN ({OLD_EVENTS})"),
        cutoff,
    )
    .await?;
    sqlx::query("DELETE FROM log_purges")
        .execute(&mut *conn)
        .await?;
    Ok(Purged {
        events,
        deliveries,
        attempts,
        jobs,
        invocations,
        idempotency_keys,
        sessions,
        quality_samples,
    })
}

async fn exec(conn: &mut AnyConnection, sql: &str, cutoff: i64) -> Result<u64, StoreError> {
    let done = sqlx::query(sql)
        .bind(cutoff)
        .bind(BATCH)
        .execute(&mut *conn)
        .await?;
    Ok(done.rows_affected())
}
