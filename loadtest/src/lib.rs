//! `switchboard loadtest`: simulated participants that join a room on a
//! Switchboard media node, publish synthetic Opus/VP8 RTP and measure what
//! every subscriber receives.
//!
//! Publishers and subscribers are ordinary clients of the signaling protocol
//! (`docs/signaling.md`), built on the same WebRTC stack as the SFU. Every
//! payload carries a [`synth::Stamp`] (send time and a per-track counter), so
//! each subscriber measures loss, jitter and latency per track without
//! touching the server.
//!
//! A run: publishers join and start sending; subscribers join (at most
//! `join_concurrency` at a time) and are timed from token request to first
//! media packet; media flows for `duration`; publishers stop, the tail
//! drains, and the [`Report`] sums up each published track over all its
//! subscribers.

pub mod client;
pub mod clock;
pub mod janus;
pub mod peer;
pub mod reconnect;
pub mod report;
pub mod stats;
pub mod subscriber;
pub mod synth;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::json;
use switchboard_media::peer::config::RtcConfig;
use tokio::sync::Semaphore;

use client::{PublishSpec, SimParticipant};
use clock::Epoch;
pub use report::Report;

/// How long after the publishers stop the subscribers keep counting.
const DRAIN: Duration = Duration::from_secs(1);

/// What went wrong in a run.
#[derive(Debug, thiserror::Error)]
pub enum LoadtestError {
    /// The API refused a request or could not be reached.
    #[error("API: {0}")]
    Api(String),
    /// Signaling with the media node failed.
    #[error("signaling: {0}")]
    Signaling(String),
    /// The local WebRTC stack failed.
    #[error("WebRTC: {0}")]
    WebRtc(String),
    /// The options make no sense together.
    #[error("{0}")]
    Config(String),
}

/// Which server a run loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Server {
    /// A Switchboard media node, through its API and signaling.
    #[default]
    Switchboard,
    /// A Janus VideoRoom, through Janus's HTTP API (`url` is `http://host:port/janus`).
    Janus,
}

impl std::str::FromStr for Server {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "switchboard" => Ok(Self::Switchboard),
            "janus" => Ok(Self::Janus),
            other => Err(format!(
                "`{other}` is not a server the load tester drives: use switchboard or janus"
            )),
        }
    }
}

/// One run's parameters.
#[derive(Debug, Clone)]
pub struct Config {
    /// Which server it loads.
    pub server: Server,
    /// The server's HTTP base URL (`http://host:port`, or Janus's `http://host:port/janus`).
    pub url: String,
    /// API key id that signs the tokens.
    pub api_key: String,
    /// Its secret.
    pub api_secret: String,
    /// The room to join (created by the first join if missing).
    pub room: String,
    /// Simulated publishers.
    pub publishers: usize,
    /// Simulated subscribers.
    pub subscribers: usize,
    /// VP8 bitrate per publisher in bit/s, 0 for no video.
    pub video_bitrate: u32,
    /// Opus bitrate per publisher in bit/s, 0 for no audio.
    pub audio_bitrate: u32,
    /// How long media flows once everyone joined.
    pub duration: Duration,
    /// The local IP the simulated peers bind to.
    pub bind_ip: IpAddr,
    /// Most subscribers joining at the same time.
    pub join_concurrency: usize,
    /// The server's process id, to read its CPU time while media flows (same machine only).
    pub server_pid: Option<u32>,
    /// A media node's `/metrics` URL, to read the datagrams it sends while media flows.
    pub server_metrics_url: Option<String>,
    /// Subscribers whose node is lost join again (through a new token), as the SDK does.
    pub reconnect: bool,
}

