//! The node registry: every running `switchboard serve` process, its role,
//! region and URL, the load it reports with each heartbeat, whether it is
//! draining, and which media node hosts each room.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::Row;
use switchboard_core::node::{NodeInfo, NodeLoad, NodeRole, Region};
use switchboard_core::{NodeId, ProjectId, RoomName};

use crate::error::corrupt;
use crate::time::{from_micros, to_micros};
use crate::{Store, StoreError};

/// What a node says of itself when it starts.
#[derive(Debug, Clone)]
pub struct NodeRegistration {
    /// Its id, new at every start.
    pub id: NodeId,
    /// What it runs.
    pub role: NodeRole,
    /// Where it is.
    pub region: Region,
    /// The URL clients reach it at.
    pub url: String,
}

impl NodeRegistration {
    /// A node of role `all` in the default region, without a URL (tests and tools).
    pub fn local(id: NodeId) -> Self {
        Self {
            id,
            role: NodeRole::All,
            region: Region::default(),
            url: String::new(),
        }
    }
}

/// Node registry operations.
pub struct Nodes<'a>(&'a Store);

impl Store {
    /// The node registry and room placements.
    pub fn nodes(&self) -> Nodes<'_> {
        Nodes(self)
    }
}

const NODE_COLUMNS: &str =
    "id, role, region, url, started_at, heartbeat_at, stopped_at, draining_at, \
     load_rooms, load_participants, load_tracks, load_forwarded_bps, load_cpu, load_named_until";

fn decode(r: &AnyRow) -> Result<NodeInfo, StoreError> {
    let count = |c: &str| -> Result<u32, StoreError> {
        u32::try_from(r.try_get::<i64, _>(c)?).map_err(corrupt)
    };
    Ok(NodeInfo {
        id: r.try_get::<String, _>("id")?.parse().map_err(corrupt)?,
        role: r.try_get::<String, _>("role")?.parse().map_err(corrupt)?,
        region: Region::new(r.try_get::<String, _>("region")?).map_err(corrupt)?,
        url: r.try_get("url")?,
        started_at: from_micros(r.try_get("started_at")?)?,
        heartbeat_at: from_micros(r.try_get("heartbeat_at")?)?,
        stopped_at: r
            .try_get::<Option<i64>, _>("stopped_at")?
            .map(from_micros)
            .transpose()?,
        draining_since: r
            .try_get::<Option<i64>, _>("draining_at")?
            .map(from_micros)
            .transpose()?,
        load: NodeLoad {
            rooms: count("load_rooms")?,
            participants: count("load_participants")?,
            tracks: count("load_tracks")?,
            forwarded_bps: u64::try_from(r.try_get::<i64, _>("load_forwarded_bps")?)
                .map_err(corrupt)?,
            cpu: r.try_get::<f64, _>("load_cpu")? as f32,
            named_until: r.try_get("load_named_until")?,
        },
    })
}

