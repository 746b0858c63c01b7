//! Broadcast fan-out benchmark: one publisher and a growing audience over
//! media nodes that each take at most C participants (`[placement]
//! max_participants`), on one PostgreSQL database and NATS, on loopback.
//!
//! This machine's cores cannot show more total capacity with more nodes, so
//! it shows the fan-out: at C, 2C and 3C participants the audience fills the
//! publisher's node (the origin) and then spreads over edge nodes fed by
//! relay links, and the origin's datagrams and CPU grow with the number of
//! edges, not of viewers. In the last step one edge is killed with
//! `kill -9` while media flows: its viewers join again (as the SDK does) and
//! the report says how soon they received again, and whether the event log
//! holds each viewer's sessions exactly (one join and one leave per session).
//! Prints one JSON document.

mod scratch_db;
// Its single-server starter is the other benchmarks'; this one starts a deployment.
#[allow(dead_code)]
mod server_process;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde_json::{json, Value};
use server_process::{cpu_seconds, listening_url};

#[derive(Parser)]
struct Args {
    /// The `switchboard` binary.
    #[arg(long, default_value = "target/release/switchboard")]
    switchboard: PathBuf,
    /// Participants per media node (C).
    #[arg(long, default_value_t = 60)]
    capacity: usize,
    /// Media nodes besides the origin: two fill up at 3C, the rest are spare
    /// for the viewers of the edge that is killed.
    #[arg(long, default_value_t = 3)]
    edges: usize,
    /// Media time per step.
    #[arg(long, default_value = "20s")]
    duration: String,
    /// Publisher video bitrate.
    #[arg(long, default_value = "1M")]
    video_bitrate: String,
    /// The PostgreSQL server, as an admin URL (the benchmark makes its own database).
    #[arg(
        long,
        env = "SWITCHBOARD_TEST_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres: String,
    /// The NATS server (with JetStream).
    #[arg(
        long,
        env = "SWITCHBOARD_TEST_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats: String,
}

/// One `switchboard serve` of the deployment, killed when dropped.
struct Node {
    child: Child,
    /// Its HTTP base URL.
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    /// Starts a node with `role` on `database`, sharing `master_key` (a file) once there is one.
    fn start(
        args: &Args,
        role: &str,
        database: &str,
        config: &Path,
        master_key: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        if let Some(key) = master_key {
            std::fs::copy(key, dir.path().join("master.key"))?;
        }
        let mut child = Command::new(&args.switchboard)
            .args(["serve", "--dev", "--http-addr", "127.0.0.1:0"])
            .args([
                "--role",
                role,
                "--region",
                "eu-west",
                "--nats-url",
                &args.nats,
            ])
            .arg("--config")
            .arg(config)
            // Five processes on two cores: one media worker each.
            .args(["--rtc-workers", "1"])
            .env("DATABASE_URL", database)
            .env("SWITCHBOARD_DATA_DIR", dir.path())
            .env("SWITCHBOARD_RTC_UDP_PORT", "0")
            .env("SWITCHBOARD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", args.switchboard.display()))?;
        let url =
            listening_url(&mut child).with_context(|| format!("a {role} node did not start"))?;
        Ok(Self {
            child,
            url,
            _dir: dir,
        })
    }

    fn rtc_url(&self) -> String {
        format!("{}/rtc", self.url.replacen("http://", "ws://", 1))
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

/// The dev project's REST client.
struct Api {
    http: reqwest::blocking::Client,
    url: String,
}

impl Api {
    fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .basic_auth("devkey", Some("secret"))
            .json(&body)
            .send()?;
        let status = response.status();
        let body: Value = response.json()?;
        anyhow::ensure!(status.is_success(), "POST {path}: {status} {body}");
        Ok(body)
    }

    fn get(&self, path: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .basic_auth("devkey", Some("secret"))
            .send()?;
        let status = response.status();
        let body: Value = response.json()?;
        anyhow::ensure!(status.is_success(), "GET {path}: {status} {body}");
        Ok(body)
    }

    /// Every event about `room`, oldest first.
    fn events(&self, room: &str) -> anyhow::Result<Vec<Value>> {
        let mut all = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = self.get(&format!("/v1/events?room={room}&limit=100{cursor}"))?;
            all.extend(page["data"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return Ok(all),
            }
        }
    }
}

