//! Recordings: each request to record a room, the node writing it, where it
//! stands and the files it has written.
//!
//! A recording is created `starting` and unclaimed; the media node hosting
//! its room claims it (now, or when the room goes live), turns it `active`
//! with its first track and appends `recording.started` in that
//! transaction. It ends `finished` or `failed` with `recording.finished` or
//! `recording.failed`, at most once: a final status never changes. A node
//! that dies leaves its recordings to [`fail_open_on_node`], run when the
//! node is declared lost.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use switchboard_core::event::RoomRef;
use switchboard_core::recording::{
    FileUpload, Recording, RecordingFile, RecordingSpec, RecordingStatus,
};
use switchboard_core::{Event, EventPayload, NodeId, ProjectId, RecordingId, RoomName};

use crate::error::corrupt;
use crate::events::append;
use crate::time::{from_micros, stored, to_micros};
use crate::{Store, StoreError};

/// The recordings table.
pub struct Recordings<'a>(&'a Store);

impl Store {
    /// The recordings table.
    pub fn recordings(&self) -> Recordings<'_> {
        Recordings(self)
    }
}

const COLUMNS: &str = "id, project_id, room_sid, room_name, spec, status, error, progress, \
                       created_at, started_at, ended_at, duration_ms, files";

fn uploads_pending_message(id: RecordingId) -> String {
    format!(
        "recording `{id}` still has uploads its lost node left open; they are being completed, so try again in a minute"
    )
}

/// Statuses a recording can still leave.
const OPEN: &str = "('starting', 'active', 'stopping', 'processing')";

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(corrupt)
}

fn decode(r: &AnyRow) -> Result<(ProjectId, Recording), StoreError> {
    let project = r
        .try_get::<String, _>("project_id")?
        .parse()
        .map_err(corrupt)?;
    let spec: RecordingSpec =
        serde_json::from_str(&r.try_get::<String, _>("spec")?).map_err(corrupt)?;
    let files: Vec<RecordingFile> =
        serde_json::from_str(&r.try_get::<String, _>("files")?).map_err(corrupt)?;
    let time = |col: &str| -> Result<Option<DateTime<Utc>>, StoreError> {
        r.try_get::<Option<i64>, _>(col)?
            .map(from_micros)
            .transpose()
    };
    Ok((
        project,
        Recording {
            id: r.try_get::<String, _>("id")?.parse().map_err(corrupt)?,
            room: RoomRef {
                sid: r
                    .try_get::<String, _>("room_sid")?
                    .parse()
                    .map_err(corrupt)?,
                name: RoomName::new(r.try_get::<String, _>("room_name")?).map_err(corrupt)?,
            },
            spec,
            status: r.try_get::<String, _>("status")?.parse().map_err(corrupt)?,
            error: r.try_get("error")?,
            progress: r
                .try_get::<Option<i64>, _>("progress")?
                .map(|p| p as f64 / 1000.0),
            created_at: from_micros(r.try_get("created_at")?)?,
            started_at: time("started_at")?,
            ended_at: time("ended_at")?,
            duration_ms: u64::try_from(r.try_get::<i64, _>("duration_ms")?).map_err(corrupt)?,
            files,
        },
    ))
}

/// Reads one recording inside a transaction, locking nothing more than the backend does.
async fn fetch(
    conn: &mut AnyConnection,
    id: RecordingId,
) -> Result<Option<(ProjectId, Recording)>, StoreError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM recordings WHERE id = $1"))
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(decode).transpose()
}

/// How a recording ends.
enum Ending {
    Finished { location: String },
    Failed { error: String },
}

