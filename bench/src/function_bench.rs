//! Function benchmark: compile time, cold and warm invocation latency and
//! invocations per second on one core, for a WAT component and the
//! JavaScript example, in process; then the latency a `participant.joining`
//! hook adds to a WebSocket join against a running server. Prints JSON.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use futures::StreamExt;
use serde_json::{json, Value};
use switchboard_core::directory::NoMediaTier;
use switchboard_core::function::Triggers;
use switchboard_core::SystemClock;
use switchboard_functions::bindings::switchboard::functions::types::{Joining, Permissions};
use switchboard_functions::{FunctionHost, Limits, Services};
use switchboard_store::functions::{Deployed, NewVersion};
use switchboard_store::testing::TestDb;
use switchboard_store::Backend;

#[derive(Parser)]
struct Args {
    /// The JavaScript example component (examples/functions/gate.wasm).
    #[arg(long)]
    js: PathBuf,
    /// A running dev server to measure join latency against.
    #[arg(long)]
    url: Option<String>,
    /// Warm invocations measured per component.
    #[arg(long, default_value_t = 2000)]
    invocations: usize,
    /// Joins measured per configuration.
    #[arg(long, default_value_t = 200)]
    joins: usize,
}

/// A component that reads one key and allows the join: the smallest useful gate.
const WAT: &str = r#"(module
  (import "switchboard:functions/host@0.1.0" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.const 7)) (i32.const -8)))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (local.get $p))
  (data (i32.const 16) "joining")
  (func (export "switchboard:functions/handler@0.1.0#on-joining")
    (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)
    (call $log (i32.const 1) (i32.const 16) (i32.const 7))
    (i32.store8 (i32.const 256) (i32.const 0)) (i32.const 256))
  (func (export "switchboard:functions/handler@0.1.0#on-event")
    (param i32 i32 i32 i32 i64 i32 i32 i32 i32 i32 i32 i32) (result i32)
    (i32.store8 (i32.const 512) (i32.const 0)) (i32.const 512)))"#;

fn wat_component() -> anyhow::Result<Vec<u8>> {
    Ok(switchboard_functions::testing::component_from_wat(
        WAT, "function",
    )?)
}

fn joining(identity: &str) -> Joining {
    Joining {
        room: "bench".into(),
        identity: identity.into(),
        name: String::new(),
        metadata: String::new(),
        permissions: Permissions {
            can_publish: true,
            can_subscribe: true,
            can_publish_data: true,
        },
    }
}

