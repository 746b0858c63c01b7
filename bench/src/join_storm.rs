//! Join-storm benchmark of the control plane on PostgreSQL: `--events` joins
//! and leaves of one project are recorded in the event log by concurrent
//! producers (media nodes admitting and dropping participants), metered by
//! the billing meter and delivered to one webhook endpoint on loopback, all
//! in this process and wired as `switchboard serve` wires them. Reports the
//! sustained rate (every event appended, metered and delivered), each
//! stage's own rate and lag, checks that nothing was lost or doubled, and
//! prints one JSON object.
//!
//! Run with `bench/join-storm.sh`, or
//! `cargo run --profile sfu-bench -p switchboard-bench --bin join-storm -- --events 20000`.
//!
//! How each stage is observed:
//!
//! - Append: each producer times its own `store.events().record(..)` calls.
//! - Meter: the `billing` consumer cursor, read every 100 ms on a connection
//!   of its own (outside the store's pool, so the harness never takes a
//!   connection the workers need).
//! - Webhooks: the `webhooks` (fan-out) cursor the same way, and every
//!   request that reaches the receiver, with its arrival time. Delivery
//!   figures come from those arrival times after the run, so they do not
//!   depend on how often the receiver is looked at.
//!
//! The poller also samples `pg_stat_activity`, so the report says what the
//! store's connections were waiting on. A run that passes `--timeout-s`
//! prints how far each stage got, then fails.

mod scratch_db;

use scratch_db::fresh_database;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use chrono::{DateTime, Utc};
use clap::Parser;
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};
use switchboard_core::event::{LeaveReason, ParticipantRef, RoomRef};
use switchboard_core::webhook::{AddressPolicy, EventTypes};
use switchboard_core::{
    Clock, Event, EventId, EventPayload, Identity, NodeId, ParticipantSid, ProjectId, RoomName,
    RoomSid, SystemClock, WebhookId,
};
use switchboard_store::webhooks::NewWebhook;
use switchboard_store::{MasterKey, Store};
use switchboard_webhooks::testing::Receiver;
use switchboard_webhooks::WebhookConfig;
use tokio::task::JoinHandle;

#[derive(Parser)]
struct Args {
    /// Admin URL of the PostgreSQL server; the benchmark creates and drops its own database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    admin_url: String,
    /// Events recorded: half joins, half leaves of as many participants.
    #[arg(long, default_value_t = 100_000)]
    events: usize,
    /// Rooms the participants are spread over (one broadcast room by default).
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Concurrent producers, standing for media nodes' concurrent joins.
    #[arg(long, default_value_t = 64)]
    producers: usize,
    /// Participants each producer keeps in the room: one leaves after its
    /// producer's next `present` joins, so joins and leaves mix through the run.
    #[arg(long, default_value_t = 16)]
    present: usize,
    /// Events per second offered in total; 0 records as fast as the log takes them.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Seconds after the first append by which every stage must have finished.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
    /// Requests in flight at once to the endpoint (the server's default).
    #[arg(long, default_value_t = WebhookConfig::default().max_in_flight_per_endpoint)]
    endpoint_concurrency: usize,
}

const DB: &str = "sbbench_join_storm";
/// The rate the issue asks the control plane to sustain.
const TARGET_EVENTS_PER_S: f64 = 5_000.0;
/// How often the consumers' cursors are read.
const POLL: Duration = Duration::from_millis(100);

async fn drop_database(admin: &str, name: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(admin).await?;
    conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await?;
    Ok(())
}

/// One thing a producer records.
#[derive(Clone, Copy)]
enum Op {
    Join(usize),
    Leave(usize),
}

/// A producer's script: its participants join in order, and each leaves
/// after the producer's next `present` joins, so that past the first few
/// events joins and leaves alternate.
fn script(participants: impl Iterator<Item = usize>, present: usize) -> Vec<Op> {
    let mine: Vec<usize> = participants.collect();
    let mut ops = Vec::with_capacity(mine.len() * 2);
    for (k, &p) in mine.iter().enumerate() {
        ops.push(Op::Join(p));
        if k >= present {
            ops.push(Op::Leave(mine[k - present]));
        }
    }
    let from = mine.len().saturating_sub(present);
    ops.extend(mine[from..].iter().map(|&p| Op::Leave(p)));
    ops
}

