//! A PostgreSQL database of a benchmark's own, made afresh for each run.

use anyhow::Context;
use sqlx::{Connection, Executor, PgConnection};

/// Drops and creates database `name` on the server of `admin` (an admin
/// URL); returns the new database's URL.
pub async fn fresh_database(admin: &str, name: &str) -> anyhow::Result<String> {
    let mut conn = PgConnection::connect(admin)
        .await
        .with_context(|| format!("connect to {admin}"))?;
    conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await?;
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
    Ok(format!("{base}/{name}"))
}
