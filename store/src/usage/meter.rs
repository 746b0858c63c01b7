//! The meter: reads each project's events from its durable cursor and, in
//! the transaction that moves the cursor, opens and closes sessions and
//! writes ledger rows; and ends the sessions of nodes that went silent.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::{AnyConnection, Row};
use switchboard_core::event::{EventPayload, LeaveReason, ParticipantRef, RoomRef, TrackKind};
use switchboard_core::usage::{Meter, Span};
use switchboard_core::{Event, InvocationId, NodeId, ProjectId, RoomName};

use crate::error::corrupt;
use crate::time::{from_micros, to_micros};
use crate::{cursors, events, StoreError};

use super::{decode_session, Usage, CONSUMER, SESSION_COLUMNS};

mod segment;

/// Adds `quantity` of `meter` from `source` in the hour starting at `hour`
/// to the ledger and the rollup, unless that row is already there.
#[allow(clippy::too_many_arguments)]
async fn add(
    conn: &mut AnyConnection,
    project: ProjectId,
    meter: Meter,
    source: &str,
    room_name: &str,
    hour: i64,
    quantity: i64,
    now: i64,
) -> Result<(), StoreError> {
    if quantity <= 0 {
        return Ok(());
    }
    let row = segment::LedgerRow {
        source: source.to_owned(),
        meter,
        hour,
        room_name: room_name.to_owned(),
        quantity,
    };
    segment::write_ledger(conn, project, &[row], now).await
}

/// Adds the time in `parts` to `meter`, split into UTC hours.
#[allow(clippy::too_many_arguments)]
async fn add_spans(
    conn: &mut AnyConnection,
    project: ProjectId,
    meter: Meter,
    source: &str,
    room_name: &str,
    parts: &[Span],
    now: i64,
) -> Result<(), StoreError> {
    let mut by_hour: BTreeMap<i64, i64> = BTreeMap::new();
    for (hour, us) in parts.iter().flat_map(|p| p.by_hour()) {
        *by_hour.entry(hour).or_default() += us;
    }
    for (hour, us) in by_hour {
        add(conn, project, meter, source, room_name, hour, us, now).await?;
    }
    Ok(())
}

/// Meters one function run: one invocation and its wall time, in its hour.
pub(crate) async fn add_invocation(
    conn: &mut AnyConnection,
    project: ProjectId,
    id: InvocationId,
    at: DateTime<Utc>,
    duration_us: u64,
) -> Result<(), StoreError> {
    let at = to_micros(at);
    let hour = at.div_euclid(switchboard_core::usage::HOUR_US) * switchboard_core::usage::HOUR_US;
    let source = id.to_string();
    add(
        conn,
        project,
        Meter::FunctionInvocations,
        &source,
        "",
        hour,
        1,
        at,
    )
    .await?;
    let us = i64::try_from(duration_us).unwrap_or(i64::MAX);
    add(
        conn,
        project,
        Meter::FunctionCompute,
        &source,
        "",
        hour,
        us,
        at,
    )
    .await
}

/// Applies one event other than a join or a leave ([`segment`] meters
/// those) to the sessions and the ledger.
async fn apply(conn: &mut AnyConnection, event: &Event, now: i64) -> Result<(), StoreError> {
    match &event.payload {
        EventPayload::TrackPublished { room, track, .. } if track.kind == TrackKind::Video => {
            let room_sid = room.sid.to_string();
            sqlx::query(
                "INSERT INTO usage_video_tracks (track_sid, room_sid) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            )
            .bind(track.sid.to_string())
            .bind(&room_sid)
            .execute(&mut *conn)
            .await?;
            sqlx::query(
                "UPDATE usage_sessions SET video = 1 WHERE room_sid = $1 AND left_at IS NULL AND video = 0",
            )
            .bind(&room_sid)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }
        EventPayload::TrackUnpublished { track, .. } => {
            sqlx::query("DELETE FROM usage_video_tracks WHERE track_sid = $1")
                .bind(track.sid.to_string())
                .execute(&mut *conn)
                .await?;
            Ok(())
        }
        EventPayload::RoomFinished { room, .. } => {
            sqlx::query("DELETE FROM usage_video_tracks WHERE room_sid = $1")
                .bind(room.sid.to_string())
                .execute(&mut *conn)
                .await?;
            Ok(())
        }
        EventPayload::RecordingFinished {
            room,
            recording_id,
            duration_ms,
            ..
        } => {
            let end = to_micros(event.created_at);
            let len = i64::try_from(*duration_ms)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000);
            let span = Span::new(end.saturating_sub(len), end);
            add_spans(
                conn,
                event.project_id,
                Meter::RecordingMinutes,
                &recording_id.to_string(),
                room.name.as_str(),
                &[span],
                now,
            )
            .await
        }
        _ => Ok(()),
    }
}

