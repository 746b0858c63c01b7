//! Joins and leaves metered together.
//!
//! Most of a busy log is joins and leaves, and metering them a statement at a
//! time costs up to seven round trips per leave, which capped one project's
//! meter below 2,000 events a second. A run of them between two other events
//! is metered in memory instead: the sessions they touch, and the closed
//! sessions of the same identities in the same rooms that a leave must not
//! bill twice, are read in a few queries; the events are applied in log order
//! with the same rules as one at a time; and each table is written with one
//! multi-row statement per chunk. Other events (tracks, rooms, recordings)
//! end a run, so the rules that read the tables they change see them current.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::{AnyConnection, Row};
use switchboard_core::event::{EventPayload, LeaveReason};
use switchboard_core::usage::{Meter, Span};
use switchboard_core::{Event, ProjectId};

use crate::sql::{list, values};
use crate::time::to_micros;
use crate::StoreError;

use super::super::DAY_US;

/// Values in one `IN (...)` list.
const IN_CHUNK: usize = 500;
/// Rows in one multi-row statement.
const ROW_CHUNK: usize = 40;

/// A session as the run sees it.
struct Session {
    room_sid: String,
    room_name: String,
    identity: String,
    node: Option<String>,
    joined_at: i64,
    left_at: Option<i64>,
    reason: Option<String>,
    billed: Option<i64>,
    video: bool,
    /// Its row exists already (it is updated, not inserted).
    stored: bool,
    /// This run opened or closed it.
    changed: bool,
}

/// What a leave adds to the ledger: `quantity` of `meter` in `hour`.
pub(super) struct LedgerRow {
    pub(super) source: String,
    pub(super) meter: Meter,
    pub(super) hour: i64,
    pub(super) room_name: String,
    pub(super) quantity: i64,
}