/// How many participants the registry says `node` carries.
fn participants_on(args: &Args, database: &str, node: &Node) -> anyhow::Result<u64> {
    let out = Command::new(&args.switchboard)
        .args(["node", "list", "--json"])
        .env("DATABASE_URL", database)
        .env("SWITCHBOARD_DATA_DIR", node._dir.path())
        .output()?;
    anyhow::ensure!(out.status.success(), "switchboard node list failed");
    let listed = String::from_utf8(out.stdout)?
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|n| n["url"].as_str() == Some(node.url.as_str()))
        .and_then(|n| n["load"]["participants"].as_u64());
    Ok(listed.unwrap_or(0))
}

/// One step: a publisher and `viewers` in `room`; with `kill`, the fullest
/// edge is killed once everyone is in, `duration / 3` into the media.
fn run_step(
    args: &Args,
    api: &Api,
    database: &str,
    nodes: &mut [Node],
    room: &str,
    viewers: usize,
    kill: bool,
) -> anyhow::Result<Value> {
    // The first token places the room: its node is the origin.
    let placed = api.post(
        "/v1/tokens",
        json!({ "room": room, "identity": "placement", "grants": { "room_create": true } }),
    )?;
    let origin = nodes
        .iter()
        .position(|n| placed["url"].as_str() == Some(n.rtc_url().as_str()))
        .context("the room was placed on no media node")?;
    let out_file = tempfile::NamedTempFile::new()?;
    let origin_pid = nodes[origin].pid();
    let origin_cpu_before = cpu_seconds(&origin_pid, false)?;
    let mut loadtest = Command::new(&args.switchboard);
    loadtest
        .args(["loadtest", "--url", &api.url, "--room", room])
        .args(["--api-key", "devkey", "--api-secret", "secret"])
        .args(["--publishers", "1", "--subscribers", &viewers.to_string()])
        .args(["--video-bitrate", &args.video_bitrate, "--audio"])
        .args(["--duration", &args.duration, "--join-concurrency", "8"])
        .args(["--server-pid", &origin_pid])
        .arg("--server-metrics-url")
        .arg(format!("{}/metrics", nodes[origin].url))
        .arg("--json")
        .arg(out_file.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if kill {
        loadtest.arg("--reconnect");
    }
    let mut child = loadtest.spawn()?;
    let stderr = child.stderr.take().context("loadtest stderr")?;
    let (joined_tx, joined) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("subscribers joined") {
                let _ = joined_tx.send(());
            }
        }
    });
    let mut killed = None;
    if kill {
        joined
            .recv_timeout(Duration::from_secs(300))
            .context("the viewers never all joined")?;
        let duration = humantime_secs(&args.duration)?;
        std::thread::sleep(Duration::from_secs_f64(duration / 3.0));
        let mut fullest = (0, None);
        for (i, node) in nodes.iter().enumerate().filter(|(i, _)| *i != origin) {
            let here = participants_on(args, database, node)?;
            if here > fullest.0 {
                fullest = (here, Some(i));
            }
        }
        let (carried, victim) = (fullest.0, fullest.1.context("no edge has viewers")?);
        nodes[victim].child.kill()?;
        nodes[victim].child.wait()?;
        killed = Some((victim, carried, Instant::now()));
    }
    let status = child.wait()?;
    let origin_cpu = cpu_seconds(&origin_pid, false)? - origin_cpu_before;
    if !status.success() {
        return Ok(json!({ "viewers": viewers, "pass": false, "error": "loadtest failed" }));
    }
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out_file.path())?)?;
    let per_node: BTreeMap<String, Value> = report["nodes"]
        .as_object()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|(url, count)| {
            let name = match nodes.iter().position(|n| n.rtc_url() == url) {
                Some(i) if i == origin => "origin".to_owned(),
                Some(i) => format!("edge-{i}"),
                None => url,
            };
            (name, count)
        })
        .collect();
    let mut step = json!({
        "viewers": viewers,
        "participants": viewers + 1,
        "viewers_per_node": per_node,
        "edges": per_node.keys().filter(|k| k.starts_with("edge")).count(),
        "origin": {
            "datagrams_per_s": report["server_datagrams_per_s"],
            "core_pct": report["server_cpu"]["core_pct"],
            "cpu_s_whole_step": origin_cpu,
        },
        "worst_viewer_loss_pct": report["worst_subscriber_loss_pct"],
        "loss_pct": report["total"]["loss_pct"],
        "missing_streams": report["missing_streams"],
        "latency_p99_ms": report["total"]["latency_p99_ms"],
        "join_ms": report["join_ms"],
    });
    step["pass"] = json!(
        report["worst_subscriber_loss_pct"]
            .as_f64()
            .is_some_and(|l| l < 1.0)
            && report["missing_streams"] == 0
    );
    if let Some((victim, carried, _)) = killed {
        let moved = report["reconnects"].as_array().cloned().unwrap_or_default();
        let slowest = moved
            .iter()
            .map(|m| m["receiving_again_ms"].as_f64().unwrap_or(f64::INFINITY))
            .fold(0.0, f64::max);
        step["kill"] = json!({
            "edge": format!("edge-{victim}"),
            "participants_on_it": carried,
            "viewers_moved": moved.len(),
            "slowest_receiving_again_ms": slowest,
            "all_received_again_within_10s": slowest < 10_000.0 && moved.len() as u64 == carried,
            "sessions": sessions(api, room)?,
        });
    }
    Ok(step)
}

