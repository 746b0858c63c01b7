//! The two loops that move events from the log to endpoints.
//!
//! - Fan-out reads each project's log from the `webhooks` cursor and queues a
//!   delivery per subscribed endpoint ([`switchboard_store::deliveries`]). It
//!   wakes on the bus for the event's project and sweeps every project on a
//!   timer, which covers events from other nodes and a bus that dropped some.
//! - Delivery takes due deliveries with a lease and sends each in its own
//!   task, at most [`WebhookConfig::max_in_flight_per_endpoint`] per endpoint
//!   and [`WebhookConfig::max_in_flight_per_project`] per project, so slow or
//!   dead endpoints hold a few slots and never the rest. An endpoint at its
//!   cap may have more claimed and waiting, as many as its [`Pace`] allows:
//!   its running sends take them as they finish, so a fast endpoint is not
//!   held to one pass over the outbox per handful of requests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use switchboard_core::bus::RecvError;
use switchboard_core::webhook::AddressPolicy;
use switchboard_core::{Clock, DeliveryId, ProjectId, WebhookId};
use switchboard_store::deliveries::{Attempt, Due, Outcome};
use switchboard_store::Store;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::pace::Pace;
use crate::schedule::RetrySchedule;
use crate::sender::Sender;

/// Events read from one project's log per fan-out transaction.
const FAN_OUT_BATCH: u32 = 500;
/// Due deliveries looked at per pass, beyond what endpoints whose pace lets
/// them have more waiting can take.
const DUE_BATCH: u32 = 200;
/// Claimed deliveries any endpoint at its cap may have waiting, per slot; a
/// fast one may have more ([`Pace`]).
const READY_PER_SLOT: usize = 3;
/// A claim's lease beyond the request timeout; a ready delivery older than
/// this is not sent, as its lease might lapse mid-attempt.
const LEASE_MARGIN: chrono::Duration = chrono::Duration::seconds(5);

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
    /// Deliveries claimed for endpoints at their cap, sent next by the
    /// endpoint's running sends as each finishes, so a fast endpoint's
    /// requests follow one another without a pass over the outbox between.
    ready: HashMap<WebhookId, VecDeque<Ready>>,
    /// How fast each endpoint answered lately.
    pace: HashMap<WebhookId, Pace>,
}

/// A claimed delivery waiting for a slot of its endpoint.
struct Ready {
    due: Due,
    claimed_at: DateTime<Utc>,
}

impl InFlight {
    /// Whether `endpoint` and `project` (and the node) have a slot free.
    fn has_room(&self, config: &WebhookConfig, endpoint: WebhookId, project: ProjectId) -> bool {
        self.total < config.max_in_flight
            && self.per_endpoint.get(&endpoint).copied().unwrap_or(0)
                < config.max_in_flight_per_endpoint
            && self.per_project.get(&project).copied().unwrap_or(0)
                < config.max_in_flight_per_project
    }

    fn take_slot(&mut self, endpoint: WebhookId, project: ProjectId) {
        self.total += 1;
        *self.per_endpoint.entry(endpoint).or_default() += 1;
        *self.per_project.entry(project).or_default() += 1;
    }

    fn give_slot(&mut self, endpoint: WebhookId, project: ProjectId) {
        self.total = self.total.saturating_sub(1);
        release(&mut self.per_endpoint, endpoint);
        release(&mut self.per_project, project);
    }

    fn waiting(&self, endpoint: WebhookId) -> usize {
        self.ready.get(&endpoint).map_or(0, VecDeque::len)
    }

    /// Forgets the pace of endpoints with nothing in flight or waiting and
    /// no success in the last second.
    fn forget_idle(&mut self, now: DateTime<Utc>) {
        let Self {
            per_endpoint,
            ready,
            pace,
            ..
        } = self;
        pace.retain(|e, p| {
            per_endpoint.contains_key(e) || ready.contains_key(e) || !p.is_idle(now)
        });
    }

    /// How many more deliveries `endpoint` could take at `now`: its free
    /// slots and the room left in its ready queue.
    fn wants(&mut self, config: &WebhookConfig, endpoint: WebhookId, now: DateTime<Utc>) -> usize {
        let running = self.per_endpoint.get(&endpoint).copied().unwrap_or(0);
        let free = config.max_in_flight_per_endpoint.saturating_sub(running);
        let depth = self.ready_depth(config, endpoint, now);
        free + depth.saturating_sub(self.waiting(endpoint))
    }

