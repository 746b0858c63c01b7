//! This node's heartbeat: the time until which its sessions are known to be live.

use std::sync::Arc;
use std::time::Duration;

use switchboard_core::{Clock, NodeId};
use switchboard_store::{Store, StoreError};
use tokio::task::JoinHandle;

/// How often a node records that it is alive.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// Silence after which a node is taken for dead and its sessions are closed.
pub const DEAD_AFTER: Duration = Duration::from_secs(15);

/// Registers `node` and records a heartbeat every `interval` until the task is aborted.
pub async fn start(
    store: Store,
    clock: Arc<dyn Clock>,
    node: NodeId,
    interval: Duration,
) -> Result<JoinHandle<()>, StoreError> {
    store.usage().register_node(node, clock.now()).await?;
    Ok(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = store.usage().heartbeat(node, clock.now()).await {
                tracing::warn!(node_id = %node, error = %e, "could not record the heartbeat");
            }
        }
    }))
}
