//! API keys: how app backends authenticate, and what access tokens are signed with.

use chrono::{DateTime, Utc};
use rand::distributions::Alphanumeric;
use rand::Rng;
use sha2::{Digest, Sha256};
use sqlx::Row;
use subtle::ConstantTimeEq;
use switchboard_core::token::{self, Claims, TokenError};
use switchboard_core::ProjectId;

use crate::time::{from_micros, stored, to_micros};
use crate::{Store, StoreError};

/// Shortest secret accepted when the caller chooses one (outside dev mode).
pub const MIN_SECRET_LEN: usize = 32;

/// Why an access token is refused.
#[derive(Debug, thiserror::Error)]
pub enum AccessTokenError {
    /// Malformed, badly signed, expired or not yet valid.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Signed with a key that does not exist or was revoked.
    #[error("the access token was signed with unknown or revoked key `{0}`")]
    UnknownKey(String),
    /// The keys could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An API key as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// The key id, public: it names the key in tokens (`kid`) and Basic auth.
    pub id: String,
    /// The project the key belongs to.
    pub project_id: ProjectId,
    /// What the owner says it is for.
    pub description: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A key that authenticated a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedKey {
    /// The key id.
    pub key_id: String,
    /// Its project.
    pub project_id: ProjectId,
}

/// A fresh random key id, `ak_` and 16 alphanumerics.
pub fn generate_key_id() -> String {
    format!("ak_{}", random_alphanumeric(16))
}

/// A fresh random secret, `sk_` and 40 alphanumerics (about 238 bits).
pub fn generate_secret() -> String {
    format!("sk_{}", random_alphanumeric(40))
}

fn random_alphanumeric(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// The api_keys table.
pub struct ApiKeys<'a>(&'a Store);

impl Store {
    /// The api_keys table.
    pub fn api_keys(&self) -> ApiKeys<'_> {
        ApiKeys(self)
    }
}

