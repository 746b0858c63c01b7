//! Webhook delivery benchmark against a running server in `--dev` mode, with a
//! receiver on loopback in this process that answers 204 at once.
//!
//! 1. Latency: rooms are created at a steady rate (one `room.started` event
//!    each); for every delivery, the time from the event's `created_at` to its
//!    arrival at the receiver (same machine, same clock).
//! 2. Throughput: `POST /v1/webhooks/{id}/replay` queues every event again at
//!    once; the rate at which the receiver gets them is the pipeline's
//!    sustained deliveries per second (outbox read, lease, sign, POST, record).
//!
//! Run with `bench/webhooks.sh`, which starts the server on SQLite and on
//! PostgreSQL. Prints one JSON object.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use clap::Parser;

mod target;
use serde_json::{json, Value};
use target::Target;

#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    target: Target,
    /// Events per second in the latency phase.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Seconds of the latency phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

/// One delivery as the receiver saw it.
struct Arrival {
    /// When it arrived.
    at: chrono::DateTime<chrono::Utc>,
    /// The event's `created_at`.
    created: chrono::DateTime<chrono::Utc>,
}

/// Every delivery the receiver got.
#[derive(Default)]
struct Arrivals(Mutex<Vec<Arrival>>);

async fn receive(State(arrivals): State<Arc<Arrivals>>, body: Bytes) -> StatusCode {
    let now = chrono::Utc::now();
    let created = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["created_at"].as_str().map(str::to_owned))
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or(now);
    arrivals
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Arrival { at: now, created });
    StatusCode::NO_CONTENT
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn wait_for(arrivals: &Arrivals, n: usize, limit: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while arrivals.0.lock().unwrap_or_else(|p| p.into_inner()).len() < n {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} deliveries arrived",
                arrivals.0.lock().unwrap_or_else(|p| p.into_inner()).len()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let arrivals = Arc::new(Arrivals::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook_url = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new()
        .fallback(receive)
        .with_state(arrivals.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let http = reqwest::Client::new();
    let started_at = chrono::Utc::now();
    let created: Value = args
        .target
        .auth(http.post(format!("{}/v1/webhooks", args.target.url)))
        .json(&json!({ "url": hook_url, "events": ["room.started"] }))
        .send()
        .await?
        .error_for_status()
        .context("create the webhook")?
        .json()
        .await?;
    let webhook = created["id"].as_str().context("webhook id")?.to_owned();

    // Phase 1: latency at a steady rate.
    let total = (args.rate * args.seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let mut ticker = tokio::time::interval(interval);
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        ticker.tick().await;
        let req = args
            .target
            .auth(http.post(format!("{}/v1/rooms", args.target.url)))
            .json(&json!({ "name": format!("bench-{i}") }));
        tasks.push(tokio::spawn(async move {
            req.send().await.map(|r| r.status().is_success())
        }));
    }
    let mut failed = 0;
    for t in tasks {
        if !matches!(t.await, Ok(Ok(true))) {
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} room creations failed");
    }
    wait_for(&arrivals, total, Duration::from_secs(60)).await?;
    let mut latencies: Vec<f64> = arrivals
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(|a| (a.at - a.created).num_microseconds().unwrap_or(0) as f64 / 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);

    // Phase 2: throughput of a backlog queued at once.
    let before = arrivals.0.lock().unwrap_or_else(|p| p.into_inner()).len();
    let replay_started = Instant::now();
    let replayed: Value = args
        .target
        .auth(http.post(format!("{}/v1/webhooks/{webhook}/replay", args.target.url)))
        .json(&json!({ "since": started_at.to_rfc3339() }))
        .send()
        .await?
        .error_for_status()
        .context("replay")?
        .json()
        .await?;
    let queued = replayed["queued"].as_u64().context("queued")? as usize;
    wait_for(&arrivals, before + queued, Duration::from_secs(300)).await?;
    let drained = replay_started.elapsed().as_secs_f64();

    println!(
        "{}",
        json!({
            "label": args.target.label,
            "latency": {
                "events": total,
                "rate_per_s": args.rate,
                "p50_ms": percentile(&latencies, 0.50),
                "p99_ms": percentile(&latencies, 0.99),
                "max_ms": percentile(&latencies, 1.0),
            },
            "throughput": {
                "deliveries": queued,
                "seconds": (drained * 100.0).round() / 100.0,
                "per_second": (queued as f64 / drained).round(),
            },
        })
    );
    Ok(())
}
