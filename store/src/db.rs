//! Opening the database and running migrations.

use std::sync::{Arc, Once};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, Executor};
use switchboard_core::bus::{Bus, InProcessBus};

use crate::{MasterKey, StoreError};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// Pool options for SQLite connections: WAL so readers never block the writer.
fn sqlite_pool(options: AnyPoolOptions, size: u32) -> AnyPoolOptions {
    options.max_connections(size).after_connect(|conn, _| {
        Box::pin(async move {
            conn.execute(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                 PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
            )
            .await?;
            Ok(())
        })
    })
}

/// Which database engine a [`Store`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The backend a database URL names.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl(url.chars().take(80).collect()))
        }
    }
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// Reads go here: several connections.
    reader: AnyPool,
    /// Writes go here. On SQLite this is a single connection, so writers queue
    /// in the pool instead of spinning in SQLite's busy handler; on PostgreSQL
    /// it is the same pool as `reader`.
    writer: AnyPool,
    backend: Backend,
    pub(crate) master_key: Arc<MasterKey>,
    pub(crate) bus: Arc<dyn Bus>,
    /// Events waiting to be appended together.
    pub(crate) appends: Arc<crate::group::Queue<switchboard_core::Event, switchboard_core::Event>>,
    /// Successful webhook attempts waiting to be recorded together.
    pub(crate) completions: Arc<crate::deliveries::Completions>,
}

impl Store {
    /// Connects to `url` (`sqlite://PATH` or `postgres://...`). Does not migrate.
    pub async fn connect(url: &str, master_key: MasterKey) -> Result<Self, StoreError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);

        let backend = Backend::from_url(url)?;
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_owned(),
        };
        let options: AnyConnectOptions = url.parse()?;
        let base = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(30));
        let (reader, writer) = match backend {
            Backend::Sqlite => {
                let writer = sqlite_pool(base.clone(), 1)
                    .connect_with(options.clone())
                    .await?;
                let reader = sqlite_pool(base, 8).connect_with(options).await?;
                (reader, writer)
            }
            Backend::Postgres => {
                let pool = base.max_connections(16).connect_with(options).await?;
                (pool.clone(), pool)
            }
        };
        Ok(Self {
            reader,
            writer,
            backend,
            master_key: Arc::new(master_key),
            bus: Arc::new(InProcessBus::default()),
            appends: Arc::new(crate::group::Queue::new(crate::events::group::MAX_BATCH)),
            completions: Arc::new(crate::group::Queue::new(
                crate::deliveries::COMPLETIONS_PER_ROUND,
            )),
        })
    }

    /// Publishes committed events on `bus` instead of a private in-process bus.
    pub fn with_bus(mut self, bus: Arc<dyn Bus>) -> Self {
        self.bus = bus;
        self
    }

    /// The bus committed events are published on.
    pub fn bus(&self) -> &Arc<dyn Bus> {
        &self.bus
    }

    /// The server's master key (for signing URLs handed to users).
    pub fn master_key(&self) -> &MasterKey {
        &self.master_key
    }

    /// Which engine this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies every migration not yet applied.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.writer).await?;
        Ok(())
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    pub(crate) fn reader(&self) -> &AnyPool {
        &self.reader
    }

    pub(crate) fn writer(&self) -> &AnyPool {
        &self.writer
    }

    /// Lets the transaction on `conn` commit without waiting for its log to
    /// reach the disk (PostgreSQL's `synchronous_commit = off`, for this
    /// transaction only; SQLite's commits already do not wait).
    ///
    /// Only for a log consumer's fan-out: it moves its cursor in the same
    /// transaction and inserts idempotently, so if a crash loses it, it is
    /// read again and redone. What acts on its rows first claims them in a
    /// transaction that waits, and PostgreSQL writes its log in order, so the
    /// fan-out is on disk before anything is done with it.
    pub(crate) async fn skip_flush_wait(&self, conn: &mut AnyConnection) -> Result<(), StoreError> {
        if self.backend == Backend::Postgres {
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(conn)
                .await?;
        }
        Ok(())
    }
}
