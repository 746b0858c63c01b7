//! Configuration: flags, then `SWITCHBOARD_*` environment variables, then a
//! TOML file (`--config`), then defaults, in that order of precedence.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::Deserialize;
use switchboard_store::{MasterKey, Store};
use switchboard_webhooks::RetrySchedule;

use crate::cli::StorageFlags;

/// Default HTTP listen address.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:7880";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "switchboard-data";

/// Flags of `switchboard serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeFlags {
    #[command(flatten)]
    pub storage: StorageFlags,
    /// Address to listen on for HTTP (REST, signaling, dashboard); port 0 picks a free one.
    #[arg(long, env = "SWITCHBOARD_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// The URL clients reach this server at, if not http://<http-addr>.
    #[arg(long, env = "SWITCHBOARD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Development mode: a ready project with API key `devkey` / secret `secret`.
    #[arg(long, env = "SWITCHBOARD_DEV")]
    pub dev: bool,
    /// Log format.
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// NATS server shared by every node (`nats://127.0.0.1:4222`, with JetStream): carries
    /// events between nodes and REST calls to the node hosting a room. Needed with several nodes.
    #[arg(long, env = "SWITCHBOARD_NATS_URL")]
    pub nats_url: Option<String>,
    /// What this process runs: `all` (the default: everything), `api` (REST, dashboard,
    /// webhooks, functions, billing) or `media` (an SFU node). Split roles need --nats-url and PostgreSQL.
    #[arg(long, env = "SWITCHBOARD_ROLE")]
    pub role: Option<switchboard_core::node::NodeRole>,
    /// Region this node is in, such as `eu-west`: rooms asked for there are placed on its nodes.
    #[arg(long, env = "SWITCHBOARD_REGION")]
    pub region: Option<switchboard_core::node::Region>,
    /// Local IP that media (UDP) sockets bind to.
    #[arg(long, env = "SWITCHBOARD_RTC_BIND_IP")]
    pub rtc_bind_ip: Option<std::net::IpAddr>,
    /// Public IP advertised to clients in ICE candidates, when behind 1:1 NAT.
    #[arg(long, env = "SWITCHBOARD_NODE_IP")]
    pub node_ip: Option<std::net::IpAddr>,
    /// STUN/TURN server for clients, `URL[,username,credential]`; repeatable.
    #[arg(
        long = "ice-server",
        env = "SWITCHBOARD_ICE_SERVERS",
        value_delimiter = ';'
    )]
    pub ice_server: Vec<String>,
    /// Seconds a participant has to connect media before it is dropped.
    #[arg(long, env = "SWITCHBOARD_RTC_CONNECT_TIMEOUT_S", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub rtc_connect_timeout_s: u64,
    /// Most one participant may publish, e.g. `20M`; packets above it are dropped.
    #[arg(long, env = "SWITCHBOARD_MAX_PUBLISH_BITRATE", value_parser = parse_bitrate)]
    pub max_publish_bitrate: Option<u32>,
    /// Most RTP packets per second one participant may publish.
    #[arg(long, env = "SWITCHBOARD_MAX_PUBLISH_PACKET_RATE",
          value_parser = clap::value_parser!(u32).range(10..))]
    pub max_publish_packet_rate: Option<u32>,
    /// The UDP port every peer connection of the node shares (ICE-TCP
    /// listens on the same number); 0 picks a free one. Default 7882.
    #[arg(long, env = "SWITCHBOARD_RTC_UDP_PORT")]
    pub rtc_udp_port: Option<u16>,
    /// Media workers, each a thread owning whole rooms; default: one per core.
    #[arg(long, env = "SWITCHBOARD_RTC_WORKERS",
          value_parser = clap::value_parser!(u16).range(1..=256))]
    pub rtc_workers: Option<u16>,
    /// Ports the media port may be taken from, `FIRST-LAST` (the first free
    /// one), when `--rtc-udp-port` is not given.
    #[arg(long, env = "SWITCHBOARD_RTC_PORT_RANGE")]
    pub rtc_port_range: Option<switchboard_media::peer::config::PortRange>,
    /// Seconds a client has to send a request's line and headers, and may
    /// pause within its body, before the request fails and its connection closes.
    #[arg(long, env = "SWITCHBOARD_HTTP_READ_TIMEOUT_S",
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub http_read_timeout_s: Option<u64>,
    /// Connections one client address may hold open at once (0: no limit);
    /// behind a proxy every client shares its address, so raise it there.
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// A bearer token `/metrics` asks for; without one it is open to anyone who reaches the port.
    #[arg(long, env = "SWITCHBOARD_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Also accept media over TCP (passive ICE-TCP candidates) for clients whose UDP is blocked.
    #[arg(long, env = "SWITCHBOARD_RTC_TCP")]
    pub rtc_tcp: bool,
    /// TURN server given time-limited credentials (TURN REST API, coturn `use-auth-secret`), e.g.
    /// `turn:turn.example.com:3478?transport=udp`; repeatable.
    #[arg(
        long = "turn-url",
        env = "SWITCHBOARD_TURN_URLS",
        value_delimiter = ','
    )]
    pub turn_url: Vec<String>,
    /// The secret shared with that TURN server (coturn `static-auth-secret`).
    #[arg(long, env = "SWITCHBOARD_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// How long TURN credentials stay valid, in seconds.
    #[arg(long, env = "SWITCHBOARD_TURN_TTL_S", value_parser = clap::value_parser!(u64).range(60..=604_800))]
    pub turn_ttl_s: Option<u64>,
    /// Delays between webhook delivery attempts, e.g. `5s,5m,30m,2h,5h,10h,10h` (the default).
    #[arg(long, env = "SWITCHBOARD_WEBHOOK_RETRY_SCHEDULE", value_parser = parse_schedule)]
    pub webhook_retry_schedule: Option<RetrySchedule>,
    /// Deadline of a `participant.joining` function, in milliseconds (default 50).
    #[arg(long, env = "SWITCHBOARD_FUNCTION_JOIN_DEADLINE_MS", value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub function_join_deadline_ms: Option<u64>,
    /// Deadline of an asynchronous function handler, in milliseconds (default 5000).
    #[arg(long, env = "SWITCHBOARD_FUNCTION_EVENT_DEADLINE_MS", value_parser = clap::value_parser!(u64).range(1..=300_000))]
    pub function_event_deadline_ms: Option<u64>,
    /// Memory limit of one function invocation, in MiB (default 64).
    #[arg(long, env = "SWITCHBOARD_FUNCTION_MEMORY_MB", value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub function_memory_mb: Option<u64>,
    /// Where compiled functions are kept between restarts (default: a directory under the system temp dir).
    #[arg(long, env = "SWITCHBOARD_FUNCTION_CACHE_DIR")]
    pub function_cache_dir: Option<std::path::PathBuf>,
}

