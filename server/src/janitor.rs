//! The retention janitor: deletes what is older than `[retention] keep`.

use std::sync::Arc;
use std::time::Duration;

use switchboard_core::Clock;
use switchboard_store::Store;

/// Purges old rows every `every`, first right away. Several API instances may
/// each run one: a purge only deletes, so two at once do no harm.
pub fn start(
    store: Store,
    clock: Arc<dyn Clock>,
    keep: Duration,
    every: Duration,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let keep = chrono::Duration::from_std(keep)
        .map_err(|_| anyhow::anyhow!("[retention] keep is too long"))?;
    Ok(tokio::spawn(async move {
        loop {
            match store.retention().purge(keep, clock.now()).await {
                Ok(purged) if purged.total() > 0 => {
                    tracing::info!(?purged, "retention: old rows deleted")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "retention: cannot delete old rows; will try again")
                }
            }
            tokio::time::sleep(every).await;
        }
    }))
}