/// The synthetic participants and where they are.
struct Cast {
    project: ProjectId,
    rooms: Vec<RoomRef>,
    /// The node hosting each room. None is registered, so the meter never
    /// finds one silent and closes its sessions in the middle of the run.
    nodes: Vec<NodeId>,
    participants: Vec<ParticipantRef>,
}

impl Cast {
    fn new(project: ProjectId, rooms: usize, participants: usize) -> Self {
        Self {
            project,
            rooms: (0..rooms)
                .map(|i| RoomRef {
                    sid: RoomSid::new(),
                    name: RoomName::new(format!("storm-{i}")).unwrap(),
                })
                .collect(),
            nodes: (0..rooms).map(|_| NodeId::new()).collect(),
            participants: (0..participants)
                .map(|i| ParticipantRef {
                    sid: ParticipantSid::new(),
                    identity: Identity::new(format!("user-{i}")).unwrap(),
                })
                .collect(),
        }
    }

    /// The event a media node records for `op`, as `media::room::live` does.
    fn event(&self, op: Op) -> Event {
        let payload = match op {
            Op::Join(p) => EventPayload::ParticipantJoined {
                room: self.rooms[p % self.rooms.len()].clone(),
                participant: self.participants[p].clone(),
                node: Some(self.nodes[p % self.rooms.len()]),
            },
            Op::Leave(p) => EventPayload::ParticipantLeft {
                room: self.rooms[p % self.rooms.len()].clone(),
                participant: self.participants[p].clone(),
                reason: LeaveReason::ClientLeft,
            },
        };
        Event::new(self.project, Utc::now(), payload)
    }
}

/// One append as its producer saw it.
struct Appended {
    id: EventId,
    created_at: DateTime<Utc>,
    /// When `record` returned, after the run's start.
    done: Duration,
    /// How long `record` took.
    latency: Duration,
    /// How late `record` was called against the offered rate's schedule.
    behind: Duration,
}

/// Every append so far, kept outside the producers so a run stopped at its
/// timeout still reports those that were made.
type Log = Arc<Mutex<Vec<Appended>>>;

fn lock(log: &Log) -> std::sync::MutexGuard<'_, Vec<Appended>> {
    log.lock().unwrap_or_else(|p| p.into_inner())
}

/// Records `ops` one after another, `interval` apart if pacing.
async fn produce(
    store: Store,
    cast: Arc<Cast>,
    ops: Vec<Op>,
    start: Instant,
    interval: Option<Duration>,
    log: Log,
) -> anyhow::Result<()> {
    for (k, op) in ops.into_iter().enumerate() {
        let due = interval.map(|i| start + i.mul_f64(k as f64));
        if let Some(due) = due {
            tokio::time::sleep_until(due.into()).await;
        }
        let called = Instant::now();
        // A media node refuses a join it cannot record; here that ends the run.
        let event = store
            .events()
            .record(cast.event(op))
            .await
            .context("recording a join or leave failed")?;
        let now = Instant::now();
        lock(&log).push(Appended {
            id: event.id,
            created_at: event.created_at,
            done: now - start,
            latency: now - called,
            behind: due
                .map(|d| called.saturating_duration_since(d))
                .unwrap_or_default(),
        });
    }
    Ok(())
}

/// Where the log and its consumers stood at one poll.
#[derive(Clone, Copy, Default)]
struct Progress {
    appended: i64,
    metered: i64,
    fanned_out: i64,
}

async fn progress(conn: &mut PgConnection, project: ProjectId) -> anyhow::Result<Progress> {
    let (appended, metered, fanned_out): (i64, i64, i64) = sqlx::query_as(
        "SELECT p.event_seq, \
         COALESCE((SELECT seq FROM consumer_cursors WHERE consumer = $2 AND project_id = p.id), 0), \
         COALESCE((SELECT seq FROM consumer_cursors WHERE consumer = $3 AND project_id = p.id), 0) \
         FROM projects p WHERE p.id = $1",
    )
    .bind(project.to_string())
    .bind(switchboard_store::usage::CONSUMER)
    .bind(switchboard_store::deliveries::CONSUMER)
    .fetch_one(conn)
    .await?;
    Ok(Progress {
        appended,
        metered,
        fanned_out,
    })
}

