//! `switchboard serve`: start every role this process runs and serve until SIGTERM.

mod dev;
mod extensions;
mod media;

pub use dev::{DEV_KEY_ID, DEV_KEY_SECRET};
use dev::{DEV_USER_EMAIL, DEV_USER_PASSWORD};

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use switchboard_api::{ApiConfig, AppState};
use switchboard_core::function::FunctionRunner;
use switchboard_core::node::{NodeLoad, NodeRole, HEARTBEAT_INTERVAL};
use switchboard_core::webhook::AddressPolicy;
use switchboard_core::{NodeId, SystemClock};
use switchboard_store::nodes::NodeRegistration;
use switchboard_webhooks::{RetrySchedule, WebhookConfig};
use tokio::net::TcpListener;

use switchboard_media::http::DemoKey;
use switchboard_media::room::manager::RoomManager;

use crate::config::{init_logging, FileConfig, ServeFlags, Storage, DEFAULT_HTTP_ADDR};

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn run(flags: ServeFlags) -> anyhow::Result<()> {
    let file = FileConfig::load(flags.storage.config.as_deref())?;
    init_logging(flags.log_format.or(file.log_format));
    let plans = file.billing.clone().unwrap_or_default();
    plans
        .validate()
        .context("the [billing] section of the config file")?;
    if let Some(stripe) = &file.stripe {
        stripe.validate(&plans)?;
    }
    let placement = file.placement.clone().unwrap_or_default();
    let capacity = placement.capacity()?;
    let client_ip_header = placement.client_ip_header()?;
    let dev = flags.dev || file.dev.unwrap_or(false);
    let http_addr = match flags.http_addr.or(file.http_addr) {
        Some(a) => a,
        None => DEFAULT_HTTP_ADDR.parse().context("default address")?,
    };

    let storage = Storage::from_parts(&flags.storage, &file)?;
    let store = storage.open().await?;
    store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    let nats = match flags.nats_url.clone().or(file.nats_url.clone()) {
        Some(url) => Some(switchboard_cluster::connect(&url).await?),
        None => None,
    };
    let role = flags.role.or(file.role).unwrap_or(NodeRole::All);
    if role != NodeRole::All {
        anyhow::ensure!(
            nats.is_some(),
            "--role {role} runs one part of a deployment: give every node --nats-url \
             (a NATS server with JetStream) so the parts reach each other"
        );
        anyhow::ensure!(
            store.backend() == switchboard_store::Backend::Postgres,
            "--role {role} needs the PostgreSQL database every node shares \
             (--database-url postgres://...); an SQLite file belongs to one process"
        );
    }
    let store = match &nats {
        Some(client) => store.with_bus(Arc::new(
            switchboard_cluster::JetStreamBus::start(client.clone()).await?,
        )),
        None => store,
    };
    let dev_project = if dev {
        let project = dev::seed_dev_project(&store).await?;
        dev::seed_dev_user(&store, project).await?;
        Some(project)
    } else {
        dev::retire_dev_key(&store).await?;
        dev::retire_dev_user(&store).await?;
        None
    };

    let listener = TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("cannot listen on {http_addr}; is another server using it? choose another with --http-addr"))?;
    let local = listener.local_addr()?;
    let public_url = flags
        .public_url
        .clone()
        .or(file.public_url.clone())
        .unwrap_or_else(|| format!("http://{local}"))
        .trim_end_matches('/')
        .to_owned();

    let rtc = media::rtc_config(&flags, &file)?;
    let clock: Arc<dyn switchboard_core::Clock> = Arc::new(SystemClock);
    let node = NodeId::new();
    let region = flags
        .region
        .clone()
        .or(file.region.clone())
        .unwrap_or_default();
    let workers = media::media_workers(
        flags.rtc_udp_port.or(file.rtc_udp_port),
        flags.rtc_workers.or(file.rtc_workers),
        &rtc,
        role.hosts_media(),
    )?;
    let rooms = RoomManager::new(store.clone(), rtc, workers, node, public_url.clone());
    let media_port = (rooms.media_port(), rooms.rtc.ice_tcp);
    let load: switchboard_cluster::heartbeat::LoadSource = {
        let (rooms, cpu) = (rooms.clone(), switchboard_media::load::CpuShare::new());
        Arc::new(move || NodeLoad {
            cpu: cpu.sample(),
            ..rooms.load()
        })
    };
    let heartbeat = switchboard_cluster::heartbeat::start(
        store.clone(),
        clock.clone(),
        NodeRegistration {
            id: node,
            role,
            region: region.clone(),
            url: public_url.clone(),
        },
        load,
        {
            let rooms = rooms.clone();
            Arc::new(move || rooms.participant_count())
        },
        HEARTBEAT_INTERVAL,
    )
    .await
    .context("cannot register this node")?;
    tracing::info!(node_id = %node, %region, %role, "node registered");
    if nats.is_none() {
        rooms.set_standalone();
    }
    rooms.set_capacity(capacity);
    let directory = Arc::new(switchboard_cluster::ClusterDirectory::new(
        store.clone(),
        nats.clone(),
        node,
        public_url.clone(),
        role.hosts_media()
            .then(|| rooms.clone() as Arc<dyn switchboard_cluster::rpc::MediaTier>),
    ));
    let spool = storage.data_dir.join("recordings");
    let recording_storage = match file.recordings.as_ref().and_then(|r| r.s3.as_ref()) {
        Some(s3) => switchboard_recording::Storage::with_s3(spool, s3)
            .context("[recordings.s3] in the config file is not usable")?,
        None => switchboard_recording::Storage::local(spool),
    };
    rooms.set_recording_storage(recording_storage.clone());
    let webhook_policy = if dev {
        AddressPolicy::DEV
    } else {
        AddressPolicy::STRICT
    };
    let webhook_schedule = match (flags.webhook_retry_schedule, &file.webhook_retry_schedule) {
        (Some(s), _) => s,
        (None, Some(text)) => crate::config::parse_schedule(text)
            .map_err(|e| anyhow::anyhow!("webhook_retry_schedule in the config file: {e}"))?,
        (None, None) => RetrySchedule::default(),
    };
    let webhooks = switchboard_webhooks::Worker::new(
        store.clone(),
        clock.clone(),
        WebhookConfig {
            policy: webhook_policy,
            schedule: webhook_schedule,
            ..WebhookConfig::default()
        },
    )?;
    let mut workers = vec![heartbeat];
    if role.serves_api() {
        workers.extend(webhooks.start());
    }
    if role.hosts_media() {
        workers.push(switchboard_media::load::export_counters());
    }
    if let Some(client) = nats.as_ref().filter(|_| role.hosts_media()) {
        // A room may span this node and nodes of other regions.
        rooms.set_interconnect(Arc::new(switchboard_cluster::rpc::NatsInterconnect::new(
            client.clone(),
        )));
        // Other nodes' REST calls on the rooms hosted here, and the links of
        // the rooms hosted with them.
        workers.push(
            switchboard_cluster::rpc::serve(client.clone(), node, rooms.clone())
                .await
                .context("cannot subscribe to this node's NATS subject")?,
        );
    }
    if role.serves_api() && recording_storage.is_remote() {
        // Recordings a lost node was uploading end up with what reached the bucket.
        workers.push(switchboard_recording::live::start_janitor(
            store.clone(),
            recording_storage.clone(),
            Duration::from_secs(5),
        ));
    }
    if role.serves_api() {
        let (keep, every) = file.retention.clone().unwrap_or_default().periods()?;
        workers.push(crate::janitor::start(
            store.clone(),
            clock.clone(),
            keep,
            every,
        )?);
        workers.push(
            switchboard_billing::meter::Worker::new(
                store.clone(),
                clock.clone(),
                switchboard_billing::meter::Config::default(),
            )
            .start(),
        );
    }
    let functions = extensions::start_functions(
        extensions::FunctionSettings {
            join_deadline_ms: flags
                .function_join_deadline_ms
                .or(file.function_join_deadline_ms),
            event_deadline_ms: flags
                .function_event_deadline_ms
                .or(file.function_event_deadline_ms),
            memory_mb: flags.function_memory_mb.or(file.function_memory_mb),
            cache_dir: flags
                .function_cache_dir
                .clone()
                .or(file.function_cache_dir.clone()),
            limits: file.limits.clone().unwrap_or_default(),
        },
        role,
        &store,
        &rooms,
        &directory,
        &clock,
        &mut workers,
    )?;
    let stripe_currency = file.stripe.as_ref().map(|s| s.currency.clone());
    let stripe_webhooks = match file.stripe.clone().filter(|_| role.serves_api()) {
        Some(stripe) => extensions::start_stripe(stripe, &store, &plans, &clock, &mut workers)?,
        None => None,
    };
    let listener_limits = crate::listener::Limits {
        read_timeout: Duration::from_secs(
            flags
                .http_read_timeout_s
                .or(file.http_read_timeout_s)
                .unwrap_or(10),
        ),
        per_ip: flags
            .max_connections_per_ip
            .or(file.max_connections_per_ip)
            .unwrap_or(512),
    };
    let state = AppState {
        store: store.clone(),
        directory: directory.clone(),
        rooms_router: match &nats {
            Some(_) => Arc::new(
                switchboard_cluster::Router::new(store.clone(), clock.clone())
                    .with_capacity(capacity),
            ) as Arc<dyn switchboard_core::node::RoomRouter>,
            None => Arc::new(switchboard_cluster::router::SingleNode::new(
                store.clone(),
                clock.clone(),
                node,
            )),
        },
        recorders: directory.clone(),
        recording_storage: Some(recording_storage.clone()),
        functions: functions.clone().map(|f| f as Arc<dyn FunctionRunner>),
        clock: clock.clone(),
        request_limits: Arc::new(switchboard_api::rate_limit::RequestLimiter::new(
            file.limits.clone().unwrap_or_default().requests(),
        )),
        config: Arc::new(ApiConfig {
            webhook_policy,
            plans,
            public_url: public_url.clone(),
            client_regions: switchboard_core::node::ClientRegions::new(placement.client_regions),
            client_ip_header,
            quotas: file.limits.clone().unwrap_or_default().quotas(),
            metrics_token: flags
                .metrics_token
                .clone()
                .or(file.metrics_token.clone())
                .filter(|t| !t.is_empty()),
        }),
    };
    let demo = dev.then(|| DemoKey {
        key_id: DEV_KEY_ID.into(),
        secret: DEV_KEY_SECRET.into(),
    });
    let mut dashboard = switchboard_dashboard::Dashboard::new(
        store.clone(),
        directory.clone(),
        clock.clone(),
        state.config.plans.clone(),
        public_url.starts_with("https://"),
    )
    .with_recording_storage(recording_storage.clone())
    .with_webhook_policy(webhook_policy)
    .with_client_ip_header(state.config.client_ip_header.clone());
    if let Some(functions) = functions {
        dashboard = dashboard.with_functions(functions);
    }
    if let Some(currency) = &stripe_currency {
        dashboard = dashboard.with_stripe(currency);
    }
    let media_routes = role
        .hosts_media()
        .then(|| switchboard_media::http::router(rooms.clone(), demo));
    let app = if role.serves_api() {
        let mut extra = dashboard.router();
        if let Some(routes) = media_routes {
            extra = extra.merge(routes);
        }
        if let Some(routes) = stripe_webhooks {
            extra = extra.merge(routes);
        }
        switchboard_api::app_with(state, extra, Some(switchboard_media::http::openapi()))
    } else {
        switchboard_api::media_node_app(state, media_routes.unwrap_or_default())
    };

    // The "listening on" line comes last: scripts and tests wait for it.
    if let Some(project) = dev_project {
        println!("Dev mode: project {project}, API key `{DEV_KEY_ID}`, secret `{DEV_KEY_SECRET}`");
        println!("  first call: curl -u {DEV_KEY_ID}:{DEV_KEY_SECRET} -X POST {public_url}/v1/rooms -d '{{\"name\":\"hello\"}}'");
        println!("  dashboard  {public_url}/dashboard   (sign in as {DEV_USER_EMAIL}, password `{DEV_USER_PASSWORD}`)");
    }
    if role.serves_api() {
        println!("  REST API   {public_url}/v1   (OpenAPI at {public_url}/v1/openapi.json)");
    }
    if role.hosts_media() {
        println!(
            "  signaling  {}   (SDK at {public_url}/sdk/switchboard.js)",
            media_url_for_banner(&public_url)
        );
        let (port, tcp) = media_port;
        let tcp = if tcp { " and tcp" } else { "" };
        println!(
            "  media      udp{tcp} port {port}   (every peer connection; clients must reach it)"
        );
    }
    println!("  node       {node}, role {role}, region {region}");
    if dev && role == NodeRole::All {
        println!("  demo       {public_url}/demo   (open it in two tabs)");
    }
    println!("  storage    {}", storage.describe());
    println!(
        "Switchboard {} listening on http://{local}",
        env!("CARGO_PKG_VERSION")
    );
    tracing::info!(%local, dev, "serving");

    crate::listener::serve(listener, app, listener_limits, shutdown_signal()).await;
    for worker in workers {
        worker.abort();
    }
    for room in rooms.rooms() {
        room.close(switchboard_core::event::LeaveReason::NodeLost)
            .await;
    }
    // Recordings close their files, write their manifests and end; what does
    // not in time is failed by stop_node below.
    let unfinished = rooms.wait_for_recordings(Duration::from_secs(30)).await;
    if unfinished > 0 {
        tracing::warn!(unfinished, "recordings did not end before shutdown");
    }
    // Its sessions are closed; the meter must not close them again at the last heartbeat.
    if let Err(e) = store.usage().stop_node(node, clock.now()).await {
        tracing::warn!(error = %e, "could not record that this node stopped");
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

fn media_url_for_banner(public_url: &str) -> String {
    format!("{}/rtc", public_url.replacen("http", "ws", 1))
}
