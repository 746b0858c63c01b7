//! Webhook endpoints: where a project's events are delivered, and the secrets
//! that sign them.
//!
//! Signing secrets are sealed with the master key like API key secrets: the
//! sender needs them in the clear to compute HMACs. Deleting an endpoint only
//! marks it deleted, so its delivery log stays readable.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use switchboard_core::webhook::EventTypes;
use switchboard_core::{ProjectId, WebhookId};

use crate::error::corrupt;
use crate::time::{from_micros, stored, to_micros};
use crate::{Store, StoreError};

/// How long a rotated-out secret keeps signing beside the new one.
pub const PREVIOUS_SECRET_GRACE: Duration = Duration::hours(24);

/// A webhook endpoint as the API shows it (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its id.
    pub id: WebhookId,
    /// The project it belongs to.
    pub project_id: ProjectId,
    /// Where deliveries are POSTed.
    pub url: String,
    /// What the owner says it is for.
    pub description: String,
    /// Which event types it receives.
    pub events: EventTypes,
    /// Whether deliveries are being made.
    pub enabled: bool,
    /// Why the server disabled it, if it did.
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed, if the last one did.
    pub failing_since: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a new endpoint is made with (already validated).
#[derive(Debug, Clone)]
pub struct NewWebhook {
    /// Where to deliver.
    pub url: String,
    /// Free text.
    pub description: String,
    /// Event types.
    pub events: EventTypes,
    /// Start enabled.
    pub enabled: bool,
}

/// A change to an endpoint; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    /// New URL.
    pub url: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New event types.
    pub events: Option<EventTypes>,
    /// Enable or disable; enabling clears the failure record.
    pub enabled: Option<bool>,
}

/// A fresh Standard Webhooks secret: `whsec_` and 32 random bytes in base64.
pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("whsec_{}", B64.encode(bytes))
}

/// The webhooks table.
pub struct Webhooks<'a>(&'a Store);

impl Store {
    /// The webhooks table.
    pub fn webhooks(&self) -> Webhooks<'_> {
        Webhooks(self)
    }
}

const COLUMNS: &str = "id, project_id, url, description, events, enabled, disabled_reason, \
                       failing_since, created_at, updated_at";

pub(crate) fn decode(r: &AnyRow) -> Result<Webhook, StoreError> {
    let events: Vec<String> =
        serde_json::from_str(&r.try_get::<String, _>("events")?).map_err(corrupt)?;
    Ok(Webhook {
        id: r.try_get::<String, _>("id")?.parse().map_err(corrupt)?,
        project_id: r
            .try_get::<String, _>("project_id")?
            .parse()
            .map_err(corrupt)?,
        url: r.try_get("url")?,
        description: r.try_get("description")?,
        events: EventTypes::new(events).map_err(corrupt)?,
        enabled: r.try_get::<i64, _>("enabled")? != 0,
        disabled_reason: r.try_get("disabled_reason")?,
        failing_since: r
            .try_get::<Option<i64>, _>("failing_since")?
            .map(from_micros)
            .transpose()?,
        created_at: from_micros(r.try_get("created_at")?)?,
        updated_at: from_micros(r.try_get("updated_at")?)?,
    })
}

fn patterns_json(events: &EventTypes) -> String {
    serde_json::Value::from(events.patterns().to_vec()).to_string()
}

/// The endpoints of `project` that take new deliveries, with the sequence
/// number their deliveries start after, inside the caller's transaction.
pub(crate) async fn active(
    conn: &mut AnyConnection,
    project: ProjectId,
) -> Result<Vec<(Webhook, i64)>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS}, from_seq FROM webhooks \
         WHERE project_id = $1 AND enabled = 1 AND deleted_at IS NULL ORDER BY id"
    ))
    .bind(project.to_string())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| Ok((decode(r)?, r.try_get::<i64, _>("from_seq")?)))
        .collect()
}

/// Whether `project` has an endpoint taking deliveries.
pub(crate) async fn any_active(pool: &AnyPool, project: ProjectId) -> Result<bool, StoreError> {
    let row = sqlx::query(
        "SELECT 1 AS one FROM webhooks WHERE project_id = $1 AND enabled = 1 AND deleted_at IS NULL LIMIT 1",
    )
    .bind(project.to_string())
    .fetch_optional(pool)
    .await?;
    Ok(row.is_some())
}