/// Whether the log holds each viewer's sessions exactly: one
/// `participant.joined` and one `participant.left` per session (after the
/// dead node's sessions were closed), as billing and webhooks see them.
fn sessions(api: &Api, room: &str) -> anyhow::Result<Value> {
    // The dead node's sessions close once its silence is noticed (15 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let events = api.events(room)?;
        let mut per: BTreeMap<String, (u32, u32)> = BTreeMap::new();
        let mut lost = 0;
        for e in &events {
            let identity = e["data"]["participant"]["identity"]
                .as_str()
                .or(e["data"]["identity"].as_str())
                .unwrap_or_default()
                .to_owned();
            match e["type"].as_str() {
                Some("participant.joined") => per.entry(identity).or_default().0 += 1,
                Some("participant.left") => {
                    per.entry(identity).or_default().1 += 1;
                    if e["data"]["reason"] == "node_lost" {
                        lost += 1;
                    }
                }
                _ => {}
            }
        }
        let viewers: Vec<_> = per.iter().filter(|(id, _)| id.contains("-sub-")).collect();
        let twice = viewers.iter().filter(|(_, (j, _))| *j == 2).count();
        let exact = viewers
            .iter()
            .all(|(_, (j, l))| j == l && (1..=2).contains(j));
        if exact || Instant::now() > deadline {
            return Ok(json!({
                "viewers": viewers.len(),
                "viewers_with_two_sessions": twice,
                "sessions_closed_as_node_lost": lost,
                "every_session_joined_and_left_once": exact,
            }));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// Seconds in a duration such as `20s`.
fn humantime_secs(text: &str) -> anyhow::Result<f64> {
    let secs = text
        .strip_suffix('s')
        .and_then(|s| s.parse::<f64>().ok())
        .with_context(|| format!("give the duration in seconds, such as 20s, not `{text}`"))?;
    Ok(secs)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.capacity >= 2, "--capacity must be at least 2");
    anyhow::ensure!(
        args.edges >= 3,
        "--edges must be at least 3: two fill up, one takes the killed edge's viewers"
    );
    let database =
        scratch_db::fresh_database(&args.postgres, "switchboard_broadcast_bench").await?;
    let result = tokio::task::spawn_blocking(move || bench(&args, &database)).await??;
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}

fn bench(args: &Args, database: &str) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("switchboard.toml");
    std::fs::write(
        &config,
        format!("[placement]\nmax_participants = {}\n", args.capacity),
    )?;
    let api_node = Node::start(args, "api", database, &config, None)?;
    let key = api_node._dir.path().join("master.key");
    let mut nodes = (0..=args.edges)
        .map(|_| Node::start(args, "media", database, &config, Some(&key)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let api = Api {
        http: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?,
        url: api_node.url.clone(),
    };
    // Each node exports its datagram count once a second from its start.
    for node in &nodes {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let metrics = api
                .http
                .get(format!("{}/metrics", node.url))
                .send()?
                .text()?;
            if metrics.contains("switchboard_media_datagrams_sent_total") {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} exports no datagram count",
                node.url
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let c = args.capacity;
    let mut steps = Vec::new();
    for k in 1..=3 {
        let step = run_step(
            args,
            &api,
            database,
            &mut nodes,
            &format!("show-{k}"),
            k * c - 1,
            k == 3,
        )?;
        eprintln!("{step}");
        steps.push(step);
        // Everyone left: the nodes report it before the next step places its room.
        std::thread::sleep(Duration::from_secs(2));
    }
    Ok(json!({
        "capacity_per_node": c,
        "media_nodes": nodes.len(),
        "video_bitrate": args.video_bitrate,
        "duration": args.duration,
        "steps": steps,
    }))
}
