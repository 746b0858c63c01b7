//! Durable cursors of the event log's consumers (webhook fan-out, functions,
//! billing): how far each has read each project's log.
//!
//! A consumer moves its cursor in the same transaction as the work it did
//! for the events it read, so after a crash it resumes exactly where its last
//! commit left it, and nothing is done twice.

use sqlx::{AnyConnection, AnyPool, Row};
use switchboard_core::ProjectId;

use crate::StoreError;

/// Projects whose log goes beyond `consumer`'s cursor.
pub(crate) async fn projects_behind(
    pool: &AnyPool,
    consumer: &str,
) -> Result<Vec<ProjectId>, StoreError> {
    let rows = sqlx::query(
        "SELECT p.id FROM projects p LEFT JOIN consumer_cursors c \
         ON c.consumer = $1 AND c.project_id = p.id \
         WHERE p.event_seq > COALESCE(c.seq, 0) ORDER BY p.id",
    )
    .bind(consumer)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            r.try_get::<String, _>("id")?
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("{e}")))
        })
        .collect()
}

/// `consumer`'s cursor in `project`, locked until the caller's transaction ends
/// so two nodes never read the same events for it at once.
pub(crate) async fn lock(
    conn: &mut AnyConnection,
    consumer: &str,
    project: ProjectId,
) -> Result<i64, StoreError> {
    sqlx::query(
        "INSERT INTO consumer_cursors (consumer, project_id, seq) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(project.to_string())
    .execute(&mut *conn)
    .await?;
    // An UPDATE that changes nothing takes the row lock on PostgreSQL; SQLite
    // already runs one writer transaction at a time.
    let row = sqlx::query(
        "UPDATE consumer_cursors SET seq = seq WHERE consumer = $1 AND project_id = $2 RETURNING seq",
    )
    .bind(consumer)
    .bind(project.to_string())
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get("seq")?)
}

/// Moves `consumer`'s cursor in `project` to `seq`.
pub(crate) async fn advance(
    conn: &mut AnyConnection,
    consumer: &str,
    project: ProjectId,
    seq: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE consumer_cursors SET seq = $1 WHERE consumer = $2 AND project_id = $3")
        .bind(seq)
        .bind(consumer)
        .bind(project.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Moves `consumer`'s cursor in `project` to the end of the log.
pub(crate) async fn skip_to_end(
    conn: &mut AnyConnection,
    consumer: &str,
    project: ProjectId,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE consumer_cursors SET seq = (SELECT event_seq FROM projects WHERE id = $1) \
         WHERE consumer = $2 AND project_id = $1",
    )
    .bind(project.to_string())
    .bind(consumer)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
