//! The per-project key-value store functions keep state in.

use chrono::{DateTime, Utc};
use sqlx::Row;
use switchboard_core::ProjectId;

use super::Functions;
use crate::time::to_micros;
use crate::StoreError;

/// Most keys one project may keep in its key-value store.
pub const MAX_KV_KEYS: i64 = 10_000;

impl Functions<'_> {
    /// The value under `key` in `project`'s key-value store.
    pub async fn kv_get(
        &self,
        project: ProjectId,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT value FROM function_kv WHERE project_id = $1 AND key = $2")
            .bind(project.to_string())
            .bind(key)
            .fetch_optional(self.0.reader())
            .await?;
        Ok(row.map(|r| r.try_get("value")).transpose()?)
    }

    /// Stores `value` under `key`; false when the key is new and the project
    /// already has [`MAX_KV_KEYS`] keys.
    pub async fn kv_set(
        &self,
        project: ProjectId,
        key: &str,
        value: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO function_kv (project_id, key, value, updated_at) \
             SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM function_kv WHERE project_id = $1 AND key = $2) \
             OR (SELECT COUNT(*) FROM function_kv WHERE project_id = $1) < $5 \
             ON CONFLICT (project_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(project.to_string())
        .bind(key)
        .bind(value)
        .bind(to_micros(now))
        .bind(MAX_KV_KEYS)
        .execute(self.0.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes `key` (a missing key is fine).
    pub async fn kv_delete(&self, project: ProjectId, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM function_kv WHERE project_id = $1 AND key = $2")
            .bind(project.to_string())
            .bind(key)
            .execute(self.0.writer())
            .await?;
        Ok(())
    }
}