impl Config {
    fn check(&self) -> Result<(), LoadtestError> {
        if self.publishers == 0 {
            return Err(LoadtestError::Config(
                "--publishers must be at least 1".into(),
            ));
        }
        if self.video_bitrate == 0 && self.audio_bitrate == 0 {
            return Err(LoadtestError::Config(
                "nothing to send: give --video-bitrate or --audio".into(),
            ));
        }
        if self.video_bitrate > 50_000_000 {
            return Err(LoadtestError::Config(
                "--video-bitrate is limited to 50 Mbps".into(),
            ));
        }
        if self.join_concurrency == 0 {
            return Err(LoadtestError::Config(
                "--join-concurrency must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    token: String,
    url: String,
}

/// Asks the API for a token for `identity` in the room.
async fn token(
    http: &reqwest::Client,
    config: &Config,
    identity: &str,
    publisher: bool,
) -> Result<TokenResponse, LoadtestError> {
    let response = http
        .post(format!("{}/v1/tokens", config.url.trim_end_matches('/')))
        .basic_auth(&config.api_key, Some(&config.api_secret))
        .json(&json!({
            "room": config.room,
            "identity": identity,
            "grants": {
                "room_create": true,
                "can_publish": publisher,
                "can_subscribe": !publisher,
                "can_publish_data": false,
            },
        }))
        .send()
        .await
        .map_err(|e| LoadtestError::Api(format!("cannot reach {}: {e}", config.url)))?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(LoadtestError::Api(format!(
            "POST /v1/tokens answered {status}: {body}"
        )));
    }
    response
        .json()
        .await
        .map_err(|e| LoadtestError::Api(format!("unexpected token response: {e}")))
}

/// Runs one load test and reports what the subscribers measured.
pub async fn run(config: Config) -> Result<Report, LoadtestError> {
    config.check()?;
    if config.server == Server::Janus {
        return run_janus(config).await;
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| LoadtestError::Api(e.to_string()))?;
    let rtc = rtc_config(&config);
    let receivers = subscriber_loops(&rtc)?;
    let epoch = Epoch::start();
    let spec = PublishSpec {
        video_bps: config.video_bitrate,
        audio_bps: config.audio_bitrate,
    };
    let run_id = &ulid::Ulid::new().to_string()[20..];

    let mut publishers = Vec::with_capacity(config.publishers);
    let joins = (0..config.publishers).map(|i| {
        let (http, config, rtc, receivers) = (&http, &config, &rtc, &receivers);
        async move {
            let identity = format!("lt-pub-{run_id}-{i}");
            let t = token(http, config, &identity, true).await?;
            let publish = Some(spec);
            SimParticipant::join(identity, &t.url, &t.token, rtc, receivers, publish, epoch).await
        }
    });
    for p in futures::future::join_all(joins).await {
        publishers.push(p?);
    }
    for p in &mut publishers {
        p.start_media(spec, epoch);
    }
    for p in &publishers {
        p.wait_published().await?;
    }
    tracing::info!(publishers = publishers.len(), "publishers sending");

    let join = |identity: String, received: client::Received| {
        let (http, config, rtc, receivers) = (&http, &config, &rtc, &receivers);
        async move {
            let t = token(http, config, &identity, false).await?;
            let p = SimParticipant::join_into(
                identity, &t.url, &t.token, rtc, receivers, None, epoch, received,
            )
            .await?;
            Ok::<_, LoadtestError>((p, t.url))
        }
    };
    let subscribers = join_subscribers(&config, epoch, |i| {
        join(format!("lt-sub-{run_id}-{i}"), client::Received::default())
    })
    .await?;
    tracing::info!(subscribers = subscribers.len(), "subscribers joined");

    let received: Vec<_> = subscribers
        .iter()
        .map(|((s, _), started)| (s.received.clone(), *started))
        .collect();
    let identities: Vec<String> = subscribers
        .iter()
        .map(|((s, _), _)| s.identity.clone())
        .collect();
    let mut nodes = std::collections::BTreeMap::new();
    for ((_, url), _) in &subscribers {
        *nodes.entry(url.clone()).or_insert(0) += 1;
    }
    // With `reconnect`, each subscriber is watched while media flows.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let moves = std::sync::Mutex::new(Vec::new());
    let watched = subscribers.into_iter().map(|((s, url), _)| {
        let (stopped, moves, join) = (stopped.clone(), &moves, &join);
        async move {
            if !config.reconnect {
                return Some(s);
            }
            reconnect::supervise(s, url, join, stopped, moves).await
        }
    });
    let measured = async {
        let report = measure(&config, &mut publishers, &received).await;
        let _ = stop.send(true);
        report
    };
    let (mut report, remaining) = tokio::join!(measured, futures::future::join_all(watched));
    report.nodes = nodes;
    report.reconnects = moves.into_inner().unwrap_or_else(|p| p.into_inner());
    // The worst loss of a subscriber that stayed where it joined.
    report.worst_subscriber_loss_pct = received
        .iter()
        .zip(&identities)
        .filter(|(_, id)| !report.reconnects.iter().any(|m| &m.identity == *id))
        .map(|((r, _), _)| report::subscriber_loss_pct(r, &report.tracks))
        .fold(0.0, f64::max);
    for p in publishers {
        p.leave().await;
    }
    for s in remaining.into_iter().flatten() {
        s.leave().await;
    }
    Ok(report)
}

/// Joins the run's subscribers with `join` (given each one's index), at most
/// `join_concurrency` at a time; each comes with when its join started (µs on
/// `epoch`), from which its join time is measured.
async fn join_subscribers<P, F, Fut>(
    config: &Config,
    epoch: Epoch,
    join: F,
) -> Result<Vec<(P, u64)>, LoadtestError>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<P, LoadtestError>>,
{
    let gate = Arc::new(Semaphore::new(config.join_concurrency));
    let joins = (0..config.subscribers).map(|i| {
        let (gate, join) = (gate.clone(), &join);
        async move {
            let _permit = gate.acquire_owned().await;
            let started_us = epoch.now_us();
            Ok::<_, LoadtestError>((join(i).await?, started_us))
        }
    });
    futures::future::join_all(joins).await.into_iter().collect()
}

/// A simulated publisher, on whichever server.
#[async_trait::async_trait]
trait Publisher: Send {
    /// Who it is.
    fn identity(&self) -> &str;
    /// Stops sending; what each of its tracks sent.
    async fn stop_media(&mut self) -> Vec<client::PublishedTrack>;
}

#[async_trait::async_trait]
impl Publisher for SimParticipant {
    fn identity(&self) -> &str {
        &self.identity
    }
    async fn stop_media(&mut self) -> Vec<client::PublishedTrack> {
        SimParticipant::stop_media(self).await
    }
}

#[async_trait::async_trait]
impl Publisher for janus::JanusParticipant {
    fn identity(&self) -> &str {
        &self.identity
    }
    async fn stop_media(&mut self) -> Vec<client::PublishedTrack> {
        janus::JanusParticipant::stop_media(self).await
    }
}

/// Lets media flow for the run's duration, stops the publishers, lets the
/// tail drain, and sums up what the subscribers received.
async fn measure<P: Publisher>(
    config: &Config,
    publishers: &mut [P],
    subscribers: &[(client::Received, u64)],
) -> Report {
    let measured_from = Instant::now();
    let server_cpu = || {
        config
            .server_pid
            .and_then(|pid| switchboard_media::load::cpu_seconds(&pid.to_string(), false))
    };
    let cpu_before = server_cpu();
    let sent_before = datagrams_sent(config).await;
    tokio::time::sleep(config.duration).await;
    // Everyone joined and sending: what the server spends here is forwarding.
    let steady = cpu_before.zip(server_cpu()).map(|(a, b)| b - a);
    let sent = sent_before
        .zip(datagrams_sent(config).await)
        .map(|(a, b)| (b - a) / config.duration.as_secs_f64());
    let mut tracks = Vec::new();
    for p in publishers.iter_mut() {
        let identity = p.identity().to_owned();
        tracks.extend(
            p.stop_media()
                .await
                .into_iter()
                .map(|t| (identity.clone(), t)),
        );
    }
    tokio::time::sleep(DRAIN).await;
    let mut report = Report::build(config, measured_from.elapsed(), &tracks, subscribers);
    report.server_cpu =
        steady.map(|cpu_s| report::ServerCpu::over(cpu_s, config.duration, &report));
    report.server_datagrams_per_s = sent;
    report
}

/// The datagrams the node at `server_metrics_url` has sent, from its
/// `switchboard_media_datagrams_sent_total` (none without the URL, or when
/// it cannot be read).
async fn datagrams_sent(config: &Config) -> Option<f64> {
    let url = config.server_metrics_url.as_ref()?;
    let text = reqwest::get(url).await.ok()?.text().await.ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix("switchboard_media_datagrams_sent_total ")?
            .trim()
            .parse()
            .ok()
    })
}

/// The loops that drive a run's subscriber connections: one per core, as
/// the server has.
fn subscriber_loops(rtc: &RtcConfig) -> Result<subscriber::Subscribers, LoadtestError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    subscriber::Subscribers::start(rtc, cores)
}

