//! Functions: their versions (with the component bytes), the job outbox of
//! asynchronous handlers, every invocation, and the per-project key-value store.
//!
//! Asynchronous handlers follow the webhook discipline: a fan-out reads each
//! project's log from a durable cursor and queues one job per (function,
//! event) in the transaction that moves the cursor; runners hold a job under
//! a lease, so a job whose node died runs again (at least once).
//!
//! Functions and their versions are here; [`jobs`], [`invocations`] and
//! [`kv`] hold the other tables.

use chrono::{DateTime, Utc};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use switchboard_core::event::EventPayload;
use switchboard_core::function::{FailurePolicy, Triggers};
use switchboard_core::{Event, FunctionId, ProjectId};

use crate::error::corrupt;
use crate::time::{from_micros, stored, to_micros};
use crate::{cursors, Store, StoreError};

mod invocations;
mod jobs;
mod kv;

pub use invocations::{Invocation, LogLine};
pub use jobs::Job;
pub use kv::MAX_KV_KEYS;

/// The name of the functions fan-out's cursor.
pub const CONSUMER: &str = "functions";

/// A function: a name with versions, one of which may be active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// Its id.
    pub id: FunctionId,
    /// The project it belongs to.
    pub project_id: ProjectId,
    /// Its name, unique in the project.
    pub name: String,
    /// The version that runs, if any.
    pub active_version: Option<u32>,
    /// The newest version uploaded.
    pub latest_version: u32,
    /// When it was first deployed.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// One uploaded version of a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// The function.
    pub function_id: FunctionId,
    /// 1, 2, ...
    pub version: u32,
    /// SHA-256 of the component, hex.
    pub digest: String,
    /// Size of the component.
    pub size_bytes: u64,
    /// The events that run it.
    pub triggers: Triggers,
    /// When it was uploaded.
    pub created_at: DateTime<Utc>,
}

/// A version to store (already checked by the function host).
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// SHA-256 of `component`, hex.
    pub digest: String,
    /// The events that run it.
    pub triggers: Triggers,
    /// The component bytes.
    pub component: Vec<u8>,
    /// Make it the active version.
    pub activate: bool,
}

/// An active function version, as the host runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    /// The function.
    pub function_id: FunctionId,
    /// Its name.
    pub name: String,
    /// The version.
    pub version: u32,
    /// SHA-256 of its component.
    pub digest: String,
    /// The events that run it.
    pub triggers: Triggers,
}

/// The functions tables of a [`Store`].
pub struct Functions<'a>(&'a Store);

impl Store {
    /// Functions, their versions, jobs, invocations and key-value store.
    pub fn functions(&self) -> Functions<'_> {
        Functions(self)
    }
}

const COLUMNS: &str =
    "id, project_id, name, active_version, latest_version, created_at, updated_at";

fn decode(r: &AnyRow) -> Result<Function, StoreError> {
    Ok(Function {
        id: r.try_get::<String, _>("id")?.parse().map_err(corrupt)?,
        project_id: r
            .try_get::<String, _>("project_id")?
            .parse()
            .map_err(corrupt)?,
        name: r.try_get("name")?,
        active_version: r
            .try_get::<Option<i64>, _>("active_version")?
            .map(|v| v as u32),
        latest_version: r.try_get::<i64, _>("latest_version")? as u32,
        created_at: from_micros(r.try_get("created_at")?)?,
        updated_at: from_micros(r.try_get("updated_at")?)?,
    })
}

fn triggers(r: &AnyRow) -> Result<Triggers, StoreError> {
    let list: Vec<String> =
        serde_json::from_str(&r.try_get::<String, _>("events")?).map_err(corrupt)?;
    Triggers::parse(list).map_err(corrupt)
}

fn decode_version(r: &AnyRow) -> Result<Version, StoreError> {
    Ok(Version {
        function_id: r
            .try_get::<String, _>("function_id")?
            .parse()
            .map_err(corrupt)?,
        version: r.try_get::<i64, _>("version")? as u32,
        digest: r.try_get("digest")?,
        size_bytes: r.try_get::<i64, _>("size_bytes")? as u64,
        triggers: triggers(r)?,
        created_at: from_micros(r.try_get("created_at")?)?,
    })
}

fn decode_deployed(r: &AnyRow) -> Result<Deployed, StoreError> {
    Ok(Deployed {
        function_id: r.try_get::<String, _>("id")?.parse().map_err(corrupt)?,
        name: r.try_get("name")?,
        version: r.try_get::<i64, _>("version")? as u32,
        digest: r.try_get("digest")?,
        triggers: triggers(r)?,
    })
}

