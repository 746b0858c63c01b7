//! Recordings end to end: aiortc publishes known media (a VP8 or H.264 test
//! pattern and an Opus tone, `tests/peers/publish.py`) into a room, the server records
//! it, and ffprobe and ffmpeg (Debian `ffmpeg`) check the files it hands back.
//! Runs in network namespaces with only loopback.
//!
//! One module per job: [`tracks`] (files per track, decoding and lining
//! up), [`api`] (REST control and what it refuses), [`failures`] (a killed
//! server, a full disk, a clean stop), [`composite`] (the room mixed into one
//! MP4), [`storage`] (an S3-compatible bucket). This file holds what they share.

mod api;
#[path = "../common/mod.rs"]
mod common;
mod composite;
mod failures;
mod storage;
mod tracks;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::browser::{isolated, isolated_in};
use common::{expect_error, send, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard_recording::testing::S3Server;
use switchboard_store::Backend;

/// An access token for `identity` in `room`.
async fn token(s: &Server, room: &str, identity: &str) -> String {
    let (st, t) = send(
        s.dev(Method::POST, "/v1/tokens")
            .json(&json!({ "room": room, "identity": identity })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    t["token"].as_str().unwrap().to_owned()
}

/// Starts the aiortc publisher as `identity` for `seconds`, with `extra` arguments.
async fn spawn_publisher(
    s: &Server,
    room: &str,
    identity: &str,
    seconds: f64,
    extra: &[String],
) -> tokio::task::JoinHandle<std::io::Result<std::process::Output>> {
    let token = token(s, room, identity).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/publish.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .args([&s.base, room, &token, &seconds.to_string()])
        .args(extra);
    tokio::task::spawn_blocking(move || cmd.output())
}

/// The publisher's JSON report, once it is done; panics if it failed.
async fn report(
    publisher: tokio::task::JoinHandle<std::io::Result<std::process::Output>>,
) -> Value {
    let out = publisher
        .await
        .unwrap()
        .expect("python3 with aiortc and numpy (tests/peers/requirements.txt) must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "publisher failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("one JSON line")
}

/// Creates room `room` with `record: true`, publishes into it as `identity`
/// for `seconds` with video in `codec`, and waits for the recording to end
/// once the room closes. Returns the publisher's report, the recording's id
/// and the recording.
async fn record_room(
    s: &Server,
    room: &str,
    identity: &str,
    seconds: f64,
    codec: &str,
) -> (Value, String, Value) {
    let (st, created) = send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": room, "record": true, "empty_timeout_s": 1 })),
    )
    .await;
    assert_eq!(
        (st, &created["record"]),
        (StatusCode::CREATED, &json!(true))
    );
    let (_, list) = send(s.dev(Method::GET, &format!("/v1/recordings?room={room}"))).await;
    assert_eq!(list["data"], json!([]), "nothing until the room goes live");
    let extra = ["--codec".to_owned(), codec.to_owned()];
    let stats = report(spawn_publisher(s, room, identity, seconds, &extra).await).await;
    eprintln!("published: {stats}");
    let (_, list) = send(s.dev(Method::GET, &format!("/v1/recordings?room={room}"))).await;
    let id = list["data"][0]["id"]
        .as_str()
        .expect("a recording")
        .to_owned();
    // The publisher left and the room closed a second later: the recording ends with it.
    let rec = recording_when(s, &id, "the recording to end", |r| {
        r["status"] == "finished" || r["status"] == "failed"
    })
    .await;
    assert_eq!(rec["status"], "finished", "{rec}");
    (stats, id, rec)
}

/// Polls the recording until `done` holds (45 s at most).
async fn recording_when(s: &Server, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let (st, rec) = send(s.dev(Method::GET, &format!("/v1/recordings/{id}"))).await;
        assert_eq!(st, StatusCode::OK, "{rec}");
        if done(&rec) {
            return rec;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {rec}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Downloads a recording's file with the dev key.
async fn download(s: &Server, id: &str, name: &str) -> Vec<u8> {
    let res = s
        .dev(Method::GET, &format!("/v1/recordings/{id}/files/{name}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{name}");
    res.bytes().await.unwrap().to_vec()
}

/// ffprobe's view of a file: its format and streams.
fn ffprobe(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_format",
            "-show_streams",
            "-of",
            "json",
        ])
        .arg(path)
        .output()
        .expect("ffprobe (Debian package ffmpeg) must be installed");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What ffmpeg says while decoding the whole file (nothing, for a good file).
fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg must be installed");
    let mut errors = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        errors.push_str(&format!(" (exit {})", out.status));
    }
    errors
}

/// The seconds ffprobe gives a file.
fn duration(probe: &Value) -> f64 {
    probe["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no duration: {probe}"))
}

/// How long the publisher sent `kind` for: first frame to the end of the last.
fn published(stats: &Value, kind: &str, frame: f64) -> f64 {
    stats[kind]["last"].as_f64().unwrap() - stats[kind]["first"].as_f64().unwrap() + frame
}

/// Waits (45 s at most) for the recording of `room` to be active, over
/// `min_ms` long, with progress saved for both its files; returns its id.
async fn recording_under_way(s: &Server, room: &str, min_ms: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let (_, list) = send(s.dev(Method::GET, &format!("/v1/recordings?room={room}"))).await;
        let rec = &list["data"][0];
        let files = rec["files"].as_array().map_or(0, |f| {
            f.iter()
                .filter(|f| {
                    f["size_bytes"].as_u64() > Some(10_000)
                        || f["track"]["kind"] == "audio" && f["size_bytes"].as_u64() > Some(1_000)
                })
                .count()
        });
        if rec["status"] == "active" && files == 2 && rec["duration_ms"].as_u64() > Some(min_ms) {
            return rec["id"].as_str().unwrap().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "the recording never got going: {list}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (10 s at most) for recording `id`'s saved length to differ from `saved`.
async fn eventually_changes(s: &Server, id: &str, saved: Option<u64>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, rec) = send(s.dev(Method::GET, &format!("/v1/recordings/{id}"))).await;
        if rec["duration_ms"].as_u64() != saved {
            return;
        }
        assert!(Instant::now() < deadline, "no progress saved: {rec}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The video frames ffprobe reads from `bytes` (a file cut off anywhere),
/// checking they are VP8.
fn vp8_frames(bytes: &[u8]) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.webm");
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "json",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let probe: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(probe["streams"][0]["codec_name"], "vp8", "{probe}");
    probe["streams"][0]["nb_read_frames"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn file<'a>(rec: &'a Value, kind: &str) -> &'a Value {
    rec["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["track"]["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} file in {rec}"))
}

/// Downloads track file `f` of recording `id` into `dir` and checks it with
/// ffprobe and ffmpeg: one stream of `codec` (video at the publisher's
/// 640 x 480), as long as the publisher sent it (within 0.5 s) and as the
/// recording lists it, decoding without errors.
async fn check_track_file(
    s: &Server,
    id: &str,
    f: &Value,
    stats: &Value,
    dir: &Path,
    codec: &str,
    content_type: &str,
) {
    let kind = f["track"]["kind"].as_str().unwrap();
    assert_eq!(f["content_type"], content_type, "{f}");
    let name = f["name"].as_str().unwrap();
    let bytes = download(s, id, name).await;
    assert_eq!(bytes.len() as u64, f["size_bytes"].as_u64().unwrap());
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    let probe = ffprobe(&path);
    let streams = probe["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "{probe}");
    assert_eq!(streams[0]["codec_name"], codec, "{probe}");
    let frame = if kind == "video" {
        assert_eq!(
            (streams[0]["width"].as_u64(), streams[0]["height"].as_u64()),
            (Some(640), Some(480))
        );
        1.0 / 30.0
    } else {
        0.02
    };
    let (got, sent) = (duration(&probe), published(stats, kind, frame));
    eprintln!(
        "{kind}: file {got:.3} s, sent {sent:.3} s, {} bytes",
        bytes.len()
    );
    assert!(
        (got - sent).abs() <= 0.5,
        "{kind}: the file lasts {got:.3} s, the publisher sent {sent:.3} s"
    );
    let listed = f["duration_ms"].as_f64().unwrap() / 1000.0;
    assert!(
        (listed - got).abs() <= 0.1,
        "{kind}: listed {listed} s, file {got} s"
    );
    let errors = decode_errors(&path);
    assert!(
        errors.is_empty(),
        "{kind} does not decode cleanly: {errors}"
    );
}
