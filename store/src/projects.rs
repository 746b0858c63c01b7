//! Projects: the tenants.

use chrono::{DateTime, Utc};
use sqlx::Row;
use switchboard_core::node::Region;
use switchboard_core::ProjectId;

use crate::error::corrupt;

use crate::time::{from_micros, stored, to_micros};

/// Why a project is suspended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspension {
    /// A short code: `payment_failed`, `subscription_canceled`, `operator`.
    pub reason: String,
    /// Since when.
    pub since: DateTime<Utc>,
}
use crate::{Store, StoreError};

/// A project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Its id.
    pub id: ProjectId,
    /// A human name.
    pub name: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// The projects table.
pub struct Projects<'a>(&'a Store);

impl Store {
    /// The projects table.
    pub fn projects(&self) -> Projects<'_> {
        Projects(self)
    }
}

impl Projects<'_> {
    /// Creates a project.
    pub async fn create(&self, name: &str, now: DateTime<Utc>) -> Result<Project, StoreError> {
        let now = stored(now);
        let project = Project {
            id: ProjectId::new(),
            name: name.to_owned(),
            created_at: now,
        };
        sqlx::query("INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(project.id.to_string())
            .bind(&project.name)
            .bind(to_micros(now))
            .execute(self.0.writer())
            .await?;
        Ok(project)
    }

    /// The project with `id`.
    pub async fn get(&self, id: ProjectId) -> Result<Option<Project>, StoreError> {
        let row = sqlx::query("SELECT name, created_at FROM projects WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(self.0.reader())
            .await?;
        row.map(|r| {
            Ok(Project {
                id,
                name: r.try_get("name")?,
                created_at: from_micros(r.try_get("created_at")?)?,
            })
        })
        .transpose()
    }

    /// Why `project` is suspended, if it is.
    pub async fn suspension(&self, project: ProjectId) -> Result<Option<Suspension>, StoreError> {
        let row = sqlx::query("SELECT suspended_reason, suspended_at FROM projects WHERE id = $1")
            .bind(project.to_string())
            .fetch_optional(self.0.reader())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let reason: Option<String> = row.try_get("suspended_reason")?;
        let since: Option<i64> = row.try_get("suspended_at")?;
        match (reason, since) {
            (Some(reason), Some(since)) => Ok(Some(Suspension {
                reason,
                since: from_micros(since)?,
            })),
            _ => Ok(None),
        }
    }

    /// Suspends `project` for `reason` (`None`: lifts its suspension). False if there is no such project.
    pub async fn set_suspension(
        &self,
        project: ProjectId,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE projects SET suspended_reason = $1, suspended_at = $2 WHERE id = $3",
        )
        .bind(reason)
        .bind(reason.map(|_| to_micros(now)))
        .bind(project.to_string())
        .execute(self.0.writer())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// The regions `project`'s rooms may be hosted in; `None` allows every region.
    pub async fn regions(&self, project: ProjectId) -> Result<Option<Vec<Region>>, StoreError> {
        let row = sqlx::query("SELECT regions FROM projects WHERE id = $1")
            .bind(project.to_string())
            .fetch_optional(self.0.reader())
            .await?;
        let Some(list) = row
            .map(|r| r.try_get::<Option<String>, _>("regions"))
            .transpose()?
            .flatten()
        else {
            return Ok(None);
        };
        list.split(',')
            .map(|r| Region::new(r).map_err(corrupt))
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// Restricts `project`'s rooms to `regions` (empty: lifts the
    /// restriction). False if there is no such project.
    pub async fn set_regions(
        &self,
        project: ProjectId,
        regions: &[Region],
    ) -> Result<bool, StoreError> {
        let list = (!regions.is_empty()).then(|| {
            regions
                .iter()
                .map(Region::as_str)
                .collect::<Vec<_>>()
                .join(",")
        });
        let n = sqlx::query("UPDATE projects SET regions = $1 WHERE id = $2")
            .bind(list)
            .bind(project.to_string())
            .execute(self.0.writer())
            .await?
            .rows_affected();
        Ok(n == 1)
    }
}
