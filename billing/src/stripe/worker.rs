//! The loop that links projects to Stripe and plans and sends their usage reports.

use std::sync::Arc;

use switchboard_core::billing::PlanBook;
use switchboard_core::Clock;
use switchboard_store::Store;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{link, report, Api, Config, StripeError};

/// Links projects, plans due windows and sends pending reports, every
/// `interval_seconds` (and on [`Worker::wake`]).
#[derive(Clone)]
pub struct Worker {
    api: Api,
    store: Store,
    plans: Arc<PlanBook>,
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
}

impl Worker {
    /// A worker for `config`'s Stripe account.
    pub fn new(
        store: Store,
        plans: PlanBook,
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StripeError> {
        Ok(Self {
            api: Api::new(&config)?,
            store,
            plans: Arc::new(plans),
            config: Arc::new(config),
            clock,
            wake: Arc::new(Notify::new()),
        })
    }

    /// Runs a pass now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Starts the loop.
    pub fn start(&self) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = this.pass().await {
                    tracing::warn!(error = %e, "Stripe pass failed; the next one retries");
                }
                tokio::select! {
                    _ = tokio::time::sleep(this.config.interval()) => {}
                    _ = this.wake.notified() => {}
                }
            }
        })
    }

    /// Links what is unlinked, plans what is due and sends what is pending.
    pub async fn pass(&self) -> Result<report::Sent, StripeError> {
        let now = self.clock.now();
        // Reports go out even if linking fails (Stripe refusing one
        // project's customer must not hold back everyone's usage).
        if let Err(e) = link::link_projects(&self.api, &self.store, &self.config, now).await {
            tracing::warn!(error = %e, "linking projects to Stripe failed; the next pass retries");
        }
        report::plan_due(&self.store, &self.plans, &self.config, now).await?;
        report::send_due(&self.api, &self.store, &self.config, now).await
    }
}
