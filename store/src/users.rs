//! Dashboard users, the projects they belong to, and their signed-in
//! sessions. Passwords arrive here already hashed (argon2id, by the
//! dashboard); session tokens arrive as their SHA-256, so a database leak
//! signs no one in.

use chrono::{DateTime, Utc};
use sqlx::Row;
use switchboard_core::{ProjectId, UserId};

use crate::projects::Project;
use crate::time::{from_micros, stored, to_micros};
use crate::{Store, StoreError};

/// A dashboard user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// The address it signs in with, lower-cased.
    pub email: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A signed-in browser's session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardSession {
    /// Whose.
    pub user: User,
    /// The token every form of this session sends back.
    pub csrf_token: String,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
}

/// The users, project_members and dashboard_sessions tables.
pub struct Users<'a>(&'a Store);

impl Store {
    /// Dashboard users and their sessions.
    pub fn users(&self) -> Users<'_> {
        Users(self)
    }
}

fn parse<T: std::str::FromStr>(s: String) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e: T::Err| StoreError::Corrupt(e.to_string()))
}

impl Users<'_> {
    /// Creates a user with `email` (lower-cased) and an argon2 `password_hash`;
    /// [`StoreError::Conflict`] if the address is taken.
    pub async fn create(
        &self,
        email: &str,
        password_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<User, StoreError> {
        let user = User {
            id: UserId::new(),
            email: email.trim().to_lowercase(),
            created_at: stored(now),
        };
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(user.id.to_string())
        .bind(&user.email)
        .bind(password_hash)
        .bind(to_micros(user.created_at))
        .execute(self.0.writer())
        .await
        .map_err(|e| {
            if StoreError::is_unique_violation(&e) {
                StoreError::Conflict(format!("a user with email `{}` already exists", user.email))
            } else {
                e.into()
            }
        })?;
        Ok(user)
    }

    /// Replaces a user's password hash (and signs them out everywhere).
    pub async fn set_password(&self, id: UserId, password_hash: &str) -> Result<bool, StoreError> {
        let mut tx = self.0.writer().begin().await?;
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM dashboard_sessions WHERE user_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// The user with `email` and their password hash, to check a sign-in against.
    pub async fn by_email(&self, email: &str) -> Result<Option<(User, String)>, StoreError> {
        let row =
            sqlx::query("SELECT id, email, password_hash, created_at FROM users WHERE email = $1")
                .bind(email.trim().to_lowercase())
                .fetch_optional(self.0.reader())
                .await?;
        row.map(|r| {
            Ok((
                User {
                    id: parse(r.try_get("id")?)?,
                    email: r.try_get("email")?,
                    created_at: from_micros(r.try_get("created_at")?)?,
                },
                r.try_get("password_hash")?,
            ))
        })
        .transpose()
    }

    /// Makes `user` a member of `project` (again is fine).
    pub async fn add_to_project(
        &self,
        user: UserId,
        project: ProjectId,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO project_members (user_id, project_id, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, project_id) DO NOTHING",
        )
        .bind(user.to_string())
        .bind(project.to_string())
        .bind(to_micros(stored(now)))
        .execute(self.0.writer())
        .await?;
        Ok(())
    }

    /// The projects `user` belongs to, oldest first.
    pub async fn projects(&self, user: UserId) -> Result<Vec<Project>, StoreError> {
        let rows = sqlx::query(
            "SELECT p.id, p.name, p.created_at FROM projects p \
             JOIN project_members m ON m.project_id = p.id \
             WHERE m.user_id = $1 ORDER BY p.created_at, p.id",
        )
        .bind(user.to_string())
        .fetch_all(self.0.reader())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(Project {
                    id: parse(r.try_get("id")?)?,
                    name: r.try_get("name")?,
                    created_at: from_micros(r.try_get("created_at")?)?,
                })
            })
            .collect()
    }

    /// Whether `user` belongs to `project`.
    pub async fn is_member(&self, user: UserId, project: ProjectId) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM project_members WHERE user_id = $1 AND project_id = $2",
        )
        .bind(user.to_string())
        .bind(project.to_string())
        .fetch_optional(self.0.reader())
        .await?;
        Ok(row.is_some())
    }

    /// Starts a session for `user`, known by the SHA-256 of its cookie token.
    pub async fn start_session(
        &self,
        user: UserId,
        token_hash: &[u8],
        csrf_token: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO dashboard_sessions (token_hash, user_id, csrf_token, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token_hash)
        .bind(user.to_string())
        .bind(csrf_token)
        .bind(to_micros(stored(now)))
        .bind(to_micros(stored(expires_at)))
        .execute(self.0.writer())
        .await?;
        Ok(())
    }

    /// The live session whose token hashes to `token_hash` at `now`.
    pub async fn session(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Option<DashboardSession>, StoreError> {
        let row = sqlx::query(
            "SELECT u.id, u.email, u.created_at, s.csrf_token, s.expires_at \
             FROM dashboard_sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND s.expires_at > $2",
        )
        .bind(token_hash)
        .bind(to_micros(now))
        .fetch_optional(self.0.reader())
        .await?;
        row.map(|r| {
            Ok(DashboardSession {
                user: User {
                    id: parse(r.try_get("id")?)?,
                    email: r.try_get("email")?,
                    created_at: from_micros(r.try_get("created_at")?)?,
                },
                csrf_token: r.try_get("csrf_token")?,
                expires_at: from_micros(r.try_get("expires_at")?)?,
            })
        })
        .transpose()
    }

    /// Ends a session (signing out); ended sessions past their expiry are swept too.
    pub async fn end_session(
        &self,
        token_hash: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM dashboard_sessions WHERE token_hash = $1 OR expires_at <= $2")
            .bind(token_hash)
            .bind(to_micros(now))
            .execute(self.0.writer())
            .await?;
        Ok(())
    }
}
