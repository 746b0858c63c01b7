//! Metering end to end: simulated participants (the load tester) in rooms
//! for known durations, `GET /v1/usage` checked to the microsecond against
//! the event log across a restart and a `kill -9`, and the API's refusals.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::metering::{loadtest, loadtest_command, settled, total, usage};
use common::{expect_error, send, Server};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use switchboard_core::event::{EventPayload, LeaveReason};
use switchboard_store::Backend;

/// Load tests share the 2 cores badly; one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn room_quantity(report: &Value, meter: &str, room: &str) -> i64 {
    report["meters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["meter"] == meter)
        .and_then(|m| {
            m["rooms"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["room"] == room)
                .map(|r| r["quantity"].as_i64().unwrap())
        })
        .unwrap_or(0)
}

/// Microseconds of every closed session in the event log, by room: what the
/// meter must arrive at on its own.
async fn durations_from_the_log(s: &Server) -> HashMap<String, i64> {
    let mut joined = HashMap::new();
    let mut by_room: HashMap<String, i64> = HashMap::new();
    for e in s.events().await {
        match &e.payload {
            EventPayload::ParticipantJoined { participant, .. } => {
                joined.insert(participant.sid, e.created_at);
            }
            EventPayload::ParticipantLeft {
                room, participant, ..
            } => {
                let start = joined
                    .remove(&participant.sid)
                    .expect("a leave follows its join");
                *by_room.entry(room.name.to_string()).or_default() +=
                    (e.created_at - start).num_microseconds().unwrap();
            }
            _ => {}
        }
    }
    assert!(joined.is_empty(), "sessions still open: {joined:?}");
    by_room
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_matches_the_log_to_the_microsecond_and_survives_a_restart() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut s = Server::start(Backend::Sqlite).await;
    // Video: 1 publisher and 2 subscribers for 4 s. Audio only: 1 + 1 for 3 s.
    loadtest(&s, "video-room", 1, 2, "300k", 4).await;
    loadtest(&s, "audio-room", 1, 1, "0", 3).await;
    let report = settled(&s, 5).await;
    let log = durations_from_the_log(&s).await;
    let video = total(&report, "participant_minutes_video");
    let audio = total(&report, "participant_minutes_audio");
    assert_eq!(video, log["video-room"], "{report}");
    assert_eq!(audio, log["audio-room"], "{report}");
    assert_eq!(
        room_quantity(&report, "participant_minutes_video", "video-room"),
        video
    );
    assert_eq!(
        room_quantity(&report, "participant_minutes_audio", "audio-room"),
        audio
    );
    // Three participants for at least 4 s, two for at least 3 s.
    assert!((3 * 4_000_000..3 * 30_000_000).contains(&video), "{video}");
    assert!((2 * 3_000_000..2 * 30_000_000).contains(&audio), "{audio}");
    let seconds = report["meters"][1]["seconds"].as_f64().unwrap();
    assert!((seconds - video as f64 / 1e6).abs() < 1e-6, "{report}");
    let by_hour: i64 = report["meters"][1]["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["quantity"].as_i64().unwrap())
        .sum();
    assert_eq!(by_hour, video);

    // Every session is listed with what it was billed.
    let (_, sessions) = send(
        s.dev(Method::GET, "/v1/usage/sessions")
            .query(&[("room", "video-room")]),
    )
    .await;
    let sessions = sessions["data"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 3);
    let billed: i64 = sessions
        .iter()
        .map(|x| x["billed_us"].as_i64().unwrap())
        .sum();
    assert_eq!(billed, video);
    assert!(
        sessions.iter().all(
            |x| x["meter"] == "participant_minutes_video" && x["leave_reason"] == "client_left"
        ),
        "{sessions:#?}"
    );

    // The preview rounds the period's sum up to whole minutes, once.
    let (_, preview) = send(s.dev(Method::GET, "/v1/billing/preview")).await;
    let line = preview["invoice"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["meter"] == "participant_minutes_video")
        .unwrap()
        .clone();
    assert_eq!(line["usage"], video);
    assert_eq!(line["quantity"], (video + 59_999_999) / 60_000_000);
    assert_eq!(
        preview["invoice"]["total_cents"], 0,
        "the default plan charges nothing"
    );

    // A restart changes nothing already metered.
    s.restart(&["--dev"]);
    let after = settled(&s, 5).await;
    assert_eq!(
        after["meters"], report["meters"],
        "a restart changed the usage"
    );

    // New usage adds to it, once.
    loadtest(&s, "audio-room", 1, 1, "0", 2).await;
    let more = settled(&s, 7).await;
    let log = durations_from_the_log(&s).await;
    assert_eq!(total(&more, "participant_minutes_audio"), log["audio-room"]);
    assert!(log["audio-room"] >= audio + 2 * 2_000_000);
    assert_eq!(total(&more, "participant_minutes_video"), video);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_servers_sessions_end_at_its_last_heartbeat() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut s = Server::start(Backend::Postgres).await;
    let mut cmd = loadtest_command(&s, "crash", 1, 1, "200k", 120);
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut peers = cmd.spawn().expect("start loadtest");
    let mut joined = 0;
    for _ in 0..150 {
        let (_, p) = send(s.dev(Method::GET, "/v1/rooms/crash/participants")).await;
        joined = p["data"].as_array().map_or(0, Vec::len);
        if joined == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(joined, 2, "the simulated participants did not join");
    // Long enough for heartbeats after the joins.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let killed_at = Utc::now();
    s.kill_9();
    let _ = peers.kill();
    let _ = peers.wait();

    s.start_again(&["--dev"]);
    // Silent for 15 s, swept every 5 s: closed within about 20 s of the kill.
    let mut rows = Vec::new();
    for _ in 0..200 {
        let (_, v) = send(
            s.dev(Method::GET, "/v1/usage/sessions")
                .query(&[("room", "crash")]),
        )
        .await;
        rows = v["data"].as_array().unwrap().clone();
        if rows.len() == 2 && rows.iter().all(|r| !r["left_at"].is_null()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        Utc::now() - killed_at < chrono::Duration::seconds(35),
        "the sessions were not closed in time: {rows:?}"
    );
    let mut billed = 0;
    for r in &rows {
        assert_eq!(r["leave_reason"], "node_lost", "{r}");
        let left: DateTime<Utc> = r["left_at"].as_str().unwrap().parse().unwrap();
        let joined: DateTime<Utc> = r["joined_at"].as_str().unwrap().parse().unwrap();
        // At the last heartbeat: before the kill, and at most one interval (5 s) before it.
        assert!(left <= killed_at, "{left} after the kill at {killed_at}");
        assert!(
            killed_at - left <= chrono::Duration::milliseconds(6_000),
            "{left} vs {killed_at}"
        );
        assert_eq!(
            r["billed_us"].as_i64().unwrap(),
            (left - joined).num_microseconds().unwrap()
        );
        billed += r["billed_us"].as_i64().unwrap();
    }
    let report = usage(&s).await;
    assert_eq!(report["open_sessions"], 0);
    assert_eq!(total(&report, "participant_minutes_video"), billed);
    // The closes are events, so webhooks and functions hear of them too.
    let lost = s
        .events()
        .await
        .into_iter()
        .filter(|e| {
            matches!(
                e.payload,
                EventPayload::ParticipantLeft {
                    reason: LeaveReason::NodeLost,
                    ..
                }
            )
        })
        .count();
    assert_eq!(lost, 2);
}

/// A path, its query, and the error code it must get.
type Refusal = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_queries_refuse_garbage_with_a_reason() {
    let s = Server::start(Backend::Sqlite).await;
    let cases: [Refusal; 11] = [
        ("/v1/usage", &[("from", "yesterday")], "invalid_time"),
        (
            "/v1/usage",
            &[("from", "2026-11-01T10:30:00Z")],
            "invalid_time",
        ),
        ("/v1/usage", &[("to", "2026-13-01")], "invalid_time"),
        (
            "/v1/usage",
            &[("from", "2026-11-02"), ("to", "2026-11-01")],
            "invalid_request",
        ),
        ("/v1/usage", &[("meter", "minutes")], "invalid_meter"),
        ("/v1/usage", &[("granularity", "week")], "invalid_request"),
        (
            "/v1/usage",
            &[
                ("from", "1970-01-01"),
                ("to", "2026-01-01"),
                ("granularity", "hour"),
            ],
            "invalid_request",
        ),
        (
            "/v1/usage/sessions",
            &[("cursor", "nope")],
            "invalid_cursor",
        ),
        (
            "/v1/billing/preview",
            &[("period", "2026-13")],
            "invalid_period",
        ),
        ("/v1/billing/stripe", &[("limit", "0")], "invalid_request"),
        ("/v1/billing/stripe", &[("page", "2")], "invalid_request"),
    ];
    for (path, query, code) in cases {
        let msg = expect_error(
            s.dev(Method::GET, path).query(query),
            StatusCode::BAD_REQUEST,
            code,
        )
        .await;
        assert!(!msg.is_empty(), "{path} {query:?}");
    }
    expect_error(
        s.dev(Method::GET, "/v1/billing/preview")
            .query(&[("period", "2999-01")]),
        StatusCode::BAD_REQUEST,
        "invalid_period",
    )
    .await;
    expect_error(
        s.request(Method::GET, "/v1/usage"),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    // Without [stripe], a project has no customer and nothing was reported.
    let (st, stripe) = send(s.dev(Method::GET, "/v1/billing/stripe")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        stripe,
        serde_json::json!({"customer_id": null, "subscription_id": null, "suspension": null, "reports": []})
    );
    // A fresh project has used nothing, and says so.
    let report = usage(&s).await;
    assert_eq!(report["meters"].as_array().unwrap().len(), 5);
    assert!(report["meters"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["total"] == 0));
    let (_, one) = send(
        s.dev(Method::GET, "/v1/usage")
            .query(&[("meter", "function_invocations")]),
    )
    .await;
    assert_eq!(one["meters"].as_array().unwrap().len(), 1);
    assert_eq!(one["meters"][0]["unit"], "count");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_come_from_the_config_file_and_bad_ones_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        r#"
[billing]
default_plan = "team"
[[billing.plans]]
name = "team"
minimum_cents = "1500"
prices.participant_minutes_video = { allowance = 10000, unit_price_cents = "0.4" }
prices.function_invocations = { allowance = 1000000, unit_price_cents = "0.0002" }
"#,
    )
    .unwrap();
    let s = Server::start_with(
        Backend::Sqlite,
        &["--dev", "--config", good.to_str().unwrap()],
    )
    .await;
    let (st, preview) = send(s.dev(Method::GET, "/v1/billing/preview")).await;
    assert_eq!(st, StatusCode::OK, "{preview}");
    assert_eq!(preview["invoice"]["plan"], "team");
    assert_eq!(preview["invoice"]["minimum_cents"], "1500");
    assert_eq!(preview["invoice"]["total_cents"], 1500);
    assert_eq!(preview["running"], true);
    let video = preview["invoice"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["meter"] == "participant_minutes_video")
        .unwrap()
        .clone();
    assert_eq!(
        (
            video["allowance"].as_i64(),
            video["unit_price_cents"].as_str()
        ),
        (Some(10000), Some("0.4"))
    );

    for (name, text, says) in [
        ("decimals.toml", "[[billing.plans]]\nname = \"default\"\nprices.participant_minutes_audio = { unit_price_cents = \"0.00001\" }\n", "at most 4 decimal places"),
        ("meter.toml", "[[billing.plans]]\nname = \"default\"\nprices.minutes = { unit_price_cents = \"1\" }\n", "unknown variant"),
        ("default.toml", "[billing]\ndefault_plan = \"gold\"\n", "default plan `gold` is not configured"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = s
            .command()
            .args(["serve", "--http-addr", "127.0.0.1:0", "--config", path.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name} started");
        assert!(stderr.contains(says), "{name}: {stderr}");
    }
}

/// Issue 26: the dashboard's cost estimator, given the pattern of a past
/// month's calls (recorded in the log with that month's times and metered
/// by the server's own meter), comes to exactly that month's invoice, and
/// names what is wrong with a form it cannot use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_estimate_of_last_months_calls_is_last_months_invoice() {
    use chrono::Duration as TimeDelta;
    use common::dashboard::{Session, DEV_EMAIL, DEV_PASSWORD};
    use switchboard_core::event::{ParticipantRef, RoomFinishReason, RoomRef, TrackRef};
    use switchboard_core::event::{TrackKind, TrackSource};
    use switchboard_core::recording::RecordingMode;
    use switchboard_core::usage::Period;
    use switchboard_core::{
        Event, Identity, ParticipantSid, ProjectId, RecordingId, RoomName, RoomSid, TrackSid,
    };

    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.toml");
    std::fs::write(
        &plan,
        r#"
[[billing.plans]]
name = "default"
minimum_cents = "100"
prices.participant_minutes_video = { allowance = 100, unit_price_cents = "0.4" }
prices.participant_minutes_audio = { allowance = 100, unit_price_cents = "0.1234" }
prices.recording_minutes = { unit_price_cents = "1.5" }
"#,
    )
    .unwrap();
    let s = Server::start_with(
        Backend::Sqlite,
        &["--dev", "--config", plan.to_str().unwrap()],
    )
    .await;
    let (_, project) = send(s.dev(Method::GET, "/v1/project")).await;
    let project_id = project["id"].as_str().unwrap().to_owned();
    let project: ProjectId = project_id.parse().unwrap();

    // Last month: two 10-minute calls of three people a day, the morning one
    // with video and recorded, the afternoon one audio only.
    let month = Period::containing(Period::containing(Utc::now()).start() - TimeDelta::days(1));
    let days = (month.end() - month.start()).num_days();
    let store = s.store().await;
    let events = store.events();
    let record = |at: DateTime<Utc>, payload| events.record(Event::new(project, at, payload));
    for day in 0..days {
        for (hour, video) in [(9, true), (15, false)] {
            let start = month.start() + TimeDelta::days(day) + TimeDelta::hours(hour);
            let end = start + TimeDelta::minutes(10);
            let room = RoomRef {
                sid: RoomSid::new(),
                name: RoomName::new(format!("call-{day}-{hour}")).unwrap(),
            };
            // One identity a spreadsheet would run, with a comma and quotes.
            let people: Vec<ParticipantRef> = [r#"=HYPERLINK("x"), p0"#, "p1", "p2"]
                .into_iter()
                .map(|identity| ParticipantRef {
                    sid: ParticipantSid::new(),
                    identity: Identity::new(identity).unwrap(),
                })
                .collect();
            record(start, EventPayload::RoomStarted { room: room.clone() })
                .await
                .unwrap();
            for p in &people {
                let joined = EventPayload::ParticipantJoined {
                    room: room.clone(),
                    participant: p.clone(),
                    node: None,
                };
                record(start, joined).await.unwrap();
            }
            if video {
                let track = TrackRef {
                    sid: TrackSid::new(),
                    kind: TrackKind::Video,
                    source: TrackSource::Camera,
                    mime_type: None,
                };
                let published = EventPayload::TrackPublished {
                    room: room.clone(),
                    participant: people[0].clone(),
                    track,
                };
                record(start, published).await.unwrap();
            }
            for p in &people {
                let left = EventPayload::ParticipantLeft {
                    room: room.clone(),
                    participant: p.clone(),
                    reason: LeaveReason::ClientLeft,
                };
                record(end, left).await.unwrap();
            }
            if video {
                let recorded = EventPayload::RecordingFinished {
                    room: room.clone(),
                    recording_id: RecordingId::new(),
                    mode: RecordingMode::Composite,
                    location: String::new(),
                    duration_ms: 600_000,
                    files: Vec::new(),
                };
                record(end, recorded).await.unwrap();
            }
            let finished = EventPayload::RoomFinished {
                room,
                reason: RoomFinishReason::EmptyTimeout,
            };
            record(end, finished).await.unwrap();
        }
    }

    // The server's meter reads those events like any others.
    let minutes = |n: i64| n * 60_000_000;
    let expected = [
        ("participant_minutes_video", minutes(days * 3 * 10)),
        ("participant_minutes_audio", minutes(days * 3 * 10)),
        ("recording_minutes", minutes(days * 10)),
    ];
    let path = format!("/v1/billing/preview?period={month}");
    let mut invoice = Value::Null;
    for _ in 0..300 {
        let (st, preview) = send(s.dev(Method::GET, &path)).await;
        assert_eq!(st, StatusCode::OK, "{preview}");
        invoice = preview["invoice"].clone();
        let used = |meter: &str| {
            invoice["lines"]
                .as_array()
                .unwrap()
                .iter()
                .find(|l| l["meter"] == meter)
                .and_then(|l| l["usage"].as_i64())
        };
        if expected.iter().all(|(m, q)| used(m) == Some(*q)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let total = invoice["total_cents"].as_i64().unwrap();
    assert!(
        total > 100,
        "above the minimum, so every line counts: {invoice}"
    );

    let mut session = Session::new(&s);
    session.sign_in(DEV_EMAIL, DEV_PASSWORD).await;
    let estimate = format!(
        "/dashboard/projects/{project_id}/usage/estimate?calls_per_day=2&days={days}\
         &participants=3&minutes=10&video_percent=50&recorded_percent=50"
    );
    let (st, page) = session.get(&estimate).await;
    assert_eq!(st, StatusCode::OK, "{page}");
    let shown = format!(
        r#"<span id="estimate-total">{}.{:02} USD</span>"#,
        total / 100,
        total % 100
    );
    assert!(
        page.contains(&shown),
        "{shown} is last month's invoice: {page}"
    );
    // Three people make six subscriptions: 2 calls a day of audio, one of video.
    let track_minutes = days * 3 * 6 * 10;
    assert!(
        page.contains(&format!("<td>{track_minutes}</td>")),
        "{track_minutes} subscribed track-minutes: {page}"
    );

    // The same month as files: a row per day and meter, and per session.
    let base = format!("/dashboard/projects/{project_id}/usage");
    let read = |text: String| -> Vec<Vec<String>> {
        csv::Reader::from_reader(text.as_bytes())
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect()
    };
    let (st, text) = session
        .get(&format!("{base}/days.csv?period={month}"))
        .await;
    assert_eq!(st, StatusCode::OK, "{text}");
    let days_rows = read(text);
    assert_eq!(days_rows.len() as i64, days * 3, "{days_rows:?}");
    let video: f64 = days_rows
        .iter()
        .filter(|r| r[1] == "participant_minutes_video")
        .map(|r| r[4].parse::<f64>().unwrap())
        .sum();
    assert_eq!(
        video as i64,
        days * 3 * 10,
        "video minutes, in the billed unit"
    );
    let (st, text) = session
        .get(&format!("{base}/sessions.csv?period={month}"))
        .await;
    assert_eq!(st, StatusCode::OK, "{text}");
    let sessions = read(text);
    assert_eq!(sessions.len() as i64, days * 2 * 3);
    assert!(
        sessions.iter().all(|r| r[9] == "600000000"),
        "each billed 10 minutes"
    );
    assert!(
        sessions.iter().any(|r| r[3] == r#"'=HYPERLINK("x"), p0"#),
        "a formula is written as text, its comma and quotes kept"
    );
    let (st, _) = session
        .get(&format!("{base}/sessions.csv?period=someday"))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    let (st, page) = session
        .get(&format!(
            "/dashboard/projects/{project_id}/usage/estimate?participants=lots&days=40"
        ))
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(page.contains("estimate-errors"), "{page}");
    assert!(
        page.contains("People in a call: write a whole number"),
        "{page}"
    );
    assert!(
        page.contains("days must be from 1 to 31; it is 40"),
        "{page}"
    );
    assert!(
        !page.contains("estimate-total"),
        "no figure from a bad form"
    );
}

/// Issue 26: a real call's connection is recorded every few seconds while it
/// lasts: the API returns each session's measures (the publisher's sent
/// bitrate, the subscriber's received one) and the session's page in the
/// dashboard charts them; garbage and other projects' sessions are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_connection_is_measured_over_time_and_charted() {
    use common::dashboard::{Session, DEV_EMAIL, DEV_PASSWORD};

    let _one = ONE_AT_A_TIME.lock().await;
    let s = Server::start(Backend::Sqlite).await;
    // 12 s: the observer measures every 3 s, and the first measure of a
    // participant has nothing to compare with.
    loadtest(&s, "measured", 1, 1, "300k", 12).await;
    let (_, sessions) = send(s.dev(Method::GET, "/v1/usage/sessions?room=measured")).await;
    let sessions = sessions["data"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    let mut session = Session::new(&s);
    session.sign_in(DEV_EMAIL, DEV_PASSWORD).await;
    let (_, project) = send(s.dev(Method::GET, "/v1/project")).await;
    let project = project["id"].as_str().unwrap().to_owned();
    for view in &sessions {
        let sid = view["id"].as_str().unwrap();
        let (st, quality) =
            send(s.dev(Method::GET, &format!("/v1/usage/sessions/{sid}/quality"))).await;
        assert_eq!(st, StatusCode::OK, "{quality}");
        assert_eq!(quality["room_sid"], view["room_sid"]);
        let samples = quality["samples"].as_array().unwrap();
        assert!(samples.len() >= 2, "{quality}");
        let publisher = view["identity"].as_str().unwrap().contains("-pub-");
        let (field, floor) = if publisher {
            ("publish_bps", 100_000)
        } else {
            ("subscribe_bps", 100_000)
        };
        assert!(
            samples.iter().any(|x| x[field].as_u64().unwrap() >= floor),
            "{field} of a 300 kbit/s call: {quality}"
        );
        assert!(
            samples
                .iter()
                .all(|x| x["quality"] == "excellent" || x["quality"] == "good"),
            "{quality}"
        );

        let (st, page) = session
            .get(&format!("/dashboard/projects/{project}/sessions/{sid}"))
            .await;
        assert_eq!(st, StatusCode::OK, "{page}");
        for chart in ["id=\"bitrate\"", "id=\"loss\"", "id=\"rtt\""] {
            assert!(page.contains(chart), "{chart}: {page}");
        }
        // The chart's data is the API's, in kbit/s.
        let line = if publisher {
            "class=\"sent\""
        } else {
            "class=\"received\""
        };
        let values = page
            .split(line)
            .nth(1)
            .and_then(|rest| rest.split("data-values=\"").nth(1))
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no {line} line: {page}"));
        let kbps: Vec<f64> = values.split(' ').map(|v| v.parse().unwrap()).collect();
        assert_eq!(kbps.len(), samples.len());
        assert!(kbps.iter().any(|v| *v >= 100.0), "{values}");
    }

    let (st, _) = send(s.dev(Method::GET, "/v1/usage/sessions/nonsense/quality")).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let unknown = "pa_01JDW3Q0AAAAAAAAAAAAAAAAAA";
    let (st, body) = send(s.dev(
        Method::GET,
        &format!("/v1/usage/sessions/{unknown}/quality"),
    ))
    .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("session_not_found"))
    );
    // Another project's key cannot read this project's sessions.
    let (_, _, secret) = s.create_project("elsewhere");
    let sid = sessions[0]["id"].as_str().unwrap();
    let (st, _) = send(s.bearer(
        &secret,
        Method::GET,
        &format!("/v1/usage/sessions/{sid}/quality"),
    ))
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}
