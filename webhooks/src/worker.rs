//! The two loops that move events from the log to endpoints.
//!
//! - Fan-out reads each project's log from the `webhooks` cursor and queues a
//!   delivery per subscribed endpoint ([`switchboard_store::deliveries`]). It
//!   wakes on the bus for the event's project and sweeps every project on a
//!   timer, which covers events from other nodes and a bus that dropped some.
//! - Delivery takes due deliveries with a lease and sends each in its own
//!   task, at most [`WebhookConfig::max_in_flight_per_endpoint`] per endpoint
//!   and [`WebhookConfig::max_in_flight_per_project`] per project, so slow or
//!   dead endpoints hold a few slots and never the rest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use switchboard_core::bus::RecvError;
use switchboard_core::webhook::AddressPolicy;
use switchboard_core::{Clock, ProjectId, WebhookId};
use switchboard_store::deliveries::{Due, Outcome};
use switchboard_store::Store;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::schedule::RetrySchedule;
use crate::sender::Sender;

/// Events read from one project's log per fan-out transaction.
const FAN_OUT_BATCH: u32 = 500;
/// Due deliveries looked at per pass.
const DUE_BATCH: u32 = 200;

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Where deliveries may go.
    pub policy: AddressPolicy,
    /// When failed deliveries are tried again.
    pub schedule: RetrySchedule,
    /// How long an endpoint has to answer.
    pub timeout: Duration,
    /// How long an endpoint may fail every attempt before it is disabled.
    pub disable_after: chrono::Duration,
    /// Requests in flight at once, over all endpoints.
    pub max_in_flight: usize,
    /// Requests in flight at once to one endpoint.
    pub max_in_flight_per_endpoint: usize,
    /// Requests in flight at once for one project, so one project's hanging
    /// endpoints never take every slot of the node.
    pub max_in_flight_per_project: usize,
    /// How often the log and the outbox are swept without a wake-up.
    pub poll_interval: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            policy: AddressPolicy::STRICT,
            schedule: RetrySchedule::default(),
            timeout: Duration::from_secs(15),
            disable_after: chrono::Duration::days(5),
            max_in_flight: 256,
            max_in_flight_per_endpoint: 8,
            max_in_flight_per_project: 64,
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// Why the webhook worker cannot start.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the webhook HTTP client: {0}")]
pub struct StartError(#[from] reqwest::Error);

/// The webhook worker of this node.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: Arc<dyn Clock>,
    config: WebhookConfig,
    sender: Sender,
    fan_out_wake: Notify,
    deliver_wake: Notify,
    in_flight: Mutex<InFlight>,
}

#[derive(Default)]
struct InFlight {
    total: usize,
    per_endpoint: HashMap<WebhookId, usize>,
    per_project: HashMap<ProjectId, usize>,
}