const DEPLOYED: &str =
    "SELECT f.id, f.name, f.from_seq, v.version, v.digest, v.events FROM functions f \
     JOIN function_versions v ON v.function_id = f.id AND v.version = f.active_version";

async fn by_name(
    conn: &mut AnyConnection,
    project: ProjectId,
    name: &str,
) -> Result<Option<Function>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM functions WHERE project_id = $1 AND name = $2 AND deleted_at IS NULL"
    ))
    .bind(project.to_string())
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(decode).transpose()
}

impl Functions<'_> {
    /// Stores a new version of `name` (creating the function on its first
    /// version) and records `function.deployed`. Returns the function and the version.
    pub async fn deploy(
        &self,
        project: ProjectId,
        name: &str,
        new: NewVersion,
        now: DateTime<Utc>,
    ) -> Result<(Function, Version), StoreError> {
        let now = stored(now);
        let at = to_micros(now);
        let mut tx = self.0.writer().begin().await?;
        // Holding the fan-out cursor while `from_seq` is read keeps the fan-out
        // from skipping events this function should run on.
        cursors::lock(&mut tx, CONSUMER, project).await?;
        let function = match by_name(&mut tx, project, name).await? {
            Some(f) => f,
            None => {
                let row = sqlx::query(&format!(
                    "INSERT INTO functions (id, project_id, name, latest_version, from_seq, created_at, updated_at) \
                     SELECT $1, $2, $3, 0, event_seq, $4, $4 FROM projects WHERE id = $2 RETURNING {COLUMNS}"
                ))
                .bind(FunctionId::new().to_string())
                .bind(project.to_string())
                .bind(name)
                .bind(at)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| corrupt(format!("function for unknown project {project}")))?;
                decode(&row)?
            }
        };
        let version = function.latest_version + 1;
        let events = serde_json::Value::from(new.triggers.to_list()).to_string();
        sqlx::query(
            "INSERT INTO function_versions (function_id, version, digest, size_bytes, events, component, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(function.id.to_string())
        .bind(i64::from(version))
        .bind(&new.digest)
        .bind(new.component.len() as i64)
        .bind(&events)
        .bind(new.component.as_slice())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(&format!(
            "UPDATE functions SET latest_version = $1, \
             active_version = CASE WHEN $2 = 1 THEN $1 ELSE active_version END, updated_at = $3 \
             WHERE id = $4 RETURNING {COLUMNS}"
        ))
        .bind(i64::from(version))
        .bind(i64::from(new.activate))
        .bind(at)
        .bind(function.id.to_string())
        .fetch_one(&mut *tx)
        .await?;
        let function = decode(&row)?;
        let event = crate::events::append(
            &mut tx,
            Event::new(
                project,
                now,
                EventPayload::FunctionDeployed {
                    function_id: function.id.to_string(),
                    version,
                },
            ),
        )
        .await?;
        tx.commit().await?;
        self.0.publish_committed(&[event]).await;
        let version = Version {
            function_id: function.id,
            version,
            digest: new.digest,
            size_bytes: new.component.len() as u64,
            triggers: new.triggers,
            created_at: now,
        };
        Ok((function, version))
    }

    /// The function `name` of `project`, unless deleted.
    pub async fn get(
        &self,
        project: ProjectId,
        name: &str,
    ) -> Result<Option<Function>, StoreError> {
        let mut conn = self.0.reader().acquire().await?;
        by_name(&mut conn, project, name).await
    }

    /// Up to `limit` functions named after `after`, by name.
    pub async fn list(
        &self,
        project: ProjectId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Function>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM functions WHERE project_id = $1 AND name > $2 AND deleted_at IS NULL \
             ORDER BY name LIMIT $3"
        ))
        .bind(project.to_string())
        .bind(after.unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Every version of `function`, newest first.
    pub async fn versions(&self, function: FunctionId) -> Result<Vec<Version>, StoreError> {
        let rows = sqlx::query(
            "SELECT function_id, version, digest, size_bytes, events, created_at FROM function_versions \
             WHERE function_id = $1 ORDER BY version DESC",
        )
        .bind(function.to_string())
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(decode_version).collect()
    }

    /// The digests of every version of every function not deleted: the
    /// compiled forms worth keeping.
    pub async fn live_digests(&self) -> Result<std::collections::HashSet<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT v.digest FROM function_versions v JOIN functions f ON f.id = v.function_id \
             WHERE f.deleted_at IS NULL",
        )
        .fetch_all(self.0.reader())
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("digest")?))
            .collect()
    }

    /// Makes `version` the one that runs (an older one is a rollback), or none
    /// when `None`; `None` back when the function, or that version, does not exist.
    pub async fn set_active(
        &self,
        project: ProjectId,
        name: &str,
        version: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<Option<Function>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE functions SET active_version = $1, updated_at = $2 \
             WHERE project_id = $3 AND name = $4 AND deleted_at IS NULL \
             AND ($1 IS NULL OR EXISTS (SELECT 1 FROM function_versions v \
                  WHERE v.function_id = functions.id AND v.version = $1)) \
             RETURNING {COLUMNS}"
        ))
        .bind(version.map(i64::from))
        .bind(to_micros(stored(now)))
        .bind(project.to_string())
        .bind(name)
        .fetch_optional(self.0.writer())
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Deletes `name`: nothing of it runs again, its pending jobs are dropped and
    /// its invocation log stays. False if there was no such function.
    pub async fn delete(
        &self,
        project: ProjectId,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.0.writer().begin().await?;
        let Some(f) = by_name(&mut tx, project, name).await? else {
            return Ok(false);
        };
        let at = to_micros(stored(now));
        sqlx::query(
            "UPDATE functions SET deleted_at = $1, active_version = NULL, updated_at = $1 WHERE id = $2",
        )
        .bind(at)
        .bind(f.id.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE function_jobs SET status = 'done', updated_at = $1 WHERE function_id = $2 AND status = 'pending'")
            .bind(at)
            .bind(f.id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The component bytes of `function`'s `version`.
    pub async fn component(
        &self,
        function: FunctionId,
        version: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let row = sqlx::query(
            "SELECT component FROM function_versions WHERE function_id = $1 AND version = $2",
        )
        .bind(function.to_string())
        .bind(i64::from(version))
        .fetch_optional(self.0.reader())
        .await?;
        Ok(row.map(|r| r.try_get("component")).transpose()?)
    }

    /// The active versions of `project` that hook `participant.joining`, by name.
    pub async fn joining_hooks(&self, project: ProjectId) -> Result<Vec<Deployed>, StoreError> {
        let rows = sqlx::query(&format!(
            "{DEPLOYED} WHERE f.project_id = $1 AND f.deleted_at IS NULL ORDER BY f.name"
        ))
        .bind(project.to_string())
        .fetch_all(self.0.reader())
        .await?;
        Ok(rows
            .iter()
            .map(decode_deployed)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|d| d.triggers.joining)
            .collect())
    }

    /// Every active version of every project (to compile ahead of use).
    pub async fn all_deployed(&self) -> Result<Vec<Deployed>, StoreError> {
        let rows = sqlx::query(&format!("{DEPLOYED} WHERE f.deleted_at IS NULL"))
            .fetch_all(self.0.reader())
            .await?;
        rows.iter().map(decode_deployed).collect()
    }

    /// The active version of function `id`, as the host runs it, unless the
    /// function is deleted or has none: one query where a job would take two.
    pub async fn active(&self, id: FunctionId) -> Result<Option<Deployed>, StoreError> {
        let row = sqlx::query(&format!(
            "{DEPLOYED} WHERE f.id = $1 AND f.deleted_at IS NULL"
        ))
        .bind(id.to_string())
        .fetch_optional(self.0.reader())
        .await?;
        row.as_ref().map(decode_deployed).transpose()
    }

    /// `version` of `function` (or its active one), as the host runs it.
    pub async fn deployed(
        &self,
        function: &Function,
        version: Option<u32>,
    ) -> Result<Option<Deployed>, StoreError> {
        let Some(version) = version.or(function.active_version) else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT f.id, f.name, v.version, v.digest, v.events FROM functions f \
             JOIN function_versions v ON v.function_id = f.id WHERE f.id = $1 AND v.version = $2",
        )
        .bind(function.id.to_string())
        .bind(i64::from(version))
        .fetch_optional(self.0.reader())
        .await?;
        row.as_ref().map(decode_deployed).transpose()
    }

    /// What `project`'s join hook does when a function fails.
    pub async fn failure_policy(&self, project: ProjectId) -> Result<FailurePolicy, StoreError> {
        let row = sqlx::query("SELECT function_failure_policy FROM projects WHERE id = $1")
            .bind(project.to_string())
            .fetch_optional(self.0.reader())
            .await?;
        let Some(row) = row else {
            return Ok(FailurePolicy::default());
        };
        let s: String = row.try_get("function_failure_policy")?;
        FailurePolicy::parse(&s).ok_or_else(|| corrupt(format!("failure policy `{s}`")))
    }

    /// Sets what `project`'s join hook does when a function fails.
    pub async fn set_failure_policy(
        &self,
        project: ProjectId,
        policy: FailurePolicy,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE projects SET function_failure_policy = $1 WHERE id = $2")
            .bind(policy.as_str())
            .bind(project.to_string())
            .execute(self.0.writer())
            .await?;
        Ok(())
    }
}
