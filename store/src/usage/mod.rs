//! Metering: participant sessions built from the event log, the append-only
//! usage ledger, its hourly rollup, and the nodes whose heartbeats bound a
//! crashed node's sessions.
//!
//! The meter is a consumer of the log like the webhook fan-out: it reads each
//! project's events from its durable cursor and, in the transaction that
//! moves the cursor, opens and closes sessions and writes ledger rows. A
//! ledger row is keyed by (source, meter, hour), so writing it twice adds
//! nothing; the rollup grows only when the ledger insert did.
//!
//! [`meter`] writes (sessions, ledger, rollup, silent nodes); this module
//! holds the types and reads them back (reports, totals, sessions, plans).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;
use switchboard_core::usage::{Meter, Span, HOUR_US};
use switchboard_core::{NodeId, ParticipantSid, ProjectId};

use crate::error::corrupt;
use crate::time::{from_micros, to_micros};
use crate::{Store, StoreError};

mod meter;

pub(crate) use meter::add_invocation;

/// A UTC day in microseconds.
const DAY_US: i64 = 24 * HOUR_US;

/// The name of the meter's cursor.
pub const CONSUMER: &str = "billing";

/// Usage by meter, in each meter's internal unit.
pub type Totals = BTreeMap<Meter, i64>;

/// One participant session as the meter sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The participant session sid.
    pub id: ParticipantSid,
    /// The room's name.
    pub room_name: String,
    /// The room incarnation.
    pub room_sid: String,
    /// The participant's identity.
    pub identity: String,
    /// The node that hosted it.
    pub node_id: Option<NodeId>,
    /// When it joined.
    pub joined_at: DateTime<Utc>,
    /// When it left, if it has.
    pub left_at: Option<DateTime<Utc>>,
    /// Why it left (`client_left`, `node_lost`, ...).
    pub leave_reason: Option<String>,
    /// Whether video was published in the room while it was there.
    pub video: bool,
    /// Microseconds billed once closed: its time less what the same identity's
    /// overlapping sessions in the room were already billed for.
    pub billed_us: Option<i64>,
}

/// One row of an hourly report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HourUsage {
    /// The meter.
    pub meter: Meter,
    /// The hour's first instant.
    pub hour: DateTime<Utc>,
    /// Usage in the meter's internal unit.
    pub quantity: i64,
}

/// Usage of one room over a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomUsage {
    /// The meter.
    pub meter: Meter,
    /// The room's name; empty for usage tied to no room (function runs).
    pub room_name: String,
    /// Usage in the meter's internal unit.
    pub quantity: i64,
}

/// What a usage report reads, from one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Usage of closed sessions (and other sources) by meter and hour.
    pub hourly: Vec<HourUsage>,
    /// The rooms with the most usage, per meter.
    pub rooms: Vec<RoomUsage>,
    /// Sessions still open.
    pub open: Vec<Session>,
}

/// What an open session has used in one hour, counted up to a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenUsage {
    /// The meter.
    pub meter: Meter,
    /// The hour's first instant.
    pub hour: DateTime<Utc>,
    /// The session's room.
    pub room_name: String,
    /// Microseconds.
    pub quantity: i64,
}

impl Report {
    /// What the open sessions have used in `[from, to)` up to `now`, by
    /// meter, hour and room: the part of the usage the ledger does not hold yet.
    pub fn open_usage(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Vec<OpenUsage> {
        use switchboard_core::usage::{at_micros, micros};
        let (from, to) = (micros(from), micros(to).min(micros(now)));
        let mut out = Vec::new();
        for s in &self.open {
            let span = Span::new(micros(s.joined_at).max(from), to);
            let meter = if s.video {
                Meter::ParticipantMinutesVideo
            } else {
                Meter::ParticipantMinutesAudio
            };
            for (hour, us) in span.by_hour() {
                out.push(OpenUsage {
                    meter,
                    hour: at_micros(hour),
                    room_name: s.room_name.clone(),
                    quantity: us,
                });
            }
        }
        out
    }

    /// Usage by meter in `[from, to)` up to `now`: closed sessions and other
    /// sources from the ledger, open sessions counted up to `now`.
    pub fn totals_with_open(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Totals {
        let mut totals = Totals::new();
        for h in &self.hourly {
            *totals.entry(h.meter).or_default() += h.quantity;
        }
        for o in self.open_usage(from, to, now) {
            *totals.entry(o.meter).or_default() += o.quantity;
        }
        totals
    }
}

/// A room incarnation whose sessions have all ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedRoom {
    /// The room incarnation.
    pub room_sid: String,
    /// The room's name.
    pub room_name: String,
    /// When its first session joined.
    pub first_joined_at: DateTime<Utc>,
    /// When its last session left.
    pub last_left_at: DateTime<Utc>,
    /// Participant sessions it had.
    pub sessions: i64,
    /// Distinct identities among them.
    pub identities: i64,
    /// Microseconds billed over all its sessions.
    pub billed_us: i64,
}

/// The sessions one media node served, in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeShare {
    /// The node (none for sessions metered without one).
    pub node_id: Option<NodeId>,
    /// Its region, as it registered (none when it is not in the nodes table).
    pub region: Option<String>,
    /// Sessions open at some time in the window.
    pub sessions: i64,
    /// Distinct identities among them.
    pub identities: i64,
    /// Those still open.
    pub open: i64,
    /// Microseconds billed for those that ended (in whole, even for a
    /// session that began before the window).
    pub billed_us: i64,
}

