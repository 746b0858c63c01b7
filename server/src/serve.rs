//! `switchboard serve`: start every role this process runs and serve until SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use switchboard_api::{ApiConfig, AppState};
use switchboard_core::function::FunctionRunner;
use switchboard_core::node::{NodeLoad, NodeRole, HEARTBEAT_INTERVAL};
use switchboard_core::webhook::AddressPolicy;
use switchboard_core::{NodeId, SystemClock};
use switchboard_store::nodes::NodeRegistration;
use switchboard_store::Store;
use switchboard_webhooks::{RetrySchedule, WebhookConfig};
use tokio::net::TcpListener;

use switchboard_core::signal::IceServer;
use switchboard_media::http::DemoKey;
use switchboard_media::peer::config::RtcConfig;
use switchboard_media::room::manager::RoomManager;
use switchboard_media::sfu::rate_limit::PublishLimits;
use switchboard_media::turn::TurnRest;
use switchboard_media::worker::Workers;

use crate::config::{init_logging, FileConfig, ServeFlags, Storage, DEFAULT_HTTP_ADDR};

/// Key id of the development project's API key.
pub const DEV_KEY_ID: &str = "devkey";
/// Secret of the development project's API key; accepted only in `--dev`.
pub const DEV_KEY_SECRET: &str = "secret";

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
        let project = seed_dev_project(&store).await?;
        seed_dev_user(&store, project).await?;
        Some(project)
    } else {
        retire_dev_key(&store).await?;
        retire_dev_user(&store).await?;
        None
    };

    let listener = TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("cannot listen on {http_addr}; is another server using it? choose another with --http-addr"))?;
    let local = listener.local_addr()?;
    let public_url = flags
        .public_url
        .or(file.public_url)
        .unwrap_or_else(|| format!("http://{local}"))
        .trim_end_matches('/')
        .to_owned();

    let mut rtc =
        RtcConfig {
            bind_ip: flags
                .rtc_bind_ip
                .or(file.rtc_bind_ip)
                .unwrap_or(RtcConfig::default().bind_ip),
            node_ip: flags.node_ip.or(file.node_ip),
            ice_servers: ice_servers(
                &flags.ice_server,
                file.ice_servers.as_deref().unwrap_or_default(),
            )?,
            connect_timeout: std::time::Duration::from_secs(flags.rtc_connect_timeout_s),
            turn: None,
            port_range: match (flags.rtc_port_range, &file.rtc_port_range) {
                (Some(r), _) => Some(r),
                (None, Some(text)) => Some(text.parse().map_err(|e: String| {
                    anyhow::anyhow!("rtc_port_range in the config file: {e}")
                })?),
                (None, None) => None,
            },
            ice_tcp: flags.rtc_tcp || file.rtc_tcp.unwrap_or(false),
            relay_sender_reports: true,
            publish_limits: {
                let default = PublishLimits::default();
                PublishLimits {
                    bitrate_bps: flags
                        .max_publish_bitrate
                        .or(file.max_publish_bitrate)
                        .map_or(default.bitrate_bps, u64::from),
                    packets_per_s: flags
                        .max_publish_packet_rate
                        .or(file.max_publish_packet_rate)
                        .map_or(default.packets_per_s, u64::from),
                    tracks: file
                        .limits
                        .as_ref()
                        .and_then(|l| l.tracks_per_participant)
                        .unwrap_or(default.tracks),
                }
            },
        };
    let turn_urls = if flags.turn_url.is_empty() {
        file.turn_urls.clone().unwrap_or_default()
    } else {
        flags.turn_url.clone()
    };
    rtc.turn = turn_rest(
        turn_urls,
        flags.turn_secret.clone().or(file.turn_secret.clone()),
        flags.turn_ttl_s.or(file.turn_ttl_s),
    )?;
    anyhow::ensure!(
        rtc.publish_limits.bitrate_bps >= 100_000,
        "--max-publish-bitrate must be at least 100k; a lower limit would cut even a single audio track"
    );
    let clock: Arc<dyn switchboard_core::Clock> = Arc::new(SystemClock);
    let node = NodeId::new();
    let region = flags
        .region
        .clone()
        .or(file.region.clone())
        .unwrap_or_default();
    let workers = media_workers(
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
    let functions = start_functions(
        FunctionSettings {
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
        Some(stripe) => start_stripe(stripe, &store, &plans, &clock, &mut workers)?,
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

/// Makes sure the dev project and its `devkey` / `secret` key exist and work.
async fn seed_dev_project(store: &Store) -> anyhow::Result<switchboard_core::ProjectId> {
    // Re-sealing on every start keeps the key usable when the master key changed.
    if store
        .api_keys()
        .reset_secret(DEV_KEY_ID, DEV_KEY_SECRET)
        .await?
    {
        if let Some(auth) = store
            .api_keys()
            .authenticate_pair(DEV_KEY_ID, DEV_KEY_SECRET)
            .await?
        {
            return Ok(auth.project_id);
        }
    }
    let now = chrono::Utc::now();
    let project = store.projects().create("Development", now).await?;
    store
        .api_keys()
        .insert(project.id, DEV_KEY_ID, DEV_KEY_SECRET, "dev mode key", now)
        .await?;
    Ok(project.id)
}

/// The dev user: signs in to the dev project's dashboard in dev mode.
pub const DEV_USER_EMAIL: &str = "dev@switchboard.local";
/// The dev user's password, printed at start.
pub const DEV_USER_PASSWORD: &str = "switchboard-dev";

/// Makes sure the dev user exists, signs in with the dev password and belongs to `project`.
async fn seed_dev_user(store: &Store, project: switchboard_core::ProjectId) -> anyhow::Result<()> {
    let hash = switchboard_dashboard::password::hash(DEV_USER_PASSWORD)?;
    let now = chrono::Utc::now();
    let user = match store.users().by_email(DEV_USER_EMAIL).await? {
        Some((user, old)) => {
            if !switchboard_dashboard::password::verify(DEV_USER_PASSWORD, &old) {
                store.users().set_password(user.id, &hash).await?;
            }
            user
        }
        None => store.users().create(DEV_USER_EMAIL, &hash, now).await?,
    };
    store.users().add_to_project(user.id, project, now).await?;
    Ok(())
}

/// Outside dev mode the well-known dev password must not sign anyone in.
async fn retire_dev_user(store: &Store) -> anyhow::Result<()> {
    if let Some((user, old)) = store.users().by_email(DEV_USER_EMAIL).await? {
        if switchboard_dashboard::password::verify(DEV_USER_PASSWORD, &old) {
            let random = switchboard_store::api_keys::generate_secret();
            let hash = switchboard_dashboard::password::hash(&random[..32])?;
            store.users().set_password(user.id, &hash).await?;
            tracing::warn!(
                "dev mode is off: the dev dashboard user's password was replaced by a random one"
            );
        }
    }
    Ok(())
}

/// Outside dev mode the well-known dev secret must not open anything.
async fn retire_dev_key(store: &Store) -> anyhow::Result<()> {
    if store
        .api_keys()
        .force_revoke(DEV_KEY_ID, chrono::Utc::now())
        .await?
    {
        tracing::warn!(
            "revoked the dev key `{DEV_KEY_ID}`: its well-known secret is accepted only with --dev"
        );
    }
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

/// The TURN REST server from `--turn-url` and `--turn-secret`: both or neither.
fn turn_rest(
    urls: Vec<String>,
    secret: Option<String>,
    ttl_s: Option<u64>,
) -> anyhow::Result<Option<TurnRest>> {
    match (urls.is_empty(), secret) {
        (true, None) => Ok(None),
        (true, Some(_)) => anyhow::bail!("--turn-secret needs --turn-url"),
        (false, None) => {
            anyhow::bail!("--turn-url needs --turn-secret (coturn's static-auth-secret)")
        }
        (false, Some(secret)) => {
            if let Some(bad) = urls
                .iter()
                .find(|u| !(u.starts_with("turn:") || u.starts_with("turns:")))
            {
                anyhow::bail!("--turn-url `{bad}` must start with turn: or turns:");
            }
            anyhow::ensure!(!secret.is_empty(), "--turn-secret must not be empty");
            Ok(Some(TurnRest {
                urls,
                secret,
                ttl: std::time::Duration::from_secs(ttl_s.unwrap_or(86_400)),
            }))
        }
    }
}

/// STUN/TURN servers from `--ice-server URL[,username,credential]` flags and the config file.
fn ice_servers(flags: &[String], file: &[String]) -> anyhow::Result<Vec<IceServer>> {
    flags
        .iter()
        .chain(file)
        .map(|spec| {
            let mut parts = spec.splitn(3, ',');
            let url = parts.next().unwrap_or_default().trim();
            if !(url.starts_with("stun:") || url.starts_with("turn:") || url.starts_with("turns:"))
            {
                anyhow::bail!("ICE server `{url}` must start with stun:, turn: or turns:");
            }
            Ok(IceServer {
                urls: vec![url.to_owned()],
                username: parts.next().map(str::to_owned),
                credential: parts.next().map(str::to_owned),
            })
        })
        .collect()
}

/// The function host's settings, from flags and the config file.
#[cfg_attr(not(feature = "functions"), allow(dead_code))]
struct FunctionSettings {
    join_deadline_ms: Option<u64>,
    event_deadline_ms: Option<u64>,
    memory_mb: Option<u64>,
    cache_dir: Option<std::path::PathBuf>,
    limits: crate::config::LimitsConfig,
}

/// Starts the function host with its join gate and workers (builds with the
/// `functions` feature, the default).
#[cfg(feature = "functions")]
fn start_functions(
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
fn start_functions(
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
fn start_stripe(
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
fn start_stripe(
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

/// The media port when none is configured (LiveKit's `rtc.udp_port` default too).
const DEFAULT_RTC_UDP_PORT: u16 = 7882;

/// Starts the media workers on the node's one UDP port: `--rtc-udp-port`,
/// else the first free port of `--rtc-port-range`, else 7882. A node that
/// hosts no media gets one worker on a port nobody is told of.
fn media_workers(
    udp_port: Option<u16>,
    workers: Option<u16>,
    rtc: &RtcConfig,
    hosts_media: bool,
) -> anyhow::Result<Workers> {
    let count = workers
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if !hosts_media {
        let bind = std::net::SocketAddr::new(rtc.bind_ip, 0);
        return Workers::start(rtc, bind, rtc.node_ip, 1).context("cannot start a media worker");
    }
    let port = match (udp_port, rtc.port_range) {
        (Some(port), _) => port,
        (None, Some(range)) => range
            .ports_from(0)
            .find(|&p| range.is_free(rtc.bind_ip, p, rtc.ice_tcp))
            .ok_or_else(|| {
                anyhow::anyhow!("every port of --rtc-port-range {range} is in use; widen it or give --rtc-udp-port")
            })?,
        (None, None) => DEFAULT_RTC_UDP_PORT,
    };
    // The workers' sockets share the port with SO_REUSEPORT, which another
    // process of the same user could share too: refuse a port already bound.
    if port != 0 {
        let free = std::net::UdpSocket::bind((rtc.bind_ip, port)).is_ok()
            && (!rtc.ice_tcp || std::net::TcpListener::bind((rtc.bind_ip, port)).is_ok());
        anyhow::ensure!(
            free,
            "the media port {}:{port} is in use (another server?); choose another with --rtc-udp-port (0 picks a free one)",
            rtc.bind_ip
        );
    }
    let bind = std::net::SocketAddr::new(rtc.bind_ip, port);
    let workers = Workers::start(rtc, bind, rtc.node_ip, count)
        .with_context(|| format!("cannot open the media port {bind}"))?;
    tracing::info!(
        port = workers.local_addr().port(),
        workers = workers.len(),
        ice_tcp = rtc.ice_tcp,
        "media on one UDP port"
    );
    Ok(workers)
}
