//! `switchboard loadtest`: load a media node with simulated peers and report what they measured.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

/// Arguments of `switchboard loadtest`.
#[derive(Debug, Args)]
pub struct LoadtestArgs {
    /// The server to load: `switchboard`, or `janus` (a Janus VideoRoom, for comparison).
    #[arg(long, default_value = "switchboard")]
    server: switchboard_loadtest::Server,
    /// The server's HTTP URL (for Janus, its API's, such as `http://127.0.0.1:8088/janus`).
    #[arg(long, default_value = "http://127.0.0.1:7880")]
    url: String,
    /// API key id that signs the participants' tokens (Switchboard only).
    #[arg(long, env = "SWITCHBOARD_API_KEY")]
    api_key: Option<String>,
    /// Its secret.
    #[arg(long, env = "SWITCHBOARD_API_SECRET", hide_env_values = true)]
    api_secret: Option<String>,
    /// Room to load (created by the first join if missing).
    #[arg(long, default_value = "loadtest")]
    room: String,
    /// Simulated publishers.
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Simulated subscribers (each receives every publisher).
    #[arg(long, default_value_t = 1)]
    subscribers: usize,
    /// VP8 bitrate per publisher, e.g. `1.5M`, `800k` or `0` for no video.
    #[arg(long, default_value = "1.5M", value_parser = crate::config::parse_bitrate)]
    video_bitrate: u32,
    /// Publish Opus audio too.
    #[arg(long)]
    audio: bool,
    /// Opus bitrate when `--audio` is given.
    #[arg(long, default_value = "32k", value_parser = crate::config::parse_bitrate)]
    audio_bitrate: u32,
    /// How long media flows once everyone joined, e.g. `30s`, `2m`.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Local IP the simulated peers bind to (one reachable from the server).
    #[arg(long, default_value = "127.0.0.1")]
    bind_ip: IpAddr,
    /// Most subscribers joining at once.
    #[arg(long, default_value_t = 10)]
    join_concurrency: usize,
    /// The server's process id on this machine: its CPU time while media flows goes in the report.
    #[arg(long)]
    server_pid: Option<u32>,
    /// A media node's `/metrics` URL: the datagrams it sends while media flows go in the report.
    #[arg(long)]
    server_metrics_url: Option<String>,
    /// Subscribers whose node is lost ask for a new token and join again, as the SDK does.
    #[arg(long)]
    reconnect: bool,
    /// Write the JSON summary to this file (`-` prints it instead of the table).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Runs the load test and prints its report.
pub async fn run(args: LoadtestArgs) -> anyhow::Result<()> {
    crate::config::init_logging_with(None, "error,switchboard_loadtest=info");
    let (api_key, api_secret) = match (args.server, args.api_key, args.api_secret) {
        (switchboard_loadtest::Server::Janus, key, secret) => {
            (key.unwrap_or_default(), secret.unwrap_or_default())
        }
        (_, Some(key), Some(secret)) => (key, secret),
        _ => anyhow::bail!(
            "give --api-key and --api-secret (or SWITCHBOARD_API_KEY and SWITCHBOARD_API_SECRET):              they sign the simulated participants' tokens"
        ),
    };
    let config = switchboard_loadtest::Config {
        server: args.server,
        url: args.url,
        api_key,
        api_secret,
        room: args.room,
        publishers: args.publishers,
        subscribers: args.subscribers,
        video_bitrate: args.video_bitrate,
        audio_bitrate: if args.audio { args.audio_bitrate } else { 0 },
        duration: args.duration,
        bind_ip: args.bind_ip,
        join_concurrency: args.join_concurrency,
        server_pid: args.server_pid,
        server_metrics_url: args.server_metrics_url,
        reconnect: args.reconnect,
    };
    let report = switchboard_loadtest::run(config).await?;
    let json = serde_json::to_string_pretty(&report)?;
    match args.json {
        Some(path) if path.as_os_str() == "-" => println!("{json}"),
        Some(path) => {
            print!("{report}");
            std::fs::write(&path, json + "\n")
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => print!("{report}"),
    }
    Ok(())
}