/// Ends recording `id` inside the caller's transaction and appends its
/// final event; `None` if it had already ended (or does not exist).
async fn end(
    conn: &mut AnyConnection,
    id: RecordingId,
    ending: Ending,
    files: Option<Vec<RecordingFile>>,
    duration_ms: Option<u64>,
    now: DateTime<Utc>,
    only_unclaimed: bool,
) -> Result<Option<Event>, StoreError> {
    let Some((project, rec)) = fetch(conn, id).await? else {
        return Ok(None);
    };
    let files = files.unwrap_or(rec.files);
    let duration_ms = duration_ms.unwrap_or(rec.duration_ms);
    let (status, error) = match &ending {
        Ending::Finished { .. } => (RecordingStatus::Finished, None),
        Ending::Failed { error } => (RecordingStatus::Failed, Some(error.clone())),
    };
    let done = sqlx::query(&format!(
        "UPDATE recordings SET status = $1, error = $2, files = $3, duration_ms = $4, ended_at = $5, \
         progress = NULL WHERE id = $6 AND status IN {OPEN}{}",
        if only_unclaimed { " AND node_id IS NULL" } else { "" }
    ))
    .bind(status.as_str())
    .bind(error)
    .bind(json(&files)?)
    .bind(i64::try_from(duration_ms).map_err(corrupt)?)
    .bind(to_micros(now))
    .bind(id.to_string())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if done == 0 {
        return Ok(None);
    }
    let payload = match ending {
        Ending::Finished { location } => EventPayload::RecordingFinished {
            room: rec.room,
            recording_id: id,
            mode: rec.spec.mode,
            location,
            duration_ms,
            files,
        },
        Ending::Failed { error } => EventPayload::RecordingFailed {
            room: rec.room,
            recording_id: id,
            error,
            files,
        },
    };
    Ok(Some(append(conn, Event::new(project, now, payload)).await?))
}

/// Fails every recording `node` was writing, in the caller's transaction
/// (the one that declares the node lost), keeping the files it listed.
pub(crate) async fn fail_open_on_node(
    conn: &mut AnyConnection,
    node: NodeId,
    last_heartbeat: DateTime<Utc>,
) -> Result<Vec<Event>, StoreError> {
    let ids: Vec<String> = sqlx::query(&format!(
        "SELECT id FROM recordings WHERE node_id = $1 AND status IN {OPEN} ORDER BY id"
    ))
    .bind(node.to_string())
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| r.try_get("id"))
    .collect::<Result<_, _>>()?;
    let mut events = Vec::with_capacity(ids.len());
    for id in ids {
        let error = format!(
            "the media node writing this recording stopped (last heard from at {}); the files listed are what it wrote until then",
            last_heartbeat.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        let id: RecordingId = id.parse().map_err(corrupt)?;
        if let Some(e) = end(
            conn,
            id,
            Ending::Failed { error },
            None,
            None,
            last_heartbeat,
            false,
        )
        .await?
        {
            events.push(e);
        }
    }
    Ok(events)
}