impl ApiKeys<'_> {
    /// Stores a key with the given id and secret for `project`.
    pub async fn insert(
        &self,
        project: ProjectId,
        id: &str,
        secret: &str,
        description: &str,
        now: DateTime<Utc>,
    ) -> Result<ApiKey, StoreError> {
        let now = stored(now);
        sqlx::query(
            "INSERT INTO api_keys (id, project_id, secret_hash, sealed_secret, description, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(project.to_string())
        .bind(hash(secret))
        .bind(self.0.master_key.seal(secret.as_bytes()))
        .bind(description)
        .bind(to_micros(now))
        .execute(self.0.writer())
        .await
        .map_err(|e| {
            if StoreError::is_unique_violation(&e) {
                StoreError::Conflict(format!("an API key with id `{id}` or the same secret already exists"))
            } else {
                e.into()
            }
        })?;
        Ok(ApiKey {
            id: id.to_owned(),
            project_id: project,
            description: description.to_owned(),
            created_at: now,
            revoked_at: None,
        })
    }

    /// Creates a key with a random id and secret; the secret is returned once.
    pub async fn create(
        &self,
        project: ProjectId,
        description: &str,
        now: DateTime<Utc>,
    ) -> Result<(ApiKey, String), StoreError> {
        let secret = generate_secret();
        let key = self
            .insert(project, &generate_key_id(), &secret, description, now)
            .await?;
        Ok((key, secret))
    }

    /// Replaces the secret of key `id` (the dev key is re-seeded on each start this way).
    pub async fn reset_secret(&self, id: &str, secret: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE api_keys SET secret_hash = $1, sealed_secret = $2, revoked_at = NULL WHERE id = $3")
            .bind(hash(secret))
            .bind(self.0.master_key.seal(secret.as_bytes()))
            .bind(id)
            .execute(self.0.writer())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Revokes key `id` whatever project it is in, even if it is the last; false if it was not active.
    pub async fn force_revoke(&self, id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(to_micros(now))
                .bind(id)
                .execute(self.0.writer())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The active key whose secret is `secret`.
    pub async fn authenticate_secret(
        &self,
        secret: &str,
    ) -> Result<Option<AuthenticatedKey>, StoreError> {
        let row = sqlx::query(
            "SELECT id, project_id FROM api_keys WHERE secret_hash = $1 AND revoked_at IS NULL",
        )
        .bind(hash(secret))
        .fetch_optional(self.0.reader())
        .await?;
        row.map(|r| {
            Ok(AuthenticatedKey {
                key_id: r.try_get("id")?,
                project_id: parse_project(r.try_get("project_id")?)?,
            })
        })
        .transpose()
    }

    /// The active key `id`, if `secret` is its secret.
    pub async fn authenticate_pair(
        &self,
        id: &str,
        secret: &str,
    ) -> Result<Option<AuthenticatedKey>, StoreError> {
        let row = sqlx::query(
            "SELECT project_id, secret_hash FROM api_keys WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .fetch_optional(self.0.reader())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let stored: Vec<u8> = r.try_get("secret_hash")?;
        if !bool::from(stored.ct_eq(&hash(secret))) {
            return Ok(None);
        }
        Ok(Some(AuthenticatedKey {
            key_id: id.to_owned(),
            project_id: parse_project(r.try_get("project_id")?)?,
        }))
    }

    /// The project and secret of active key `id`, to verify tokens it signed.
    pub async fn signing_secret(
        &self,
        id: &str,
    ) -> Result<Option<(ProjectId, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT project_id, sealed_secret FROM api_keys WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .fetch_optional(self.0.reader())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let sealed: Vec<u8> = r.try_get("sealed_secret")?;
        let secret = String::from_utf8(self.0.master_key.open(&sealed)?)
            .map_err(|_| StoreError::Corrupt(format!("the secret of key `{id}` is not UTF-8")))?;
        Ok(Some((parse_project(r.try_get("project_id")?)?, secret)))
    }

    /// Checks an access token against the active key it names: its project
    /// and claims, or why it is refused.
    pub async fn verify_access_token(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(ProjectId, Claims), AccessTokenError> {
        let kid = token::key_id(token)?;
        let (project, secret) = self
            .signing_secret(&kid)
            .await?
            .ok_or(AccessTokenError::UnknownKey(kid))?;
        Ok((project, token::verify(token, &secret, now)?))
    }

    /// All keys of `project`, newest first, revoked ones included.
    pub async fn list(&self, project: ProjectId) -> Result<Vec<ApiKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, description, created_at, revoked_at FROM api_keys WHERE project_id = $1 ORDER BY created_at DESC, id",
        )
        .bind(project.to_string())
        .fetch_all(self.0.reader())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(ApiKey {
                    id: r.try_get("id")?,
                    project_id: project,
                    description: r.try_get("description")?,
                    created_at: from_micros(r.try_get("created_at")?)?,
                    revoked_at: r
                        .try_get::<Option<i64>, _>("revoked_at")?
                        .map(from_micros)
                        .transpose()?,
                })
            })
            .collect()
    }

    /// Revokes key `id` of `project`; false if no such active key.
    ///
    /// The last active key of a project cannot be revoked: that would lock its
    /// owner out of the API ([`StoreError::Conflict`]).
    pub async fn revoke(
        &self,
        project: ProjectId,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.0.writer().begin().await?;
        let done = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE project_id = $2 AND id = $3 AND revoked_at IS NULL")
            .bind(to_micros(now))
            .bind(project.to_string())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let left: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM api_keys WHERE project_id = $1 AND revoked_at IS NULL",
        )
        .bind(project.to_string())
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if left == 0 {
            tx.rollback().await?;
            return Err(StoreError::Conflict(format!(
                "`{id}` is the project's last active API key; create another before revoking it"
            )));
        }
        tx.commit().await?;
        Ok(true)
    }
}

pub(crate) fn parse_project(s: String) -> Result<ProjectId, StoreError> {
    s.parse().map_err(|e| StoreError::Corrupt(format!("{e}")))
}
