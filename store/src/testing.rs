//! Throw-away databases for tests, on either backend.
//!
//! PostgreSQL tests use the server at `SWITCHBOARD_TEST_POSTGRES_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`) and create a fresh
//! database per test. A missing server is an error, never a silent skip.

use std::path::PathBuf;

/// Defines one `#[tokio::test]` per backend for each listed `async fn(Backend)`,
/// in modules `sqlite` and `postgres`, so every storage-touching test runs on both.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
              async fn $name() { super::$name($crate::Backend::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
              async fn $name() { super::$name($crate::Backend::Postgres).await })*
        }
    };
}

use sqlx::{Connection, Executor, PgConnection};

use crate::{Backend, MasterKey, Store, StoreError};

/// Default admin URL of the test PostgreSQL server.
pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const PREFIX: &str = "sbtest_";

/// A database that exists for one test.
pub struct TestDb {
    /// URL to connect to it.
    pub url: String,
    /// Which backend it is on.
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A fresh database on `backend`.
    pub async fn new(backend: Backend) -> Result<Self, StoreError> {
        match backend {
            Backend::Sqlite => Self::sqlite(),
            Backend::Postgres => Self::postgres().await,
        }
    }

    /// A fresh SQLite file in a temporary directory.
    pub fn sqlite() -> Result<Self, StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let path: PathBuf = dir.path().join("switchboard.db");
        Ok(Self {
            url: format!("sqlite://{}", path.display()),
            backend: Backend::Sqlite,
            _dir: Some(dir),
        })
    }

    /// A fresh database on the test PostgreSQL server.
    pub async fn postgres() -> Result<Self, StoreError> {
        let admin = std::env::var("SWITCHBOARD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.into());
        let mut conn = PgConnection::connect(&admin).await.map_err(|e| {
            StoreError::Corrupt(format!(
                "PostgreSQL tests need a server at {admin} (set SWITCHBOARD_TEST_POSTGRES_URL): {e}"
            ))
        })?;
        drop_stale(&mut conn).await;
        let name = format!("{PREFIX}{}", ulid::Ulid::new().to_string().to_lowercase());
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Ok(Self {
            url: format!("{base}/{name}"),
            backend: Backend::Postgres,
            _dir: None,
        })
    }

    /// Another handle on this PostgreSQL database, for a second process of
    /// the same deployment; `None` on SQLite, which one process owns.
    pub fn shared(&self) -> Option<TestDb> {
        (self.backend == Backend::Postgres).then(|| TestDb {
            url: self.url.clone(),
            backend: self.backend,
            _dir: None,
        })
    }

    /// A migrated store on this database.
    pub async fn store(&self) -> Result<Store, StoreError> {
        let (key, _) = MasterKey::generate();
        let store = Store::connect(&self.url, key).await?;
        store.migrate().await?;
        Ok(store)
    }
}

/// Drops test databases left by runs more than an hour ago (a panicking test cannot clean up).
async fn drop_stale(conn: &mut PgConnection) {
    let Ok(names) = sqlx::query_scalar::<_, String>(
        "SELECT datname FROM pg_database WHERE datname LIKE 'sbtest_%'",
    )
    .fetch_all(&mut *conn)
    .await
    else {
        return;
    };
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for name in names {
        let Ok(id) = ulid::Ulid::from_string(&name[PREFIX.len()..].to_uppercase()) else {
            continue;
        };
        if id.datetime() < hour_ago {
            let _ = conn
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await;
        }
    }
}
