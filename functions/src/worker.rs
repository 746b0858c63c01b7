//! Asynchronous handlers: a fan-out queues a job per (function, event) from
//! the log behind a durable cursor; runners take due jobs under a lease, run
//! them and record the invocation in the transaction that closes the job.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use switchboard_core::bus::RecvError;
use switchboard_core::ProjectId;
use switchboard_store::functions::Job;
use switchboard_store::Store;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

use crate::{invocation, FunctionHost, Source};

const FAN_OUT_BATCH: u32 = 200;
const DUE_BATCH: u32 = 100;
/// How long a runner holds a job beyond the handler's deadline; past it
/// another runner (after a crash, another node) may take it again.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// Longest a started job waits for an invocation slot the host's other
/// callers (joining hooks, test runs) hold; past it the job is put off.
/// Well inside [`LEASE_MARGIN`], so a job that waits and then runs to its
/// deadline still ends before its lease does and no other runner takes it.
pub(crate) const SLOT_WAIT: Duration = Duration::from_secs(2);
/// When a job could not even start (storage down), when to try again.
const RETRY_AFTER: chrono::Duration = chrono::Duration::seconds(5);

/// Feeds the event log to functions' asynchronous handlers.
#[derive(Clone)]
pub struct Worker {
    host: Arc<FunctionHost>,
    store: Store,
    poll_interval: Duration,
    fan_out_wake: Arc<Notify>,
    run_wake: Arc<Notify>,
}

impl Worker {
    /// A worker over `host`'s store, sweeping every `poll_interval` besides reacting to the bus.
    pub fn new(host: Arc<FunctionHost>, store: Store, poll_interval: Duration) -> Self {
        Self {
            host,
            store,
            poll_interval,
            fan_out_wake: Arc::new(Notify::new()),
            run_wake: Arc::new(Notify::new()),
        }
    }

    /// Sweeps the log and the jobs now (after the clock moved, in tests).
    pub fn wake(&self) {
        self.fan_out_wake.notify_one();
        self.run_wake.notify_one();
    }

    /// Starts the fan-out and runner loops.
    pub fn start(&self) -> Vec<JoinHandle<()>> {
        let fan_out = self.clone();
        let run = self.clone();
        vec![
            tokio::spawn(async move { fan_out.fan_out_loop().await }),
            tokio::spawn(async move { run.run_loop().await }),
        ]
    }

