//! The store's error type.

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (duplicate room name, key id, ...).
    #[error("{0}")]
    Conflict(String),
    /// The database URL is not one the store can open.
    #[error("unsupported database URL `{0}`: use sqlite://PATH or postgres://USER@HOST/DB")]
    UnsupportedUrl(String),
    /// A migration failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored value could not be read back (corrupt row, wrong master key).
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The master key is missing or malformed.
    #[error("{0}")]
    MasterKey(String),
}

impl StoreError {
    /// True when the underlying database reported a unique-constraint violation.
    pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
        matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
    }
}

/// A stored value that could not be read back, as [`StoreError::Corrupt`].
pub(crate) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}
