//! `switchboard serve`: start every role this process runs and serve until SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use switchboard_api::{ApiConfig, AppState};
use switchboard_core::webhook::AddressPolicy;
use switchboard_core::{NodeId, SystemClock};
use switchboard_functions::FunctionHost;
use switchboard_store::Store;
use switchboard_webhooks::{RetrySchedule, WebhookConfig};
use tokio::net::TcpListener;

use switchboard_core::signal::IceServer;
use switchboard_media::http::DemoKey;
use switchboard_media::rtc::manager::RoomManager;
use switchboard_media::sfu::engine::RtcConfig;
use switchboard_media::sfu::rate_limit::PublishLimits;
use switchboard_media::turn::TurnRest;

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
    let media_url = format!("{}/rtc", public_url.replacen("http", "ws", 1));

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
    let heartbeat = switchboard_billing::heartbeat::start(
        store.clone(),
        clock.clone(),
        node,
        switchboard_billing::heartbeat::INTERVAL,
    )
    .await
    .context("cannot register this node")?;
    let rooms = RoomManager::new(store.clone(), rtc, node);
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
    let mut workers = webhooks.start();
    workers.push(heartbeat);
    if recording_storage.is_remote() {
        // Recordings a lost node was uploading end up with what reached the bucket.
        workers.push(switchboard_recording::live::start_janitor(
            store.clone(),
            recording_storage.clone(),
            Duration::from_secs(5),
        ));
    }
    workers.push(
        switchboard_billing::meter::Worker::new(
            store.clone(),
            clock.clone(),
            switchboard_billing::meter::Config::default(),
        )
        .start(),
    );
    let mut limits = switchboard_functions::Limits::default();
    if let Some(ms) = flags
        .function_join_deadline_ms
        .or(file.function_join_deadline_ms)
    {
        limits.joining_deadline = Duration::from_millis(ms);
    }
    if let Some(ms) = flags
        .function_event_deadline_ms
        .or(file.function_event_deadline_ms)
    {
        limits.event_deadline = Duration::from_millis(ms);
    }
    if let Some(mb) = flags.function_memory_mb.or(file.function_memory_mb) {
        limits.memory_bytes = (mb as usize) << 20;
    }
    let cache_dir = flags
        .function_cache_dir
        .clone()
        .or(file.function_cache_dir.clone())
        .unwrap_or_else(|| std::env::temp_dir().join("switchboard-function-cache"));
    let functions = FunctionHost::new(
        switchboard_functions::Services::new(
            store.clone(),
            rooms.clone(),
            rooms.clone(),
            clock.clone(),
        ),
        limits,
        Some(cache_dir),
    )?;
    functions.warm_up();
    rooms.set_join_gate(Arc::new(switchboard_functions::gate::FunctionGate::new(
        functions.clone(),
    )));
    workers.extend(
        switchboard_functions::worker::Worker::new(
            functions.clone(),
            store.clone(),
            Duration::from_secs(1),
        )
        .start(),
    );
    let mut stripe_webhooks = None;
    let stripe_currency = file.stripe.as_ref().map(|s| s.currency.clone());
    if let Some(stripe) = file.stripe.clone() {
        if let Some(secret) = &stripe.webhook_secret {
            stripe_webhooks = Some(
                switchboard_billing::stripe::webhook::Receiver::new(
                    store.clone(),
                    clock.clone(),
                    secret,
                )
                .routes(),
            );
        } else {
            tracing::warn!("[stripe] has no webhook_secret: Stripe's webhooks are refused, so no project is suspended for billing");
        }
        let worker = switchboard_billing::stripe::Worker::new(
            store.clone(),
            plans.clone(),
            stripe,
            clock.clone(),
        )
        .context("cannot set up the Stripe client")?;
        workers.push(worker.start());
    }
    let state = AppState {
        store: store.clone(),
        directory: rooms.clone(),
        recorders: rooms.clone(),
        recording_storage: Some(recording_storage.clone()),
        functions: Some(functions.clone()),
        clock: clock.clone(),
        config: Arc::new(ApiConfig {
            media_url,
            webhook_policy,
            plans,
        }),
    };
    let demo = dev.then(|| DemoKey {
        key_id: DEV_KEY_ID.into(),
        secret: DEV_KEY_SECRET.into(),
    });
    let mut dashboard = switchboard_dashboard::Dashboard::new(
        store.clone(),
        rooms.clone(),
        clock.clone(),
        state.config.plans.clone(),
        public_url.starts_with("https://"),
    )
    .with_recording_storage(recording_storage.clone())
    .with_webhook_policy(webhook_policy)
    .with_functions(functions);
    if let Some(currency) = &stripe_currency {
        dashboard = dashboard.with_stripe(currency);
    }
    let mut extra = switchboard_media::http::router(rooms.clone(), demo).merge(dashboard.router());
    if let Some(routes) = stripe_webhooks {
        extra = extra.merge(routes);
    }
    let app = switchboard_api::app_with(state, extra, Some(switchboard_media::http::openapi()));

    // The "listening on" line comes last: scripts and tests wait for it.
    if let Some(project) = dev_project {
        println!("Dev mode: project {project}, API key `{DEV_KEY_ID}`, secret `{DEV_KEY_SECRET}`");
        println!("  first call: curl -u {DEV_KEY_ID}:{DEV_KEY_SECRET} -X POST {public_url}/v1/rooms -d '{{\"name\":\"hello\"}}'");
        println!("  dashboard  {public_url}/dashboard   (sign in as {DEV_USER_EMAIL}, password `{DEV_USER_PASSWORD}`)");
    }
    println!("  REST API   {public_url}/v1   (OpenAPI at {public_url}/v1/openapi.json)");
    println!(
        "  signaling  {}   (SDK at {public_url}/sdk/switchboard.js)",
        media_url_for_banner(&public_url)
    );
    if dev {
        println!("  demo       {public_url}/demo   (open it in two tabs)");
    }
    println!("  storage    {}", storage.describe());
    println!(
        "Switchboard {} listening on http://{local}",
        env!("CARGO_PKG_VERSION")
    );
    tracing::info!(%local, dev, "serving");

    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("HTTP server failed")?;
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