/// The name a leave reason is stored under (`client_left`, `node_lost`, ...).
fn reason_name(reason: LeaveReason) -> String {
    serde_json::to_value(reason)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// True for the events a run meters: joins and leaves.
pub(super) fn takes(event: &Event) -> bool {
    matches!(
        event.payload,
        EventPayload::ParticipantJoined { .. } | EventPayload::ParticipantLeft { .. }
    )
}

/// Meters `run` (joins and leaves of `project`, in log order).
pub(super) async fn meter(
    conn: &mut AnyConnection,
    project: ProjectId,
    run: &[&Event],
    now: i64,
) -> Result<(), StoreError> {
    if run.is_empty() {
        return Ok(());
    }
    let mut sessions = load_sessions(conn, run).await?;
    let mut video_rooms = rooms_with_video(conn, run, &sessions).await?;
    load_closed_neighbours(conn, run, &mut sessions).await?;
    let mut by_pair: HashMap<(String, String), Vec<String>> = HashMap::new();
    for (id, s) in &sessions {
        by_pair
            .entry((s.room_sid.clone(), s.identity.clone()))
            .or_default()
            .push(id.clone());
    }

    let mut ledger = Vec::new();
    let mut lost_rooms = Vec::new();
    for event in run {
        match &event.payload {
            EventPayload::ParticipantJoined {
                room,
                participant,
                node,
            } => {
                let id = participant.sid.to_string();
                if sessions.contains_key(&id) {
                    continue;
                }
                let room_sid = room.sid.to_string();
                let session = Session {
                    video: video_rooms.contains(&room_sid),
                    room_sid,
                    room_name: room.name.to_string(),
                    identity: participant.identity.to_string(),
                    node: node.map(|n| n.to_string()),
                    joined_at: to_micros(event.created_at),
                    left_at: None,
                    reason: None,
                    billed: None,
                    stored: false,
                    changed: true,
                };
                by_pair
                    .entry((session.room_sid.clone(), session.identity.clone()))
                    .or_default()
                    .push(id.clone());
                sessions.insert(id, session);
            }
            EventPayload::ParticipantLeft {
                participant,
                reason,
                ..
            } => {
                let id = participant.sid.to_string();
                let Some(s) = sessions.get(&id).filter(|s| s.left_at.is_none()) else {
                    // Closed already, or it joined before metering existed.
                    continue;
                };
                let span = Span::new(s.joined_at, to_micros(event.created_at));
                let covered: Vec<Span> = by_pair
                    .get(&(s.room_sid.clone(), s.identity.clone()))
                    .into_iter()
                    .flatten()
                    .filter(|other| **other != id)
                    .filter_map(|other| sessions.get(other))
                    .filter_map(|o| o.left_at.map(|left| (o.joined_at, left)))
                    .filter(|(joined, left)| *joined < span.end && *left > span.start)
                    .map(|(joined, left)| Span::new(joined, left))
                    .collect();
                let parts = span.minus(&covered);
                let meter = if s.video {
                    Meter::ParticipantMinutesVideo
                } else {
                    Meter::ParticipantMinutesAudio
                };
                let mut by_hour: BTreeMap<i64, i64> = BTreeMap::new();
                for (hour, us) in parts.iter().flat_map(|p| p.by_hour()) {
                    *by_hour.entry(hour).or_default() += us;
                }
                ledger.extend(by_hour.into_iter().filter(|(_, us)| *us > 0).map(
                    |(hour, quantity)| LedgerRow {
                        source: id.clone(),
                        meter,
                        hour,
                        room_name: s.room_name.clone(),
                        quantity,
                    },
                ));
                let reason = reason_name(*reason);
                if reason == "node_lost" {
                    // Its node is gone, and the room's tracks with it.
                    video_rooms.remove(&s.room_sid);
                    lost_rooms.push(s.room_sid.clone());
                }
                let billed = parts.iter().map(|p| p.len()).sum();
                if let Some(s) = sessions.get_mut(&id) {
                    s.left_at = Some(span.end);
                    s.reason = Some(reason);
                    s.billed = Some(billed);
                    s.changed = true;
                }
            }
            _ => {}
        }
    }

    write_sessions(conn, project, &sessions).await?;
    write_ledger(conn, project, &ledger, now).await?;
    for chunk in lost_rooms.chunks(IN_CHUNK) {
        let sql = format!(
            "DELETE FROM usage_video_tracks WHERE room_sid IN ({})",
            list(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for room in chunk {
            query = query.bind(room);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// The participant sid an event is about.
fn participant_of(event: &Event) -> Option<String> {
    match &event.payload {
        EventPayload::ParticipantJoined { participant, .. }
        | EventPayload::ParticipantLeft { participant, .. } => Some(participant.sid.to_string()),
        _ => None,
    }
}

fn decode(row: &sqlx::any::AnyRow, stored: bool) -> Result<(String, Session), StoreError> {
    Ok((
        row.try_get("id")?,
        Session {
            room_sid: row.try_get("room_sid")?,
            room_name: row.try_get("room_name")?,
            identity: row.try_get("identity")?,
            node: row.try_get("node_id")?,
            joined_at: row.try_get("joined_at")?,
            left_at: row.try_get("left_at")?,
            reason: row.try_get("leave_reason")?,
            billed: row.try_get("billed_us")?,
            video: row.try_get::<i64, _>("video")? != 0,
            stored,
            changed: false,
        },
    ))
}

const COLUMNS: &str = "s.id, s.room_sid, s.room_name, s.identity, s.node_id, s.joined_at, \
     s.left_at, s.leave_reason, s.billed_us, s.video";

/// The stored sessions of every participant in `run`.
async fn load_sessions(
    conn: &mut AnyConnection,
    run: &[&Event],
) -> Result<HashMap<String, Session>, StoreError> {
    let ids: Vec<String> = run
        .iter()
        .filter_map(|e| participant_of(e))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut sessions = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT {COLUMNS} FROM usage_sessions s WHERE s.id IN ({})",
            list(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let (id, s) = decode(&row, true)?;
            sessions.insert(id, s);
        }
    }
    Ok(sessions)
}

/// The rooms of `run`'s new joins that have a video track now.
async fn rooms_with_video(
    conn: &mut AnyConnection,
    run: &[&Event],
    sessions: &HashMap<String, Session>,
) -> Result<HashSet<String>, StoreError> {
    let rooms: Vec<String> = run
        .iter()
        .filter_map(|e| match &e.payload {
            EventPayload::ParticipantJoined {
                room, participant, ..
            } if !sessions.contains_key(&participant.sid.to_string()) => Some(room.sid.to_string()),
            _ => None,
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let mut video = HashSet::new();
    for chunk in rooms.chunks(IN_CHUNK) {
        let sql = format!(
            "SELECT DISTINCT room_sid FROM usage_video_tracks WHERE room_sid IN ({})",
            list(1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for room in chunk {
            query = query.bind(room);
        }
        for row in query.fetch_all(&mut *conn).await? {
            video.insert(row.try_get("room_sid")?);
        }
    }
    Ok(video)
}

/// Adds to `sessions` the closed sessions that share a room and an identity
/// with a session `run` closes: their time is not billed again.
async fn load_closed_neighbours(
    conn: &mut AnyConnection,
    run: &[&Event],
    sessions: &mut HashMap<String, Session>,
) -> Result<(), StoreError> {
    let mut pairs: HashSet<(String, String)> = HashSet::new();
    for event in run {
        if let EventPayload::ParticipantLeft {
            room, participant, ..
        } = &event.payload
        {
            match sessions.get(&participant.sid.to_string()) {
                Some(s) => pairs.insert((s.room_sid.clone(), s.identity.clone())),
                None => pairs.insert((room.sid.to_string(), participant.identity.to_string())),
            };
        }
    }
    if pairs.is_empty() {
        return Ok(());
    }
    // One index probe per pair, joined as a VALUES list: as `room_sid IN (..)
    // AND identity IN (..)` PostgreSQL read a broadcast room's every session
    // (34 ms a run at 50,000 sessions in one room, against 5 ms this way).
    let pairs: Vec<(String, String)> = pairs.into_iter().collect();
    for chunk in pairs.chunks(IN_CHUNK / 2) {
        let sql = format!(
            "SELECT {COLUMNS} FROM usage_sessions s JOIN (VALUES {}) AS v \
             ON s.room_sid = v.column1 AND s.identity = v.column2 WHERE s.left_at IS NOT NULL",
            values(chunk.len(), 2)
        );
        let mut query = sqlx::query(&sql);
        for (room, identity) in chunk {
            query = query.bind(room).bind(identity);
        }
        for row in query.fetch_all(&mut *conn).await? {
            let (id, s) = decode(&row, true)?;
            sessions.entry(id).or_insert(s);
        }
    }
    Ok(())
}

/// Inserts the sessions the run opened and updates the stored ones it closed.
async fn write_sessions(
    conn: &mut AnyConnection,
    project: ProjectId,
    sessions: &HashMap<String, Session>,
) -> Result<(), StoreError> {
    let project = project.to_string();
    let mut new: Vec<(&String, &Session)> = sessions
        .iter()
        .filter(|(_, s)| s.changed && !s.stored)
        .collect();
    new.sort_by(|a, b| a.0.cmp(b.0));
    for chunk in new.chunks(ROW_CHUNK) {
        let sql = format!(
            "INSERT INTO usage_sessions (id, project_id, room_sid, room_name, identity, node_id, \
             joined_at, video, left_at, leave_reason, billed_us) VALUES {} ON CONFLICT DO NOTHING",
            values(chunk.len(), 11)
        );
        let mut query = sqlx::query(&sql);
        for (id, s) in chunk {
            query = query
                .bind(*id)
                .bind(&project)
                .bind(&s.room_sid)
                .bind(&s.room_name)
                .bind(&s.identity)
                .bind(s.node.clone())
                .bind(s.joined_at)
                .bind(i64::from(s.video))
                .bind(s.left_at)
                .bind(s.reason.clone())
                .bind(s.billed);
        }
        query.execute(&mut *conn).await?;
    }
    let mut closed: Vec<(&String, &Session)> = sessions
        .iter()
        .filter(|(_, s)| s.changed && s.stored)
        .collect();
    closed.sort_by(|a, b| a.0.cmp(b.0));
    for chunk in closed.chunks(ROW_CHUNK) {
        let sql = format!(
            "UPDATE usage_sessions SET left_at = v.column2, leave_reason = v.column3, billed_us = v.column4 \
             FROM (VALUES {}) AS v WHERE usage_sessions.id = v.column1",
            values(chunk.len(), 4)
        );
        let mut query = sqlx::query(&sql);
        for (id, s) in chunk {
            query = query
                .bind(*id)
                .bind(s.left_at)
                .bind(s.reason.clone())
                .bind(s.billed);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Inserts `rows` into the ledger, and what was not there yet into the rollups.
pub(super) async fn write_ledger(
    conn: &mut AnyConnection,
    project: ProjectId,
    rows: &[LedgerRow],
    now: i64,
) -> Result<(), StoreError> {
    let project = project.to_string();
    let mut hourly: BTreeMap<(String, i64, String), i64> = BTreeMap::new();
    for chunk in rows.chunks(ROW_CHUNK) {
        let sql = format!(
            "INSERT INTO usage_ledger (source, meter, hour, project_id, room_name, quantity, recorded_at) \
             VALUES {} ON CONFLICT DO NOTHING RETURNING meter, hour, room_name, quantity",
            values(chunk.len(), 7)
        );
        let mut query = sqlx::query(&sql);
        for r in chunk {
            query = query
                .bind(&r.source)
                .bind(r.meter.as_str())
                .bind(r.hour)
                .bind(&project)
                .bind(&r.room_name)
                .bind(r.quantity)
                .bind(now);
        }
        for row in query.fetch_all(&mut *conn).await? {
            *hourly
                .entry((
                    row.try_get("meter")?,
                    row.try_get("hour")?,
                    row.try_get("room_name")?,
                ))
                .or_default() += row.try_get::<i64, _>("quantity")?;
        }
    }
    let mut project_hourly: BTreeMap<(&str, i64), i64> = BTreeMap::new();
    let mut room_daily: BTreeMap<(&str, i64, &str), i64> = BTreeMap::new();
    for ((meter, hour, room), quantity) in &hourly {
        *project_hourly.entry((meter.as_str(), *hour)).or_default() += quantity;
        *room_daily
            .entry((
                meter.as_str(),
                hour - hour.rem_euclid(DAY_US),
                room.as_str(),
            ))
            .or_default() += quantity;
    }
    let hourly: Vec<_> = hourly.iter().collect();
    for chunk in hourly.chunks(ROW_CHUNK) {
        let sql = format!(
            "INSERT INTO usage_hourly (project_id, meter, hour, room_name, quantity) VALUES {} \
             ON CONFLICT (project_id, meter, hour, room_name) \
             DO UPDATE SET quantity = usage_hourly.quantity + excluded.quantity",
            values(chunk.len(), 5)
        );
        let mut query = sqlx::query(&sql);
        for ((meter, hour, room), quantity) in chunk {
            query = query
                .bind(&project)
                .bind(meter)
                .bind(*hour)
                .bind(room)
                .bind(**quantity);
        }
        query.execute(&mut *conn).await?;
    }
    let project_hourly: Vec<_> = project_hourly.into_iter().collect();
    for chunk in project_hourly.chunks(ROW_CHUNK) {
        let sql = format!(
            "INSERT INTO usage_project_hourly (project_id, meter, hour, quantity) VALUES {} \
             ON CONFLICT (project_id, meter, hour) \
             DO UPDATE SET quantity = usage_project_hourly.quantity + excluded.quantity",
            values(chunk.len(), 4)
        );
        let mut query = sqlx::query(&sql);
        for ((meter, hour), quantity) in chunk {
            query = query
                .bind(&project)
                .bind(*meter)
                .bind(*hour)
                .bind(*quantity);
        }
        query.execute(&mut *conn).await?;
    }
    let room_daily: Vec<_> = room_daily.into_iter().collect();
    for chunk in room_daily.chunks(ROW_CHUNK) {
        let sql = format!(
            "INSERT INTO usage_room_daily (project_id, meter, day, room_name, quantity) VALUES {} \
             ON CONFLICT (project_id, meter, day, room_name) \
             DO UPDATE SET quantity = usage_room_daily.quantity + excluded.quantity",
            values(chunk.len(), 5)
        );
        let mut query = sqlx::query(&sql);
        for ((meter, day, room), quantity) in chunk {
            query = query
                .bind(&project)
                .bind(*meter)
                .bind(*day)
                .bind(*room)
                .bind(*quantity);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}
