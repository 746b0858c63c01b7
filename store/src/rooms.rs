//! Rooms: the registry of a project's rooms, with their limits and metadata.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use switchboard_core::event::{RoomFinishReason, RoomRef};
use switchboard_core::room::Room;
use switchboard_core::{Event, EventPayload, NodeId, ProjectId, RoomName, RoomSid};

use crate::error::corrupt;
use crate::events::append;
use crate::time::{from_micros, stored, to_micros};
use crate::{Store, StoreError};

/// What a new room is made with.
#[derive(Debug, Clone)]
pub struct NewRoom {
    /// Its name.
    pub name: RoomName,
    /// Seconds it stays open once empty.
    pub empty_timeout_s: u32,
    /// Most participants at once; 0 means no limit.
    pub max_participants: u32,
    /// Free-form app data.
    pub metadata: String,
    /// Preferred region.
    pub region: Option<String>,
    /// Record every track from the first one published.
    pub record: bool,
}

impl NewRoom {
    /// A room named `name` with the defaults: the default empty timeout, no
    /// participant limit, no metadata or region, not recorded.
    pub fn named(name: RoomName) -> Self {
        Self {
            name,
            empty_timeout_s: switchboard_core::room::DEFAULT_EMPTY_TIMEOUT_S,
            max_participants: 0,
            metadata: String::new(),
            region: None,
            record: false,
        }
    }
}

/// A change to a room; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct RoomPatch {
    /// New metadata.
    pub metadata: Option<String>,
    /// New empty timeout.
    pub empty_timeout_s: Option<u32>,
    /// New participant limit.
    pub max_participants: Option<u32>,
}

/// The rooms table.
pub struct Rooms<'a>(&'a Store);

impl Store {
    /// The rooms table.
    pub fn rooms(&self) -> Rooms<'_> {
        Rooms(self)
    }
}

const COLUMNS: &str =
    "sid, name, created_at, empty_timeout_s, max_participants, metadata, region, record";

fn decode(r: AnyRow) -> Result<Room, StoreError> {
    Ok(Room {
        sid: r
            .try_get::<String, _>("sid")?
            .parse()
            .map_err(|e| corrupt(format!("{e}")))?,
        name: RoomName::new(r.try_get::<String, _>("name")?).map_err(|e| corrupt(e.to_string()))?,
        created_at: from_micros(r.try_get("created_at")?)?,
        empty_timeout_s: u32::try_from(r.try_get::<i64, _>("empty_timeout_s")?)
            .map_err(|e| corrupt(e.to_string()))?,
        max_participants: u32::try_from(r.try_get::<i64, _>("max_participants")?)
            .map_err(|e| corrupt(e.to_string()))?,
        metadata: r.try_get("metadata")?,
        region: r.try_get("region")?,
        record: r.try_get::<i64, _>("record")? != 0,
        num_participants: 0,
    })
}

impl Rooms<'_> {
    /// Creates a room and records `room.started`; [`StoreError::Conflict`] if the name is taken.
    pub async fn create(
        &self,
        project: ProjectId,
        new: NewRoom,
        now: DateTime<Utc>,
    ) -> Result<(Room, Event), StoreError> {
        let now = stored(now);
        let room = Room {
            sid: RoomSid::new(),
            name: new.name,
            created_at: now,
            empty_timeout_s: new.empty_timeout_s,
            max_participants: new.max_participants,
            metadata: new.metadata,
            region: new.region,
            record: new.record,
            num_participants: 0,
        };
        let mut tx = self.0.writer().begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO rooms (sid, project_id, name, created_at, empty_timeout_s, max_participants, metadata, region, record) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (project_id, name) DO NOTHING",
        )
        .bind(room.sid.to_string())
        .bind(project.to_string())
        .bind(room.name.as_str())
        .bind(to_micros(now))
        .bind(i64::from(room.empty_timeout_s))
        .bind(i64::from(room.max_participants))
        .bind(&room.metadata)
        .bind(room.region.clone())
        .bind(i64::from(room.record))
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "a room named `{}` already exists",
                room.name
            )));
        }
        let started = Event::new(
            project,
            now,
            EventPayload::RoomStarted {
                room: RoomRef {
                    sid: room.sid,
                    name: room.name.clone(),
                },
            },
        );
        let event = append(&mut tx, started).await?;
        tx.commit().await?;
        self.0.publish_committed(std::slice::from_ref(&event)).await;
        Ok((room, event))
    }

    /// The room named `name`.
    pub async fn get(
        &self,
        project: ProjectId,
        name: &RoomName,
    ) -> Result<Option<Room>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM rooms WHERE project_id = $1 AND name = $2"
        ))
        .bind(project.to_string())
        .bind(name.as_str())
        .fetch_optional(self.0.reader())
        .await?;
        row.map(decode).transpose()
    }

    /// Up to `limit` rooms created after the room `after`, oldest first.
    pub async fn list(
        &self,
        project: ProjectId,
        after: Option<RoomSid>,
        limit: u32,
    ) -> Result<Vec<Room>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM rooms WHERE project_id = $1 AND sid > $2 ORDER BY sid LIMIT $3"
        ))
        .bind(project.to_string())
        .bind(after.map(|s| s.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?;
        rows.into_iter().map(decode).collect()
    }

    /// Applies `patch` to the room named `name`; `None` if there is none.
    pub async fn update(
        &self,
        project: ProjectId,
        name: &RoomName,
        patch: RoomPatch,
    ) -> Result<Option<Room>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE rooms SET metadata = COALESCE($1, metadata), empty_timeout_s = COALESCE($2, empty_timeout_s), \
             max_participants = COALESCE($3, max_participants) WHERE project_id = $4 AND name = $5 RETURNING {COLUMNS}"
        ))
        .bind(patch.metadata)
        .bind(patch.empty_timeout_s.map(i64::from))
        .bind(patch.max_participants.map(i64::from))
        .bind(project.to_string())
        .bind(name.as_str())
        .fetch_optional(self.0.writer())
        .await?;
        row.map(decode).transpose()
    }

    /// Deletes the room named `name` and records `room.finished`; `None` if there is none.
    pub async fn delete(
        &self,
        project: ProjectId,
        name: &RoomName,
        reason: RoomFinishReason,
        now: DateTime<Utc>,
    ) -> Result<Option<(Room, Event)>, StoreError> {
        let mut tx = self.0.writer().begin().await?;
        let row = sqlx::query(&format!(
            "DELETE FROM rooms WHERE project_id = $1 AND name = $2 RETURNING {COLUMNS}"
        ))
        .bind(project.to_string())
        .bind(name.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let room = decode(row)?;
        let finished = Event::new(
            project,
            now,
            EventPayload::RoomFinished {
                room: RoomRef {
                    sid: room.sid,
                    name: room.name.clone(),
                },
                reason,
            },
        );
        let event = append(&mut tx, finished).await?;
        tx.commit().await?;
        self.0.publish_committed(std::slice::from_ref(&event)).await;
        Ok(Some((room, event)))
    }
}

