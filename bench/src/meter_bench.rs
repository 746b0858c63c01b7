//! Metering benchmark on PostgreSQL: how many events per second the meter
//! ingests from the log, and how long the monthly usage report, the billing
//! preview and a page of sessions take for a project with millions of
//! sessions in one month. Prints one JSON object.
//!
//! The ingest part appends real events (joins, leaves, video tracks) to the
//! log and times the meter reading them. The query part loads the sessions,
//! ledger and hourly rollup in bulk with SQL that splits each session into
//! hours as the meter does (checked against the sessions' sum), because
//! metering ten million sessions one by one would take hours; it then times
//! the store's report and the HTTP endpoint of a release server.

mod scratch_db;

use scratch_db::fresh_database;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Parser;
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};
use switchboard_billing::meter::{Config, Worker};
use switchboard_core::event::{
    LeaveReason, ParticipantRef, RoomRef, TrackKind, TrackRef, TrackSource,
};
use switchboard_core::usage::{Meter, Period};
use switchboard_core::{
    Event, EventPayload, Identity, NodeId, ParticipantSid, ProjectId, RoomName, RoomSid,
    SystemClock, TrackSid,
};
use switchboard_store::{MasterKey, Store};

#[derive(Parser)]
struct Args {
    /// Admin URL of the PostgreSQL server; the benchmark creates and drops its own database.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    admin_url: String,
    /// Events appended for the ingest measurement.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Sessions loaded for the query measurement.
    #[arg(long, default_value_t = 10_000_000)]
    sessions: i64,
    /// Rooms they are spread over.
    #[arg(long, default_value_t = 10_000)]
    rooms: i64,
    /// A release `switchboard` binary to time `GET /v1/usage` over HTTP too.
    #[arg(long)]
    server: Option<std::path::PathBuf>,
    /// Runs of each query.
    #[arg(long, default_value_t = 7)]
    runs: usize,
}

const DB: &str = "sbbench_meter";
const PERIOD: &str = "2026-11";

/// Events of `sessions` participants in `rooms` rooms through November, one
/// room in four with a camera, as a media node would record them.
fn events(project: ProjectId, count: usize, rooms: usize) -> Vec<Event> {
    let start: DateTime<Utc> = "2026-11-02T00:00:00Z".parse().unwrap();
    let rooms: Vec<RoomRef> = (0..rooms)
        .map(|i| RoomRef {
            sid: RoomSid::new(),
            name: RoomName::new(format!("room-{i}")).unwrap(),
        })
        .collect();
    let node = NodeId::new();
    let mut out = Vec::with_capacity(count);
    let mut i = 0usize;
    while out.len() + 4 <= count {
        let room = &rooms[i % rooms.len()];
        let at = start + chrono::Duration::seconds(i as i64);
        let p = ParticipantRef {
            sid: ParticipantSid::new(),
            identity: Identity::new(format!("user-{i}")).unwrap(),
        };
        let mut ev = |offset: i64, payload| {
            out.push(Event::new(
                project,
                at + chrono::Duration::seconds(offset),
                payload,
            ));
        };
        ev(
            0,
            EventPayload::ParticipantJoined {
                room: room.clone(),
                participant: p.clone(),
                node: Some(node),
            },
        );
        if i.is_multiple_of(4) {
            let track = TrackRef {
                sid: TrackSid::new(),
                kind: TrackKind::Video,
                source: TrackSource::Camera,
                mime_type: None,
            };
            ev(
                1,
                EventPayload::TrackPublished {
                    room: room.clone(),
                    participant: p.clone(),
                    track: track.clone(),
                },
            );
            ev(
                300,
                EventPayload::TrackUnpublished {
                    room: room.clone(),
                    participant: p.clone(),
                    track,
                },
            );
        }
        ev(
            600 + (i % 1800) as i64,
            EventPayload::ParticipantLeft {
                room: room.clone(),
                participant: p,
                reason: LeaveReason::ClientLeft,
            },
        );
        i += 1;
    }
    out
}

