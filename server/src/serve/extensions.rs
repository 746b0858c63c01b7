//! The optional parts a build may leave out: the WebAssembly function host
//! (feature `functions`) and billing through Stripe (feature `stripe`).

use std::sync::Arc;
#[cfg(feature = "functions")]
use std::time::Duration;

#[cfg(feature = "stripe")]
use anyhow::Context;
#[cfg(not(feature = "functions"))]
use switchboard_core::function::FunctionRunner;
use switchboard_core::node::NodeRole;
use switchboard_media::room::manager::RoomManager;
use switchboard_store::Store;

/// The function host's settings, from flags and the config file.
#[cfg_attr(not(feature = "functions"), allow(dead_code))]
pub struct FunctionSettings {
    pub join_deadline_ms: Option<u64>,
    pub event_deadline_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub cache_dir: Option<std::path::PathBuf>,
    pub limits: crate::config::LimitsConfig,
}

/// Starts the function host with its join gate and workers (builds with the
/// `functions` feature, the default).
#[cfg(feature = "functions")]
pub fn start_functions(
    settings: FunctionSettings,
    role: NodeRole,
    store: &Store,
    rooms: &Arc<RoomManager>,
    directory: &Arc<switchboard_cluster::ClusterDirectory>,
    clock: &Arc<dyn switchboard_core::Clock>,
    workers: &mut Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<Option<Arc<switchboard_functions::FunctionHost>>> {
    let mut limits = switchboard_functions::Limits::default();
    if let Some(ms) = settings.join_deadline_ms {
        limits.joining_deadline = Duration::from_millis(ms);
    }
    if let Some(ms) = settings.event_deadline_ms {
        limits.event_deadline = Duration::from_millis(ms);
    }
    if let Some(mb) = settings.memory_mb {
        limits.memory_bytes = (mb as usize) << 20;
    }
    if let Some(n) = settings.limits.function_compilations {
        anyhow::ensure!(
            n > 0,
            "[limits] function_compilations is 0: give at least 1"
        );
        limits.compilations = n;
    }
    if let Some(mb) = settings.limits.function_artifact_cache_mb {
        limits.artifact_bytes = mb << 20;
    }
    if let Some(n) = settings.limits.function_emits_per_invocation {
        limits.emits_per_invocation = n;
    }
    if let Some(n) = settings.limits.function_handlers_per_project {
        anyhow::ensure!(
            n > 0,
            "[limits] function_handlers_per_project is 0: give at least 1"
        );
        limits.handlers_per_project = n;
    }
    let cache_dir = settings
        .cache_dir
        .unwrap_or_else(|| std::env::temp_dir().join("switchboard-function-cache"));
    let functions = switchboard_functions::FunctionHost::new(
        switchboard_functions::Services::new(
            store.clone(),
            directory.clone(),
            directory.clone(),
            clock.clone(),
        ),
        limits,
        Some(cache_dir),
    )?;
    functions.warm_up();
    workers.push(functions.start_sweeper(Duration::from_secs(600)));
    if role.hosts_media() {
        rooms.set_join_gate(Arc::new(switchboard_functions::gate::FunctionGate::new(
            functions.clone(),
        )));
    }
    if role.serves_api() {
        // Asynchronous handlers of the event log run on the control plane.
        workers.extend(
            switchboard_functions::worker::Worker::new(
                functions.clone(),
                store.clone(),
                Duration::from_secs(1),
            )
            .start(),
        );
    }
    Ok(Some(functions))
}

/// Without the `functions` feature (the SFU benchmark's lean build), no
/// function runs: joins are not gated and deploys are refused.
#[cfg(not(feature = "functions"))]
pub fn start_functions(
    _: FunctionSettings,
    _: NodeRole,
    _: &Store,
    _: &Arc<RoomManager>,
    _: &Arc<switchboard_cluster::ClusterDirectory>,
    _: &Arc<dyn switchboard_core::Clock>,
    _: &mut Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<Option<Arc<dyn FunctionRunner>>> {
    tracing::warn!("this build has no function host (built without the `functions` feature)");
    Ok(None)
}

/// Starts billing through Stripe: its worker, and the routes of Stripe's
/// webhooks when a signing secret is set.
#[cfg(feature = "stripe")]
pub fn start_stripe(
    stripe: switchboard_billing::stripe::Config,
    store: &Store,
    plans: &switchboard_core::billing::PlanBook,
    clock: &Arc<dyn switchboard_core::Clock>,
    workers: &mut Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<Option<axum::Router>> {
    let webhooks = match &stripe.webhook_secret {
        Some(secret) => Some(
            switchboard_billing::stripe::webhook::Receiver::new(
                store.clone(),
                clock.clone(),
                secret,
            )
            .routes(),
        ),
        None => {
            tracing::warn!("[stripe] has no webhook_secret: Stripe's webhooks are refused, so no project is suspended for billing");
            None
        }
    };
    let worker = switchboard_billing::stripe::Worker::new(
        store.clone(),
        plans.clone(),
        stripe,
        clock.clone(),
    )
    .context("cannot set up the Stripe client")?;
    workers.push(worker.start());
    Ok(webhooks)
}

/// Refuses a `[stripe]` section: this build has no Stripe client.
#[cfg(not(feature = "stripe"))]
pub fn start_stripe(
    _: switchboard_billing::stripe::Config,
    _: &Store,
    _: &switchboard_core::billing::PlanBook,
    _: &Arc<dyn switchboard_core::Clock>,
    _: &mut Vec<tokio::task::JoinHandle<()>>,
) -> anyhow::Result<Option<axum::Router>> {
    anyhow::bail!(
        "the config file has a [stripe] section, but this switchboard was built without \
         Stripe (cargo feature `stripe`): build it with default features, or remove [stripe]"
    )
}