impl Usage<'_> {
    /// Projects whose log has events the meter has not read yet.
    pub async fn projects_behind(&self) -> Result<Vec<ProjectId>, StoreError> {
        cursors::projects_behind(self.0.reader(), CONSUMER).await
    }

    /// Meters up to `batch` unread events of `project` and moves the cursor
    /// past them, in one transaction. Returns how many events were read;
    /// fewer than `batch` means the cursor reached the end.
    pub async fn meter(
        &self,
        project: ProjectId,
        batch: u32,
        now: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        let mut tx = self.0.writer().begin().await?;
        let after = cursors::lock(&mut tx, CONSUMER, project).await?;
        let events = events::after(&mut tx, project, after, batch).await?;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(0);
        };
        // Redone from the log if a crash loses it (the cursor moves in the
        // same transaction, and rows are keyed so writing them twice adds
        // nothing); anything that acts on usage commits after it, and
        // PostgreSQL flushes its log in order.
        self.0.skip_flush_wait(&mut tx).await?;
        let now = to_micros(now);
        let mut run: Vec<&Event> = Vec::new();
        for event in &events {
            if segment::takes(event) {
                run.push(event);
                continue;
            }
            segment::meter(&mut tx, project, &run, now).await?;
            run.clear();
            apply(&mut tx, event, now).await?;
        }
        segment::meter(&mut tx, project, &run, now).await?;
        cursors::advance(&mut tx, CONSUMER, project, last).await?;
        tx.commit().await?;
        Ok(events.len())
    }

    /// Records that `node` stopped cleanly (its sessions were closed by their
    /// rooms), failing any recording it had not finished, in one transaction.
    pub async fn stop_node(&self, node: NodeId, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut tx = self.0.writer().begin().await?;
        sqlx::query("UPDATE nodes SET stopped_at = $1, heartbeat_at = $1 WHERE id = $2 AND stopped_at IS NULL")
            .bind(to_micros(now))
            .bind(node.to_string())
            .execute(&mut *tx)
            .await?;
        let failed = crate::recordings::fail_open_on_node(&mut tx, node, now).await?;
        tx.commit().await?;
        self.0.publish_committed(&failed).await;
        Ok(())
    }

    /// Nodes not stopped whose last heartbeat is older than `before`, with that heartbeat.
    pub async fn silent_nodes(
        &self,
        before: DateTime<Utc>,
    ) -> Result<Vec<(NodeId, DateTime<Utc>)>, StoreError> {
        sqlx::query(
            "SELECT id, heartbeat_at FROM nodes WHERE stopped_at IS NULL AND heartbeat_at < $1 ORDER BY id",
        )
        .bind(to_micros(before))
        .fetch_all(self.0.reader())
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get::<String, _>("id")?.parse().map_err(corrupt)?,
                from_micros(r.try_get("heartbeat_at")?)?,
            ))
        })
        .collect()
    }

    /// Ends every open session of silent `node` at its last heartbeat by
    /// appending `participant.left` (reason `node_lost`) for each, fails the
    /// recordings it was writing, restarts its rooms under new sids
    /// (`room.finished` with reason `node_lost`, then `room.started`) and
    /// marks the node stopped, in one transaction. Call only once the meter has
    /// read every project's log: the sessions it knows are then all of them.
    /// Returns the events appended.
    pub async fn close_node(
        &self,
        node: NodeId,
        last_heartbeat: DateTime<Utc>,
    ) -> Result<Vec<Event>, StoreError> {
        let mut tx = self.0.writer().begin().await?;
        let claimed = sqlx::query(
            "UPDATE nodes SET stopped_at = heartbeat_at WHERE id = $1 AND stopped_at IS NULL",
        )
        .bind(node.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if claimed == 0 {
            // Another node closed it first.
            return Ok(Vec::new());
        }
        let rows = sqlx::query(&format!(
            "SELECT project_id, {SESSION_COLUMNS} FROM usage_sessions WHERE node_id = $1 AND left_at IS NULL ORDER BY id"
        ))
        .bind(node.to_string())
        .fetch_all(&mut *tx)
        .await?;
        let mut appended = Vec::with_capacity(rows.len());
        for row in &rows {
            let project: ProjectId = row
                .try_get::<String, _>("project_id")?
                .parse()
                .map_err(corrupt)?;
            let s = decode_session(row)?;
            // A session that joined after the last heartbeat (on a skewed
            // clock) ends where it began: nothing is billed, nothing negative.
            let at = last_heartbeat.max(s.joined_at);
            let payload = EventPayload::ParticipantLeft {
                room: RoomRef {
                    sid: s.room_sid.parse().map_err(corrupt)?,
                    name: RoomName::new(&s.room_name).map_err(corrupt)?,
                },
                participant: ParticipantRef {
                    sid: s.id,
                    identity: switchboard_core::Identity::new(&s.identity).map_err(corrupt)?,
                },
                reason: LeaveReason::NodeLost,
            };
            appended.push(events::append(&mut tx, Event::new(project, at, payload)).await?);
        }
        appended.extend(crate::recordings::fail_open_on_node(&mut tx, node, last_heartbeat).await?);
        appended.extend(crate::rooms::restart_on_node(&mut tx, node, last_heartbeat).await?);
        tx.commit().await?;
        self.0.publish_committed(&appended).await;
        Ok(appended)
    }
}