/// The peers' WebRTC settings for a run.
fn rtc_config(config: &Config) -> RtcConfig {
    RtcConfig {
        bind_ip: config.bind_ip,
        // The simulated publishers are the media's source: their stack reports it.
        relay_sender_reports: false,
        ..RtcConfig::default()
    }
}

/// [`run`] against a Janus VideoRoom: the same participants, media and measures.
async fn run_janus(config: Config) -> Result<Report, LoadtestError> {
    let rtc = rtc_config(&config);
    let receivers = subscriber_loops(&rtc)?;
    let epoch = Epoch::start();
    let spec = PublishSpec {
        video_bps: config.video_bitrate,
        audio_bps: config.audio_bitrate,
    };
    let room = janus::JanusRoom::create(&config.url, config.publishers).await?;
    let run_id = &ulid::Ulid::new().to_string()[20..];

    let joins = (0..config.publishers).map(|i| {
        let (room, rtc) = (&room, &rtc);
        async move {
            janus::JanusParticipant::publish(room, format!("lt-pub-{run_id}-{i}"), rtc, spec).await
        }
    });
    let mut publishers = Vec::with_capacity(config.publishers);
    for p in futures::future::join_all(joins).await {
        publishers.push(p?.0);
    }
    for p in &mut publishers {
        p.start_media(spec, epoch);
    }
    let feeds: Vec<u64> = publishers.iter().filter_map(|p| p.feed).collect();
    tracing::info!(publishers = publishers.len(), "publishers sending to Janus");

    let subscribers = join_subscribers(&config, epoch, |i| {
        let (room, receivers, feeds) = (&room, &receivers, &feeds);
        let identity = format!("lt-sub-{run_id}-{i}");
        janus::JanusParticipant::subscribe(room, identity, receivers, feeds, epoch)
    })
    .await?;
    tracing::info!(subscribers = subscribers.len(), "subscribers joined Janus");

    let received: Vec<_> = subscribers
        .iter()
        .map(|(s, started)| (s.received.clone(), *started))
        .collect();
    let report = measure(&config, &mut publishers, &received).await;
    for p in publishers {
        p.leave().await;
    }
    for (s, _) in subscribers {
        s.leave().await;
    }
    room.destroy().await;
    Ok(report)
}
