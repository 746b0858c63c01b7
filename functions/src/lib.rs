//! Switchboard's function host: customers' WebAssembly components, run by
//! wasmtime on room events, under limits.
//!
//! # Layout
//!
//! - `wit/`: the world functions are written against (`switchboard:functions@0.1.0`).
//! - [`runtime`]: the engine, upload checks, the compiled-version cache and one
//!   invocation under fuel, epoch, memory, stack, table and instance limits;
//!   [`artifacts`]: the compiled versions kept on disk, within a budget.
//! - [`host`]: what a function can call (log, key-value store, actions).
//! - [`FunctionHost`]: runs deployed versions for the [`gate`] (the synchronous
//!   `participant.joining` hook), the [`worker`] (asynchronous handlers fed
//!   from the event log) and the REST API's test runs; records every invocation.
//!
//! A failing function (trap, timeout, memory bomb, deep recursion) ends only
//! its own invocation: each runs in its own store with its own limits.

pub mod artifacts;
pub mod gate;
pub mod handler_pool;
pub mod host;
mod limits;
pub mod runtime;
#[cfg(feature = "testing")]
pub mod testing;
pub mod worker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use switchboard_core::function::{
    FunctionRunner, InvokeReport, InvokeRequest, RunnerError, JOINING,
};
use switchboard_core::{Event, InvocationId, ProjectId};
use switchboard_store::functions::{Deployed, Invocation};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use handler_pool::HandlerPool;

pub use host::Services;
pub use limits::{Limits, MAX_EMIT_CHAIN};
pub use runtime::{CheckError, EngineError, Failure, Run, Runtime};

/// Rust bindings of the world in `wit/`.
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "function",
        imports: {
            "switchboard:functions/host.kv-get": async | trappable,
            default: async,
        },
        exports: { default: async },
    });
}

use bindings::switchboard::functions::types::{Admission, Decision, Joining, Permissions};

/// Runs deployed function versions and records what they did.
pub struct FunctionHost {
    runtime: Arc<Runtime>,
    services: Arc<Services>,
    node: Arc<Semaphore>,
    projects: Mutex<HashMap<ProjectId, Arc<Semaphore>>>,
    handlers: HandlerPool,
}

/// Why the host could not run a version at all (nothing ran).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The version's component could not be loaded or compiled.
    #[error("cannot load the function: {0}")]
    Load(String),
    /// Every invocation slot of the project or the node stayed taken.
    #[error("no invocation slot came free in time")]
    Busy,
}

