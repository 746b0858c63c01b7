//! The job outbox of asynchronous handlers: fanned out from the log behind a
//! durable cursor, taken in turns per project, held under a lease.

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;
use switchboard_core::event::EventPayload;
use switchboard_core::{Event, FunctionId, FunctionJobId, ProjectId};

use super::invocations::{insert_invocation, Invocation};
use super::{decode_deployed, Functions, CONSUMER, DEPLOYED};
use crate::error::corrupt;
use crate::time::to_micros;
use crate::{cursors, turns, StoreError};

/// An event queued for a function's asynchronous handler.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Its id.
    pub id: FunctionJobId,
    /// The project.
    pub project_id: ProjectId,
    /// The function.
    pub function_id: FunctionId,
    /// The event.
    pub event: Event,
    /// How many times it was started before.
    pub attempts: u32,
}

impl Functions<'_> {
    /// Projects whose log has events the functions fan-out has not read yet.
    pub async fn projects_behind(&self) -> Result<Vec<ProjectId>, StoreError> {
        cursors::projects_behind(self.0.reader(), CONSUMER).await
    }

    /// Queues jobs for up to `batch` unread events of `project` and moves the
    /// cursor past them, in one transaction. Returns how many events were read;
    /// fewer than `batch` means the cursor reached the end.
    pub async fn fan_out(
        &self,
        project: ProjectId,
        batch: u32,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let mut tx = self.0.writer().begin().await?;
        self.0.skip_flush_wait(&mut tx).await?;
        let after = cursors::lock(&mut tx, CONSUMER, project).await?;
        let rows = sqlx::query(&format!(
            "{DEPLOYED} WHERE f.project_id = $1 AND f.deleted_at IS NULL"
        ))
        .bind(project.to_string())
        .fetch_all(&mut *tx)
        .await?;
        let mut handlers = Vec::new();
        for row in &rows {
            let d = decode_deployed(row)?;
            if d.triggers.events.is_some() {
                handlers.push((d, row.try_get::<i64, _>("from_seq")?));
            }
        }
        if handlers.is_empty() {
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
        for event in &events {
            last = event.seq;
            for (handler, from_seq) in &handlers {
                // A function's own events do not run it again, so an `emit` in a
                // handler of `function.*` cannot loop forever.
                let own = matches!(&event.payload, EventPayload::FunctionEvent { function, .. } if *function == handler.name);
                if event.seq > *from_seq && !own && handler.triggers.runs_on(event.event_type()) {
                    sqlx::query(
                        "INSERT INTO function_jobs (id, project_id, function_id, event_id, event_seq, order_key, \
                         status, next_attempt_at, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7, $7) ON CONFLICT DO NOTHING",
                    )
                    .bind(FunctionJobId::new().to_string())
                    .bind(project.to_string())
                    .bind(handler.function_id.to_string())
                    .bind(event.id.to_string())
                    .bind(event.seq)
                    .bind(event.room().map(|r| r.sid.to_string()).unwrap_or_default())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        cursors::advance(&mut tx, CONSUMER, project, last).await?;
        tx.commit().await?;
        Ok(events.len())
    }

    /// Up to `limit` jobs due at `now` that nobody holds, in log order. A job
    /// waits while an earlier job of the same function and room is pending,
    /// so each room's events reach a function in order.
    ///
    /// At most `per_project` of each project, taken in turns: every project's
    /// oldest due job comes before any project's second, so one project with
    /// a thousand slow jobs due takes a few places of the batch, not all.
    /// Projects in `busy` (the caller can start none of their jobs now) are
    /// not read at all, and the others' backlogs only as far as their turns
    /// ([`crate::turns`]): a noisy project's thousand waiting jobs would
    /// otherwise be ranked and checked on every wake-up.
    pub async fn due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        per_project: u32,
        busy: &[ProjectId],
    ) -> Result<Vec<Job>, StoreError> {
        let busy: Vec<String> = busy.iter().map(ToString::to_string).collect();
        let mut projects =
            turns::pending_keys(self.0.reader(), "function_jobs", "project_id").await?;
        projects.retain(|p| !busy.contains(p));
        let select = |project: usize| {
            format!(
                "SELECT j.id, j.project_id, j.function_id, j.attempts, \
                 j.next_attempt_at AS due_at, j.event_seq AS seq, e.body \
                 FROM function_jobs j JOIN events e ON e.id = j.event_id \
                 WHERE j.status = 'pending' AND j.project_id = ${project} \
                 AND j.next_attempt_at <= $1 AND (j.locked_until IS NULL OR j.locked_until < $1) \
                 AND NOT EXISTS (SELECT 1 FROM function_jobs p WHERE p.function_id = j.function_id \
                     AND p.order_key = j.order_key AND p.status = 'pending' AND p.event_seq < j.event_seq) \
                 ORDER BY j.next_attempt_at, j.event_seq LIMIT $2"
            )
        };
        turns::take(
            self.0.reader(),
            &projects,
            to_micros(now),
            (|_: &str| per_project, limit),
            select,
            |r| {
                let job = Job {
                    id: r.try_get::<String, _>("id")?.parse().map_err(corrupt)?,
                    project_id: r
                        .try_get::<String, _>("project_id")?
                        .parse()
                        .map_err(corrupt)?,
                    function_id: r
                        .try_get::<String, _>("function_id")?
                        .parse()
                        .map_err(corrupt)?,
                    event: serde_json::from_str(&r.try_get::<String, _>("body")?)
                        .map_err(corrupt)?,
                    attempts: r.try_get::<i64, _>("attempts")? as u32,
                };
                let order = (r.try_get::<i64, _>("due_at")?, r.try_get::<i64, _>("seq")?);
                let project = job.project_id;
                Ok(Some((job, project, order)))
            },
        )
        .await
    }

    /// Takes `job` until `now + lease`; false if another runner has it or it is done.
    pub async fn claim(
        &self,
        job: FunctionJobId,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE function_jobs SET locked_until = $1, attempts = attempts + 1 \
             WHERE id = $2 AND status = 'pending' AND (locked_until IS NULL OR locked_until < $3)",
        )
        .bind(to_micros(now + lease))
        .bind(job.to_string())
        .bind(to_micros(now))
        .execute(self.0.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks `job` done and records its invocation, in one transaction.
    pub async fn finish(
        &self,
        job: FunctionJobId,
        invocation: Option<&Invocation>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.0.writer().begin().await?;
        sqlx::query("UPDATE function_jobs SET status = 'done', locked_until = NULL, updated_at = $1 WHERE id = $2")
            .bind(to_micros(now))
            .bind(job.to_string())
            .execute(&mut *tx)
            .await?;
        if let Some(inv) = invocation {
            insert_invocation(&mut tx, inv).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Puts `job` back to run again at `at` (the host could not run it).
    pub async fn postpone(&self, job: FunctionJobId, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE function_jobs SET locked_until = NULL, next_attempt_at = $1, updated_at = $1 WHERE id = $2",
        )
        .bind(to_micros(at))
        .bind(job.to_string())
        .execute(self.0.writer())
        .await?;
        Ok(())
    }
}