impl Recordings<'_> {
    /// Runs a one-row `UPDATE` on the writer; whether it changed that row.
    async fn changed<'q>(
        &self,
        query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> Result<bool, StoreError> {
        Ok(query.execute(self.0.writer()).await?.rows_affected() == 1)
    }

    /// Records that `spec` is to be recorded in `room`; it starts `starting`, unclaimed.
    pub async fn create(
        &self,
        project: ProjectId,
        room: RoomRef,
        spec: RecordingSpec,
        now: DateTime<Utc>,
    ) -> Result<Recording, StoreError> {
        let rec = Recording {
            id: RecordingId::new(),
            room,
            spec,
            status: RecordingStatus::Starting,
            error: None,
            progress: None,
            created_at: stored(now),
            started_at: None,
            ended_at: None,
            duration_ms: 0,
            files: Vec::new(),
        };
        sqlx::query(
            "INSERT INTO recordings (id, project_id, room_sid, room_name, spec, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(rec.id.to_string())
        .bind(project.to_string())
        .bind(rec.room.sid.to_string())
        .bind(rec.room.name.as_str())
        .bind(json(&rec.spec)?)
        .bind(rec.status.as_str())
        .bind(to_micros(rec.created_at))
        .execute(self.0.writer())
        .await?;
        Ok(rec)
    }

    /// The recording `id` of `project`.
    pub async fn get(
        &self,
        project: ProjectId,
        id: RecordingId,
    ) -> Result<Option<Recording>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE project_id = $1 AND id = $2"
        ))
        .bind(project.to_string())
        .bind(id.to_string())
        .fetch_optional(self.0.reader())
        .await?;
        Ok(row.as_ref().map(decode).transpose()?.map(|(_, r)| r))
    }

    /// The recording `id` of whichever project has it (for signed URLs, which name no project).
    pub async fn find_any(
        &self,
        id: RecordingId,
    ) -> Result<Option<(ProjectId, Recording)>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM recordings WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.0.reader())
            .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Up to `limit` recordings after `after`, oldest first, of one room's when `room` is given.
    pub async fn list(
        &self,
        project: ProjectId,
        room: Option<&RoomName>,
        after: Option<RecordingId>,
        limit: u32,
    ) -> Result<Vec<Recording>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE project_id = $1 AND id > $2 \
             AND ($3 = '' OR room_name = $3) ORDER BY id LIMIT $4"
        ))
        .bind(project.to_string())
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(room.map(RoomName::as_str).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(|r| decode(r).map(|(_, r)| r)).collect()
    }

    /// The `limit` newest recordings of `project`, newest first.
    pub async fn recent(
        &self,
        project: ProjectId,
        limit: u32,
    ) -> Result<Vec<Recording>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE project_id = $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(project.to_string())
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(|r| decode(r).map(|(_, r)| r)).collect()
    }

    /// How many of the project's recordings have not ended, in all and in the room named `room`.
    pub async fn count_open(
        &self,
        project: ProjectId,
        room: &RoomName,
    ) -> Result<(u64, u64), StoreError> {
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN room_name = $2 THEN 1 ELSE 0 END), 0) AS in_room \
             FROM recordings WHERE project_id = $1 AND status IN {OPEN}"
        ))
        .bind(project.to_string())
        .bind(room.as_str())
        .fetch_one(self.0.reader())
        .await?;
        let count = |c: &str| -> Result<u64, StoreError> {
            let n: i64 = row.try_get(c)?;
            u64::try_from(n).map_err(|e| StoreError::Corrupt(e.to_string()))
        };
        Ok((count("total")?, count("in_room")?))
    }

    /// The recordings of the room named `room` that have not ended.
    pub async fn list_open(
        &self,
        project: ProjectId,
        room: &RoomName,
    ) -> Result<Vec<Recording>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE project_id = $1 AND room_name = $2 \
             AND status IN {OPEN} ORDER BY id"
        ))
        .bind(project.to_string())
        .bind(room.as_str())
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(|r| decode(r).map(|(_, r)| r)).collect()
    }

    /// Recordings of room incarnation `room` that no node has claimed yet.
    pub async fn unclaimed(
        &self,
        project: ProjectId,
        room: &RoomRef,
    ) -> Result<Vec<Recording>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM recordings WHERE project_id = $1 AND room_sid = $2 \
             AND status = 'starting' AND node_id IS NULL ORDER BY id"
        ))
        .bind(project.to_string())
        .bind(room.sid.to_string())
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(|r| decode(r).map(|(_, r)| r)).collect()
    }

    /// Whether room incarnation `room` has ever had a recording (of any status).
    pub async fn any_for_room(
        &self,
        project: ProjectId,
        room: &RoomRef,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM recordings WHERE project_id = $1 AND room_sid = $2 LIMIT 1",
        )
        .bind(project.to_string())
        .bind(room.sid.to_string())
        .fetch_optional(self.0.reader())
        .await?;
        Ok(row.is_some())
    }

    /// Makes `node` the writer of recording `id`; false if another node has it or it ended.
    pub async fn claim(&self, id: RecordingId, node: NodeId) -> Result<bool, StoreError> {
        self.changed(
            sqlx::query(
                "UPDATE recordings SET node_id = $1 WHERE id = $2 AND node_id IS NULL AND status = 'starting'",
            )
            .bind(node.to_string())
            .bind(id.to_string()),
        )
        .await
    }

    /// Turns recording `id` `active` from `at` and appends `recording.started`;
    /// `None` if it was not `starting`.
    pub async fn activate(
        &self,
        id: RecordingId,
        at: DateTime<Utc>,
    ) -> Result<Option<Event>, StoreError> {
        let mut tx = self.0.writer().begin().await?;
        let Some((project, rec)) = fetch(&mut tx, id).await? else {
            return Ok(None);
        };
        let n = sqlx::query(
            "UPDATE recordings SET status = 'active', started_at = $1 WHERE id = $2 AND status = 'starting'",
        )
        .bind(to_micros(at))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Ok(None);
        }
        let started = EventPayload::RecordingStarted {
            room: rec.room,
            recording_id: id,
            mode: rec.spec.mode,
        };
        let event = append(&mut tx, Event::new(project, at, started)).await?;
        tx.commit().await?;
        self.0.publish_committed(std::slice::from_ref(&event)).await;
        Ok(Some(event))
    }

    /// Saves the files written so far and the length so far, while open.
    pub async fn progress(
        &self,
        id: RecordingId,
        files: &[RecordingFile],
        duration_ms: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "UPDATE recordings SET files = $1, duration_ms = $2 WHERE id = $3 AND status IN {OPEN}"
        ))
        .bind(json(&files)?)
        .bind(i64::try_from(duration_ms).map_err(corrupt)?)
        .bind(id.to_string())
        .execute(self.0.writer())
        .await?;
        Ok(())
    }

    /// Moves a recording whose tracks are all written to `processing` (the
    /// composite job), with those files; false if it had already ended.
    pub async fn processing(
        &self,
        id: RecordingId,
        files: &[RecordingFile],
        duration_ms: u64,
    ) -> Result<bool, StoreError> {
        self.changed(
            sqlx::query(
                "UPDATE recordings SET status = 'processing', progress = 0, files = $1, duration_ms = $2 \
                 WHERE id = $3 AND status IN ('starting', 'active', 'stopping')",
            )
            .bind(json(&files)?)
            .bind(i64::try_from(duration_ms).map_err(corrupt)?)
            .bind(id.to_string()),
        )
        .await
    }

    /// Saves how far the composite job is (0 to 1).
    pub async fn set_progress(&self, id: RecordingId, fraction: f64) -> Result<(), StoreError> {
        sqlx::query("UPDATE recordings SET progress = $1 WHERE id = $2 AND status = 'processing'")
            .bind((fraction.clamp(0.0, 1.0) * 1000.0).round() as i64)
            .bind(id.to_string())
            .execute(self.0.writer())
            .await?;
        Ok(())
    }

    /// Marks an open recording `stopping`; false if it had already ended.
    pub async fn stopping(&self, project: ProjectId, id: RecordingId) -> Result<bool, StoreError> {
        self.changed(
            sqlx::query(
                "UPDATE recordings SET status = 'stopping' WHERE project_id = $1 AND id = $2 AND status IN ('starting', 'active')",
            )
            .bind(project.to_string())
            .bind(id.to_string()),
        )
        .await
    }

    /// Ends recording `id` as finished with its files and appends `recording.finished`;
    /// `None` if it had already ended.
    pub async fn finish(
        &self,
        id: RecordingId,
        location: String,
        files: Vec<RecordingFile>,
        duration_ms: u64,
        now: DateTime<Utc>,
    ) -> Result<Option<Event>, StoreError> {
        self.end(
            id,
            Ending::Finished { location },
            Some(files),
            Some(duration_ms),
            now,
            false,
        )
        .await
    }

    /// Ends recording `id` as failed with `error` and appends `recording.failed`;
    /// `files` replaces the listed files when given. `None` if it had already ended.
    pub async fn fail(
        &self,
        id: RecordingId,
        error: String,
        files: Option<Vec<RecordingFile>>,
        duration_ms: Option<u64>,
        now: DateTime<Utc>,
    ) -> Result<Option<Event>, StoreError> {
        self.end(id, Ending::Failed { error }, files, duration_ms, now, false)
            .await
    }

    /// Fails recording `id` with `error` if no node has claimed it (a claimed
    /// one is ended by its node, or failed when that node is lost); `None` if
    /// it was claimed or had ended.
    pub async fn fail_unclaimed(
        &self,
        id: RecordingId,
        error: String,
        now: DateTime<Utc>,
    ) -> Result<Option<Event>, StoreError> {
        self.end(id, Ending::Failed { error }, None, None, now, true)
            .await
    }

    async fn end(
        &self,
        id: RecordingId,
        ending: Ending,
        files: Option<Vec<RecordingFile>>,
        duration_ms: Option<u64>,
        now: DateTime<Utc>,
        only_unclaimed: bool,
    ) -> Result<Option<Event>, StoreError> {
        let mut tx = self.0.writer().begin().await?;
        let event = end(
            &mut tx,
            id,
            ending,
            files,
            duration_ms,
            stored(now),
            only_unclaimed,
        )
        .await?;
        tx.commit().await?;
        if let Some(e) = &event {
            self.0.publish_committed(std::slice::from_ref(e)).await;
        }
        Ok(event)
    }

    /// Saves the state of the uploads of files written to the bucket as they
    /// grow, while the recording is open.
    pub async fn save_uploads(
        &self,
        id: RecordingId,
        uploads: &[FileUpload],
    ) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "UPDATE recordings SET uploads = $1 WHERE id = $2 AND status IN {OPEN}"
        ))
        .bind(json(&uploads)?)
        .bind(id.to_string())
        .execute(self.0.writer())
        .await?;
        Ok(())
    }

    /// Whether a lost node's uploads of recording `id` are still to be completed
    /// (its files are not all in the bucket yet, so it cannot be deleted).
    pub async fn uploads_pending(&self, id: RecordingId) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT 1 AS one FROM recordings WHERE id = $1 AND uploads IS NOT NULL AND status NOT IN ('starting', 'active', 'stopping', 'processing')")
            .bind(id.to_string())
            .fetch_optional(self.0.reader())
            .await?;
        Ok(row.map(|_| uploads_pending_message(id)))
    }

    /// Forgets a recording's uploads: they were completed (or given up on).
    pub async fn clear_uploads(&self, id: RecordingId) -> Result<(), StoreError> {
        sqlx::query("UPDATE recordings SET uploads = NULL WHERE id = $1")
            .bind(id.to_string())
            .execute(self.0.writer())
            .await?;
        Ok(())
    }

    /// Ended recordings whose uploads were never completed (their node was
    /// lost), at most `limit`, with those uploads.
    pub async fn abandoned_uploads(
        &self,
        limit: u32,
    ) -> Result<Vec<(ProjectId, Recording, Vec<FileUpload>)>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS}, uploads FROM recordings \
             WHERE uploads IS NOT NULL AND status NOT IN {OPEN} ORDER BY id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let (project, rec) = decode(r)?;
                let uploads: Vec<FileUpload> =
                    serde_json::from_str(&r.try_get::<String, _>("uploads")?).map_err(corrupt)?;
                Ok((project, rec, uploads))
            })
            .collect()
    }

    /// Records that a lost node's uploads were completed: the listed files
    /// become `files` (their sizes what reached the bucket) and the uploads are forgotten.
    pub async fn uploads_completed(
        &self,
        id: RecordingId,
        files: &[RecordingFile],
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE recordings SET files = $1, uploads = NULL WHERE id = $2")
            .bind(json(&files)?)
            .bind(id.to_string())
            .execute(self.0.writer())
            .await?;
        Ok(())
    }

    /// Deletes an ended recording's row and returns it (its files are the caller's
    /// to remove); [`StoreError::Conflict`] while it is still open.
    pub async fn delete(
        &self,
        project: ProjectId,
        id: RecordingId,
    ) -> Result<Option<Recording>, StoreError> {
        let Some(rec) = self.get(project, id).await? else {
            return Ok(None);
        };
        if !rec.status.is_final() {
            return Err(StoreError::Conflict(format!(
                "recording `{id}` is {}: stop it and wait for it to finish before deleting it",
                rec.status.as_str()
            )));
        }
        let done = sqlx::query(
            "DELETE FROM recordings WHERE project_id = $1 AND id = $2 AND uploads IS NULL",
        )
        .bind(project.to_string())
        .bind(id.to_string())
        .execute(self.0.writer())
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(uploads_pending_message(id)));
        }
        Ok(Some(rec))
    }
}