impl FunctionHost {
    /// A host over `services`, enforcing `limits`, caching artifacts in `artifacts`.
    pub fn new(
        services: Arc<Services>,
        limits: Limits,
        artifacts: Option<PathBuf>,
    ) -> Result<Arc<Self>, EngineError> {
        let node = Arc::new(Semaphore::new(limits.per_node));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Arc::new(Self {
            runtime: Runtime::new(limits, artifacts)?,
            services,
            node,
            projects: Mutex::new(HashMap::new()),
            handlers: HandlerPool::new(threads).map_err(|e| EngineError(e.into()))?,
        }))
    }

    /// The engine.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The services functions reach.
    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// Waits (up to `wait`) for a slot in the project's and the node's limits.
    async fn permit(
        &self,
        project: ProjectId,
        wait: Option<std::time::Duration>,
    ) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        let per_project = self
            .projects
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(project)
            .or_insert_with(|| Arc::new(Semaphore::new(self.runtime.limits().per_project)))
            .clone();
        let both = async {
            let a = per_project.acquire_owned().await.ok()?;
            let b = self.node.clone().acquire_owned().await.ok()?;
            Some((a, b))
        };
        match wait {
            Some(d) => tokio::time::timeout(d, both).await.ok().flatten(),
            None => both.await,
        }
    }

    /// Forgets the compiled forms of versions no live function has any more
    /// (a deleted function's), in memory and on disk.
    pub async fn sweep_artifacts(&self) -> Result<usize, String> {
        let store = self.services.store.as_ref().ok_or("no storage")?;
        let live = store
            .functions()
            .live_digests()
            .await
            .map_err(|e| e.to_string())?;
        let runtime = self.runtime.clone();
        tokio::task::spawn_blocking(move || runtime.retain(|d| live.contains(d)))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Sweeps the compiled forms every `every` (see [`Self::sweep_artifacts`]).
    pub fn start_sweeper(
        self: &Arc<Self>,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match this.sweep_artifacts().await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(removed = n, "compiled forms of deleted functions removed")
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot sweep compiled functions; will try again")
                    }
                }
            }
        })
    }

    /// Compiles (or loads from the artifact cache) every active version in
    /// the background, so the first join after a start does not wait for it.
    pub fn warm_up(self: &Arc<Self>) {
        let this = self.clone();
        tokio::spawn(async move {
            let Some(store) = this.services.store.clone() else {
                return;
            };
            match store.functions().all_deployed().await {
                Ok(all) => {
                    for d in all {
                        if let Err(e) =
                            load(this.runtime.clone(), Some(store.clone()), d.clone()).await
                        {
                            tracing::warn!(function = %d.name, error = %e, "cannot prepare a function");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot list functions to prepare"),
            }
        });
    }

    fn context(
        &self,
        project: ProjectId,
        d: &Deployed,
        trigger: Option<&Event>,
        dry_run: bool,
    ) -> host::CallContext {
        let emit_chain = match trigger.map(|e| &e.payload) {
            Some(switchboard_core::EventPayload::FunctionEvent { chain, .. }) => chain + 1,
            _ => 0,
        };
        host::CallContext {
            services: self.services.clone(),
            project,
            function: d.name.clone(),
            dry_run,
            emit_chain,
        }
    }

    /// Runs `d`'s `participant.joining` hook on `req`.
    pub async fn run_joining(
        &self,
        project: ProjectId,
        d: &Deployed,
        req: Joining,
        dry_run: bool,
    ) -> Result<Run<Decision>, HostError> {
        let deadline = self.runtime.limits().joining_deadline;
        // The load runs on its own: if it outlasts the deadline (a version
        // this node has not compiled yet), the join goes on without it and a
        // later join finds it compiled.
        let compiled = match self.runtime.cached(&d.digest) {
            Some(c) => c,
            None => {
                let loading = tokio::spawn(load(
                    self.runtime.clone(),
                    self.services.store.clone(),
                    d.clone(),
                ));
                match tokio::time::timeout(deadline, loading).await {
                    Ok(Ok(loaded)) => loaded?,
                    Ok(Err(e)) => return Err(HostError::Load(e.to_string())),
                    Err(_) => {
                        return Ok(failed(
                            "timeout",
                            "the function was still being compiled on this node when its deadline passed",
                        ))
                    }
                }
            }
        };
        let Some(_permits) = self.permit(project, Some(deadline)).await else {
            return Ok(failed(
                "busy",
                "the project's function concurrency limit was reached before the deadline",
            ));
        };
        Ok(self
            .runtime
            .call_joining(&compiled, self.context(project, d, None, dry_run), req)
            .await)
    }

    /// Runs `d`'s asynchronous handler on `event`.
    pub async fn run_event(
        &self,
        project: ProjectId,
        d: &Deployed,
        event: &Event,
        dry_run: bool,
    ) -> Result<Run<()>, HostError> {
        let compiled = load(self.runtime.clone(), self.services.store.clone(), d.clone()).await?;
        let Some(_permits) = self.permit(project, Some(worker::SLOT_WAIT)).await else {
            return Err(HostError::Busy);
        };
        let (runtime, ctx) = (
            self.runtime.clone(),
            self.context(project, d, Some(event), dry_run),
        );
        let event = wit_event(event);
        let run = self
            .handlers
            .run(async move { runtime.call_event(&compiled, ctx, event).await })
            .await;
        Ok(run.unwrap_or_else(|| failed("error", "the handler's thread failed")))
    }
}

/// The compiled form of `d`: cached, from the artifact cache, or compiled from the database.
async fn load(
    runtime: Arc<Runtime>,
    store: Option<switchboard_store::Store>,
    d: Deployed,
) -> Result<Arc<runtime::Compiled>, HostError> {
    let (id, version) = (d.function_id, d.version);
    runtime
        .load(&d.digest, || async move {
            let store = store.ok_or("no storage")?;
            match store.functions().component(id, version).await {
                Ok(Some(bytes)) => Ok(bytes),
                Ok(None) => Err(format!("version {version} has no component")),
                Err(e) => Err(e.to_string()),
            }
        })
        .await
        .map_err(HostError::Load)
}

/// A run that never started.
fn failed<T>(outcome: &'static str, message: &str) -> Run<T> {
    Run {
        result: Err(Failure {
            outcome,
            message: message.to_owned(),
        }),
        duration: std::time::Duration::ZERO,
        fuel_used: 0,
        logs: Vec::new(),
        actions: Vec::new(),
    }
}

/// An event of the log as the world's `event` record.
pub fn wit_event(event: &Event) -> bindings::switchboard::functions::types::Event {
    let value = serde_json::to_value(event).unwrap_or_default();
    bindings::switchboard::functions::types::Event {
        id: event.id.to_string(),
        type_: event.event_type().to_owned(),
        seq: event.seq.max(0) as u64,
        created_at: event
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        room: event.room().map(|r| r.name.to_string()),
        data: value
            .get("data")
            .map(|d| d.to_string())
            .unwrap_or_else(|| "{}".into()),
    }
}

/// A decision as the REST API shows it.
pub fn decision_json(d: &Decision) -> serde_json::Value {
    match d {
        Decision::Allow => serde_json::json!({"allow": {}}),
        Decision::Deny(reason) => serde_json::json!({"deny": {"reason": reason}}),
        Decision::Admit(a) => serde_json::json!({"admit": {
            "name": a.name,
            "metadata": a.metadata,
            "permissions": a.permissions.map(|p| serde_json::json!({
                "can_publish": p.can_publish,
                "can_subscribe": p.can_subscribe,
                "can_publish_data": p.can_publish_data,
            })),
        }}),
    }
}

/// The name of a decision.
pub fn decision_name(d: &Decision) -> &'static str {
    match d {
        Decision::Allow => "allow",
        Decision::Deny(_) => "deny",
        Decision::Admit(_) => "admit",
    }
}

/// What started an invocation.
pub(crate) enum Source<'a> {
    /// The `participant.joining` hook.
    Joining,
    /// An event from the log, by an asynchronous handler.
    Event(&'a Event),
    /// A test run through the API on a sample of this event type.
    Invoke(&'a str),
}

/// The invocation record of a run.
pub(crate) fn invocation<T>(
    project: ProjectId,
    d: &Deployed,
    source: Source<'_>,
    run: &Run<T>,
    decision: Option<&Decision>,
    now: chrono::DateTime<chrono::Utc>,
) -> Invocation {
    let (trigger, event_id, event_type) = match source {
        Source::Joining => ("joining", None, JOINING),
        Source::Event(e) => ("event", Some(e.id), e.event_type()),
        Source::Invoke(t) => ("invoke", None, t),
    };
    let (outcome, error) = match &run.result {
        Ok(_) => ("ok".to_owned(), None),
        Err(f) => (f.outcome.to_owned(), Some(f.message.clone())),
    };
    metrics::counter!("switchboard_function_invocations_total", "outcome" => outcome.clone(), "trigger" => trigger.to_owned())
        .increment(1);
    metrics::counter!("switchboard_function_compute_microseconds_total")
        .increment(run.duration.as_micros() as u64);
    Invocation {
        id: InvocationId::new(),
        project_id: project,
        function_id: d.function_id,
        version: d.version,
        trigger: trigger.to_owned(),
        event_id,
        event_type: event_type.to_owned(),
        outcome,
        decision: decision.map(|d| decision_name(d).to_owned()),
        error,
        duration_us: run.duration.as_micros() as u64,
        fuel_used: run.fuel_used,
        logs: run.logs.clone(),
        created_at: now - chrono::Duration::from_std(run.duration).unwrap_or_default(),
    }
}

fn joining_from_json(data: &serde_json::Value) -> Result<Joining, RunnerError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        room: String,
        identity: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        metadata: String,
        #[serde(default)]
        permissions: Option<switchboard_core::room::ParticipantPermissions>,
    }
    let s: Sample = serde_json::from_value(data.clone()).map_err(|e| {
        RunnerError::BadEvent(format!(
            "participant.joining data is {{room, identity, name?, metadata?, permissions?}}: {e}"
        ))
    })?;
    let p = s
        .permissions
        .unwrap_or(switchboard_core::room::ParticipantPermissions {
            can_publish: true,
            can_subscribe: true,
            can_publish_data: true,
        });
    Ok(Joining {
        room: s.room,
        identity: s.identity,
        name: s.name,
        metadata: s.metadata,
        permissions: Permissions {
            can_publish: p.can_publish,
            can_subscribe: p.can_subscribe,
            can_publish_data: p.can_publish_data,
        },
    })
}