impl Nodes<'_> {
    /// Registers a node, alive at `now`.
    pub async fn register(
        &self,
        node: &NodeRegistration,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO nodes (id, role, region, url, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(node.id.to_string())
        .bind(node.role.as_str())
        .bind(node.region.as_str())
        .bind(&node.url)
        .bind(to_micros(now))
        .execute(self.0.writer())
        .await?;
        Ok(())
    }

    /// Records that `node` is alive at `now`, carrying `load`. Returns false
    /// when the node is no longer registered as running (it was taken for
    /// dead): it must not go on as if its rooms were still counted.
    pub async fn heartbeat(
        &self,
        node: NodeId,
        load: &NodeLoad,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE nodes SET heartbeat_at = $1, load_rooms = $2, load_participants = $3, \
             load_tracks = $4, load_forwarded_bps = $5, load_cpu = $6, load_named_until = $7 \
             WHERE id = $8 AND stopped_at IS NULL",
        )
        .bind(to_micros(now))
        .bind(i64::from(load.rooms))
        .bind(i64::from(load.participants))
        .bind(i64::from(load.tracks))
        .bind(i64::try_from(load.forwarded_bps).unwrap_or(i64::MAX))
        .bind(f64::from(load.cpu))
        .bind(load.named_until)
        .bind(node.to_string())
        .execute(self.0.writer())
        .await?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Every node still running (not stopped, not yet taken for dead), by id.
    pub async fn running(&self) -> Result<Vec<NodeInfo>, StoreError> {
        sqlx::query(&format!(
            "SELECT {NODE_COLUMNS} FROM nodes WHERE stopped_at IS NULL ORDER BY id"
        ))
        .fetch_all(self.0.reader())
        .await?
        .iter()
        .map(decode)
        .collect()
    }

    /// The node `id`, running or not.
    pub async fn get(&self, id: NodeId) -> Result<Option<NodeInfo>, StoreError> {
        sqlx::query(&format!("SELECT {NODE_COLUMNS} FROM nodes WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.0.reader())
            .await?
            .as_ref()
            .map(decode)
            .transpose()
    }

    /// Marks running node `id` as draining from `now`: it takes no new rooms.
    /// Returns the node, or `None` when no running node has that id.
    pub async fn drain(
        &self,
        id: NodeId,
        now: DateTime<Utc>,
    ) -> Result<Option<NodeInfo>, StoreError> {
        sqlx::query(
            "UPDATE nodes SET draining_at = COALESCE(draining_at, $1) \
             WHERE id = $2 AND stopped_at IS NULL",
        )
        .bind(to_micros(now))
        .bind(id.to_string())
        .execute(self.0.writer())
        .await?;
        Ok(self.get(id).await?.filter(|n| n.draining_since.is_some()))
    }

    /// The node that hosts room `name` of `project`, if one was placed.
    pub async fn placement(
        &self,
        project: ProjectId,
        name: &RoomName,
    ) -> Result<Option<NodeInfo>, StoreError> {
        sqlx::query(&format!(
            "SELECT {} FROM room_placements p JOIN nodes n ON n.id = p.node_id \
             WHERE p.project_id = $1 AND p.room_name = $2",
            NODE_COLUMNS
                .split(", ")
                .map(|c| format!("n.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .bind(project.to_string())
        .bind(name.as_str())
        .fetch_optional(self.0.reader())
        .await?
        .as_ref()
        .map(decode)
        .transpose()
    }

    /// Places room `name` of `project` on node `to`, unless it is already
    /// placed on another node than `replacing`: the first API instance to
    /// place a room wins, and a dead node's room moves once, restarted under a
    /// new sid (`room.finished`, `room.started`). Returns the node id the room
    /// is placed on afterwards.
    pub async fn place(
        &self,
        project: ProjectId,
        name: &RoomName,
        to: NodeId,
        replacing: Option<NodeId>,
        now: DateTime<Utc>,
    ) -> Result<NodeId, StoreError> {
        let mut tx = self.0.writer().begin().await?;
        let mut restarted_rooms = Vec::new();
        match replacing {
            None => {
                sqlx::query(
                    "INSERT INTO room_placements (project_id, room_name, node_id, placed_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, room_name) DO NOTHING",
                )
                .bind(project.to_string())
                .bind(name.as_str())
                .bind(to.to_string())
                .bind(to_micros(now))
                .execute(&mut *tx)
                .await?;
            }
            Some(old) => {
                // Moving a placement the meter has not restarted yet restarts
                // the room; each statement is one compare-and-set, so racing
                // routers and the meter restart it once.
                let move_from = |restarted: &'static str| {
                    format!(
                        "UPDATE room_placements SET node_id = $1, placed_at = $2, restarted_at = NULL \
                         WHERE project_id = $3 AND room_name = $4 AND node_id = $5 AND restarted_at IS {restarted}"
                    )
                };
                for (restarted, restart) in [("NULL", true), ("NOT NULL", false)] {
                    let moved = sqlx::query(&move_from(restarted))
                        .bind(to.to_string())
                        .bind(to_micros(now))
                        .bind(project.to_string())
                        .bind(name.as_str())
                        .bind(old.to_string())
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if moved == 0 {
                        continue;
                    }
                    if restart {
                        // The room that lived on the lost node ended with it.
                        let last: i64 = sqlx::query("SELECT heartbeat_at FROM nodes WHERE id = $1")
                            .bind(old.to_string())
                            .fetch_one(&mut *tx)
                            .await?
                            .try_get("heartbeat_at")?;
                        restarted_rooms =
                            crate::rooms::restart_lost(&mut tx, project, name, from_micros(last)?)
                                .await?;
                    }
                    break;
                }
            }
        }
        let placed: String = sqlx::query(
            "SELECT node_id FROM room_placements WHERE project_id = $1 AND room_name = $2",
        )
        .bind(project.to_string())
        .bind(name.as_str())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| StoreError::Conflict("the room's placement was removed meanwhile".into()))?
        .try_get("node_id")?;
        tx.commit().await?;
        self.0.publish_committed(&restarted_rooms).await;
        placed.parse().map_err(corrupt)
    }

    /// Forgets that room `name` of `project` is on node `node` (it finished
    /// there); a placement on another node is kept.
    pub async fn unplace(
        &self,
        project: ProjectId,
        name: &RoomName,
        node: NodeId,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM room_placements WHERE project_id = $1 AND room_name = $2 AND node_id = $3",
        )
        .bind(project.to_string())
        .bind(name.as_str())
        .bind(node.to_string())
        .execute(self.0.writer())
        .await?;
        Ok(())
    }
}