/// What the poller saw over the run.
#[derive(Default)]
struct Watch {
    /// When the meter's cursor reached the last event, after the start.
    metered_at: Option<Duration>,
    /// When the fan-out's cursor did.
    fanned_out_at: Option<Duration>,
    max_meter_lag: i64,
    max_fan_out_lag: i64,
    /// The cursors at the first poll after the last append returned.
    after_appends: Option<(Duration, Progress)>,
    /// The cursors at the last poll.
    last: Progress,
    polls: usize,
    /// The store's connections busy in PostgreSQL at each poll, summed, by
    /// state and what they waited on: where the database spends the run.
    busy: HashMap<String, i64>,
    /// The same sums for the active connections, by the statement they ran
    /// (its first words): which statements the database spends the run on.
    statements: HashMap<String, i64>,
    /// The most connections the benchmark's database had at once, the poller's included.
    max_connections: i64,
}

impl Watch {
    async fn sample_activity(&mut self, conn: &mut PgConnection) -> anyhow::Result<()> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT COALESCE(state, '?'), COALESCE(wait_event_type || ':' || wait_event, 'on cpu'), COUNT(*) \
             FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() \
             GROUP BY 1, 2",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut connections = 1;
        for (state, wait, count) in rows {
            connections += count;
            // `idle in transaction` stays: a transaction held open while the client works.
            if state != "idle" {
                *self.busy.entry(format!("{state} {wait}")).or_default() += count;
            }
        }
        self.max_connections = self.max_connections.max(connections);
        let statements: Vec<(String, i64)> = sqlx::query_as(
            "SELECT LEFT(REGEXP_REPLACE(query, '\\s+', ' ', 'g'), 120), COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active' \
             GROUP BY 1",
        )
        .fetch_all(conn)
        .await?;
        for (statement, count) in statements {
            *self.statements.entry(statement).or_default() += count;
        }
        Ok(())
    }
}

/// The 12 largest of `sums` (counts summed over `polls` polls) as means per
/// poll, largest first.
fn mean_per_poll(sums: HashMap<String, i64>, polls: usize) -> serde_json::Map<String, Value> {
    let mut sums: Vec<(String, i64)> = sums.into_iter().collect();
    sums.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    sums.into_iter()
        .take(12)
        .map(|(what, sum)| (what, json!(sum as f64 / polls.max(1) as f64)))
        .collect()
}

/// How the producers and the watch ended.
struct Storm {
    start: Instant,
    watch: Watch,
    /// Set when the timeout passed first: how long the run had gone, and
    /// how many requests had reached the receiver (repeats included).
    timed_out: Option<(Duration, usize)>,
}

/// Runs the producers and watches the consumers until every event is
/// appended, metered and delivered, or the timeout passes.
async fn storm(
    args: &Args,
    url: &str,
    store: &Store,
    project: ProjectId,
    receiver: &Receiver,
    log: Log,
) -> anyhow::Result<Storm> {
    let n = args.events;
    let participants = n / 2;
    let producers = args.producers.min(participants);
    let cast = Arc::new(Cast::new(project, args.rooms, participants));
    let interval = (args.rate > 0.0).then(|| Duration::from_secs_f64(producers as f64 / args.rate));
    let mut conn = PgConnection::connect(url).await?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.timeout_s);
    let mut tasks: Vec<JoinHandle<anyhow::Result<()>>> = (0..producers)
        .map(|j| {
            let ops = script((j..participants).step_by(producers), args.present);
            tokio::spawn(produce(
                store.clone(),
                cast.clone(),
                ops,
                start,
                interval,
                log.clone(),
            ))
        })
        .collect();
    let abort = |tasks: &[JoinHandle<_>]| tasks.iter().for_each(|t| t.abort());

    let mut watch = Watch::default();
    let mut delivered = 0usize;
    loop {
        tokio::time::sleep(POLL).await;
        let mut i = 0;
        while i < tasks.len() {
            if !tasks[i].is_finished() {
                i += 1;
                continue;
            }
            let result = tasks.swap_remove(i).await;
            if let Err(e) = result.map_err(anyhow::Error::from).and_then(|r| r) {
                abort(&tasks);
                return Err(e);
            }
        }
        let producing = !tasks.is_empty();
        let at = start.elapsed();
        let now = progress(&mut conn, project).await?;
        watch.sample_activity(&mut conn).await?;
        watch.polls += 1;
        watch.last = now;
        watch.max_meter_lag = watch.max_meter_lag.max(now.appended - now.metered);
        watch.max_fan_out_lag = watch.max_fan_out_lag.max(now.appended - now.fanned_out);
        if !producing {
            watch.after_appends.get_or_insert((at, now));
        }
        if watch.metered_at.is_none() && now.metered >= n as i64 {
            watch.metered_at = Some(at);
        }
        if watch.fanned_out_at.is_none() && now.fanned_out >= n as i64 {
            watch.fanned_out_at = Some(at);
        }
        if delivered < n {
            delivered = receiver.count();
        }
        if !producing && watch.metered_at.is_some() && delivered >= n {
            return Ok(Storm {
                start,
                watch,
                timed_out: None,
            });
        }
        if Instant::now() >= deadline {
            abort(&tasks);
            let delivered = receiver.received().len();
            return Ok(Storm {
                start,
                watch,
                timed_out: Some((start.elapsed(), delivered)),
            });
        }
    }
}

