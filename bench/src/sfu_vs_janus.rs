//! Switchboard's SFU and Janus's VideoRoom side by side: the same ladder of
//! loads (one publisher to many subscribers, then meetings), driven by the
//! same load tester with the same synthetic media, one server after the
//! other, on this machine in one run.
//!
//! For each load and server it records what the subscribers received
//! (packets per second, loss, p50/p99 publisher-to-subscriber latency, join
//! time), the server process's CPU time (from `/proc/PID/stat`: over the whole
//! run, and over the steady part, with everyone joined, that the load tester
//! reads itself) and its peak resident memory (sampled from
//! `/proc/PID/status`), and derives CPU seconds per million delivered
//! packets in the steady part. Prints the JSON document and writes
//! the markdown table to `--table`.

mod server_process;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::{json, Value};
use server_process::{cpu_seconds, start_server};

#[derive(Parser)]
struct Args {
    /// The `switchboard` binary (default: the one built next to this program).
    #[arg(long)]
    switchboard: Option<PathBuf>,
    /// The `janus` binary.
    #[arg(long, default_value = "/usr/bin/janus")]
    janus: PathBuf,
    /// Janus's configuration folder.
    #[arg(long, default_value = "bench/janus")]
    janus_config: PathBuf,
    /// Janus's HTTP API, as its configuration sets it.
    #[arg(long, default_value = "http://127.0.0.1:18088/janus")]
    janus_url: String,
    /// Loads, as PUBLISHERSxSUBSCRIBERS (each subscriber receives every publisher).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1x10,1x25,1x50,1x100,1x200,5x5,10x10"
    )]
    loads: Vec<String>,
    /// Media time per run.
    #[arg(long, default_value = "15s")]
    duration: String,
    /// Publisher video bitrate (VP8; Opus at 32 kbps goes with it).
    #[arg(long, default_value = "500k")]
    video_bitrate: String,
    /// Where to write the markdown table.
    #[arg(long, default_value = "bench/results/sfu-vs-janus.md")]
    table: PathBuf,
}

/// The `switchboard` binary: `--switchboard`, or the one next to this program.
fn switchboard_binary(args: &Args) -> anyhow::Result<PathBuf> {
    match &args.switchboard {
        Some(path) => Ok(path.clone()),
        None => Ok(std::env::current_exe()
            .context("where this program is")?
            .with_file_name("switchboard")),
    }
}

/// The first non-loopback IPv4 address, from the default route: Janus
/// gathers no ICE candidate on loopback, so its peers must use this one.
fn host_ip() -> anyhow::Result<(String, String)> {
    let out = Command::new("ip")
        .args(["-4", "route", "get", "1.1.1.1"])
        .output()
        .context("run `ip` (Debian package iproute2)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let word_after = |key: &str| {
        let mut words = text.split_whitespace();
        words.find(|w| *w == key)?;
        words.next().map(str::to_owned)
    };
    match (word_after("src"), word_after("dev")) {
        (Some(ip), Some(dev)) => Ok((ip, dev)),
        _ => bail!("no default route to take an address from: {text}"),
    }
}

/// A Janus process, killed when dropped.
struct Janus {
    child: Child,
}

impl Drop for Janus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_janus(args: &Args, interface: &str) -> anyhow::Result<Janus> {
    let child = Command::new(&args.janus)
        .arg("-F")
        .arg(&args.janus_config)
        .arg("-C")
        .arg(args.janus_config.join("janus.jcfg"))
        .args(["-E", interface, "-o"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {} (apt-get install janus)",
                args.janus.display()
            )
        })?;
    let janus = Janus { child };
    let http = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let ready = http
            .get(format!("{}/info", args.janus_url))
            .send()
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return Ok(janus);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("Janus did not answer at {} within 20 s", args.janus_url)
}

