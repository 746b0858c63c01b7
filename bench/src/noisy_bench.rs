//! Noisy-neighbour benchmark: how much one project's failing webhook
//! endpoint and slow functions cost another project sharing the server.
//!
//! The quiet project (the target's key) has a webhook to a receiver that
//! answers 204 at once and a function that returns at once, both on
//! `room.started`; it creates rooms at a steady rate. The noisy project has
//! a webhook to an endpoint that holds every request until the server's
//! timeout, and a function that spins until its deadline, and creates rooms
//! faster. The quiet project's webhook latency (event to arrival) and
//! function latency (event to the end of the invocation) are measured alone,
//! then beside the noisy project, in one run. Prints one JSON object.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use clap::Parser;
use serde_json::{json, Value};

mod target;
use target::Target;

#[derive(Debug, Parser)]
struct Args {
    /// The quiet project.
    #[command(flatten)]
    target: Target,
    /// API key id of the noisy project.
    #[arg(long)]
    noisy_key: String,
    /// API key secret of the noisy project.
    #[arg(long)]
    noisy_secret: String,
    /// Rooms the quiet project creates per second.
    #[arg(long, default_value_t = 20)]
    rate: u64,
    /// Rooms the noisy project creates per second.
    #[arg(long, default_value_t = 50)]
    noise_rate: u64,
    /// Seconds of each phase.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// What the noisy project does wrong: `both` (the default), `webhook`
    /// (only a stuck endpoint) or `function` (only a spinning function).
    #[arg(long, default_value = "both")]
    noise: String,
}

/// `(event created_at, arrival)` of each quiet delivery.
#[derive(Default)]
struct Arrivals(Mutex<Vec<(DateTime<Utc>, DateTime<Utc>)>>);

async fn healthy(State(arrivals): State<Arc<Arrivals>>, body: Bytes) -> StatusCode {
    let now = Utc::now();
    if let Some(created) = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["created_at"].as_str().map(str::to_owned))
        .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
    {
        arrivals
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((created.with_timezone(&Utc), now));
    }
    StatusCode::NO_CONTENT
}

/// An endpoint that holds every request until the sender gives up.
async fn stuck() -> StatusCode {
    tokio::time::sleep(Duration::from_secs(60)).await;
    StatusCode::INTERNAL_SERVER_ERROR
}

/// A function whose handler returns `ok` at once, or spins until its deadline.
fn component(spin: bool) -> anyhow::Result<Vec<u8>> {
    let body = if spin {
        "(loop $forever (br $forever)) (i32.const 512)"
    } else {
        "(i32.store8 (i32.const 512) (i32.const 0)) (i32.const 512)"
    };
    Ok(switchboard_functions::testing::handler_component(
        "", body, "",
    )?)
}

/// One project as the benchmark drives it.
#[derive(Clone)]
struct Project {
    target: Arc<Target>,
    http: reqwest::Client,
}