/// Restarts every room still placed on `node`, which was lost, that was not
/// restarted yet, in the caller's transaction (the one that declares the
/// node lost): see [`restart_lost`].
pub(crate) async fn restart_on_node(
    conn: &mut AnyConnection,
    node: NodeId,
    last_heartbeat: DateTime<Utc>,
) -> Result<Vec<Event>, StoreError> {
    let claimed = sqlx::query(
        "UPDATE room_placements SET restarted_at = $1 WHERE node_id = $2 AND restarted_at IS NULL \
         RETURNING project_id, room_name",
    )
    .bind(to_micros(last_heartbeat))
    .bind(node.to_string())
    .fetch_all(&mut *conn)
    .await?;
    let mut rooms = Vec::with_capacity(claimed.len());
    for row in &claimed {
        let project: ProjectId = row
            .try_get::<String, _>("project_id")?
            .parse()
            .map_err(corrupt)?;
        rooms.push((
            project,
            RoomName::new(row.try_get::<String, _>("room_name")?).map_err(corrupt)?,
        ));
    }
    // In a stable order, whatever order the database returned them in.
    rooms.sort();
    let mut events = Vec::new();
    for (project, name) in rooms {
        events.extend(restart_lost(conn, project, &name, last_heartbeat).await?);
    }
    Ok(events)
}

/// Ends the incarnation of room `name` of `project` that a lost node hosted
/// (`room.finished`, reason `node_lost`, at `at`) and starts the next one
/// under a new sid with the same settings (`room.started`), so participants
/// rejoin it elsewhere with the tokens they hold. Nothing when there is no
/// such room. The caller makes sure it runs once per lost placement.
pub(crate) async fn restart_lost(
    conn: &mut AnyConnection,
    project: ProjectId,
    name: &RoomName,
    at: DateTime<Utc>,
) -> Result<Vec<Event>, StoreError> {
    let at = stored(at);
    let new_sid = RoomSid::new();
    let old = sqlx::query("SELECT sid FROM rooms WHERE project_id = $1 AND name = $2")
        .bind(project.to_string())
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    let Some(old) = old else {
        return Ok(Vec::new());
    };
    let old_sid: String = old.try_get("sid")?;
    sqlx::query("UPDATE rooms SET sid = $1, created_at = $2 WHERE sid = $3")
        .bind(new_sid.to_string())
        .bind(to_micros(at))
        .bind(&old_sid)
        .execute(&mut *conn)
        .await?;
    let finished = EventPayload::RoomFinished {
        room: RoomRef {
            sid: old_sid.parse().map_err(corrupt)?,
            name: name.clone(),
        },
        reason: RoomFinishReason::NodeLost,
    };
    let started = EventPayload::RoomStarted {
        room: RoomRef {
            sid: new_sid,
            name: name.clone(),
        },
    };
    Ok(vec![
        append(conn, Event::new(project, at, finished)).await?,
        append(conn, Event::new(project, at, started)).await?,
    ])
}