impl Worker {
    /// A worker over `store`; nothing runs until [`Worker::start`].
    pub fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        config: WebhookConfig,
    ) -> Result<Self, StartError> {
        let sender = Sender::new(config.policy, config.timeout)?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock,
                config,
                sender,
                fan_out_wake: Notify::new(),
                deliver_wake: Notify::new(),
                in_flight: Mutex::new(InFlight::default()),
            }),
        })
    }

    /// Starts the fan-out and delivery loops.
    pub fn start(&self) -> Vec<JoinHandle<()>> {
        let fan_out = self.clone();
        let deliver = self.clone();
        vec![
            tokio::spawn(async move { fan_out.fan_out_loop().await }),
            tokio::spawn(async move { deliver.deliver_loop().await }),
        ]
    }

    /// Sweeps the log and the outbox now (after the clock moved, in tests).
    pub fn wake(&self) {
        self.inner.fan_out_wake.notify_one();
        self.inner.deliver_wake.notify_one();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InFlight> {
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    async fn fan_out_loop(&self) {
        let mut events = self.inner.store.bus().subscribe();
        let mut sweep = true;
        loop {
            let projects = if sweep {
                match self.inner.store.deliveries().projects_behind().await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook fan-out cannot read the log; retrying");
                        Vec::new()
                    }
                }
            } else {
                Vec::new()
            };
            for project in projects {
                self.fan_out(project).await;
            }
            sweep = tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => {
                        let (projects, lagged) = events.projects_waiting(&event);
                        for project in projects {
                            if self.inner.store.deliveries().wanted(project).await.unwrap_or(true) {
                                self.fan_out(project).await;
                            }
                        }
                        lagged
                    }
                    // Missed events are in the log; the sweep finds them.
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => {
                        events = self.inner.store.bus().subscribe();
                        true
                    }
                },
                _ = tokio::time::sleep(self.inner.config.poll_interval) => true,
                _ = self.inner.fan_out_wake.notified() => true,
            };
        }
    }

    async fn fan_out(&self, project: ProjectId) {
        let deliveries = self.inner.store.deliveries();
        loop {
            match deliveries
                .fan_out(project, FAN_OUT_BATCH, self.inner.clock.now())
                .await
            {
                Ok(n) => {
                    if n > 0 {
                        self.inner.deliver_wake.notify_one();
                    }
                    if n < FAN_OUT_BATCH as usize {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(project_id = %project, error = %e, "webhook fan-out failed; the next sweep retries");
                    return;
                }
            }
        }
    }

    async fn deliver_loop(&self) {
        loop {
            let now = self.inner.clock.now();
            let config = &self.inner.config;
            let per_endpoint = u32::try_from(config.max_in_flight_per_endpoint).unwrap_or(u32::MAX);
            // Endpoints and projects at their cap could not take a delivery now.
            let (full, busy_endpoints, busy_projects) = {
                let flight = self.lock();
                (
                    flight.total >= config.max_in_flight,
                    at_cap(&flight.per_endpoint, config.max_in_flight_per_endpoint),
                    at_cap(&flight.per_project, config.max_in_flight_per_project),
                )
            };
            if !full {
                match self
                    .inner
                    .store
                    .deliveries()
                    .due(
                        now,
                        DUE_BATCH,
                        per_endpoint,
                        &busy_endpoints,
                        &busy_projects,
                    )
                    .await
                {
                    Ok(due) => {
                        for d in due {
                            self.try_start(d).await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read due webhook deliveries"),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.inner.config.poll_interval) => {}
                _ = self.inner.deliver_wake.notified() => {}
            }
        }
    }

    /// Sends `due` in its own task if there is room for it and it can be claimed.
    async fn try_start(&self, due: Due) {
        let webhook = due.delivery.webhook_id;
        let project = due.delivery.project_id;
        {
            let flight = self.lock();
            let config = &self.inner.config;
            let for_endpoint = flight.per_endpoint.get(&webhook).copied().unwrap_or(0);
            let for_project = flight.per_project.get(&project).copied().unwrap_or(0);
            if flight.total >= config.max_in_flight
                || for_endpoint >= config.max_in_flight_per_endpoint
                || for_project >= config.max_in_flight_per_project
            {
                return;
            }
        }
        let now = self.inner.clock.now();
        let lease = chrono::Duration::from_std(self.inner.config.timeout)
            .unwrap_or(chrono::Duration::seconds(15))
            + chrono::Duration::seconds(5);
        match self
            .inner
            .store
            .deliveries()
            .claim(due.delivery.id, now, lease)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim a webhook delivery");
                return;
            }
        }
        {
            let mut flight = self.lock();
            flight.total += 1;
            *flight.per_endpoint.entry(webhook).or_default() += 1;
            *flight.per_project.entry(project).or_default() += 1;
        }
        let span = tracing::info_span!("webhook_delivery",
            project_id = %due.delivery.project_id,
            webhook_id = %webhook,
            delivery_id = %due.delivery.id,
            event_id = %due.event.id,
        );
        let worker = self.clone();
        tokio::spawn(
            async move {
                worker.send(&due).await;
                {
                    let mut flight = worker.lock();
                    flight.total = flight.total.saturating_sub(1);
                    release(&mut flight.per_endpoint, webhook);
                    release(&mut flight.per_project, project);
                }
                worker.inner.deliver_wake.notify_one();
            }
            .instrument(span),
        );
    }

    async fn send(&self, due: &Due) {
        let store = &self.inner.store;
        let now = self.inner.clock.now();
        let secrets = match store
            .webhooks()
            .signing_secrets(due.delivery.webhook_id, now)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                // The lease lapses and the delivery is tried again.
                tracing::warn!(error = %e, "cannot read the webhook's signing secret");
                return;
            }
        };
        let attempt = self.inner.sender.attempt(due, &secrets, now).await;
        let attempts_made = due.delivery.attempts + 1;
        let outcome = if attempt.succeeded {
            Outcome::Succeeded
        } else {
            let jitter = rand::thread_rng().gen_range(-1.0..=1.0);
            match self.inner.config.schedule.next_attempt(
                attempts_made,
                self.inner.clock.now(),
                jitter,
            ) {
                Some(at) => Outcome::RetryAt(at),
                None => Outcome::Failed,
            }
        };
        match &outcome {
            Outcome::Succeeded => {
                tracing::debug!(status = ?attempt.status_code, latency_ms = attempt.latency_ms, "delivered")
            }
            other => tracing::info!(
                status = ?attempt.status_code,
                error = attempt.error.as_deref().unwrap_or(""),
                attempt = attempts_made,
                outcome = ?other,
                "webhook delivery attempt failed"
            ),
        }
        match store
            .deliveries()
            .complete(
                &due.delivery,
                &attempt,
                outcome,
                self.inner.config.disable_after,
            )
            .await
        {
            Ok(Some(disabled)) => {
                tracing::warn!(event_id = %disabled.id, "webhook endpoint disabled after failing too long");
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot record a webhook attempt; it will be made again")
            }
        }
    }
}

/// Gives back one slot of `key`, forgetting keys with none left.
fn release<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: K) {
    if let Some(n) = counts.get_mut(&key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(&key);
        }
    }
}

/// The keys of `counts` at or above `cap`.
fn at_cap<K: Copy>(counts: &HashMap<K, usize>, cap: usize) -> Vec<K> {
    counts
        .iter()
        .filter(|(_, n)| **n >= cap)
        .map(|(k, _)| *k)
        .collect()
}
