//! The meter: reads each project's event log from its durable cursor into
//! sessions and the usage ledger, and closes the sessions of dead nodes.

use std::sync::Arc;
use std::time::Duration;

use switchboard_core::bus::RecvError;
use switchboard_core::{Clock, ProjectId};
use switchboard_store::{Store, StoreError};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use switchboard_core::node::{DEAD_AFTER, HEARTBEAT_INTERVAL};

/// Events metered in one transaction.
const BATCH: u32 = 1000;

/// How the meter runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// How often it sweeps every project and looks for silent nodes.
    pub poll_interval: Duration,
    /// Silence after which a node's open sessions are closed at its last heartbeat.
    pub dead_after: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            poll_interval: HEARTBEAT_INTERVAL,
            dead_after: DEAD_AFTER,
        }
    }
}

/// Feeds the event log to the usage ledger.
#[derive(Clone)]
pub struct Worker {
    store: Store,
    clock: Arc<dyn Clock>,
    config: Config,
    wake: Arc<Notify>,
}

impl Worker {
    /// A meter over `store`.
    pub fn new(store: Store, clock: Arc<dyn Clock>, config: Config) -> Self {
        Self {
            store,
            clock,
            config,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Sweeps now (after the clock moved, in tests).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Starts the loop: a project is metered as soon as its events are
    /// published, and every project on each sweep.
    pub fn start(&self) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move { this.run().await })
    }

    async fn run(&self) {
        let mut events = self.store.bus().subscribe();
        let mut sweep = true;
        loop {
            if sweep {
                if let Err(e) = self.close_dead_nodes().await {
                    tracing::warn!(error = %e, "meter sweep failed; the next one retries");
                }
            }
            sweep = tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => {
                        // One pass per project however many of its events queued meanwhile.
                        let (projects, lagged) = events.projects_waiting(&event);
                        for project in projects {
                            if let Err(e) = self.meter_project(project).await {
                                tracing::warn!(project_id = %project, error = %e, "metering failed; the next sweep retries");
                            }
                        }
                        lagged
                    }
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => {
                        events = self.store.bus().subscribe();
                        true
                    }
                },
                _ = tokio::time::sleep(self.config.poll_interval) => true,
                _ = self.wake.notified() => true,
            };
        }
    }

    /// Meters every unread event of `project`; returns how many.
    pub async fn meter_project(&self, project: ProjectId) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let n = self
                .store
                .usage()
                .meter(project, BATCH, self.clock.now())
                .await?;
            total += n;
            if n < BATCH as usize {
                return Ok(total);
            }
        }
    }

    /// Meters every unread event of every project; returns how many.
    pub async fn catch_up(&self) -> Result<usize, StoreError> {
        let mut total = 0;
        for project in self.store.usage().projects_behind().await? {
            total += self.meter_project(project).await?;
        }
        Ok(total)
    }

    /// Catches up, then ends the open sessions of every node silent for
    /// longer than `dead_after` at that node's last heartbeat, and meters
    /// those ends. Returns how many sessions were closed.
    pub async fn close_dead_nodes(&self) -> Result<usize, StoreError> {
        self.catch_up().await?;
        let dead_after = chrono::Duration::from_std(self.config.dead_after).unwrap_or_default();
        let silent = self
            .store
            .usage()
            .silent_nodes(self.clock.now() - dead_after)
            .await?;
        if silent.is_empty() {
            return Ok(0);
        }
        // A silent node appends nothing more, so once the meter has read
        // every log, the open sessions it knows of are all that node had.
        self.catch_up().await?;
        let mut closed = 0;
        for (node, last_heartbeat) in silent {
            let ended = self.store.usage().close_node(node, last_heartbeat).await?;
            if !ended.is_empty() {
                tracing::warn!(node_id = %node, sessions = ended.len(), last_heartbeat = %last_heartbeat,
                    "node fell silent; its sessions were closed at its last heartbeat");
            }
            closed += ended.len();
        }
        self.catch_up().await?;
        Ok(closed)
    }
}
