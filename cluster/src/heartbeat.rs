//! This node's registration and heartbeat: the time until which its sessions
//! are known to be live, and the load placement reads.

use std::sync::Arc;
use std::time::Duration;

use switchboard_core::node::NodeLoad;
use switchboard_core::Clock;
use switchboard_store::nodes::NodeRegistration;
use switchboard_store::{Store, StoreError};
use tokio::task::JoinHandle;

/// Reads what this node carries now (zero on a node without media).
pub type LoadSource = Arc<dyn Fn() -> NodeLoad + Send + Sync>;

/// Reads how many participants this node carries, cheaply.
pub type ParticipantCount = Arc<dyn Fn() -> u32 + Send + Sync>;

/// How often the participant count is read between heartbeats: when it
/// changed, the heartbeat goes at once, so placement sees a node fill up
/// (a broadcast's viewers arrive faster than one a heartbeat).
const COUNT_POLL: Duration = Duration::from_millis(200);

/// Registers `node` and records a heartbeat with its load every `interval`,
/// and as soon as its participant count changes, until the task is aborted.
pub async fn start(
    store: Store,
    clock: Arc<dyn Clock>,
    node: NodeRegistration,
    load: LoadSource,
    participants: ParticipantCount,
    interval: Duration,
) -> Result<JoinHandle<()>, StoreError> {
    store.nodes().register(&node, clock.now()).await?;
    let span = tracing::info_span!("heartbeat", node_id = %node.id, region = %node.region);
    Ok(tokio::spawn(tracing::Instrument::instrument(
        async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut poll = tokio::time::interval(COUNT_POLL);
            poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut warned_dead = false;
            let mut reported = None;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = poll.tick() => {
                        if reported == Some(participants()) {
                            continue;
                        }
                        tick.reset();
                    }
                }
                let load = load();
                reported = Some(load.participants);
                match store.nodes().heartbeat(node.id, &load, clock.now()).await {
                    Ok(true) => {}
                    Ok(false) if !warned_dead => {
                        warned_dead = true;
                        tracing::error!(
                            "this node was taken for dead (its heartbeats stopped for too long): \
                             its sessions were closed and it gets no new rooms; restart it"
                        );
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "could not record the heartbeat"),
                }
            }
        },
        span,
    )))
}