/// Which sessions to list.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    /// Only sessions in the room of this name.
    pub room: Option<String>,
    /// Only sessions in this room incarnation.
    pub room_sid: Option<String>,
    /// Only sessions still open at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Only sessions that joined before this time.
    pub to: Option<DateTime<Utc>>,
}

/// The usage tables.
pub struct Usage<'a>(&'a Store);

impl Store {
    /// Metering: sessions, the usage ledger, and the sessions of stopped and silent nodes.
    pub fn usage(&self) -> Usage<'_> {
        Usage(self)
    }
}

fn parse_meter(s: &str) -> Result<Meter, StoreError> {
    s.parse().map_err(corrupt)
}

/// The first UTC midnight at or after `t` (µs).
fn ceil_day(t: i64) -> i64 {
    t + (DAY_US - t.rem_euclid(DAY_US)) % DAY_US
}

fn decode_session(row: &AnyRow) -> Result<Session, StoreError> {
    Ok(Session {
        id: row.try_get::<String, _>("id")?.parse().map_err(corrupt)?,
        room_name: row.try_get("room_name")?,
        room_sid: row.try_get("room_sid")?,
        identity: row.try_get("identity")?,
        node_id: row
            .try_get::<Option<String>, _>("node_id")?
            .map(|n| n.parse())
            .transpose()
            .map_err(corrupt)?,
        joined_at: from_micros(row.try_get("joined_at")?)?,
        left_at: row
            .try_get::<Option<i64>, _>("left_at")?
            .map(from_micros)
            .transpose()?,
        leave_reason: row.try_get("leave_reason")?,
        video: row.try_get::<i64, _>("video")? != 0,
        billed_us: row.try_get("billed_us")?,
    })
}

const SESSION_COLUMNS: &str =
    "id, room_name, room_sid, identity, node_id, joined_at, left_at, leave_reason, video, billed_us";

