//! Connection quality over time: one row per participant per interval with
//! the room observer's measures (bitrates, loss, round trip, the quality
//! score), written in one statement per room and interval and read back
//! per session for the call's page and the API.

use chrono::{DateTime, Utc};
use sqlx::Row;
use switchboard_core::room::ConnectionStats;
use switchboard_core::signal::ConnectionQuality;
use switchboard_core::{ParticipantSid, ProjectId, RoomSid};

use crate::error::corrupt;
use crate::sql::values;
use crate::time::{from_micros, to_micros};
use crate::{Store, StoreError};

/// Most samples one session returns: eight hours at one every 3 s.
pub const MAX_SAMPLES: u32 = 9_600;

/// Rows per multi-row `INSERT` (9 values each).
const INSERT_ROWS: usize = 100;

/// One participant's connection over one interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QualitySample {
    /// When the interval ended.
    pub at: DateTime<Utc>,
    /// The measures over it.
    pub stats: ConnectionStats,
}

/// The quality samples table.
pub struct Quality<'a>(&'a Store);

impl Store {
    /// Connection quality over time.
    pub fn quality(&self) -> Quality<'_> {
        Quality(self)
    }
}

impl Quality<'_> {
    /// Records the measures of `participants` of room `room` over the
    /// interval ending at `at`. A sample already recorded for a
    /// participant at that instant is kept.
    pub async fn record(
        &self,
        project: ProjectId,
        room: RoomSid,
        at: DateTime<Utc>,
        participants: &[(ParticipantSid, ConnectionStats)],
    ) -> Result<(), StoreError> {
        let (project, room, at) = (project.to_string(), room.to_string(), to_micros(at));
        for chunk in participants.chunks(INSERT_ROWS) {
            let sql = format!(
                "INSERT INTO quality_samples (participant_sid, at, project_id, room_sid, quality, \
                 publish_bps, subscribe_bps, loss_per_mille, rtt_ms) VALUES {} ON CONFLICT DO NOTHING",
                values(chunk.len(), 9)
            );
            let mut query = sqlx::query(&sql);
            for (sid, s) in chunk {
                let bps = |b: u64| i64::try_from(b).unwrap_or(i64::MAX);
                query = query
                    .bind(sid.to_string())
                    .bind(at)
                    .bind(&project)
                    .bind(&room)
                    .bind(s.quality.as_str())
                    .bind(bps(s.publish_bps))
                    .bind(bps(s.subscribe_bps))
                    .bind(i64::from(s.loss_per_mille))
                    .bind(s.rtt_ms.map(i64::from));
            }
            query.execute(self.0.writer()).await?;
        }
        Ok(())
    }

    /// The samples of participant session `participant` of `project`,
    /// oldest first, at most [`MAX_SAMPLES`] (the first ones).
    pub async fn of_session(
        &self,
        project: ProjectId,
        participant: ParticipantSid,
    ) -> Result<Vec<QualitySample>, StoreError> {
        sqlx::query(
            "SELECT at, quality, publish_bps, subscribe_bps, loss_per_mille, rtt_ms \
             FROM quality_samples WHERE participant_sid = $1 AND project_id = $2 \
             ORDER BY at LIMIT $3",
        )
        .bind(participant.to_string())
        .bind(project.to_string())
        .bind(i64::from(MAX_SAMPLES))
        .fetch_all(self.0.reader())
        .await?
        .iter()
        .map(|r| {
            let name: String = r.try_get("quality")?;
            let count = |column: &str| -> Result<u64, StoreError> {
                u64::try_from(r.try_get::<i64, _>(column)?).map_err(corrupt)
            };
            Ok(QualitySample {
                at: from_micros(r.try_get("at")?)?,
                stats: ConnectionStats {
                    quality: ConnectionQuality::from_name(&name)
                        .ok_or_else(|| corrupt(format!("connection quality `{name}`")))?,
                    publish_bps: count("publish_bps")?,
                    subscribe_bps: count("subscribe_bps")?,
                    loss_per_mille: u32::try_from(count("loss_per_mille")?).map_err(corrupt)?,
                    rtt_ms: r
                        .try_get::<Option<i64>, _>("rtt_ms")?
                        .map(|ms| u32::try_from(ms).map_err(corrupt))
                        .transpose()?,
                },
            })
        })
        .collect()
    }
}