/// Parses `5s,5m,30m` into a retry schedule.
pub fn parse_schedule(s: &str) -> Result<RetrySchedule, String> {
    let delays = s
        .split(',')
        .map(|part| {
            let d = humantime::parse_duration(part.trim())
                .map_err(|e| format!("`{}` in the retry schedule: {e}", part.trim()))?;
            chrono::Duration::from_std(d).map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    if delays.len() > 20 {
        return Err("a retry schedule has at most 20 delays".into());
    }
    Ok(RetrySchedule::new(delays))
}

/// Parses `1.5M`, `800k`, `64000` into bits per second.
pub fn parse_bitrate(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let (number, scale) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1e3),
        Some((i, 'm' | 'M')) => (&s[..i], 1e6),
        _ => (s, 1.0),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a bitrate; write e.g. 1.5M, 800k or 64000"))?;
    let bps = value * scale;
    if !(0.0..=f64::from(u32::MAX)).contains(&bps) {
        return Err(format!("`{s}` is out of range"));
    }
    Ok(bps as u32)
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line.
    Json,
}

/// The TOML configuration file; every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub http_addr: Option<SocketAddr>,
    pub public_url: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub dev: Option<bool>,
    pub log_format: Option<LogFormat>,
    pub rtc_bind_ip: Option<std::net::IpAddr>,
    pub node_ip: Option<std::net::IpAddr>,
    pub region: Option<switchboard_core::node::Region>,
    pub nats_url: Option<String>,
    pub role: Option<switchboard_core::node::NodeRole>,
    pub ice_servers: Option<Vec<String>>,
    pub max_publish_bitrate: Option<u32>,
    pub max_publish_packet_rate: Option<u32>,
    pub rtc_udp_port: Option<u16>,
    pub rtc_workers: Option<u16>,
    pub rtc_port_range: Option<String>,
    pub rtc_tcp: Option<bool>,
    pub metrics_token: Option<String>,
    pub http_read_timeout_s: Option<u64>,
    pub max_connections_per_ip: Option<usize>,
    pub turn_urls: Option<Vec<String>>,
    pub turn_secret: Option<String>,
    pub turn_ttl_s: Option<u64>,
    pub webhook_retry_schedule: Option<String>,
    pub function_join_deadline_ms: Option<u64>,
    pub function_event_deadline_ms: Option<u64>,
    pub function_memory_mb: Option<u64>,
    pub function_cache_dir: Option<std::path::PathBuf>,
    /// Plans and prices (`[billing]`, `[[billing.plans]]`).
    pub billing: Option<switchboard_core::billing::PlanBook>,
    /// Stripe (`[stripe]`): customers, usage reports, webhooks.
    pub stripe: Option<switchboard_billing::stripe::Config>,
    /// Recordings (`[recordings]`, `[recordings.s3]`).
    pub recordings: Option<RecordingsConfig>,
    /// Where new rooms go (`[placement]`, `[[placement.client_regions]]`).
    pub placement: Option<PlacementConfig>,
    /// How much one key or project may ask (`[limits]`).
    pub limits: Option<LimitsConfig>,
    /// How long the log and its by-products are kept (`[retention]`).
    pub retention: Option<RetentionConfig>,
}

