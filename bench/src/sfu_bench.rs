//! SFU capacity benchmark: how many subscribers of one 1.5 Mbps VP8 + Opus
//! publisher a release `switchboard serve` forwards to with under 1% loss and
//! under 50 ms p99 latency, and what each forwarded Mbit and packet costs the
//! server in CPU.
//!
//! Starts the server, then runs `switchboard loadtest` once per subscriber
//! count (a fresh room each time), reading the server's CPU time from
//! `/proc/PID/stat` around each run and the load tester's from this
//! process's reaped-children time. Counts grow until a run fails, then bisect
//! between the last pass and the first failure. Prints one JSON document.

mod server_process;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{json, Value};
use server_process::{cpu_seconds, start_server, ServerProcess};

#[derive(Parser)]
struct Args {
    /// The `switchboard` binary (a release build).
    #[arg(long, default_value = "target/release/switchboard")]
    switchboard: PathBuf,
    /// Subscriber counts to try, in order, until one fails.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,25,50,100,150,200,250,300,350,400,500,600"
    )]
    steps: Vec<usize>,
    /// Bisection rounds between the last pass and the first failure.
    #[arg(long, default_value_t = 3)]
    bisect: u32,
    /// Media time per run.
    #[arg(long, default_value = "20s")]
    duration: String,
    /// Publisher video bitrate.
    #[arg(long, default_value = "1.5M")]
    video_bitrate: String,
    /// Most loss accepted, in percent.
    #[arg(long, default_value_t = 1.0)]
    max_loss_pct: f64,
    /// Most p99 latency accepted, in ms.
    #[arg(long, default_value_t = 50.0)]
    max_latency_ms: f64,
}

/// One load test with `subscribers`, measured.
fn run_step(args: &Args, server: &ServerProcess, subscribers: usize) -> anyhow::Result<Value> {
    let pid = server.child.id().to_string();
    let out_file = tempfile::NamedTempFile::new()?;
    let server_cpu_before = cpu_seconds(&pid, false)?;
    let tester_cpu_before = cpu_seconds("self", true)?;
    let started = Instant::now();
    let status = Command::new(&args.switchboard)
        .args(["loadtest", "--url", &server.url])
        .args(["--api-key", "devkey", "--api-secret", "secret"])
        .args(["--room", &format!("sfu-bench-{subscribers}")])
        .args([
            "--publishers",
            "1",
            "--subscribers",
            &subscribers.to_string(),
        ])
        .args(["--video-bitrate", &args.video_bitrate, "--audio"])
        .args(["--duration", &args.duration, "--json"])
        .arg(out_file.path())
        .stdout(Stdio::null())
        .status()?;
    let wall = started.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(&pid, false)? - server_cpu_before;
    let tester_cpu = cpu_seconds("self", true)? - tester_cpu_before;
    if !status.success() {
        return Ok(
            json!({ "subscribers": subscribers, "pass": false, "error": "loadtest failed" }),
        );
    }
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out_file.path())?)?;
    let total = &report["total"];
    let loss = total["loss_pct"].as_f64().unwrap_or(100.0);
    let p99 = total["latency_p99_ms"].as_f64().unwrap_or(f64::MAX);
    let missing = report["missing_streams"].as_u64().unwrap_or(u64::MAX);
    let packets = total["packets"].as_f64().unwrap_or(0.0);
    let forwarded_mbit = report["received_mbps"].as_f64().unwrap_or(0.0)
        * report["measured_s"].as_f64().unwrap_or(0.0);
    let pass = missing == 0 && loss < args.max_loss_pct && p99 < args.max_latency_ms;
    Ok(json!({
        "subscribers": subscribers,
        "pass": pass,
        "loss_pct": loss,
        "missing_streams": missing,
        "latency_p50_ms": total["latency_p50_ms"],
        "latency_p99_ms": p99,
        "jitter_ms": total["jitter_ms"],
        "join_ms": report["join_ms"],
        "forwarded_mbps": report["received_mbps"],
        "forwarded_packets": packets,
        "server_cpu_pct": server_cpu / wall * 100.0,
        "server_cpu_us_per_mbit": server_cpu * 1e6 / forwarded_mbit.max(f64::MIN_POSITIVE),
        "server_cpu_us_per_packet": server_cpu * 1e6 / packets.max(1.0),
        "loadtest_cpu_pct": tester_cpu / wall * 100.0,
        "wall_s": wall,
    }))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let server = start_server(&args.switchboard)?;
    let mut runs: Vec<Value> = Vec::new();
    let step = |n: usize, runs: &mut Vec<Value>| -> anyhow::Result<bool> {
        let r = run_step(&args, &server, n)?;
        eprintln!("{r}");
        let pass = r["pass"].as_bool().unwrap_or(false);
        runs.push(r);
        // Let the previous room's sessions close before the next run.
        std::thread::sleep(Duration::from_secs(2));
        Ok(pass)
    };
    let mut best = 0;
    let mut first_fail = None;
    for &n in &args.steps {
        if step(n, &mut runs)? {
            best = n;
        } else {
            first_fail = Some(n);
            break;
        }
    }
    if let Some(mut fail) = first_fail {
        for _ in 0..args.bisect {
            let mid = (best + fail) / 2;
            if mid <= best || mid >= fail {
                break;
            }
            if step(mid, &mut runs)? {
                best = mid;
            } else {
                fail = mid;
            }
        }
        first_fail = Some(fail);
    }
    let at_best = runs
        .iter()
        .find(|r| r["subscribers"] == best && r["pass"] == true)
        .cloned()
        .unwrap_or(Value::Null);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let doc = json!({
        "benchmark": format!(
            "one publisher of {} VP8 + 32 kbps Opus, N subscribers, {} per run, release build, loopback; \
             pass = no missing stream, loss < {}%, p99 publisher-to-subscriber latency < {} ms",
            args.video_bitrate, args.duration, args.max_loss_pct, args.max_latency_ms
        ),
        "machine": format!("{cores} cores, server and load tester sharing them"),
        "steps": args.steps,
        "max_subscribers": best,
        "limit_found": first_fail.is_some(),
        "first_failure": first_fail,
        "at_max": at_best,
        "runs": runs,
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