fn percentiles(mut us: Vec<f64>) -> Value {
    us.sort_by(f64::total_cmp);
    let at = |q: f64| us[((us.len() as f64 - 1.0) * q).round() as usize];
    json!({ "p50_us": round(at(0.5)), "p99_us": round(at(0.99)), "n": us.len() })
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Compile, cold and warm latency and single-core throughput of one component.
async fn measure(label: &str, bytes: Vec<u8>, n: usize) -> anyhow::Result<Value> {
    let db = TestDb::new(Backend::Sqlite).await?;
    let store = db.store().await?;
    let project = store
        .projects()
        .create("bench", chrono::Utc::now())
        .await?
        .id;
    let cache = tempfile::tempdir()?;
    let services = || {
        Services::new(
            store.clone(),
            Arc::new(NoMediaTier),
            Arc::new(NoMediaTier),
            Arc::new(SystemClock),
        )
    };
    let host = FunctionHost::new(services(), Limits::default(), Some(cache.path().to_owned()))?;
    let started = Instant::now();
    let digest = host
        .runtime()
        .check(&bytes)
        .await
        .map_err(anyhow::Error::msg)?;
    let compile_ms = started.elapsed().as_secs_f64() * 1e3;
    let (function, version) = store
        .functions()
        .deploy(
            project,
            label,
            NewVersion {
                digest: digest.clone(),
                triggers: Triggers::parse(vec!["participant.joining".into()])?,
                component: bytes,
                activate: true,
            },
            chrono::Utc::now(),
        )
        .await?;
    let deployed = Deployed {
        function_id: function.id,
        name: label.into(),
        version: version.version,
        digest,
        triggers: version.triggers,
    };
    // Let the artifact reach the disk cache, then measure "cold": a fresh
    // host (as after a restart) loading the artifact, instantiating and calling.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut cold = Vec::new();
    for i in 0..5 {
        let fresh =
            FunctionHost::new(services(), Limits::default(), Some(cache.path().to_owned()))?;
        let t = Instant::now();
        let run = fresh
            .run_joining(project, &deployed, joining(&format!("c{i}")), true)
            .await?;
        cold.push(t.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(run.result.is_ok(), "{label}: {:?}", run.result);
    }
    let mut warm = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let run = host
            .run_joining(project, &deployed, joining(&format!("w{i}")), true)
            .await?;
        warm.push(t.elapsed().as_secs_f64() * 1e6);
        anyhow::ensure!(run.result.is_ok(), "{label}: {:?}", run.result);
    }
    let window = Duration::from_secs(3);
    let t = Instant::now();
    let mut count = 0u64;
    while t.elapsed() < window {
        host.run_joining(project, &deployed, joining("t"), true)
            .await?;
        count += 1;
    }
    let per_s = count as f64 / t.elapsed().as_secs_f64();
    Ok(json!({
        "compile_ms": round(compile_ms),
        "cold": percentiles(cold),
        "warm": percentiles(warm),
        "invocations_per_s_one_core": per_s.round(),
    }))
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn join_once(http: &reqwest::Client, url: &str, identity: &str) -> anyhow::Result<f64> {
    let t: Value = http
        .post(format!("{url}/v1/tokens"))
        .basic_auth("devkey", Some("secret"))
        .json(&json!({"room": "bench", "identity": identity}))
        .send()
        .await?
        .json()
        .await?;
    let token = t["token"].as_str().context("token")?;
    let ws_url = format!("{}/rtc?access_token={token}", url.replacen("http", "ws", 1));
    let started = Instant::now();
    let (mut ws, _): (Ws, _) = tokio_tungstenite::connect_async(ws_url).await?;
    loop {
        match ws.next().await.context("closed before join")?? {
            tokio_tungstenite::tungstenite::Message::Text(text) => {
                let v: Value = serde_json::from_str(text.as_str())?;
                if v["type"] == "join" {
                    break;
                }
            }
            tokio_tungstenite::tungstenite::Message::Close(c) => anyhow::bail!("refused: {c:?}"),
            _ => {}
        }
    }
    let took = started.elapsed().as_secs_f64() * 1e6;
    let _ = ws.close(None).await;
    Ok(took)
}

async fn deploy(http: &reqwest::Client, url: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
    let r = http
        .post(format!(
            "{url}/v1/functions/gate/versions?events=participant.joining"
        ))
        .basic_auth("devkey", Some("secret"))
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "deploy: {}", r.text().await?);
    Ok(())
}

/// Join latency with no hook, then with the WAT hook, then with the JS hook.
async fn joins(url: &str, n: usize, wat: Vec<u8>, js: Vec<u8>) -> anyhow::Result<Value> {
    let http = reqwest::Client::new();
    http.post(format!("{url}/v1/rooms"))
        .basic_auth("devkey", Some("secret"))
        .json(&json!({"name": "bench"}))
        .send()
        .await?;
    // The JS gate admits listed guests only.
    for i in 0..n {
        http.put(format!("{url}/v1/kv/guest:u{i}"))
            .basic_auth("devkey", Some("secret"))
            .json(&json!({"value": "{}"}))
            .send()
            .await?;
    }
    let mut out = serde_json::Map::new();
    for (label, component) in [
        ("no_hook", None),
        ("wat_hook", Some(wat)),
        ("js_hook", Some(js)),
    ] {
        if let Some(bytes) = component {
            deploy(&http, url, bytes).await?;
        }
        join_once(&http, url, "u0").await?; // warm the compiled-version cache
        let mut lat = Vec::with_capacity(n);
        for i in 0..n {
            lat.push(join_once(&http, url, &format!("u{i}")).await?);
        }
        out.insert(label.into(), percentiles(lat));
    }
    Ok(Value::Object(out))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let js = std::fs::read(&args.js).with_context(|| format!("read {}", args.js.display()))?;
    let wat = wat_component()?;
    let mut report = json!({
        "wat": measure("wat", wat.clone(), args.invocations).await?,
        "js": measure("js", js.clone(), args.invocations / 4).await?,
    });
    report["wat"]["component_bytes"] = json!(wat.len());
    report["js"]["component_bytes"] = json!(js.len());
    if let Some(url) = args.url {
        report["join_latency"] = joins(&url, args.joins, wat, js).await?;
    }
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