/// How long the event log, webhook deliveries, function invocations and
/// finished sessions are kept (`[retention]`); usage totals are kept for ever.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// How long rows are kept, such as `90d` (the default) or `30d`.
    pub keep: Option<String>,
    /// How often the janitor looks for old rows (default `1h`).
    pub every: Option<String>,
}

impl RetentionConfig {
    /// The retention period and the janitor's interval, checked.
    pub fn periods(&self) -> anyhow::Result<(std::time::Duration, std::time::Duration)> {
        let parse = |key: &str, text: Option<&str>, default: &str| {
            let text = text.unwrap_or(default);
            let d = humantime::parse_duration(text.trim()).map_err(|e| {
                anyhow::anyhow!("[retention] {key} = \"{text}\": {e}; write e.g. \"{default}\"")
            })?;
            anyhow::ensure!(
                !d.is_zero(),
                "[retention] {key} is zero; give a duration such as \"{default}\""
            );
            Ok(d)
        };
        Ok((
            parse("keep", self.keep.as_deref(), "90d")?,
            parse("every", self.every.as_deref(), "1h")?,
        ))
    }
}

/// How much one key or project may ask (`[limits]`); each rate is
/// `{ per_second, burst }`, a `per_second` of 0 meaning no limit.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
// A build without the function host still takes a config that sets the
// function limits, and reads none of them.
#[cfg_attr(not(feature = "functions"), allow(dead_code))]
pub struct LimitsConfig {
    /// REST requests per API key (default 200/s, bursts of 400).
    pub requests_per_key: Option<switchboard_api::rate_limit::Rate>,
    /// REST requests per project over all its keys (default 400/s, bursts of 800).
    pub requests_per_project: Option<switchboard_api::rate_limit::Rate>,
    /// Webhook endpoints per project (default 20).
    pub webhook_endpoints_per_project: Option<u64>,
    /// Recordings running at once in one room (default 5).
    pub recordings_per_room: Option<u64>,
    /// Recordings running at once in one project (default 50).
    pub recordings_per_project: Option<u64>,
    /// Tracks one participant may publish at once (default 16).
    pub tracks_per_participant: Option<usize>,
    /// Versions kept of one function (default 50).
    pub function_versions_per_function: Option<u64>,
    /// Function uploads compiled at once on one node (default 2); more wait up to 10 s, then get 503.
    pub function_compilations: Option<usize>,
    /// MiB of compiled functions kept on one node's disk (default 1024).
    pub function_artifact_cache_mb: Option<u64>,
    /// Events one function invocation may emit (default 10).
    pub function_emits_per_invocation: Option<usize>,
    /// Asynchronous function handlers one project runs at once on a node
    /// (default: half its cores, at least 1).
    pub function_handlers_per_project: Option<usize>,
}

impl LimitsConfig {
    /// The quotas, defaults filled in.
    pub fn quotas(&self) -> switchboard_api::Quotas {
        let default = switchboard_api::Quotas::default();
        switchboard_api::Quotas {
            webhook_endpoints_per_project: self
                .webhook_endpoints_per_project
                .unwrap_or(default.webhook_endpoints_per_project),
            recordings_per_room: self
                .recordings_per_room
                .unwrap_or(default.recordings_per_room),
            recordings_per_project: self
                .recordings_per_project
                .unwrap_or(default.recordings_per_project),
            function_versions_per_function: self
                .function_versions_per_function
                .unwrap_or(default.function_versions_per_function),
        }
    }

    /// The request limits, defaults filled in.
    pub fn requests(&self) -> switchboard_api::rate_limit::RequestLimits {
        let default = switchboard_api::rate_limit::RequestLimits::default();
        switchboard_api::rate_limit::RequestLimits {
            per_key: self.requests_per_key.unwrap_or(default.per_key),
            per_project: self.requests_per_project.unwrap_or(default.per_project),
        }
    }
}

/// Where new rooms go (`[placement]`); read by API instances.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementConfig {
    /// A media node above this share of its machine's CPU gets no new rooms
    /// (above 0, at most 1; default 0.85).
    pub max_cpu: Option<f32>,
    /// A media node with this many participants gets no new rooms (default 2000).
    pub max_participants: Option<u32>,
    /// The request header your proxy puts the client's IP address in, such
    /// as `x-forwarded-for` (its last entry counts). Without it, the
    /// connection's peer address is the client's.
    pub client_ip_header: Option<String>,
    /// Client networks and the region nearest each.
    #[serde(default)]
    pub client_regions: Vec<switchboard_core::node::ClientNetwork>,
}

