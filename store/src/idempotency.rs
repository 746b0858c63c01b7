//! Idempotency records: the first answer to a `POST` with an `Idempotency-Key`,
//! kept so a retried request gets the same answer instead of acting twice.

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;
use switchboard_core::ProjectId;

use crate::time::to_micros;
use crate::{Store, StoreError};

/// How long a key is remembered.
pub const RETENTION_HOURS: i64 = 24;
/// How long a reservation may stay without an answer before it counts as
/// abandoned (its server died between acting and storing the answer) and a
/// retry may proceed. No request of the API takes nearly this long.
pub const IN_FLIGHT_LEASE_SECONDS: i64 = 120;

/// What to do with a request that carries an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    /// First time this key is seen: handle the request, then [`Idempotency::complete`].
    Proceed,
    /// Seen before with the same request: send this stored answer again.
    Replay {
        /// HTTP status of the first answer.
        status: u16,
        /// Body of the first answer.
        body: Vec<u8>,
    },
    /// The first request with this key is still being handled.
    InFlight,
    /// The key was used before for a different request.
    Mismatch,
}

/// The idempotency_keys table.
pub struct Idempotency<'a>(&'a Store);

impl Store {
    /// The idempotency_keys table.
    pub fn idempotency(&self) -> Idempotency<'_> {
        Idempotency(self)
    }
}

impl Idempotency<'_> {
    /// Claims `key` for a request whose method, path and body hash to `request_hash`.
    pub async fn reserve(
        &self,
        project: ProjectId,
        key: &str,
        request_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Reservation, StoreError> {
        let expired = to_micros(now - Duration::hours(RETENTION_HOURS));
        let abandoned = to_micros(now - Duration::seconds(IN_FLIGHT_LEASE_SECONDS));
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE project_id = $1 AND key = $2 \
             AND (created_at < $3 OR (status IS NULL AND created_at < $4))",
        )
        .bind(project.to_string())
        .bind(key)
        .bind(expired)
        .bind(abandoned)
        .execute(self.0.writer())
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (project_id, key, request_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (project_id, key) DO NOTHING",
        )
        .bind(project.to_string())
        .bind(key)
        .bind(request_hash.to_vec())
        .bind(to_micros(now))
        .execute(self.0.writer())
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Reservation::Proceed);
        }
        let row = sqlx::query("SELECT request_hash, status, response FROM idempotency_keys WHERE project_id = $1 AND key = $2")
            .bind(project.to_string())
            .bind(key)
            .fetch_optional(self.0.reader())
            .await?;
        // Gone between the insert and the select: it expired or its request failed; try once more.
        let Some(row) = row else {
            return Ok(Reservation::InFlight);
        };
        let stored_hash: Vec<u8> = row.try_get("request_hash")?;
        if stored_hash != request_hash {
            return Ok(Reservation::Mismatch);
        }
        match row.try_get::<Option<i64>, _>("status")? {
            None => Ok(Reservation::InFlight),
            Some(status) => {
                let stored = row
                    .try_get::<Option<Vec<u8>>, _>("response")?
                    .unwrap_or_default();
                // A record written before bodies were sealed holds it as it was sent.
                let body = self.0.master_key.open(&stored).unwrap_or(stored);
                Ok(Reservation::Replay {
                    status: u16::try_from(status)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?,
                    body,
                })
            }
        }
    }

    /// Stores the answer to the request that reserved `key`, sealed under the
    /// master key: answers to creating an API key or a webhook carry its secret.
    pub async fn complete(
        &self,
        project: ProjectId,
        key: &str,
        status: u16,
        body: &[u8],
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE idempotency_keys SET status = $1, response = $2 WHERE project_id = $3 AND key = $4")
            .bind(i64::from(status))
            .bind(self.0.master_key.seal(body))
            .bind(project.to_string())
            .bind(key)
            .execute(self.0.writer())
            .await?;
        Ok(())
    }

    /// Forgets `key` after its request failed in a way worth retrying.
    pub async fn release(&self, project: ProjectId, key: &str) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE project_id = $1 AND key = $2 AND status IS NULL",
        )
        .bind(project.to_string())
        .bind(key)
        .execute(self.0.writer())
        .await?;
        Ok(())
    }
}
