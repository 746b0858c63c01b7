//! The event log's group commit ([`crate::group`]).
//!
//! Each transaction that appends to a project's log holds the project's row
//! lock (which hands out the gap-free `seq`) until its commit reaches the
//! disk, so one event per transaction caps a project's log at the disk's
//! flush rate: a few hundred joins a second, where a large event's join storm
//! brings thousands. Concurrent [`EventLog::record`](super::EventLog::record)
//! calls therefore share a transaction; each still returns once its event
//! has committed and been published.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, Row};
use switchboard_core::Event;

use crate::group::Reply;
use crate::time::to_micros;
use crate::{Store, StoreError};

/// Events written in one transaction at most.
pub(crate) const MAX_BATCH: usize = 256;
/// Rows per `INSERT` (eight parameters each, well under either backend's limit).
const ROWS_PER_INSERT: usize = 64;

/// Appends `event` with whatever else is queued; returns it with its `seq`
/// once committed and published.
pub(crate) async fn record(store: &Store, event: Event) -> Result<Event, StoreError> {
    let writer = store.clone();
    store
        .appends
        .submit(event, move |round| {
            let store = writer.clone();
            async move { write(&store, round).await }
        })
        .await
}

/// Writes one round in one transaction; if that fails, each event on its own,
/// so one bad event fails only its own caller.
async fn write(store: &Store, round: Vec<(Event, Reply<Event>)>) {
    let (mut events, replies): (Vec<Event>, Vec<Reply<Event>>) = round.into_iter().unzip();
    let result = async {
        let mut tx = store.writer().begin().await?;
        append_all(&mut tx, &mut events).await?;
        tx.commit().await?;
        Ok::<_, StoreError>(())
    }
    .await;
    match result {
        Ok(()) => {
            store.publish_committed(&events).await;
            for (event, reply) in events.into_iter().zip(replies) {
                let _ = reply.send(Ok(event));
            }
        }
        Err(e) if events.len() == 1 => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
        Err(_) => {
            for (event, reply) in events.into_iter().zip(replies) {
                let _ = reply.send(store.events().record_alone(event).await);
            }
        }
    }
}

/// Appends `events` inside the caller's transaction, assigning each its
/// project's next `seq` in the order given.
pub(super) async fn append_all(
    conn: &mut AnyConnection,
    events: &mut [Event],
) -> Result<(), StoreError> {
    let mut by_project: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, event) in events.iter().enumerate() {
        by_project
            .entry(event.project_id.to_string())
            .or_default()
            .push(i);
    }
    // Projects in a fixed order, so two writers never wait on each other's locks.
    for (project, indices) in &by_project {
        let count = i64::try_from(indices.len()).unwrap_or(i64::MAX);
        let last: i64 = sqlx::query(
            "UPDATE projects SET event_seq = event_seq + $2 WHERE id = $1 RETURNING event_seq",
        )
        .bind(project)
        .bind(count)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("event for unknown project {project}")))?
        .try_get("event_seq")?;
        for (n, &i) in indices.iter().enumerate() {
            events[i].seq = last - count + 1 + n as i64;
        }
    }
    for chunk in events.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO events (id, project_id, seq, type, room_name, room_sid, created_at, body) VALUES {}",
            crate::sql::values(chunk.len(), 8)
        );
        let mut query = sqlx::query(&sql);
        for event in chunk {
            let body =
                serde_json::to_string(event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let room = event.room();
            query = query
                .bind(event.id.to_string())
                .bind(event.project_id.to_string())
                .bind(event.seq)
                .bind(event.event_type())
                .bind(room.map(|r| r.name.to_string()))
                .bind(room.map(|r| r.sid.to_string()))
                .bind(to_micros(event.created_at))
                .bind(body);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}