#[async_trait]
impl FunctionRunner for FunctionHost {
    async fn check(&self, component: &[u8]) -> Result<String, RunnerError> {
        self.runtime.check(component).await.map_err(|e| match e {
            CheckError::Busy(_) => RunnerError::Busy(e.to_string()),
            e => RunnerError::Rejected(e.to_string()),
        })
    }

    async fn invoke(&self, req: InvokeRequest) -> Result<InvokeReport, RunnerError> {
        let store = self
            .services
            .store
            .clone()
            .ok_or_else(|| RunnerError::Internal("no storage".into()))?;
        let deployed = Deployed {
            function_id: req.function_id,
            name: req.name.clone(),
            version: req.version,
            digest: req.digest.clone(),
            triggers: switchboard_core::function::Triggers {
                joining: true,
                events: None,
            },
        };
        let now = || self.services.clock.now();
        let (inv, decision, actions) = if req.event_type == JOINING {
            let joining = joining_from_json(&req.data)?;
            let run = self
                .run_joining(req.project, &deployed, joining, true)
                .await
                .map_err(|e| RunnerError::Internal(e.to_string()))?;
            let decision = run.result.as_ref().ok();
            let inv = invocation(
                req.project,
                &deployed,
                Source::Invoke(JOINING),
                &run,
                decision,
                now(),
            );
            (inv, decision.map(decision_json), run.actions)
        } else {
            let body = serde_json::json!({
                "id": switchboard_core::EventId::new().to_string(),
                "project_id": req.project.to_string(),
                "seq": 0,
                "created_at": now(),
                "type": req.event_type,
                "data": req.data,
            });
            let event: Event = serde_json::from_value(body).map_err(|e| {
                RunnerError::BadEvent(format!(
                    "the sample is not a `{}` event: {e}; see GET /v1/events for real ones",
                    req.event_type
                ))
            })?;
            let run = match self.run_event(req.project, &deployed, &event, true).await {
                Ok(run) => run,
                Err(HostError::Busy) => failed("busy", "no invocation slot is free"),
                Err(e) => return Err(RunnerError::Internal(e.to_string())),
            };
            let inv = invocation(
                req.project,
                &deployed,
                Source::Invoke(event.event_type()),
                &run,
                None,
                now(),
            );
            (inv, None, run.actions)
        };
        store
            .functions()
            .record_invocation(&inv)
            .await
            .map_err(|e| RunnerError::Internal(e.to_string()))?;
        Ok(InvokeReport {
            invocation_id: inv.id,
            outcome: inv.outcome,
            decision,
            error: inv.error,
            duration_us: inv.duration_us,
            fuel_used: inv.fuel_used,
            logs: inv.logs,
            actions,
        })
    }
}

/// Applies an admission to a joining request.
pub(crate) fn admit(req: &mut Joining, a: Admission) {
    if let Some(n) = a.name {
        req.name = n;
    }
    if let Some(m) = a.metadata {
        req.metadata = m;
    }
    if let Some(p) = a.permissions {
        req.permissions = p;
    }
}