impl PlacementConfig {
    /// The node capacity, checked.
    pub fn capacity(&self) -> anyhow::Result<switchboard_core::node::Capacity> {
        let default = switchboard_core::node::Capacity::default();
        let max_cpu = self.max_cpu.unwrap_or(default.max_cpu);
        anyhow::ensure!(
            max_cpu > 0.0 && max_cpu <= 1.0,
            "[placement] max_cpu is {max_cpu}: give a share of the CPU above 0 and at most 1, such as 0.85"
        );
        let max_participants = self.max_participants.unwrap_or(default.max_participants);
        anyhow::ensure!(
            max_participants > 0,
            "[placement] max_participants is 0: give at least 1"
        );
        Ok(switchboard_core::node::Capacity {
            max_cpu,
            max_participants,
        })
    }

    /// The client IP header, checked.
    pub fn client_ip_header(&self) -> anyhow::Result<Option<axum::http::HeaderName>> {
        self.client_ip_header
            .as_deref()
            .map(|h| {
                h.parse().with_context(|| {
                    format!("[placement] client_ip_header `{h}` is not an HTTP header name")
                })
            })
            .transpose()
    }
}

/// Where recordings go (`[recordings]`).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordingsConfig {
    /// Upload finished recordings to this S3-compatible bucket.
    pub s3: Option<switchboard_recording::S3Config>,
}

impl FileConfig {
    /// Reads `path`, or the empty configuration when no file is given.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("config file {} is not valid", path.display()))
    }
}

/// Resolved storage settings.
pub struct Storage {
    pub data_dir: PathBuf,
    pub database_url: String,
}

impl Storage {
    /// Resolves storage settings from flags and the config file.
    pub fn resolve(flags: &StorageFlags) -> anyhow::Result<Self> {
        let file = FileConfig::load(flags.config.as_deref())?;
        Self::from_parts(flags, &file)
    }

    /// Resolves storage settings from flags and an already read config file.
    pub fn from_parts(flags: &StorageFlags, file: &FileConfig) -> anyhow::Result<Self> {
        let data_dir = flags
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let database_url = flags
            .database_url
            .clone()
            .or_else(|| file.database_url.clone())
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("switchboard.db").display()));
        Ok(Self {
            data_dir,
            database_url,
        })
    }

    /// The master key: `SWITCHBOARD_MASTER_KEY`, or `master.key` in the data directory (created if absent).
    pub fn master_key(&self) -> anyhow::Result<MasterKey> {
        match std::env::var("SWITCHBOARD_MASTER_KEY") {
            Ok(k) if !k.is_empty() => {
                Ok(MasterKey::from_base64(&k).context("SWITCHBOARD_MASTER_KEY is invalid")?)
            }
            _ => Ok(MasterKey::load_or_create(
                &self.data_dir.join("master.key"),
            )?),
        }
    }

    /// Opens the database (without migrating).
    pub async fn open(&self) -> anyhow::Result<Store> {
        Store::connect(&self.database_url, self.master_key()?)
            .await
            .with_context(|| format!("cannot open the database at {}", self.describe()))
    }

    /// The database URL with any password hidden, for messages.
    pub fn describe(&self) -> String {
        redact(&self.database_url)
    }
}

/// `url` with the password part replaced by `***`.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Starts logging to stderr; `SWITCHBOARD_LOG` (or `RUST_LOG`) filters, default `info`.
pub fn init_logging(format: Option<LogFormat>) {
    init_logging_with(format, "info");
}

/// Sets up logging with `default_filter` unless `SWITCHBOARD_LOG` or `RUST_LOG` says otherwise.
pub fn init_logging_with(format: Option<LogFormat>, default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("SWITCHBOARD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format.unwrap_or(LogFormat::Text) {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitrates_take_k_and_m_suffixes() {
        assert_eq!(parse_bitrate("1.5M"), Ok(1_500_000));
        assert_eq!(parse_bitrate("800k"), Ok(800_000));
        assert_eq!(parse_bitrate("64000"), Ok(64_000));
        assert_eq!(parse_bitrate("0"), Ok(0));
        for bad in ["", "M", "fast", "-1k", "9999999M", "1.5G"] {
            assert!(parse_bitrate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(redact("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn config_file_refuses_unknown_keys() {
        assert!(toml::from_str::<FileConfig>("http_adr = \"x\"").is_err());
        let c: FileConfig = toml::from_str("http_addr = \"127.0.0.1:9000\"\ndev = true").unwrap();
        assert_eq!(c.http_addr.unwrap().port(), 9000);
    }
}
