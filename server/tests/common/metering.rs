//! Metering helpers shared by the usage and Stripe tests: the load tester
//! run against the dev project, and waits on the usage API.

use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{send, Server};

/// `switchboard loadtest` against `s` with the dev key: `publishers` and
/// `subscribers` in `room`, each publisher sending `video` VP8 (`0` for none)
/// and Opus for `secs` seconds.
pub fn loadtest_command(
    s: &Server,
    room: &str,
    publishers: u32,
    subscribers: u32,
    video: &str,
    secs: u32,
) -> std::process::Command {
    let mut cmd = s.command();
    let (publishers, subscribers, secs) = (
        publishers.to_string(),
        subscribers.to_string(),
        format!("{secs}s"),
    );
    let auth = ["--api-key", "devkey", "--api-secret", "secret"];
    cmd.args(["loadtest", "--url", &s.base])
        .args(auth)
        .args(["--room", room, "--publishers", &publishers])
        .args(["--subscribers", &subscribers, "--video-bitrate", video])
        .args(["--audio", "--duration", &secs]);
    cmd
}

/// Runs a load test to its end; panics if it fails.
pub async fn loadtest(
    s: &Server,
    room: &str,
    publishers: u32,
    subscribers: u32,
    video: &str,
    secs: u32,
) {
    let mut cmd = loadtest_command(s, room, publishers, subscribers, video, secs);
    cmd.args(["--json", "-"]);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run loadtest"))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "loadtest failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.log()
    );
}

/// A window of whole hours around now, wide enough for the whole test.
pub fn window() -> (String, String) {
    let hour = Utc::now()
        .duration_trunc(chrono::Duration::hours(1))
        .unwrap();
    let fmt = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    (
        fmt(hour - chrono::Duration::hours(2)),
        fmt(hour + chrono::Duration::hours(3)),
    )
}

pub async fn usage(s: &Server) -> Value {
    let (from, to) = window();
    let (st, v) = send(s.dev(Method::GET, "/v1/usage").query(&[
        ("from", from.as_str()),
        ("to", to.as_str()),
        ("granularity", "hour"),
    ]))
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    v
}

pub fn total(report: &Value, meter: &str) -> i64 {
    report["meters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["meter"] == meter)
        .map(|m| m["total"].as_i64().unwrap())
        .unwrap_or_else(|| panic!("no {meter} in {report}"))
}

/// Waits until no session is open and the meter has read the whole log.
pub async fn settled(s: &Server, want_sessions: usize) -> Value {
    for _ in 0..100 {
        let report = usage(s).await;
        let (_, sessions) = send(
            s.dev(Method::GET, "/v1/usage/sessions")
                .query(&[("limit", "100")]),
        )
        .await;
        let closed = sessions["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| !x["left_at"].is_null())
            .count();
        if report["open_sessions"] == 0 && closed == want_sessions {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("sessions did not settle: {}", usage(s).await);
}