    async fn fan_out_loop(&self) {
        let mut events = self.store.bus().subscribe();
        let mut sweep = true;
        loop {
            if sweep {
                match self.store.functions().projects_behind().await {
                    Ok(projects) => {
                        for p in projects {
                            self.fan_out(p).await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "functions fan-out cannot read the log"),
                }
            }
            sweep = tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => {
                        let (projects, lagged) = events.projects_waiting(&event);
                        for project in projects {
                            self.fan_out(project).await;
                        }
                        lagged
                    }
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => {
                        events = self.store.bus().subscribe();
                        true
                    }
                },
                _ = tokio::time::sleep(self.poll_interval) => true,
                _ = self.fan_out_wake.notified() => true,
            };
        }
    }

    async fn fan_out(&self, project: ProjectId) {
        loop {
            let now = self.host.services().clock.now();
            match self
                .store
                .functions()
                .fan_out(project, FAN_OUT_BATCH, now)
                .await
            {
                Ok(n) => {
                    if n > 0 {
                        self.run_wake.notify_one();
                    }
                    if n < FAN_OUT_BATCH as usize {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(project_id = %project, error = %e, "functions fan-out failed; the next sweep retries");
                    return;
                }
            }
        }
    }

    /// Runs due jobs as slots free up: at most the host's per-project limit
    /// of each project and its per-node limit in all. A job is claimed only
    /// when it can start at once, so its lease is not spent waiting, and a
    /// slow job never holds up the start of another project's.
    async fn run_loop(&self) {
        let limits = self.host.runtime().limits();
        // A handler may compute until its deadline: a project gets a share of
        // the cores for them, not a share of the slots, or its spinning
        // handlers take every core from the other projects.
        let per_project = limits.handlers_per_project.min(limits.per_project).max(1);
        let per_node = limits.per_node.max(1);
        let lease = chrono::Duration::from_std(limits.event_deadline + LEASE_MARGIN)
            .unwrap_or(chrono::Duration::seconds(60));
        let mut running: JoinSet<()> = JoinSet::new();
        let mut projects: HashMap<tokio::task::Id, ProjectId> = HashMap::new();
        let mut in_flight: HashMap<ProjectId, usize> = HashMap::new();
        let mut busy: Vec<ProjectId> = Vec::new();
        loop {
            if running.len() < per_node {
                let now = self.host.services().clock.now();
                let per_project_u32 = u32::try_from(per_project).unwrap_or(u32::MAX);
                busy.clear();
                busy.extend(
                    in_flight
                        .iter()
                        .filter(|(_, n)| **n >= per_project)
                        .map(|(p, _)| *p),
                );
                match self
                    .store
                    .functions()
                    .due(now, DUE_BATCH, per_project_u32, &busy)
                    .await
                {
                    Ok(jobs) => {
                        for job in jobs {
                            if running.len() >= per_node {
                                break;
                            }
                            let project = job.project_id;
                            if in_flight.get(&project).copied().unwrap_or(0) >= per_project {
                                continue; // Left unclaimed for whichever runner has room.
                            }
                            match self.store.functions().claim(job.id, now, lease).await {
                                Ok(true) => {
                                    let this = self.clone();
                                    let handle = running.spawn(async move { this.run(job).await });
                                    projects.insert(handle.id(), project);
                                    *in_flight.entry(project).or_default() += 1;
                                }
                                Ok(false) => {}
                                Err(e) => tracing::warn!(error = %e, "cannot claim a function job"),
                            }
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read due function jobs"),
                }
            }
            tokio::select! {
                Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(e) => {
                            tracing::error!(error = %e, "a function job's task failed");
                            e.id()
                        }
                    };
                    if let Some(project) = projects.remove(&id) {
                        if let Some(n) = in_flight.get_mut(&project) {
                            *n = n.saturating_sub(1);
                            if *n == 0 {
                                in_flight.remove(&project);
                            }
                        }
                    }
                    // A finished job frees a slot and may unblock the next of its room.
                }
                _ = tokio::time::sleep(self.poll_interval) => {}
                _ = self.run_wake.notified() => {}
            }
        }
    }

    async fn run(&self, job: Job) {
        let functions = self.store.functions();
        let now = || self.host.services().clock.now();
        let deployed = match functions.active(job.function_id).await {
            Ok(Some(d)) if d.triggers.runs_on(job.event.event_type()) => d,
            // Deleted, deactivated or rolled back to a version that does not
            // handle this event: nothing to run.
            Ok(_) => {
                if let Err(e) = functions.finish(job.id, None, now()).await {
                    tracing::warn!(error = %e, "cannot close a function job");
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a function for its job");
                let _ = functions.postpone(job.id, now() + RETRY_AFTER).await;
                return;
            }
        };
        let run = match self
            .host
            .run_event(job.project_id, &deployed, &job.event, false)
            .await
        {
            Ok(run) => run,
            Err(e) => {
                tracing::warn!(project_id = %job.project_id, function = %deployed.name, error = %e, "function job not run");
                let _ = functions.postpone(job.id, now() + RETRY_AFTER).await;
                return;
            }
        };
        let inv = invocation(
            job.project_id,
            &deployed,
            Source::Event(&job.event),
            &run,
            None,
            now(),
        );
        if let Err(e) = functions.finish(job.id, Some(&inv), now()).await {
            tracing::warn!(error = %e, "cannot record a function invocation; the job runs again");
        }
    }
}