impl Webhooks<'_> {
    /// How many endpoints the project has (deleted ones aside).
    pub async fn count(&self, project: ProjectId) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM webhooks WHERE project_id = $1 AND deleted_at IS NULL",
        )
        .bind(project.to_string())
        .fetch_one(self.0.reader())
        .await?;
        u64::try_from(n).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Creates an endpoint; returns it with its signing secret.
    pub async fn create(
        &self,
        project: ProjectId,
        new: NewWebhook,
        now: DateTime<Utc>,
    ) -> Result<(Webhook, String), StoreError> {
        let now = stored(now);
        let id = WebhookId::new();
        let secret = generate_secret();
        let mut tx = self.0.writer().begin().await?;
        // Holding the fan-out cursor while `from_seq` is read keeps the fan-out
        // from skipping, as endpoint-less, events this endpoint should get.
        crate::cursors::lock(&mut tx, crate::deliveries::CONSUMER, project).await?;
        let row = sqlx::query(&format!(
            "INSERT INTO webhooks (id, project_id, url, description, events, enabled, sealed_secret, from_seq, created_at, updated_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, event_seq, $8, $8 FROM projects WHERE id = $2 \
             RETURNING {COLUMNS}"
        ))
        .bind(id.to_string())
        .bind(project.to_string())
        .bind(&new.url)
        .bind(&new.description)
        .bind(patterns_json(&new.events))
        .bind(i64::from(new.enabled))
        .bind(self.0.master_key.seal(secret.as_bytes()))
        .bind(to_micros(now))
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| corrupt(format!("webhook for unknown project {project}")))?;
        tx.commit().await?;
        Ok((decode(&row)?, secret))
    }

    /// The endpoint `id` of `project`, unless deleted.
    pub async fn get(
        &self,
        project: ProjectId,
        id: WebhookId,
    ) -> Result<Option<Webhook>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhooks WHERE project_id = $1 AND id = $2 AND deleted_at IS NULL"
        ))
        .bind(project.to_string())
        .bind(id.to_string())
        .fetch_optional(self.0.reader())
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Up to `limit` endpoints created after `after`, oldest first.
    pub async fn list(
        &self,
        project: ProjectId,
        after: Option<WebhookId>,
        limit: u32,
    ) -> Result<Vec<Webhook>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhooks WHERE project_id = $1 AND id > $2 AND deleted_at IS NULL \
             ORDER BY id LIMIT $3"
        ))
        .bind(project.to_string())
        .bind(after.map(|s| s.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(self.0.reader())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Applies `patch`; `None` if there is no such endpoint.
    pub async fn update(
        &self,
        project: ProjectId,
        id: WebhookId,
        patch: WebhookPatch,
        now: DateTime<Utc>,
    ) -> Result<Option<Webhook>, StoreError> {
        // Re-enabling starts a fresh failure record; the server's reason no longer holds.
        let reenable = patch.enabled == Some(true);
        let row = sqlx::query(&format!(
            "UPDATE webhooks SET url = COALESCE($1, url), description = COALESCE($2, description), \
             events = COALESCE($3, events), enabled = COALESCE($4, enabled), \
             disabled_reason = CASE WHEN $5 = 1 THEN NULL ELSE disabled_reason END, \
             failing_since = CASE WHEN $5 = 1 THEN NULL ELSE failing_since END, updated_at = $6 \
             WHERE project_id = $7 AND id = $8 AND deleted_at IS NULL RETURNING {COLUMNS}"
        ))
        .bind(patch.url)
        .bind(patch.description)
        .bind(patch.events.as_ref().map(patterns_json))
        .bind(patch.enabled.map(i64::from))
        .bind(i64::from(reenable))
        .bind(to_micros(stored(now)))
        .bind(project.to_string())
        .bind(id.to_string())
        .fetch_optional(self.0.writer())
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Deletes the endpoint: no more deliveries, its log stays. False if there was none.
    pub async fn delete(
        &self,
        project: ProjectId,
        id: WebhookId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE webhooks SET deleted_at = $1, enabled = 0 WHERE project_id = $2 AND id = $3 AND deleted_at IS NULL",
        )
        .bind(to_micros(stored(now)))
        .bind(project.to_string())
        .bind(id.to_string())
        .execute(self.0.writer())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the endpoint a new secret; the old one keeps signing for
    /// [`PREVIOUS_SECRET_GRACE`]. Returns the new secret, `None` if there is no such endpoint.
    pub async fn rotate_secret(
        &self,
        project: ProjectId,
        id: WebhookId,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        let secret = generate_secret();
        let done = sqlx::query(
            "UPDATE webhooks SET previous_sealed_secret = sealed_secret, previous_expires_at = $1, \
             sealed_secret = $2, updated_at = $3 WHERE project_id = $4 AND id = $5 AND deleted_at IS NULL",
        )
        .bind(to_micros(now + PREVIOUS_SECRET_GRACE))
        .bind(self.0.master_key.seal(secret.as_bytes()))
        .bind(to_micros(stored(now)))
        .bind(project.to_string())
        .bind(id.to_string())
        .execute(self.0.writer())
        .await?;
        Ok((done.rows_affected() == 1).then_some(secret))
    }
}

/// The signing secrets in `row` (the endpoint's `sealed_secret`,
/// `previous_sealed_secret` and `previous_expires_at`): the current one, then
/// the previous one while it is still honoured at `now`.
pub(crate) fn signing_secrets(
    key: &crate::MasterKey,
    row: &sqlx::any::AnyRow,
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let open = |sealed: Vec<u8>| -> Result<String, StoreError> {
        String::from_utf8(key.open(&sealed)?).map_err(corrupt)
    };
    let mut secrets = vec![open(row.try_get("sealed_secret")?)?];
    let previous: Option<Vec<u8>> = row.try_get("previous_sealed_secret")?;
    let until: Option<i64> = row.try_get("previous_expires_at")?;
    if let (Some(previous), Some(until)) = (previous, until) {
        if to_micros(now) < until {
            secrets.push(open(previous)?);
        }
    }
    Ok(secrets)
}