impl Usage<'_> {
    /// Usage of `project` in `[from, to)` (hour-aligned) by meter and hour,
    /// the `room_limit` rooms with the most usage of each meter, and the
    /// sessions still open, all read from one snapshot so a session that
    /// closes meanwhile is counted exactly once.
    pub async fn report(
        &self,
        project: ProjectId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        meter: Option<Meter>,
        room_limit: u32,
    ) -> Result<Report, StoreError> {
        let mut tx = self.0.reader().begin().await?;
        if self.0.backend() == crate::Backend::Postgres {
            // One snapshot for every statement below (SQLite's read transaction already is one).
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        let (project_s, from, to) = (project.to_string(), to_micros(from), to_micros(to));
        let hourly = sqlx::query(
            "SELECT meter, hour, quantity FROM usage_project_hourly \
             WHERE project_id = $1 AND hour >= $2 AND hour < $3 AND ($4 = '' OR meter = $4) \
             ORDER BY hour, meter",
        )
        .bind(&project_s)
        .bind(from)
        .bind(to)
        .bind(meter.map(|m| m.as_str()).unwrap_or_default())
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| {
            Ok(HourUsage {
                meter: parse_meter(&r.try_get::<String, _>("meter")?)?,
                hour: from_micros(r.try_get("hour")?)?,
                quantity: r.try_get("quantity")?,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
        let mut rooms = Vec::new();
        let meters: Vec<Meter> = meter.map_or_else(|| Meter::ALL.to_vec(), |m| vec![m]);
        for meter in meters.into_iter().filter(|_| room_limit > 0) {
            // Whole days from the daily rollup, the hours before the first
            // and after the last whole day from the hourly one.
            let (first_day, last_day) = (ceil_day(from), to - to.rem_euclid(DAY_US));
            let (days, edges) = if first_day < last_day {
                ((first_day, last_day), [(from, first_day), (last_day, to)])
            } else {
                ((0, 0), [(from, to), (0, 0)])
            };
            let rows = sqlx::query(
                "SELECT room_name, CAST(SUM(quantity) AS BIGINT) AS quantity FROM ( \
                     SELECT room_name, quantity FROM usage_room_daily \
                     WHERE project_id = $1 AND meter = $2 AND day >= $3 AND day < $4 \
                     UNION ALL \
                     SELECT room_name, quantity FROM usage_hourly \
                     WHERE project_id = $1 AND meter = $2 \
                       AND ((hour >= $5 AND hour < $6) OR (hour >= $7 AND hour < $8)) \
                 ) AS parts GROUP BY room_name ORDER BY SUM(quantity) DESC, room_name LIMIT $9",
            )
            .bind(&project_s)
            .bind(meter.as_str())
            .bind(days.0)
            .bind(days.1)
            .bind(edges[0].0)
            .bind(edges[0].1)
            .bind(edges[1].0)
            .bind(edges[1].1)
            .bind(i64::from(room_limit))
            .fetch_all(&mut *tx)
            .await?;
            for r in rows {
                rooms.push(RoomUsage {
                    meter,
                    room_name: r.try_get("room_name")?,
                    quantity: r.try_get("quantity")?,
                });
            }
        }
        let open = sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM usage_sessions WHERE project_id = $1 AND left_at IS NULL ORDER BY id"
        ))
        .bind(&project_s)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(decode_session)
        .collect::<Result<Vec<_>, StoreError>>()?;
        tx.commit().await?;
        Ok(Report {
            hourly,
            rooms,
            open,
        })
    }

    /// Usage of `project` in `[from, to)` (hour-aligned) by meter, closed sessions only.
    pub async fn totals(
        &self,
        project: ProjectId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Totals, StoreError> {
        let mut totals = Totals::new();
        for h in self.report(project, from, to, None, 0).await?.hourly {
            *totals.entry(h.meter).or_default() += h.quantity;
        }
        Ok(totals)
    }

    /// Session `id` of `project`, if it exists.
    pub async fn session(
        &self,
        project: ProjectId,
        id: ParticipantSid,
    ) -> Result<Option<Session>, StoreError> {
        sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM usage_sessions WHERE project_id = $1 AND id = $2"
        ))
        .bind(project.to_string())
        .bind(id.to_string())
        .fetch_optional(self.0.reader())
        .await?
        .as_ref()
        .map(decode_session)
        .transpose()
    }

    /// Up to `limit` sessions of `project` matching `filter`, newest first, before session `before`.
    pub async fn sessions(
        &self,
        project: ProjectId,
        filter: &SessionFilter,
        before: Option<ParticipantSid>,
        limit: u32,
    ) -> Result<Vec<Session>, StoreError> {
        sqlx::query(&format!(
            "SELECT {SESSION_COLUMNS} FROM usage_sessions WHERE project_id = $1 \
             AND ($2 = '' OR room_name = $2) \
             AND ($3 = 0 OR left_at IS NULL OR left_at > $3) \
             AND ($4 = 0 OR joined_at < $4) \
             AND ($5 = '' OR id < $5) \
             AND ($6 = '' OR room_sid = $6) \
             ORDER BY id DESC LIMIT $7"
        ))
        .bind(project.to_string())
        .bind(filter.room.clone().unwrap_or_default())
        .bind(filter.from.map_or(0, to_micros))
        .bind(filter.to.map_or(0, to_micros))
        .bind(before.map(|b| b.to_string()).unwrap_or_default())
        .bind(filter.room_sid.clone().unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?
        .iter()
        .map(decode_session)
        .collect()
    }

    /// Up to `limit` room incarnations of `project` with a session joined
    /// since `since` and none still open (whenever it joined), the most
    /// recently ended first; their counts cover the sessions joined since `since`.
    pub async fn finished_rooms(
        &self,
        project: ProjectId,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<FinishedRoom>, StoreError> {
        sqlx::query(
            "SELECT room_sid, MIN(room_name) AS room_name, MIN(joined_at) AS first_joined_at, \
                    MAX(left_at) AS last_left_at, COUNT(*) AS sessions, \
                    COUNT(DISTINCT identity) AS identities, \
                    CAST(COALESCE(SUM(billed_us), 0) AS BIGINT) AS billed_us \
             FROM usage_sessions s WHERE project_id = $1 AND joined_at >= $2 \
               AND NOT EXISTS (SELECT 1 FROM usage_sessions o \
                               WHERE o.room_sid = s.room_sid AND o.left_at IS NULL) \
             GROUP BY room_sid HAVING COUNT(*) = COUNT(left_at) \
             ORDER BY MAX(left_at) DESC, room_sid LIMIT $3",
        )
        .bind(project.to_string())
        .bind(to_micros(since))
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?
        .iter()
        .map(|r| {
            Ok(FinishedRoom {
                room_sid: r.try_get("room_sid")?,
                room_name: r.try_get("room_name")?,
                first_joined_at: from_micros(r.try_get("first_joined_at")?)?,
                last_left_at: from_micros(r.try_get("last_left_at")?)?,
                sessions: r.try_get("sessions")?,
                identities: r.try_get("identities")?,
                billed_us: r.try_get("billed_us")?,
            })
        })
        .collect()
    }

    /// Where the sessions of `project` open at some time in `[from, to)` (of
    /// room incarnation `room_sid`, if given) were served: per media node and
    /// its region, the most sessions first.
    pub async fn by_node(
        &self,
        project: ProjectId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        room_sid: Option<&str>,
    ) -> Result<Vec<NodeShare>, StoreError> {
        sqlx::query(
            "SELECT s.node_id, MIN(n.region) AS region, COUNT(*) AS sessions, \
                    COUNT(DISTINCT s.identity) AS identities, \
                    CAST(SUM(CASE WHEN s.left_at IS NULL THEN 1 ELSE 0 END) AS BIGINT) AS open, \
                    CAST(COALESCE(SUM(s.billed_us), 0) AS BIGINT) AS billed_us \
             FROM usage_sessions s LEFT JOIN nodes n ON n.id = s.node_id \
             WHERE s.project_id = $1 AND (s.left_at IS NULL OR s.left_at > $2) AND s.joined_at < $3 \
               AND ($4 = '' OR s.room_sid = $4) \
             GROUP BY s.node_id ORDER BY COUNT(*) DESC, s.node_id IS NULL, s.node_id",
        )
        .bind(project.to_string())
        .bind(to_micros(from))
        .bind(to_micros(to))
        .bind(room_sid.unwrap_or_default())
        .fetch_all(self.0.reader())
        .await?
        .iter()
        .map(|r| {
            Ok(NodeShare {
                node_id: r
                    .try_get::<Option<String>, _>("node_id")?
                    .map(|n| n.parse().map_err(corrupt))
                    .transpose()?,
                region: r.try_get("region")?,
                sessions: r.try_get("sessions")?,
                identities: r.try_get("identities")?,
                open: r.try_get("open")?,
                billed_us: r.try_get("billed_us")?,
            })
        })
        .collect()
    }

    /// Whether `project` has a session still open that began before `t`.
    pub async fn open_before(
        &self,
        project: ProjectId,
        t: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        Ok(sqlx::query(
            "SELECT 1 FROM usage_sessions WHERE project_id = $1 AND left_at IS NULL AND joined_at < $2 LIMIT 1",
        )
        .bind(project.to_string())
        .bind(to_micros(t))
        .fetch_optional(self.0.reader())
        .await?
        .is_some())
    }

    /// The plan `project` is on, if it was given one.
    pub async fn plan(&self, project: ProjectId) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT plan FROM projects WHERE id = $1")
            .bind(project.to_string())
            .fetch_optional(self.0.reader())
            .await?;
        Ok(row.map(|r| r.try_get("plan")).transpose()?.flatten())
    }

    /// Puts `project` on plan `plan` (`None`: the default plan). False if there is no such project.
    pub async fn set_plan(
        &self,
        project: ProjectId,
        plan: Option<&str>,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query("UPDATE projects SET plan = $1 WHERE id = $2")
            .bind(plan)
            .bind(project.to_string())
            .execute(self.0.writer())
            .await?
            .rows_affected();
        Ok(n == 1)
    }
}
