//! The media role's settings: the node's UDP port and workers, ICE servers
//! and TURN, and what one participant may publish.

use anyhow::Context;
use switchboard_core::signal::IceServer;
use switchboard_media::peer::config::RtcConfig;
use switchboard_media::sfu::rate_limit::PublishLimits;
use switchboard_media::turn::TurnRest;
use switchboard_media::worker::Workers;

use crate::config::{FileConfig, ServeFlags};

/// The peer connections' settings from flags, then the config file.
pub fn rtc_config(flags: &ServeFlags, file: &FileConfig) -> anyhow::Result<RtcConfig> {
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
    Ok(rtc)
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

/// The media port when none is configured (LiveKit's `rtc.udp_port` default too).
const DEFAULT_RTC_UDP_PORT: u16 = 7882;

/// Starts the media workers on the node's one UDP port: `--rtc-udp-port`,
/// else the first free port of `--rtc-port-range`, else 7882. A node that
/// hosts no media gets one worker on a port nobody is told of.
pub fn media_workers(
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