/// Appends `events` to the log in large batches, as if recorded one by one.
async fn append(
    conn: &mut PgConnection,
    project: ProjectId,
    events: &mut [Event],
) -> anyhow::Result<()> {
    for (n, e) in events.iter_mut().enumerate() {
        e.seq = n as i64 + 1;
    }
    for chunk in events.chunks(10_000) {
        let mut cols: [Vec<String>; 6] = Default::default();
        let mut seqs = Vec::new();
        let mut times = Vec::new();
        for e in chunk {
            let room = e.room();
            cols[0].push(e.id.to_string());
            cols[1].push(project.to_string());
            cols[2].push(e.event_type().to_owned());
            cols[3].push(room.map(|r| r.name.to_string()).unwrap_or_default());
            cols[4].push(room.map(|r| r.sid.to_string()).unwrap_or_default());
            cols[5].push(serde_json::to_string(e)?);
            seqs.push(e.seq);
            times.push(e.created_at.timestamp_micros());
        }
        let [ids, projects, types, names, sids, bodies] = cols;
        sqlx::query(
            "INSERT INTO events (id, project_id, seq, type, room_name, room_sid, created_at, body) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[])",
        )
        .bind(ids)
        .bind(projects)
        .bind(seqs)
        .bind(types)
        .bind(names)
        .bind(sids)
        .bind(times)
        .bind(bodies)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query("UPDATE projects SET event_seq = $1 WHERE id = $2")
        .bind(events.len() as i64)
        .bind(project.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Loads `sessions` closed sessions of `project` through the period, their
/// ledger rows split by hour, and the hourly rollup.
async fn bulk_load(
    conn: &mut PgConnection,
    project: ProjectId,
    sessions: i64,
    rooms: i64,
) -> anyhow::Result<()> {
    let period: Period = PERIOD.parse().map_err(anyhow::Error::msg)?;
    let start = period.start().timestamp_micros();
    let span = period.end().timestamp_micros() - start - 3_600_000_000;
    let statements = [
        // Sessions of 1 to 60 minutes, evenly through the month; one in three saw video.
        format!(
            "INSERT INTO usage_sessions (id, project_id, room_sid, room_name, identity, node_id, joined_at, left_at, leave_reason, video, billed_us) \
             SELECT 'pa_' || lpad(upper(to_hex(i)), 26, '0'), '{project}', 'rm_' || lpad(upper(to_hex(i % {rooms})), 26, '0'), 'room-' || (i % {rooms}), 'user-' || i, NULL, \
                    {start} + (i * ({span} / {sessions})), {start} + (i * ({span} / {sessions})) + d, 'client_left', CASE WHEN i % 3 = 0 THEN 1 ELSE 0 END, d \
             FROM (SELECT i, (60 + (i * 7919) % 3541)::bigint * 1000000 + (i % 1000000) AS d FROM generate_series(1::bigint, {sessions}::bigint) AS i) s"
        ),
        // The same split into UTC hours as the meter's Span::by_hour.
        format!("INSERT INTO usage_ledger (source, meter, hour, project_id, room_name, quantity, recorded_at) \
         SELECT s.id, CASE WHEN s.video = 1 THEN 'participant_minutes_video' ELSE 'participant_minutes_audio' END, h, s.project_id, s.room_name, \
                LEAST(s.left_at, h + 3600000000) - GREATEST(s.joined_at, h), s.left_at \
         FROM usage_sessions s, generate_series((s.joined_at / 3600000000) * 3600000000, s.left_at - 1, 3600000000) AS h \
         WHERE s.project_id = '{project}'"
        ),
        format!("INSERT INTO usage_hourly (project_id, meter, hour, room_name, quantity) \
         SELECT project_id, meter, hour, room_name, SUM(quantity) FROM usage_ledger \
         WHERE project_id = '{project}' GROUP BY project_id, meter, hour, room_name"
        ),
        format!("INSERT INTO usage_project_hourly (project_id, meter, hour, quantity) \
         SELECT project_id, meter, hour, SUM(quantity) FROM usage_hourly \
         WHERE project_id = '{project}' GROUP BY project_id, meter, hour"
        ),
        format!("INSERT INTO usage_room_daily (project_id, meter, day, room_name, quantity) \
         SELECT project_id, meter, hour - hour % 86400000000, room_name, SUM(quantity) FROM usage_hourly \
         WHERE project_id = '{project}' GROUP BY project_id, meter, hour - hour % 86400000000, room_name"
        ),
        "ANALYZE".to_owned(),
    ];
    for sql in statements {
        sqlx::query(&sql).execute(&mut *conn).await?;
    }
    Ok(())
}

fn stats(mut ms: Vec<f64>) -> serde_json::Value {
    ms.sort_by(f64::total_cmp);
    json!({ "p50_ms": ms[ms.len() / 2], "min_ms": ms[0], "max_ms": ms[ms.len() - 1], "runs": ms.len() })
}

async fn time<F, Fut, T>(runs: usize, mut f: F) -> anyhow::Result<(serde_json::Value, T)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut ms = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(f().await?);
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    Ok((stats(ms), last.context("no runs")?))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let url = fresh_database(&args.admin_url, DB).await?;
    let data = tempfile::tempdir()?;
    let key = MasterKey::load_or_create(&data.path().join("master.key"))?;
    let store = Store::connect(&url, key).await?;
    store.migrate().await?;
    let mut conn = PgConnection::connect(&url).await?;

    // Ingest: the meter reading real events from the log.
    let ingest_project = store.projects().create("ingest", Utc::now()).await?.id;
    let mut log = events(ingest_project, args.events, 500);
    append(&mut conn, ingest_project, &mut log).await?;
    let worker = Worker::new(store.clone(), Arc::new(SystemClock), Config::default());
    let t = Instant::now();
    let metered = worker.catch_up().await?;
    let ingest_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        metered == log.len(),
        "metered {metered} of {} events",
        log.len()
    );
    let period: Period = PERIOD.parse().map_err(anyhow::Error::msg)?;
    let totals = store
        .usage()
        .totals(ingest_project, period.start(), period.end())
        .await?;
    let sessions_metered: i64 = totals.values().sum();
    anyhow::ensure!(sessions_metered > 0, "nothing metered");

    // Query: one project with `sessions` sessions in the month.
    let project = store.projects().create("big", Utc::now()).await?.id;
    store
        .api_keys()
        .insert(project, "benchkey", "benchsecret", "bench", Utc::now())
        .await?;
    let t = Instant::now();
    bulk_load(&mut conn, project, args.sessions, args.rooms).await?;
    let load_s = t.elapsed().as_secs_f64();
    let hourly_rows: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM usage_hourly WHERE project_id = $1")
            .bind(project.to_string())
            .fetch_one(&mut conn)
            .await?;
    let ledger_rows: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM usage_ledger WHERE project_id = $1")
            .bind(project.to_string())
            .fetch_one(&mut conn)
            .await?;
    let billed: i64 = sqlx::query_scalar(
        "SELECT CAST(SUM(billed_us) AS BIGINT) FROM usage_sessions WHERE project_id = $1",
    )
    .bind(project.to_string())
    .fetch_one(&mut conn)
    .await?;

    let usage = store.usage();
    let (monthly, report) = time(args.runs, || async {
        Ok(usage
            .report(project, period.start(), period.end(), None, 100)
            .await?)
    })
    .await?;
    let reported: i64 = report.hourly.iter().map(|h| h.quantity).sum();
    anyhow::ensure!(
        reported == billed,
        "report says {reported} µs, the sessions {billed} µs"
    );
    let (preview, _) = time(args.runs, || async {
        Ok(usage
            .report(project, period.start(), period.end(), None, 0)
            .await?)
    })
    .await?;
    let filter = switchboard_store::usage::SessionFilter {
        room: Some("room-42".into()),
        ..Default::default()
    };
    let (sessions_page, page) = time(args.runs, || async {
        Ok(usage.sessions(project, &filter, None, 100).await?)
    })
    .await?;
    anyhow::ensure!(page.len() == 100, "a page of sessions held {}", page.len());

    let http = match &args.server {
        Some(bin) => Some(time_http(bin, &url, data.path(), args.runs).await?),
        None => None,
    };
    store.close().await;
    drop(conn);
    let mut admin = PgConnection::connect(&args.admin_url).await?;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {DB} WITH (FORCE)").as_str())
        .await?;

    let minutes = |m: Meter| {
        report
            .hourly
            .iter()
            .filter(|h| h.meter == m)
            .map(|h| h.quantity)
            .sum::<i64>()
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "ingest": {
                "events": log.len(),
                "seconds": ingest_s,
                "events_per_s": log.len() as f64 / ingest_s,
            },
            "monthly_query": {
                "sessions": args.sessions,
                "rooms": args.rooms,
                "ledger_rows": ledger_rows,
                "hourly_rows": hourly_rows,
                "bulk_load_s": load_s,
                "video_minutes": Meter::ParticipantMinutesVideo.billable(minutes(Meter::ParticipantMinutesVideo)),
                "audio_minutes": Meter::ParticipantMinutesAudio.billable(minutes(Meter::ParticipantMinutesAudio)),
                "store_report_month_by_hour_and_top_100_rooms": monthly,
                "store_report_month_totals_only": preview,
                "store_sessions_page_of_100_in_one_room": sessions_page,
                "http_get_v1_usage_month_by_day": http,
            }
        }))?
    );
    Ok(())
}

/// Starts a release server on the benchmark database and times `GET /v1/usage` for the month.
async fn time_http(
    bin: &std::path::Path,
    url: &str,
    data_dir: &std::path::Path,
    runs: usize,
) -> anyhow::Result<serde_json::Value> {
    let mut child = tokio::process::Command::new(bin)
        .env("SWITCHBOARD_RTC_UDP_PORT", "0")
        .args([
            "serve",
            "--http-addr",
            "127.0.0.1:7934",
            "--database-url",
            url,
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let http = reqwest::Client::new();
    let get = || {
        http.get("http://127.0.0.1:7934/v1/usage")
            .basic_auth("benchkey", Some("benchsecret"))
            .query(&[
                ("from", "2026-11-01"),
                ("to", "2026-12-01"),
                ("granularity", "day"),
            ])
            .send()
    };
    let mut up = false;
    for _ in 0..100 {
        if get().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::ensure!(up, "the server did not start");
    let (stats, body) = time(runs, || async {
        let res = get().await?.error_for_status()?;
        Ok(res.bytes().await?.len())
    })
    .await?;
    let _ = child.kill().await;
    Ok(json!({ "latency": stats, "body_bytes": body }))
}