impl Project {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.target.auth(
            self.http
                .request(method, format!("{}{path}", self.target.url)),
        )
    }

    /// A webhook on `room.started` to `hook` and a function on it, each if given.
    async fn set_up(
        &self,
        hook: Option<&str>,
        function: Option<&str>,
        spin: bool,
    ) -> anyhow::Result<()> {
        if let Some(hook) = hook {
            self.req(reqwest::Method::POST, "/v1/webhooks")
                .json(&json!({ "url": hook, "events": ["room.started"] }))
                .send()
                .await?
                .error_for_status()
                .context("create the webhook")?;
        }
        let Some(function) = function else {
            return Ok(());
        };
        self.req(
            reqwest::Method::POST,
            &format!("/v1/functions/{function}/versions?events=room.started"),
        )
        .header("content-type", "application/wasm")
        .body(component(spin)?)
        .send()
        .await?
        .error_for_status()
        .context("deploy the function")?;
        Ok(())
    }

    /// Creates `rate` rooms a second for `seconds`, named `{prefix}-{i}`.
    async fn create_rooms(&self, prefix: &str, rate: u64, seconds: u64) -> anyhow::Result<()> {
        let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        let mut tasks = Vec::new();
        for i in 0..rate * seconds {
            ticker.tick().await;
            let req = self
                .req(reqwest::Method::POST, "/v1/rooms")
                .json(&json!({ "name": format!("{prefix}-{i}") }));
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
            bail!("{failed} room creations of {prefix} failed");
        }
        Ok(())
    }

    /// Every item of a paginated list.
    async fn all(&self, path: &str) -> anyhow::Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let mut url = format!("{path}{sep}limit=100");
            if let Some(c) = &cursor {
                url.push_str(&format!("&cursor={c}"));
            }
            let page: Value = self
                .req(reqwest::Method::GET, &url)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            out.extend(page["data"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(out),
            }
        }
    }
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn percentiles(mut ms: Vec<f64>) -> Value {
    if ms.is_empty() {
        return json!(null);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    json!({ "n": ms.len(), "p50": at(0.5), "p99": at(0.99), "max": at(1.0) })
}

/// The quiet project's latencies for events created in `window`.
async fn measure(
    quiet: &Project,
    arrivals: &Arrivals,
    window: (DateTime<Utc>, DateTime<Utc>),
    expected: usize,
) -> anyhow::Result<Value> {
    let inside = |t: DateTime<Utc>| t >= window.0 && t <= window.1;
    let deadline = Instant::now() + Duration::from_secs(120);
    let webhook: Vec<f64> = loop {
        let got: Vec<f64> = arrivals
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(created, _)| inside(*created))
            .map(|(created, at)| (*at - *created).num_microseconds().unwrap_or(0) as f64 / 1e3)
            .collect();
        if got.len() >= expected || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let function: Vec<f64> = loop {
        let events = quiet.all("/v1/events?type=room.started").await?;
        let created: std::collections::HashMap<String, DateTime<Utc>> = events
            .iter()
            .filter_map(|e| Some((e["id"].as_str()?.to_owned(), time(&e["created_at"])?)))
            .filter(|(_, t)| inside(*t))
            .collect();
        let runs = quiet.all("/v1/functions/probe/invocations").await?;
        let got: Vec<f64> = runs
            .iter()
            .filter_map(|r| {
                let event = created.get(r["event_id"].as_str()?)?;
                let end = time(&r["created_at"])?
                    + chrono::Duration::microseconds(r["duration_us"].as_i64()?);
                Some((end - *event).num_microseconds()? as f64 / 1e3)
            })
            .collect();
        if got.len() >= expected || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    Ok(json!({
        "webhook_ms": percentiles(webhook),
        "function_ms": percentiles(function),
    }))
}

fn ratio(beside: &Value, alone: &Value, what: &str) -> Value {
    match (beside[what]["p99"].as_f64(), alone[what]["p99"].as_f64()) {
        (Some(b), Some(a)) if a > 0.0 => json!((b / a * 100.0).round() / 100.0),
        _ => json!(null),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let arrivals = Arc::new(Arrivals::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/ok", axum::routing::post(healthy))
        .route("/stuck", axum::routing::post(stuck))
        .with_state(arrivals.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let http = reqwest::Client::new();
    let noisy = Project {
        target: Arc::new(Target {
            url: args.target.url.clone(),
            api_key: args.noisy_key.clone(),
            api_secret: args.noisy_secret.clone(),
            label: String::new(),
        }),
        http: http.clone(),
    };
    let label = args.target.label.clone();
    let quiet = Project {
        target: Arc::new(args.target),
        http,
    };
    quiet
        .set_up(Some(&format!("{base}/ok")), Some("probe"), false)
        .await?;
    let stuck = format!("{base}/stuck");
    let (hook, function) = match args.noise.as_str() {
        "both" => (Some(stuck.as_str()), Some("spin")),
        "webhook" => (Some(stuck.as_str()), None),
        "function" => (None, Some("spin")),
        other => bail!("--noise is both, webhook or function, not `{other}`"),
    };
    noisy.set_up(hook, function, true).await?;
    let expected = (args.rate * args.seconds) as usize;

    let start = Utc::now();
    quiet.create_rooms("alone", args.rate, args.seconds).await?;
    let alone = measure(&quiet, &arrivals, (start, Utc::now()), expected).await?;

    let noise = {
        let noisy = noisy.clone();
        let (rate, seconds) = (args.noise_rate, args.seconds + 5);
        tokio::spawn(async move { noisy.create_rooms("noise", rate, seconds).await })
    };
    // The noise builds up first: stuck deliveries and spinning jobs waiting.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let start = Utc::now();
    quiet
        .create_rooms("beside", args.rate, args.seconds)
        .await?;
    let beside = measure(&quiet, &arrivals, (start, Utc::now()), expected).await?;
    noise.await??;

    println!(
        "{}",
        json!({
            "label": label,
            "noise": args.noise,
            "quiet_rooms_per_s": args.rate,
            "noisy_rooms_per_s": args.noise_rate,
            "seconds": args.seconds,
            "alone": alone,
            "beside_noise": beside,
            "p99_ratio": {
                "webhook": ratio(&beside, &alone, "webhook_ms"),
                "function": ratio(&beside, &alone, "function_ms"),
            },
        })
    );
    Ok(())
}
