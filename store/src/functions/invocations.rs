//! Every invocation of a function, with its logs.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use switchboard_core::{EventId, FunctionId, InvocationId, ProjectId};

use super::Functions;
use crate::error::corrupt;
use crate::time::{from_micros, stored, to_micros};
use crate::StoreError;

pub use switchboard_core::function::LogLine;

/// One run of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// Its id.
    pub id: InvocationId,
    /// The project.
    pub project_id: ProjectId,
    /// The function.
    pub function_id: FunctionId,
    /// The version that ran.
    pub version: u32,
    /// `joining`, `event` or `invoke`.
    pub trigger: String,
    /// The event it ran on (none for `participant.joining`, which is not logged).
    pub event_id: Option<EventId>,
    /// The event type.
    pub event_type: String,
    /// `ok`, `error`, `trap`, `timeout`, `out_of_fuel`, `out_of_memory`, `stack_overflow` or `busy`.
    pub outcome: String,
    /// `allow`, `deny` or `admit`, for the join hook.
    pub decision: Option<String>,
    /// What went wrong, when something did.
    pub error: Option<String>,
    /// Wall time of the call, in microseconds.
    pub duration_us: u64,
    /// WebAssembly fuel consumed.
    pub fuel_used: u64,
    /// What it logged.
    pub logs: Vec<LogLine>,
    /// When it started.
    pub created_at: DateTime<Utc>,
}

fn decode_invocation(r: &AnyRow) -> Result<Invocation, StoreError> {
    Ok(Invocation {
        id: r.try_get::<String, _>("id")?.parse().map_err(corrupt)?,
        project_id: r
            .try_get::<String, _>("project_id")?
            .parse()
            .map_err(corrupt)?,
        function_id: r
            .try_get::<String, _>("function_id")?
            .parse()
            .map_err(corrupt)?,
        version: r.try_get::<i64, _>("version")? as u32,
        trigger: r.try_get("trigger_kind")?,
        event_id: r
            .try_get::<Option<String>, _>("event_id")?
            .map(|s| s.parse())
            .transpose()
            .map_err(corrupt)?,
        event_type: r.try_get("event_type")?,
        outcome: r.try_get("outcome")?,
        decision: r.try_get("decision")?,
        error: r.try_get("error")?,
        duration_us: r.try_get::<i64, _>("duration_us")? as u64,
        fuel_used: r.try_get::<i64, _>("fuel_used")? as u64,
        logs: serde_json::from_str(&r.try_get::<String, _>("logs")?).map_err(corrupt)?,
        created_at: from_micros(r.try_get("created_at")?)?,
    })
}

impl Functions<'_> {
    /// Records an invocation.
    pub async fn record_invocation(&self, inv: &Invocation) -> Result<(), StoreError> {
        let mut tx = self.0.writer().begin().await?;
        insert_invocation(&mut tx, inv).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Up to `limit` invocations of `function` older than `before`, newest first.
    pub async fn invocations(
        &self,
        function: FunctionId,
        before: Option<InvocationId>,
        limit: u32,
    ) -> Result<Vec<Invocation>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM function_invocations WHERE function_id = $1 AND ($2 = '' OR id < $2) \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(function.to_string())
        .bind(before.map(|b| b.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(decode_invocation).collect()
    }
}

pub(super) async fn insert_invocation(
    conn: &mut AnyConnection,
    inv: &Invocation,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO function_invocations (id, project_id, function_id, version, trigger_kind, event_id, \
         event_type, outcome, decision, error, duration_us, fuel_used, logs, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(inv.id.to_string())
    .bind(inv.project_id.to_string())
    .bind(inv.function_id.to_string())
    .bind(i64::from(inv.version))
    .bind(&inv.trigger)
    .bind(inv.event_id.map(|e| e.to_string()))
    .bind(&inv.event_type)
    .bind(&inv.outcome)
    .bind(&inv.decision)
    .bind(&inv.error)
    .bind(inv.duration_us as i64)
    .bind(inv.fuel_used as i64)
    .bind(serde_json::to_string(&inv.logs).map_err(corrupt)?)
    .bind(to_micros(stored(inv.created_at)))
    .execute(&mut *conn)
    .await?;
    // Metered with the record, so a run is billed exactly when it is listed.
    crate::usage::add_invocation(
        conn,
        inv.project_id,
        inv.id,
        inv.created_at,
        inv.duration_us,
    )
    .await
}