    /// How many claimed deliveries `endpoint` may have waiting at `now`.
    fn ready_depth(
        &mut self,
        config: &WebhookConfig,
        endpoint: WebhookId,
        now: DateTime<Utc>,
    ) -> usize {
        let floor = config.max_in_flight_per_endpoint * READY_PER_SLOT;
        self.pace
            .get_mut(&endpoint)
            .map_or(floor, |p| p.waiting(floor, now))
    }
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
            self.start_ready(now);
            let config = &self.inner.config;
            // How many more deliveries each endpoint could take now (free
            // slots, and room left in its ready queue); those with none, and
            // projects at their cap, are left out of the query.
            let (full, wants, busy_projects) = {
                let mut flight = self.lock();
                flight.forget_idle(now);
                let known: HashSet<WebhookId> = flight
                    .per_endpoint
                    .keys()
                    .chain(flight.ready.keys())
                    .chain(flight.pace.keys())
                    .copied()
                    .collect();
                let wants: HashMap<WebhookId, usize> = known
                    .into_iter()
                    .map(|e| (e, flight.wants(config, e, now)))
                    .collect();
                (
                    flight.total >= config.max_in_flight,
                    wants,
                    at_cap(&flight.per_project, config.max_in_flight_per_project),
                )
            };
            let busy_endpoints: Vec<WebhookId> = wants
                .iter()
                .filter(|(_, n)| **n == 0)
                .map(|(e, _)| *e)
                .collect();
            let floor = config.max_in_flight_per_endpoint * (1 + READY_PER_SLOT);
            let per_endpoint = |e: WebhookId| {
                u32::try_from(wants.get(&e).copied().unwrap_or(floor)).unwrap_or(u32::MAX)
            };
            let beyond_floor: usize = wants.values().map(|n| n.saturating_sub(floor)).sum();
            let limit = DUE_BATCH.saturating_add(u32::try_from(beyond_floor).unwrap_or(u32::MAX));
            if !full {
                match self
                    .inner
                    .store
                    .deliveries()
                    .due(now, limit, per_endpoint, &busy_endpoints, &busy_projects)
                    .await
                {
                    Ok(due) => self.start_sends(due).await,
                    Err(e) => tracing::warn!(error = %e, "cannot read due webhook deliveries"),
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.inner.config.poll_interval) => {}
                _ = self.inner.deliver_wake.notified() => {}
            }
        }
    }

    /// Claims what of `due` there is room for, now or in an endpoint's ready
    /// queue, in one statement; sends each claimed one in its own task while
    /// its endpoint and project have a slot free, and queues the rest.
    async fn start_sends(&self, due: Vec<Due>) {
        let config = &self.inner.config;
        let now = self.inner.clock.now();
        // What of `due` can go, counting the slots and places this batch
        // takes itself: sent now while slots are free, else waiting behind a
        // send of its endpoint, else left for a later pass (unclaimed).
        let wanted: Vec<Due> = {
            let mut flight = self.lock();
            let mut batch = InFlight::default();
            let mut queued: HashMap<WebhookId, usize> = HashMap::new();
            due.into_iter()
                .filter(|d| {
                    let (endpoint, project) = (d.delivery.webhook_id, d.delivery.project_id);
                    let count = |f: &InFlight| {
                        (
                            f.total,
                            f.per_endpoint.get(&endpoint).copied().unwrap_or(0),
                            f.per_project.get(&project).copied().unwrap_or(0),
                        )
                    };
                    let ((total, running, in_project), (t, r, p)) = (count(&flight), count(&batch));
                    if total + t < config.max_in_flight
                        && running + r < config.max_in_flight_per_endpoint
                        && in_project + p < config.max_in_flight_per_project
                    {
                        batch.take_slot(endpoint, project);
                        return true;
                    }
                    if running + r == 0 {
                        // No send of its endpoint would take it from the queue.
                        return false;
                    }
                    let n = queued.entry(endpoint).or_default();
                    if flight.waiting(endpoint) + *n < flight.ready_depth(config, endpoint, now) {
                        *n += 1;
                        return true;
                    }
                    false
                })
                .collect()
        };
        if wanted.is_empty() {
            return;
        }
        let lease = chrono::Duration::from_std(config.timeout)
            .unwrap_or(chrono::Duration::seconds(15))
            + LEASE_MARGIN;
        let ids: Vec<DeliveryId> = wanted.iter().map(|d| d.delivery.id).collect();
        let claimed: HashSet<DeliveryId> = match self
            .inner
            .store
            .deliveries()
            .claim_all(&ids, now, lease)
            .await
        {
            Ok(claimed) => claimed.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim webhook deliveries");
                HashSet::new()
            }
        };
        let mut start = Vec::new();
        {
            let mut flight = self.lock();
            for due in wanted {
                if !claimed.contains(&due.delivery.id) {
                    continue;
                }
                let (endpoint, project) = (due.delivery.webhook_id, due.delivery.project_id);
                if flight.has_room(config, endpoint, project) {
                    flight.take_slot(endpoint, project);
                    start.push(due);
                } else {
                    flight.ready.entry(endpoint).or_default().push_back(Ready {
                        due,
                        claimed_at: now,
                    });
                }
            }
        }
        for due in start {
            self.spawn_send(due);
        }
    }

    /// Starts sends, while slots are free, for the ready deliveries of each
    /// endpoint (such as those queued behind a send whose claim failed), and
    /// drops ready deliveries whose lease might lapse mid-attempt: a later
    /// pass takes those again once it has.
    fn start_ready(&self, now: DateTime<Utc>) {
        let config = &self.inner.config;
        let mut start = Vec::new();
        {
            let mut flight = self.lock();
            let endpoints: Vec<WebhookId> = flight.ready.keys().copied().collect();
            for endpoint in endpoints {
                if let Some(queue) = flight.ready.get_mut(&endpoint) {
                    queue.retain(|r| now - r.claimed_at < LEASE_MARGIN);
                }
                while let Some(project) = flight
                    .ready
                    .get(&endpoint)
                    .and_then(VecDeque::front)
                    .map(|r| r.due.delivery.project_id)
                {
                    if !flight.has_room(config, endpoint, project) {
                        break;
                    }
                    let Some(ready) = flight
                        .ready
                        .get_mut(&endpoint)
                        .and_then(VecDeque::pop_front)
                    else {
                        break;
                    };
                    flight.take_slot(endpoint, project);
                    start.push(ready.due);
                }
                if flight.ready.get(&endpoint).is_some_and(VecDeque::is_empty) {
                    flight.ready.remove(&endpoint);
                }
            }
        }
        for due in start {
            self.spawn_send(due);
        }
    }

    /// Sends claimed `due` in its own task holding one slot, then the
    /// endpoint's ready deliveries one after another, then gives the slot back.
    fn spawn_send(&self, due: Due) {
        let worker = self.clone();
        tokio::spawn(async move {
            let (endpoint, project) = (due.delivery.webhook_id, due.delivery.project_id);
            let mut next = Some(due);
            while let Some(due) = next {
                let span = tracing::info_span!("webhook_delivery",
                    project_id = %due.delivery.project_id,
                    webhook_id = %due.delivery.webhook_id,
                    delivery_id = %due.delivery.id,
                    event_id = %due.event.id,
                );
                let (attempt, outcome) = worker.attempt(&due).instrument(span.clone()).await;
                worker.paced(endpoint, attempt.succeeded);
                // Recorded beside the next request rather than before it: the
                // record waits for a shared transaction, and a participant's
                // next event waits for this one's record anyway.
                let recorder = worker.clone();
                tokio::spawn(
                    async move {
                        recorder.record(&due, attempt, outcome).await;
                        // The participant's next event may be due now.
                        recorder.inner.deliver_wake.notify_one();
                    }
                    .instrument(span),
                );
                next = worker.next_ready(endpoint, project);
            }
            worker.inner.deliver_wake.notify_one();
        });
    }

    /// Counts an attempt towards `endpoint`'s pace.
    fn paced(&self, endpoint: WebhookId, succeeded: bool) {
        let now = self.inner.clock.now();
        self.lock()
            .pace
            .entry(endpoint)
            .or_insert_with(|| Pace::new(now))
            .record(succeeded, now);
    }

    /// The endpoint's next ready delivery whose lease still covers a whole
    /// attempt; or, with none, gives the caller's slot back.
    fn next_ready(&self, endpoint: WebhookId, project: ProjectId) -> Option<Due> {
        let now = self.inner.clock.now();
        let mut flight = self.lock();
        if let Some(queue) = flight.ready.get_mut(&endpoint) {
            while let Some(ready) = queue.pop_front() {
                // An older one is left for its lease to lapse and a later
                // pass to take again, rather than risk a second sender.
                if now - ready.claimed_at < LEASE_MARGIN {
                    return Some(ready.due);
                }
            }
            flight.ready.remove(&endpoint);
        }
        flight.give_slot(endpoint, project);
        None
    }

    /// Makes one attempt of `due` and decides what follows from it.
    async fn attempt(&self, due: &Due) -> (Attempt, Outcome) {
        let now = self.inner.clock.now();
        let attempt = self.inner.sender.attempt(due, &due.secrets, now).await;
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
        (attempt, outcome)
    }

    /// Records `attempt` of `due` and its `outcome`.
    async fn record(&self, due: &Due, attempt: Attempt, outcome: Outcome) {
        match self
            .inner
            .store
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