fn percentiles(mut v: Vec<f64>) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    v.sort_by(f64::total_cmp);
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    json!({
        "p50_ms": at(0.5),
        "p99_ms": at(0.99),
        "max_ms": v[v.len() - 1],
        "count": v.len(),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,sqlx::query=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    ensure!(
        args.events >= 2 && args.events.is_multiple_of(2),
        "--events must be an even number of at least 2 (a join and a leave per participant)"
    );
    ensure!(args.rooms >= 1, "--rooms must be at least 1");
    ensure!(args.producers >= 1, "--producers must be at least 1");
    ensure!(
        args.rate >= 0.0 && args.rate.is_finite(),
        "--rate must be 0 or a positive number"
    );
    let url = fresh_database(&args.admin_url, DB).await?;
    let outcome = run(&args, &url).await;
    // The database goes whatever happened; failing to drop it must not hide the run's error.
    if let Err(e) = drop_database(&args.admin_url, DB).await {
        eprintln!("could not drop the benchmark database {DB}: {e:#}");
    }
    let (figures, unfinished) = outcome?;
    println!("{}", serde_json::to_string_pretty(&figures)?);
    // A run that timed out still prints how far each stage got, then fails.
    match unfinished {
        Some(why) => bail!(why),
        None => Ok(()),
    }
}

/// Runs the benchmark on the fresh database at `url`: its figures, and why
/// the run is incomplete if it timed out.
async fn run(args: &Args, url: &str) -> anyhow::Result<(Value, Option<String>)> {
    let n = args.events;
    let data = tempfile::tempdir()?;
    let key = MasterKey::load_or_create(&data.path().join("master.key"))?;
    let store = Store::connect(url, key).await?;
    store.migrate().await?;
    let project = store.projects().create("join-storm", Utc::now()).await?.id;

    let receiver = Receiver::start().await?;
    let (webhook, _secret) = store
        .webhooks()
        .create(
            project,
            NewWebhook {
                url: receiver.url("/hook"),
                description: "join storm".into(),
                events: EventTypes::new(vec![
                    "participant.joined".into(),
                    "participant.left".into(),
                ])
                .map_err(anyhow::Error::msg)?,
                enabled: true,
            },
            Utc::now(),
        )
        .await?;

    // The workers as `switchboard serve` starts them (server/src/serve.rs),
    // with the development address policy so the receiver on loopback is allowed.
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let webhooks = switchboard_webhooks::Worker::new(
        store.clone(),
        clock.clone(),
        WebhookConfig {
            policy: AddressPolicy::DEV,
            max_in_flight_per_endpoint: args.endpoint_concurrency,
            ..WebhookConfig::default()
        },
    )?;
    let mut workers = webhooks.start();
    workers.push(
        switchboard_billing::meter::Worker::new(
            store.clone(),
            clock.clone(),
            switchboard_billing::meter::Config::default(),
        )
        .start(),
    );

    let log: Log = Arc::default();
    let storm = storm(args, url, &store, project, &receiver, log.clone()).await;
    for w in &workers {
        w.abort();
    }
    let Storm {
        start,
        watch,
        timed_out,
    } = storm?;
    let appended = std::mem::take(&mut *lock(&log));

    // What reached the receiver, each event once.
    let received = receiver.received();
    let created: HashMap<String, DateTime<Utc>> = appended
        .iter()
        .map(|a| (a.id.to_string(), a.created_at))
        .collect();
    let mut seen = HashSet::with_capacity(n);
    let mut duplicates = 0usize;
    let mut strangers = 0usize;
    let mut delivery_ms = Vec::with_capacity(received.len());
    let mut arrivals = Vec::with_capacity(received.len());
    for r in &received {
        let id = r.headers.get("webhook-id").cloned().unwrap_or_default();
        let body_id = r.json()["id"].as_str().map(str::to_owned);
        let Some(at) = created
            .get(&id)
            .filter(|_| body_id.as_deref() == Some(id.as_str()))
        else {
            strangers += 1;
            continue;
        };
        if !seen.insert(id) {
            duplicates += 1;
            continue;
        }
        delivery_ms.push((r.at_wall - *at).num_microseconds().unwrap_or(i64::MAX) as f64 / 1e3);
        arrivals.push(r.at.saturating_duration_since(start));
    }

    let mut conn = PgConnection::connect(url).await?;
    let mut checks = None;
    if timed_out.is_none() {
        checks = Some(verify(&mut conn, project, webhook.id, n).await?);
        ensure!(
            seen.len() == n && duplicates == 0 && strangers == 0,
            "the receiver got {} of {n} events, {duplicates} repeats and {strangers} requests that match no event",
            seen.len()
        );
    }

    // Figures; a stage that did not finish reports how far it got by the stop.
    let mut done: Vec<Duration> = appended.iter().map(|a| a.done).collect();
    done.sort();
    arrivals.sort();
    let stopped = timed_out.map(|(at, _)| at.as_secs_f64());
    let finished = |count: usize, last: Option<&Duration>| {
        (count == n)
            .then(|| last.map(Duration::as_secs_f64))
            .flatten()
    };
    let append_s = finished(done.len(), done.last());
    let delivered_s = finished(arrivals.len(), arrivals.last());
    let metered_s = watch.metered_at.map(|d| d.as_secs_f64());
    let fanned_out_s = watch.fanned_out_at.map(|d| d.as_secs_f64());
    let stage = |events: usize, done_after: Option<f64>| {
        let over = done_after.or(stopped).unwrap_or(f64::NAN);
        json!({
            "events": events,
            "done_after_s": done_after,
            "events_per_s": events as f64 / over,
            "drain_after_last_append_s": done_after.zip(append_s).map(|(d, a)| (d - a).max(0.0)),
        })
    };
    let metered = if metered_s.is_some() {
        n
    } else {
        watch.last.metered.max(0) as usize
    };
    let fanned_out = if fanned_out_s.is_some() {
        n
    } else {
        watch.last.fanned_out.max(0) as usize
    };
    // The most events appended but not yet delivered, just after each append.
    let mut max_webhook_lag = 0usize;
    let mut delivered = 0usize;
    for (k, d) in done.iter().enumerate() {
        while delivered < arrivals.len() && arrivals[delivered] <= *d {
            delivered += 1;
        }
        max_webhook_lag = max_webhook_lag.max(k + 1 - delivered);
    }
    let mut append = stage(done.len(), append_s);
    append["latency"] = percentiles(appended.iter().map(|a| ms(a.latency)).collect());
    if args.rate > 0.0 {
        append["behind_schedule"] = percentiles(appended.iter().map(|a| ms(a.behind)).collect());
    }
    if let Some(o) = append.as_object_mut() {
        o.remove("drain_after_last_append_s");
    }
    let mut meter = stage(metered, metered_s);
    meter["max_lag_events"] = json!(watch.max_meter_lag);
    let mut hooks = stage(seen.len(), delivered_s);
    hooks["max_lag_events"] = json!(max_webhook_lag);
    hooks["latency_from_event_created_at"] = percentiles(delivery_ms);
    let mut fan_out = stage(fanned_out, fanned_out_s);
    fan_out["max_lag_events"] = json!(watch.max_fan_out_lag);
    hooks["fan_out"] = fan_out;
    let last_append = done.last().copied().filter(|_| done.len() == n);
    let after_appends = watch.after_appends.zip(last_append).map(|((at, p), last)| {
        json!({
            "cursors_polled_at_s": at.as_secs_f64(),
            "metered": p.metered,
            "fanned_out": p.fanned_out,
            "delivered": arrivals.partition_point(|a| *a <= last),
        })
    });
    let sustained_s = append_s
        .zip(metered_s)
        .zip(delivered_s)
        .map(|((a, m), d)| a.max(m).max(d));
    let sustained = sustained_s.map(|s| n as f64 / s);
    let busy = mean_per_poll(watch.busy, watch.polls);
    let statements = mean_per_poll(watch.statements, watch.polls);
    let mut figures = json!({
        "config": {
            "events": n,
            "participants": n / 2,
            "rooms": args.rooms,
            "producers": args.producers,
            "present_per_producer": args.present,
            "offered_events_per_s": (args.rate > 0.0).then_some(args.rate),
            "webhook_endpoints": 1,
            "endpoint_concurrency": args.endpoint_concurrency,
            "timeout_s": args.timeout_s,
        },
        "sustained": {
            "seconds": sustained_s,
            "events_per_s": sustained,
            "target_events_per_s": TARGET_EVENTS_PER_S,
            "meets_target": sustained.is_some_and(|s| s >= TARGET_EVENTS_PER_S),
        },
        "append": append,
        "meter": meter,
        "webhooks": hooks,
        "when_the_last_append_returned": after_appends,
        "postgres": {
            "busy_connections_mean_by_state_and_wait": busy,
            "active_connections_mean_by_statement": statements,
            "max_connections": watch.max_connections,
        },
        "checks": checks,
        "harness": {
            "polls": watch.polls,
            "poll_interval_ms": ms(POLL),
        },
    });
    let unfinished = timed_out.map(|(at, requests)| {
        let why = format!(
            "not done after {:.0} s (--timeout-s {}): appended {} of {n} events, metered {metered}, \
             fanned out {fanned_out}, delivered {} ({requests} requests at the receiver)",
            at.as_secs_f64(),
            args.timeout_s,
            done.len(),
            seen.len(),
        );
        figures["timed_out"] = json!(why);
        why
    });
    // Closed before the database is dropped, so the pool is not cut off under
    // the last sends (a send still in flight gets 5 s).
    let _ = tokio::time::timeout(Duration::from_secs(5), store.close()).await;
    Ok((figures, unfinished))
}

/// Checks the database after a complete run: the log gap-free, every
/// participant's session metered and closed, every event delivered once.
/// Returns what it counted.
async fn verify(
    conn: &mut PgConnection,
    project: ProjectId,
    webhook: WebhookId,
    n: usize,
) -> anyhow::Result<Value> {
    let n = n as i64;
    let (events, distinct, lowest, highest): (i64, i64, Option<i64>, Option<i64>) =
        sqlx::query_as(
            "SELECT COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM events WHERE project_id = $1",
        )
        .bind(project.to_string())
        .fetch_one(&mut *conn)
        .await?;
    ensure!(
        events == n && distinct == n && lowest == Some(1) && highest == Some(n),
        "the log holds {events} events with {distinct} distinct seqs from {lowest:?} to {highest:?}, not seq 1..={n}"
    );
    let (sessions, closed): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE left_at IS NOT NULL) FROM usage_sessions WHERE project_id = $1",
    )
    .bind(project.to_string())
    .fetch_one(&mut *conn)
    .await?;
    ensure!(
        sessions == n / 2 && closed == sessions,
        "the meter holds {sessions} sessions, {closed} closed, for {} participants who joined and left",
        n / 2
    );
    // A delivery's outcome is written after its answer came; wait for the last ones.
    let mut outbox = (0i64, 0i64, 0i64);
    for _ in 0..100 {
        outbox = sqlx::query_as(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE status = 'succeeded'), COALESCE(SUM(attempts), 0)::BIGINT \
             FROM webhook_deliveries WHERE webhook_id = $1",
        )
        .bind(webhook.to_string())
        .fetch_one(&mut *conn)
        .await?;
        if outbox.1 >= n {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    let (queued, succeeded, attempts) = outbox;
    ensure!(
        queued == n && succeeded == n,
        "the outbox holds {queued} deliveries for the endpoint, {succeeded} succeeded, for {n} events"
    );
    Ok(json!({
        "log_seq_gap_free": true,
        "sessions_closed": closed,
        "deliveries_succeeded": succeeded,
        "delivery_attempts": attempts,
        "each_event_received_once": true,
    }))
}
