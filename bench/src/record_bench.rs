//! Recording benchmark: what recording costs the SFU, in CPU per recorded
//! track and per recorded packet.
//!
//! One release `switchboard serve`; the load tester runs the same load (P
//! publishers of VP8 + Opus, one subscriber) in a fresh room, alternately a
//! plain room and one created with `record: true` (every track written to
//! WebM on the server's disk), `--rounds` times each, so both sides see the
//! same machine at the same time. The server's CPU time is read from
//! `/proc/PID/stat` from the start of each load to the end of its room's
//! recording. Prints one JSON document.

mod server_process;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};
use server_process::{cpu_seconds, start_server, ServerProcess};

#[derive(Parser)]
struct Args {
    /// The `switchboard` binary (a release build).
    #[arg(long, default_value = "target/release/switchboard")]
    switchboard: PathBuf,
    /// Publishers, each sending one video and one audio track.
    #[arg(long, default_value_t = 8)]
    publishers: usize,
    /// Publisher video bitrate.
    #[arg(long, default_value = "1.5M")]
    video_bitrate: String,
    /// Media time per run.
    #[arg(long, default_value = "20s")]
    duration: String,
    /// Runs of each kind (plain, recorded), alternating.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

struct Run {
    server_cpu_s: f64,
    wall_s: f64,
    packets: f64,
    loss_pct: f64,
    recorded: Option<Value>,
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::new()
}

fn api(req: reqwest::blocking::RequestBuilder) -> anyhow::Result<Value> {
    let res = req.basic_auth("devkey", Some("secret")).send()?;
    let status = res.status();
    let body: Value = res.json()?;
    if !status.is_success() {
        bail!("{status}: {body}");
    }
    Ok(body)
}

/// One load in room `room`, recorded when `record`; waits for its recording to finish.
fn run(args: &Args, server: &ServerProcess, room: &str, record: bool) -> anyhow::Result<Run> {
    api(http()
        .post(format!("{}/v1/rooms", server.url))
        .json(&json!({ "name": room, "record": record, "empty_timeout_s": 1 })))?;
    let pid = server.child.id().to_string();
    let out_file = tempfile::NamedTempFile::new()?;
    let cpu_before = cpu_seconds(&pid, false)?;
    let started = Instant::now();
    let status = Command::new(&args.switchboard)
        .args(["loadtest", "--url", &server.url])
        .args([
            "--api-key",
            "devkey",
            "--api-secret",
            "secret",
            "--room",
            room,
        ])
        .args([
            "--publishers",
            &args.publishers.to_string(),
            "--subscribers",
            "1",
        ])
        .args(["--video-bitrate", &args.video_bitrate, "--audio"])
        .args(["--duration", &args.duration, "--json"])
        .arg(out_file.path())
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("the load test in {room} failed");
    }
    let mut recorded = None;
    if record {
        let deadline = Instant::now() + Duration::from_secs(60);
        recorded = loop {
            let list = api(http().get(format!("{}/v1/recordings?room={room}", server.url)))?;
            let rec = &list["data"][0];
            match rec["status"].as_str() {
                Some("finished") => break Some(rec.clone()),
                Some("failed") => bail!("the recording failed: {rec}"),
                _ if Instant::now() > deadline => bail!("the recording did not finish: {list}"),
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        };
    }
    let wall_s = started.elapsed().as_secs_f64();
    let server_cpu_s = cpu_seconds(&pid, false)? - cpu_before;
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out_file.path())?)?;
    Ok(Run {
        server_cpu_s,
        wall_s,
        packets: report["total"]["packets"].as_f64().unwrap_or(0.0),
        loss_pct: report["total"]["loss_pct"].as_f64().unwrap_or(100.0),
        recorded,
    })
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = xs.collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = start_server(&args.switchboard)?;
    let (mut plain, mut recorded) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        for record in [false, true] {
            let room = format!("record-bench-{round}-{record}");
            let r = run(&args, &server, &room, record).with_context(|| room.clone())?;
            eprintln!(
                "{room}: server {:.2} CPU-s in {:.1} s, {} packets, loss {:.2}%",
                r.server_cpu_s, r.wall_s, r.packets, r.loss_pct
            );
            if record { &mut recorded } else { &mut plain }.push(r);
            std::thread::sleep(Duration::from_secs(2));
        }
    }
    let tracks = (args.publishers * 2) as f64;
    let cpu_plain = mean(plain.iter().map(|r| r.server_cpu_s));
    let cpu_rec = mean(recorded.iter().map(|r| r.server_cpu_s));
    let wall = mean(recorded.iter().map(|r| r.wall_s));
    let packets = mean(recorded.iter().map(|r| r.packets));
    let extra = cpu_rec - cpu_plain;
    let sample = recorded
        .last()
        .and_then(|r| r.recorded.clone())
        .unwrap_or(Value::Null);
    let bytes: u64 = sample["files"].as_array().map_or(0, |f| {
        f.iter().filter_map(|f| f["size_bytes"].as_u64()).sum()
    });
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let doc = json!({
        "benchmark": format!(
            "{} publishers of {} VP8 + 32 kbps Opus and 1 subscriber, {} per run, {} plain and {} recorded runs alternating \
             (record: true, every track to WebM on local disk), release build, loopback",
            args.publishers, args.video_bitrate, args.duration, args.rounds, args.rounds
        ),
        "machine": format!("{cores} cores, server and load tester sharing them"),
        "recorded_tracks": tracks,
        "server_cpu_s_plain": plain.iter().map(|r| r.server_cpu_s).collect::<Vec<_>>(),
        "server_cpu_s_recorded": recorded.iter().map(|r| r.server_cpu_s).collect::<Vec<_>>(),
        "recorded_over_plain": cpu_rec / cpu_plain.max(f64::MIN_POSITIVE),
        "extra_cpu_pct_of_a_core_per_track": extra / wall / tracks * 100.0,
        "extra_cpu_us_per_recorded_packet": extra * 1e6 / packets.max(1.0),
        "loss_pct_plain": mean(plain.iter().map(|r| r.loss_pct)),
        "loss_pct_recorded": mean(recorded.iter().map(|r| r.loss_pct)),
        "bytes_written_per_recorded_run": bytes,
        "sample_recording": sample,
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
