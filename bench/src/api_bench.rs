//! Control-plane benchmark: `POST /v1/rooms` then `POST /v1/tokens`, from many
//! concurrent clients against a running server, for a fixed time.
//!
//! Run with `bench/api.sh`, which starts the server on SQLite and on PostgreSQL.
//! Prints one JSON object: throughput and latency percentiles per endpoint.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;

mod target;
use serde_json::json;
use target::Target;

#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    target: Target,
    /// Concurrent clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

#[derive(Default)]
struct Samples {
    rooms: Vec<Duration>,
    tokens: Vec<Duration>,
    errors: u64,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn summary(mut d: Vec<Duration>, secs: f64) -> serde_json::Value {
    d.sort();
    json!({
        "requests": d.len(),
        "per_second": (d.len() as f64 / secs).round(),
        "p50_ms": percentile(&d, 0.50),
        "p99_ms": percentile(&d, 0.99),
        "max_ms": percentile(&d, 1.0),
    })
}

async fn worker(
    client: reqwest::Client,
    args: std::sync::Arc<Args>,
    id: usize,
    until: Instant,
) -> Samples {
    let mut s = Samples::default();
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let name = format!("bench-{}-{id}-{n}", std::process::id());
        let t = Instant::now();
        let ok = args
            .target
            .auth(client.post(format!("{}/v1/rooms", args.target.url)))
            .json(&json!({ "name": name }))
            .send()
            .await
            .map(|r| r.status() == reqwest::StatusCode::CREATED)
            .unwrap_or(false);
        if !ok {
            s.errors += 1;
            continue;
        }
        s.rooms.push(t.elapsed());
        let t = Instant::now();
        let ok = args
            .target
            .auth(client.post(format!("{}/v1/tokens", args.target.url)))
            .json(&json!({ "room": name, "identity": "bench-user" }))
            .send()
            .await
            .map(|r| r.status() == reqwest::StatusCode::CREATED)
            .unwrap_or(false);
        if ok {
            s.tokens.push(t.elapsed());
        } else {
            s.errors += 1;
        }
    }
    s
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = std::sync::Arc::new(Args::parse());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    client
        .get(format!("{}/readyz", args.target.url))
        .send()
        .await
        .context("server not reachable")?
        .error_for_status()?;

    let start = Instant::now();
    let until = start + Duration::from_secs(args.seconds);
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|i| tokio::spawn(worker(client.clone(), args.clone(), i, until)))
        .collect();
    let mut all = Samples::default();
    for t in futures::future::join_all(tasks).await {
        let s = t?;
        all.rooms.extend(s.rooms);
        all.tokens.extend(s.tokens);
        all.errors += s.errors;
    }
    let secs = start.elapsed().as_secs_f64();
    if all.rooms.is_empty() {
        bail!("no request succeeded ({} errors)", all.errors);
    }
    let pairs = all.tokens.len();
    let out = json!({
        "label": args.target.label,
        "concurrency": args.concurrency,
        "seconds": (secs * 10.0).round() / 10.0,
        "errors": all.errors,
        "room_plus_token_pairs_per_second": (pairs as f64 / secs).round(),
        "create_room": summary(all.rooms, secs),
        "create_token": summary(all.tokens, secs),
    });
    println!("{out}");
    Ok(())
}