/// Samples a process's resident memory every 100 ms; keeps the peak in KiB.
struct MemorySampler {
    peak_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MemorySampler {
    fn start(pid: u32) -> Self {
        let peak_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (peak, stop) = (peak_kib.clone(), stop.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kib) = rss_kib(pid) {
                        peak.fetch_max(kib, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
        Self {
            peak_kib,
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak_kib.load(Ordering::Relaxed)
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A server under test.
struct Target<'a> {
    name: &'static str,
    pid: u32,
    /// Arguments that point the load tester at it.
    loadtest_args: Vec<String>,
    /// The bench binary's arguments, for the load tester's binary.
    args: &'a Args,
}

/// One load against one server, measured.
fn run_load(
    target: &Target<'_>,
    publishers: usize,
    subscribers: usize,
    run: usize,
) -> anyhow::Result<Value> {
    let args = target.args;
    let out_file = tempfile::NamedTempFile::new()?;
    let pid = target.pid.to_string();
    let memory = MemorySampler::start(target.pid);
    let cpu_before = cpu_seconds(&pid, false)?;
    let started = Instant::now();
    let status = Command::new(switchboard_binary(args)?)
        .arg("loadtest")
        .args(&target.loadtest_args)
        .args(["--room", &format!("vs-janus-{run}")])
        .args(["--publishers", &publishers.to_string()])
        .args(["--subscribers", &subscribers.to_string()])
        .args(["--video-bitrate", &args.video_bitrate, "--audio"])
        .args(["--duration", &args.duration])
        .args(["--server-pid", &pid, "--json"])
        .arg(out_file.path())
        .stdout(Stdio::null())
        .status()?;
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(&pid, false)? - cpu_before;
    let peak_rss_mib = memory.finish() as f64 / 1024.0;
    let load = format!("{publishers}x{subscribers}");
    if !status.success() {
        return Ok(json!({ "server": target.name, "load": load, "ok": false,
            "error": "the load tester failed; run it by hand to see why" }));
    }
    let report: Value = serde_json::from_str(&std::fs::read_to_string(out_file.path())?)?;
    let total = &report["total"];
    let packets = total["packets"].as_f64().unwrap_or(0.0);
    Ok(json!({
        "server": target.name,
        "load": load,
        "ok": true,
        "publishers": publishers,
        "subscribers": subscribers,
        "delivered_packets_per_s": report["received_packets_per_s"],
        "delivered_mbps": report["received_mbps"],
        "loss_pct": total["loss_pct"],
        "missing_streams": report["missing_streams"],
        "latency_p50_ms": total["latency_p50_ms"],
        "latency_p99_ms": total["latency_p99_ms"],
        "jitter_ms": total["jitter_ms"],
        "join_ms": report["join_ms"],
        "server_cpu_s": cpu,
        "server_cpu_pct": cpu / wall * 100.0,
        "server_cpu_s_per_million_packets": cpu * 1e6 / packets.max(1.0),
        "steady": report["server_cpu"],
        "server_peak_rss_mib": peak_rss_mib,
        "wall_s": wall,
    }))
}

fn parse_load(load: &str) -> anyhow::Result<(usize, usize)> {
    let (p, s) = load
        .split_once('x')
        .with_context(|| format!("load `{load}` is not PUBLISHERSxSUBSCRIBERS, such as 1x50"))?;
    Ok((p.trim().parse()?, s.trim().parse()?))
}

fn num(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or(f64::NAN)
}

/// The markdown table: one row per load, both servers, and their ratio.
fn table(rows: &[(String, Value, Value)], doc: &Value) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{}\n\n",
        doc["benchmark"].as_str().unwrap_or_default()
    ));
    out.push_str(
        "| load (pub x sub) | server | delivered pkt/s | loss | p50 / p99 latency | CPU s per M packets (steady) | peak RSS | join p50 |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for (load, sb, janus) in rows {
        for r in [sb, janus] {
            if r["ok"] != true {
                out.push_str(&format!(
                    "| {load} | {} | failed | | | | | |\n",
                    r["server"].as_str().unwrap_or("?")
                ));
                continue;
            }
            out.push_str(&format!(
                "| {load} | {} | {:.0} | {:.2}% | {:.1} / {:.1} ms | {:.2} | {:.0} MiB | {:.0} ms |\n",
                r["server"].as_str().unwrap_or("?"),
                num(r, "delivered_packets_per_s"),
                num(r, "loss_pct"),
                num(r, "latency_p50_ms"),
                num(r, "latency_p99_ms"),
                num(&r["steady"], "seconds_per_million_packets"),
                num(r, "server_peak_rss_mib"),
                r["join_ms"]["p50"].as_f64().unwrap_or(f64::NAN),
            ));
        }
        if sb["ok"] == true && janus["ok"] == true {
            out.push_str(&format!(
                "| {load} | **Switchboard / Janus** | {:.2}x | | {:.2}x / {:.2}x | **{:.2}x** | {:.2}x | {:.2}x |\n",
                num(sb, "delivered_packets_per_s") / num(janus, "delivered_packets_per_s"),
                num(sb, "latency_p50_ms") / num(janus, "latency_p50_ms"),
                num(sb, "latency_p99_ms") / num(janus, "latency_p99_ms"),
                num(&sb["steady"], "seconds_per_million_packets")
                    / num(&janus["steady"], "seconds_per_million_packets"),
                num(sb, "server_peak_rss_mib") / num(janus, "server_peak_rss_mib"),
                sb["join_ms"]["p50"].as_f64().unwrap_or(f64::NAN)
                    / janus["join_ms"]["p50"].as_f64().unwrap_or(f64::NAN),
            ));
        }
    }
    out.push_str(
        "\nRatios below 1 favour Switchboard for latency, CPU, memory and join time; \
         above 1 for delivered packets.\n",
    );
    out
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let loads = args
        .loads
        .iter()
        .map(|l| parse_load(l))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (ip, interface) = host_ip()?;
    let switchboard = start_server(&switchboard_binary(&args)?)?;
    let janus = start_janus(&args, &interface)?;
    let targets = [
        Target {
            name: "Switchboard",
            pid: switchboard.child.id(),
            loadtest_args: vec![
                "--url".into(),
                switchboard.url.clone(),
                "--api-key".into(),
                "devkey".into(),
                "--api-secret".into(),
                "secret".into(),
            ],
            args: &args,
        },
        Target {
            name: "Janus",
            pid: janus.child.id(),
            loadtest_args: vec![
                "--server".into(),
                "janus".into(),
                "--url".into(),
                args.janus_url.clone(),
                "--bind-ip".into(),
                ip.clone(),
            ],
            args: &args,
        },
    ];
    let mut rows = Vec::new();
    let mut runs = Vec::new();
    for (i, (publishers, subscribers)) in loads.iter().copied().enumerate() {
        let mut pair = Vec::new();
        for target in &targets {
            let r = run_load(target, publishers, subscribers, i)?;
            eprintln!("{r}");
            runs.push(r.clone());
            pair.push(r);
            // Let the room's participants go before the next run.
            std::thread::sleep(Duration::from_secs(2));
        }
        rows.push((
            format!("{publishers}x{subscribers}"),
            pair[0].clone(),
            pair[1].clone(),
        ));
    }
    let janus_version = Command::new(&args.janus)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let doc = json!({
        "benchmark": format!(
            "Switchboard (the sfu-bench build: packet path at opt-level 3, no function host, no Stripe client) and Janus VideoRoom ({}) one after the other on {cores} cores, \
             server and load tester sharing them; each publisher sends {} VP8 + 32 kbps Opus for {} per run; \
             the load tester reaches Switchboard on loopback and Janus on {ip} (Janus gathers no loopback candidate)",
            janus_version.lines().next().unwrap_or("janus"),
            args.video_bitrate,
            args.duration
        ),
        "runs": runs,
    });
    std::fs::write(&args.table, table(&rows, &doc))
        .with_context(|| format!("cannot write {}", args.table.display()))?;
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
