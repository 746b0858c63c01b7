//! Recordings end to end: aiortc publishes known media (a VP8 or H.264 test
//! pattern and an Opus tone, `tests/peers/publish.py`) into a room, the server records
//! it in `tracks` mode, and ffprobe and ffmpeg (Debian `ffmpeg`) check the
//! files it hands back. Runs in network namespaces with only loopback.

mod common;

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

#[test]
fn an_h264_track_is_recorded_to_matroska_as_received() {
    isolated(
        "an_h264_track_is_recorded_to_matroska_as_received",
        || async {
            let s = Server::start(Backend::Sqlite).await;
            let (stats, id, rec) = record_room(&s, "h264", "hal", 5.0, "H264").await;
            let dir = tempfile::tempdir().unwrap();
            let video = file(&rec, "video");
            assert!(video["name"].as_str().unwrap().ends_with(".mkv"), "{video}");
            check_track_file(
                &s,
                &id,
                video,
                &stats,
                dir.path(),
                "h264",
                "video/x-matroska",
            )
            .await;
            let audio = file(&rec, "audio");
            check_track_file(&s, &id, audio, &stats, dir.path(), "opus", "audio/webm").await;
            let manifest: Value =
                serde_json::from_slice(&download(&s, &id, "manifest.json").await).unwrap();
            assert_eq!(manifest["files"].as_array().unwrap().len(), 2, "{manifest}");
            assert_eq!(manifest["skipped"], json!([]), "{manifest}");
        },
    );
}

#[test]
fn a_room_created_with_record_is_recorded_to_files_that_decode_and_line_up() {
    isolated(
        "a_room_created_with_record_is_recorded_to_files_that_decode_and_line_up",
        || async {
            let s = Server::start(Backend::Sqlite).await;
            let (stats, id, rec) = record_room(&s, "recorded", "ann", 6.0, "VP8").await;
            assert_eq!(rec["mode"], "tracks");
            assert_eq!(rec["files"].as_array().unwrap().len(), 3, "{rec}");

            let dir = tempfile::tempdir().unwrap();
            // (start, end) of each file on the recording's timeline.
            let mut spans = Vec::new();
            for (kind, codec, content_type) in [
                ("video", "vp8", "video/webm"),
                ("audio", "opus", "audio/webm"),
            ] {
                let f = file(&rec, kind);
                assert_eq!(f["participant"]["identity"], "ann");
                check_track_file(&s, &id, f, &stats, dir.path(), codec, content_type).await;
                let start = f["start_offset_ms"].as_f64().unwrap() / 1000.0;
                spans.push((start, start + f["duration_ms"].as_f64().unwrap() / 1000.0));
            }
            // The offsets line the files up as the publisher sent them: both
            // end where the publisher stopped. A video file may start a little
            // later than sent, at the first keyframe after its subscription
            // (the duration check above bounds that).
            let gap = |at: &str| {
                stats["video"][at].as_f64().unwrap() - stats["audio"][at].as_f64().unwrap()
            };
            let (sent_start, sent_end) = (gap("first"), gap("last"));
            let recorded_end = spans[0].1 - spans[1].1;
            assert!(
                (sent_end - recorded_end).abs() <= 0.3,
                "video ends {recorded_end:.3} s after audio in the recording, {sent_end:.3} s as sent"
            );
            let recorded_start = spans[0].0 - spans[1].0;
            assert!(
                (sent_start - recorded_start).abs() <= 0.5,
                "video starts {recorded_start:.3} s after audio in the recording, {sent_start:.3} s as sent"
            );

            let manifest: Value =
                serde_json::from_slice(&download(&s, &id, "manifest.json").await).unwrap();
            assert_eq!(manifest["recording_id"], id.as_str());
            assert_eq!(manifest["files"].as_array().unwrap().len(), 2, "{manifest}");
            assert_eq!(manifest["room"]["name"], "recorded");

            // Range requests.
            let whole = download(&s, &id, file(&rec, "video")["name"].as_str().unwrap()).await;
            let name = file(&rec, "video")["name"].as_str().unwrap();
            let res = s
                .dev(Method::GET, &format!("/v1/recordings/{id}/files/{name}"))
                .header("Range", "bytes=100-199")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
            assert_eq!(res.bytes().await.unwrap().as_ref(), &whole[100..200]);
            let res = s
                .dev(Method::GET, &format!("/v1/recordings/{id}/files/{name}"))
                .header("Range", format!("bytes={}-", whole.len() + 10))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);

            // A signed URL works without the API key, and only as signed, until it expires.
            let (st, signed) = send(
                s.dev(
                    Method::POST,
                    &format!("/v1/recordings/{id}/files/{name}/url"),
                )
                .json(&json!({ "expires_in_s": 2 })),
            )
            .await;
            assert_eq!(st, StatusCode::OK, "{signed}");
            let url = format!("{}{}", s.base, signed["url"].as_str().unwrap());
            let res = s.http.get(&url).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.bytes().await.unwrap().as_ref(), whole.as_slice());
            for forged in [
                url.replace("signature=", "signature=00"),
                url.replace(name, "manifest.json"),
                url.replace("expires=", "expires=9"),
                url.split('?').next().unwrap().to_owned(),
            ] {
                let res = s.http.get(&forged).send().await.unwrap();
                assert_eq!(res.status(), StatusCode::FORBIDDEN, "{forged}");
            }
            tokio::time::sleep(Duration::from_millis(3100)).await;
            let res = s.http.get(&url).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "expired");

            // The events carry the files.
            let (_, events) = send(s.dev(Method::GET, "/v1/events?type=recording.finished")).await;
            let data = &events["data"][0]["data"];
            assert_eq!(data["recording_id"], id.as_str(), "{events}");
            assert_eq!(data["files"].as_array().unwrap().len(), 3);
            assert!(data["duration_ms"].as_u64().unwrap() >= 5_500, "{data}");
            let (_, started) = send(s.dev(Method::GET, "/v1/events?type=recording.started")).await;
            assert_eq!(started["data"][0]["data"]["recording_id"], id.as_str());

            // Its length is metered as recording minutes, to the microsecond.
            let want = data["duration_ms"].as_i64().unwrap() * 1000;
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let (_, usage) =
                    send(s.dev(Method::GET, "/v1/usage?meter=recording_minutes")).await;
                let got = usage["meters"][0]["total"].as_i64().unwrap_or(0);
                if got == want {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "recording_minutes: {usage}, want {want} µs"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }

            // Deleting removes the files.
            let (st, _) = send(s.dev(Method::DELETE, &format!("/v1/recordings/{id}"))).await;
            assert_eq!(st, StatusCode::NO_CONTENT);
            expect_error(
                s.dev(Method::GET, &format!("/v1/recordings/{id}")),
                StatusCode::NOT_FOUND,
                "recording_not_found",
            )
            .await;
            let res = s.http.get(&url).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::FORBIDDEN);
            let left: Vec<_> = std::fs::read_dir(s.data_dir.path().join("recordings"))
                .unwrap()
                .flat_map(|p| std::fs::read_dir(p.unwrap().path()).unwrap())
                .collect();
            assert!(left.is_empty(), "files left behind: {left:?}");
        },
    );
}

#[test]
fn recordings_start_and_stop_over_rest_and_refuse_garbage() {
    isolated(
        "recordings_start_and_stop_over_rest_and_refuse_garbage",
        || async {
            let s = Server::start(Backend::Sqlite).await;
            send(
                s.dev(Method::POST, "/v1/rooms")
                    .json(&json!({ "name": "live" })),
            )
            .await;
            let post = |body: Value| s.dev(Method::POST, "/v1/rooms/live/recordings").json(&body);
            let (st, _) = send(
                s.dev(Method::POST, "/v1/rooms/live/recordings")
                    .header("Content-Type", "application/json")
                    .body("{\"mode\": "),
            )
            .await;
            assert_eq!(st, StatusCode::BAD_REQUEST);
            for (body, code) in [
                (json!({ "mode": "bogus" }), "invalid_request"),
                (
                    json!({ "mode": "tracks", "tracks": [] }),
                    "invalid_recording",
                ),
                (
                    json!({ "mode": "tracks", "identities": [] }),
                    "invalid_recording",
                ),
                (
                    json!({ "mode": "tracks", "tracks": ["tr_nope"] }),
                    "invalid_request",
                ),
                (
                    json!({ "mode": "tracks", "colour": "blue" }),
                    "invalid_request",
                ),
                (
                    json!({ "mode": "composite", "audio_only": "yes" }),
                    "invalid_request",
                ),
                (json!([1, 2]), "invalid_json"),
            ] {
                expect_error(post(body), StatusCode::BAD_REQUEST, code).await;
            }
            expect_error(
                s.dev(Method::POST, "/v1/rooms/nowhere/recordings")
                    .json(&json!({ "mode": "tracks" })),
                StatusCode::NOT_FOUND,
                "room_not_found",
            )
            .await;
            for (path, status, code) in [
                (
                    "/v1/recordings/garbage",
                    StatusCode::BAD_REQUEST,
                    "invalid_recording_id",
                ),
                (
                    "/v1/recordings/rec_01JD0000000000000000000000",
                    StatusCode::NOT_FOUND,
                    "recording_not_found",
                ),
                (
                    "/v1/recordings?cursor=zzz",
                    StatusCode::BAD_REQUEST,
                    "invalid_cursor",
                ),
                (
                    "/v1/recordings?limit=0",
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                ),
                (
                    "/v1/recordings?room=bell%07",
                    StatusCode::BAD_REQUEST,
                    "invalid_room_name",
                ),
                (
                    "/v1/recordings?sort=asc",
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                ),
            ] {
                expect_error(s.dev(Method::GET, path), status, code).await;
            }
            let (st, _) = send(s.request(Method::GET, "/v1/recordings")).await;
            assert_eq!(st, StatusCode::UNAUTHORIZED);

            // Asked for before anyone joined, stopped before any track: it fails, saying so.
            let (st, early) = send(post(json!({ "mode": "tracks" }))).await;
            assert_eq!(
                (st, &early["status"]),
                (StatusCode::CREATED, &json!("starting")),
                "{early}"
            );
            let early_id = early["id"].as_str().unwrap().to_owned();
            let (_, stopped) =
                send(s.dev(Method::POST, &format!("/v1/recordings/{early_id}/stop"))).await;
            assert_eq!(stopped["status"], "failed", "{stopped}");
            assert!(stopped["error"]
                .as_str()
                .unwrap()
                .contains("before any track"));

            // Audio only, started while the call runs and stopped before it ends.
            let publisher = spawn_publisher(&s, "live", "bob", 9.0, &[]).await;
            let deadline = Instant::now() + Duration::from_secs(20);
            while send(s.dev(Method::GET, "/v1/rooms/live/participants"))
                .await
                .1["data"]
                .as_array()
                .is_none_or(Vec::is_empty)
            {
                assert!(Instant::now() < deadline, "bob never joined");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (st, rec) = send(post(
                json!({ "mode": "tracks", "audio_only": true, "identities": ["bob"] }),
            ))
            .await;
            assert_eq!(st, StatusCode::CREATED, "{rec}");
            let id = rec["id"].as_str().unwrap().to_owned();
            let rec = recording_when(&s, &id, "the recording to start", |r| {
                r["status"] == "active"
            })
            .await;
            assert!(rec["started_at"].is_string());
            expect_error(
                s.dev(Method::DELETE, &format!("/v1/recordings/{id}")),
                StatusCode::CONFLICT,
                "recording_in_progress",
            )
            .await;
            expect_error(
                s.dev(Method::POST, &format!("/v1/recordings/{id}/files/x/url"))
                    .json(&json!({})),
                StatusCode::NOT_FOUND,
                "file_not_found",
            )
            .await;
            tokio::time::sleep(Duration::from_secs(3)).await;
            let (st, _) = send(s.dev(Method::POST, &format!("/v1/recordings/{id}/stop"))).await;
            assert_eq!(st, StatusCode::OK);
            let rec = recording_when(&s, &id, "the recording to finish", |r| {
                r["status"] == "finished"
            })
            .await;
            let files = rec["files"].as_array().unwrap();
            assert_eq!(files.len(), 2, "one audio track and the manifest: {rec}");
            let audio = file(&rec, "audio");
            let secs = audio["duration_ms"].as_f64().unwrap() / 1000.0;
            assert!(
                (2.5..=5.0).contains(&secs),
                "recorded {secs} s of audio in about 3 s"
            );
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("a.webm");
            std::fs::write(
                &path,
                download(&s, &id, audio["name"].as_str().unwrap()).await,
            )
            .unwrap();
            assert_eq!(ffprobe(&path)["streams"][0]["codec_name"], "opus");
            assert_eq!(decode_errors(&path), "");
            // Stopping again changes nothing.
            let (st, again) = send(s.dev(Method::POST, &format!("/v1/recordings/{id}/stop"))).await;
            assert_eq!((st, &again["status"]), (StatusCode::OK, &json!("finished")));

            for (path, status, code) in [
                (
                    format!("/v1/recordings/{id}/files/..%2Fmaster.key"),
                    StatusCode::NOT_FOUND,
                    "file_not_found",
                ),
                (
                    format!("/v1/recordings/{id}/files/nothing.webm"),
                    StatusCode::NOT_FOUND,
                    "file_not_found",
                ),
            ] {
                expect_error(s.dev(Method::GET, &path), status, code).await;
            }
            for body in [
                json!({ "expires_in_s": 0 }),
                json!({ "expires_in_s": 10_000_000 }),
            ] {
                expect_error(
                    s.dev(
                        Method::POST,
                        &format!("/v1/recordings/{id}/files/manifest.json/url"),
                    )
                    .json(&body),
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                )
                .await;
            }
            // Another project sees none of it.
            let (_, key, secret) = s.create_project("other");
            let other = |m: Method, p: &str| s.request(m, p).basic_auth(&key, Some(&secret));
            let (_, list) = send(other(Method::GET, "/v1/recordings")).await;
            assert_eq!(list["data"], json!([]));
            for (m, p) in [
                (Method::GET, format!("/v1/recordings/{id}")),
                (Method::POST, format!("/v1/recordings/{id}/stop")),
                (Method::DELETE, format!("/v1/recordings/{id}")),
                (
                    Method::GET,
                    format!("/v1/recordings/{id}/files/manifest.json"),
                ),
            ] {
                expect_error(other(m, &p), StatusCode::NOT_FOUND, "recording_not_found").await;
            }
            report(publisher).await;
        },
    );
}

#[test]
fn a_server_killed_mid_recording_leaves_its_partial_files_and_a_failed_recording() {
    isolated(
        "a_server_killed_mid_recording_leaves_its_partial_files_and_a_failed_recording",
        || async {
            // SQLite: PostgreSQL on the host's loopback is out of this namespace's reach.
            let mut s = Server::start(Backend::Sqlite).await;
            send(
                s.dev(Method::POST, "/v1/rooms")
                    .json(&json!({ "name": "doomed", "record": true })),
            )
            .await;
            // It outlives the server; its own failure is of no interest.
            let publisher = spawn_publisher(&s, "doomed", "cat", 15.0, &[]).await;
            let id = recording_under_way(&s, "doomed", 3_000).await;
            s.kill_9();
            s.start_again(&["--dev"]);
            // The restarted server finds the old node silent and fails what it was writing.
            let rec = recording_when(&s, &id, "the recording to fail", |r| {
                r["status"] == "failed"
            })
            .await;
            assert!(rec["error"].as_str().unwrap().contains("stopped"), "{rec}");
            let video = file(&rec, "video");
            let listed = video["size_bytes"].as_u64().unwrap();
            // What survives is on disk and playable up to where it was cut.
            let bytes = download(&s, &id, video["name"].as_str().unwrap()).await;
            assert!(
                bytes.len() as u64 >= listed,
                "{} bytes on disk, {listed} listed",
                bytes.len()
            );
            let frames = vp8_frames(&bytes);
            assert!(
                frames >= 60,
                "only {frames} frames survive of 3 s or more at 30 fps"
            );
            let (_, events) = send(s.dev(Method::GET, "/v1/events?type=recording.failed")).await;
            assert_eq!(
                events["data"][0]["data"]["recording_id"],
                id.as_str(),
                "{events}"
            );
            assert!(!events["data"][0]["data"]["files"]
                .as_array()
                .unwrap()
                .is_empty());
            let _ = publisher.await;
        },
    );
}

#[test]
fn a_full_disk_fails_the_recording_and_the_call_goes_on() {
    isolated_in(
        "a_full_disk_fails_the_recording_and_the_call_goes_on",
        &["--net", "--mount"],
        || async {
            let s = Server::start(Backend::Sqlite).await;
            // Recordings get a 256 KiB file system, seen only in this test's mount namespace.
            let dir = s.data_dir.path().join("recordings");
            std::fs::create_dir_all(&dir).unwrap();
            let mounted = Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
                .arg(&dir)
                .status()
                .expect("mount");
            assert!(mounted.success(), "cannot mount a tmpfs for the test");
            send(
                s.dev(Method::POST, "/v1/rooms")
                    .json(&json!({ "name": "full", "record": true })),
            )
            .await;
            let viewer = token(&s, "full", "viewer").await;
            let publisher = spawn_publisher(
                &s,
                "full",
                "dan",
                10.0,
                &["--watch".into(), "dan".into(), viewer],
            )
            .await;
            let deadline = Instant::now() + Duration::from_secs(30);
            let rec = loop {
                let (_, list) = send(s.dev(Method::GET, "/v1/recordings?room=full")).await;
                if list["data"][0]["status"] == "failed" {
                    break list["data"][0].clone();
                }
                assert!(
                    Instant::now() < deadline,
                    "the recording never failed: {list}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            };
            let failed_at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            let error = rec["error"].as_str().unwrap();
            assert!(error.contains("No space left on device"), "{rec}");
            assert!(!rec["files"].as_array().unwrap().is_empty(), "{rec}");
            let (_, events) = send(s.dev(Method::GET, "/v1/events?type=recording.failed")).await;
            assert_eq!(events["data"][0]["data"]["error"], error);
            // The call went on: dan stayed, and his video kept reaching the viewer
            // after the recording failed, as fast as before.
            let (_, people) = send(s.dev(Method::GET, "/v1/rooms/full/participants")).await;
            assert!(people["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["identity"] == "dan"));
            let stats = report(publisher).await;
            assert_eq!(stats["deleted"], 200);
            let watched: Vec<f64> = stats["watched"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_f64().unwrap())
                .collect();
            let end = stats["video"]["last"].as_f64().unwrap();
            let rate = |from: f64, to: f64| {
                watched.iter().filter(|&&t| t > from && t <= to).count() as f64 / (to - from)
            };
            let first = watched.first().copied().expect("the viewer saw video");
            assert!(
                end - failed_at > 2.0 && failed_at - first > 1.0,
                "the recording failed too late or too early to tell"
            );
            let (before, after) = (rate(first, failed_at), rate(failed_at, end));
            assert!(
                after >= 5.0 && after >= before / 2.0,
                "the viewer got {before:.1} frames/s before the recording failed and {after:.1} after"
            );
        },
    );
}

/// The mean brightness (0 to 255) of the left and right halves of the frame at `at` seconds.
fn halves_brightness(path: &Path, at: f64) -> (f64, f64) {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-ss", &format!("{at:.2}"), "-i"])
        .arg(path)
        .args(["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray", "-"])
        .output()
        .unwrap();
    let (w, h) = (1280usize, 720usize);
    assert_eq!(
        out.stdout.len(),
        w * h,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut sums = (0u64, 0u64);
    for row in out.stdout.chunks(w) {
        sums.0 += row[..w / 2].iter().map(|&p| u64::from(p)).sum::<u64>();
        sums.1 += row[w / 2..].iter().map(|&p| u64::from(p)).sum::<u64>();
    }
    let n = (w / 2 * h) as f64;
    (sums.0 as f64 / n, sums.1 as f64 / n)
}

#[test]
fn a_composite_mixes_the_room_into_one_mp4_with_everyone_in_their_place() {
    isolated(
        "a_composite_mixes_the_room_into_one_mp4_with_everyone_in_their_place",
        || async {
            let s = Server::start(Backend::Sqlite).await;
            send(
                s.dev(Method::POST, "/v1/rooms")
                    .json(&json!({ "name": "mix", "empty_timeout_s": 1 })),
            )
            .await;
            // Asked for before anyone joined: it starts when the room goes live.
            let (st, rec) = send(
                s.dev(Method::POST, "/v1/rooms/mix/recordings")
                    .json(&json!({ "mode": "composite" })),
            )
            .await;
            assert_eq!(
                (st, &rec["status"]),
                (StatusCode::CREATED, &json!("starting")),
                "{rec}"
            );
            let id = rec["id"].as_str().unwrap().to_owned();
            let ann = spawn_publisher(&s, "mix", "ann", 7.0, &[]).await;
            tokio::time::sleep(Duration::from_millis(2500)).await;
            let bob = spawn_publisher(&s, "mix", "bob", 3.0, &[]).await;
            let (ann, bob) = (report(ann).await, report(bob).await);
            let mut seen = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(90);
            let rec = loop {
                let (_, rec) = send(s.dev(Method::GET, &format!("/v1/recordings/{id}"))).await;
                let status = rec["status"].as_str().unwrap().to_owned();
                if status == "processing" {
                    let p = rec["progress"].as_f64().expect("progress while processing");
                    assert!((0.0..=1.0).contains(&p), "{rec}");
                }
                if seen.last() != Some(&status) {
                    seen.push(status.clone());
                }
                if status == "finished" || status == "failed" {
                    break rec;
                }
                assert!(
                    Instant::now() < deadline,
                    "the composite never finished: {rec}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            assert_eq!(rec["status"], "finished", "{rec}");
            assert!(seen.contains(&"processing".to_owned()), "{seen:?}");
            assert!(rec.get("progress").is_none(), "{rec}");
            let files = rec["files"].as_array().unwrap();
            assert_eq!(files[0]["name"], "composite.mp4", "{rec}");
            assert_eq!(files[0]["content_type"], "video/mp4");
            assert_eq!(
                files.len(),
                6,
                "the composite, 4 track files and the manifest: {rec}"
            );

            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("composite.mp4");
            std::fs::write(&path, download(&s, &id, "composite.mp4").await).unwrap();
            let probe = ffprobe(&path);
            let codecs: Vec<&str> = probe["streams"]
                .as_array()
                .unwrap()
                .iter()
                .map(|st| st["codec_name"].as_str().unwrap())
                .collect();
            assert_eq!(codecs, ["h264", "aac"], "{probe}");
            assert_eq!(probe["streams"][0]["width"], 1280);
            let first = ann["video"]["first"]
                .as_f64()
                .unwrap()
                .min(ann["audio"]["first"].as_f64().unwrap());
            let last = ann["video"]["last"]
                .as_f64()
                .unwrap()
                .max(bob["video"]["last"].as_f64().unwrap());
            let span = last - first + 1.0 / 30.0;
            let got = duration(&probe);
            assert!(
                (got - span).abs() <= 0.5,
                "the composite lasts {got:.3} s, the room {span:.3} s"
            );
            assert_eq!(decode_errors(&path), "");

            // Ann fills the left cell throughout; Bob's, on the right, is black until he came.
            let bob_video = rec["files"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["participant"]["identity"] == "bob" && f["track"]["kind"] == "video")
                .unwrap();
            let offset = bob_video["start_offset_ms"].as_f64().unwrap() / 1000.0;
            assert!(offset > 2.0, "bob came about 2.5 s in, not at {offset} s");
            let (left, right) = halves_brightness(&path, offset / 2.0);
            assert!(
                left > 40.0 && right < 20.0,
                "before bob: left {left:.0}, right {right:.0}"
            );
            let (left, right) = halves_brightness(&path, offset + 1.0);
            assert!(
                left > 40.0 && right > 40.0,
                "with bob: left {left:.0}, right {right:.0}"
            );
        },
    );
}

/// The server's config file pointing recordings at `bucket` under `sb/`, with
/// track files uploaded every second while they are written.
fn s3_config(bucket: &S3Server, at: &Path) -> std::path::PathBuf {
    let path = at.join("s3.toml");
    std::fs::write(&path, bucket.config_toml("sb/", 1)).unwrap();
    path
}

/// The objects of recording `id` of `project` in the bucket.
struct Objects<'a> {
    bucket: &'a S3Server,
    prefix: String,
}

impl Objects<'_> {
    fn new<'a>(bucket: &'a S3Server, project: &str, id: &str) -> Objects<'a> {
        Objects {
            bucket,
            prefix: format!("sb/{project}/{id}"),
        }
    }

    /// Where the server keeps object `name` (a file on its disk).
    fn join(&self, name: &str) -> std::path::PathBuf {
        self.bucket.object(format!("{}/{name}", self.prefix))
    }

    /// The names of the objects left.
    fn left(&self) -> Vec<String> {
        std::fs::read_dir(self.bucket.folder(&self.prefix))
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let name = e.file_name().to_string_lossy().into_owned();
                        name.strip_suffix("._S3rver_object").map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[test]
fn recordings_are_uploaded_to_an_s3_compatible_bucket_and_read_back_from_it() {
    isolated(
        "recordings_are_uploaded_to_an_s3_compatible_bucket_and_read_back_from_it",
        || async {
            let bucket = S3Server::start().await;
            let conf = tempfile::tempdir().unwrap();
            let config = s3_config(&bucket, conf.path());
            let s = Server::start_with(
                Backend::Sqlite,
                &["--dev", "--config", config.to_str().unwrap()],
            )
            .await;
            let (_, project) = send(s.dev(Method::GET, "/v1/project")).await;
            let project = project["id"].as_str().unwrap().to_owned();
            let (stats, id, rec) = record_room(&s, "cloud", "eve", 4.0, "VP8").await;
            let (_, events) = send(s.dev(Method::GET, "/v1/events?type=recording.finished")).await;
            assert_eq!(
                events["data"][0]["data"]["location"],
                format!("s3://recordings/sb/{project}/{id}/"),
                "{events}"
            );

            // Every file is an object in the bucket (s3rver keeps them as files), and no longer on the media node.
            let objects = Objects::new(&bucket, &project, &id);
            let spool = s
                .data_dir
                .path()
                .join("recordings")
                .join(&project)
                .join(&id);
            for f in rec["files"].as_array().unwrap() {
                let name = f["name"].as_str().unwrap();
                let stored = std::fs::metadata(objects.join(name))
                    .unwrap_or_else(|e| panic!("{name} is not in the bucket: {e}"));
                assert_eq!(stored.len(), f["size_bytes"].as_u64().unwrap(), "{name}");
                assert!(
                    !spool.join(name).exists(),
                    "{name} is still on the media node"
                );
            }

            // Downloads redirect to the bucket, which serves whole files and ranges.
            let video = file(&rec, "video");
            let name = video["name"].as_str().unwrap();
            let res = s
                .dev(Method::GET, &format!("/v1/recordings/{id}/files/{name}"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            assert!(
                res.url().as_str().starts_with(&bucket.endpoint),
                "{}",
                res.url()
            );
            let bytes = res.bytes().await.unwrap();
            assert_eq!(
                bytes.as_ref(),
                std::fs::read(objects.join(name)).unwrap().as_slice()
            );
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes).unwrap();
            let probe = ffprobe(&path);
            assert_eq!(probe["streams"][0]["codec_name"], "vp8");
            let (got, sent) = (duration(&probe), published(&stats, "video", 1.0 / 30.0));
            assert!(
                (got - sent).abs() <= 0.5,
                "the file lasts {got:.3} s, {sent:.3} s were sent"
            );
            assert_eq!(decode_errors(&path), "");
            let res = s
                .dev(Method::GET, &format!("/v1/recordings/{id}/files/{name}"))
                .header("Range", "bytes=10-19")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
            let range = res.headers()["content-range"].to_str().unwrap().to_owned();
            assert!(range.starts_with("bytes 10-19/"), "{range}");
            assert_eq!(res.bytes().await.unwrap().as_ref(), &bytes[10..20]);
            let (_, signed) = send(
                s.dev(
                    Method::POST,
                    &format!("/v1/recordings/{id}/files/manifest.json/url"),
                )
                .json(&json!({})),
            )
            .await;
            let res = s
                .http
                .get(format!("{}{}", s.base, signed["url"].as_str().unwrap()))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            let manifest: Value = res.json().await.unwrap();
            assert_eq!(manifest["recording_id"], id.as_str());

            // Deleting removes the objects.
            let (st, _) = send(s.dev(Method::DELETE, &format!("/v1/recordings/{id}"))).await;
            assert_eq!(st, StatusCode::NO_CONTENT);
            let left = objects.left();
            assert!(left.is_empty(), "objects left in the bucket: {left:?}");

            // A config the server cannot use stops it with the reason.
            let bad = conf.path().join("bad.toml");
            std::fs::write(&bad, "[recordings.s3]\nbucket = \"b\"\n").unwrap();
            let out = s
                .command()
                .args(["serve", "--dev", "--http-addr", "127.0.0.1:0", "--config"])
                .arg(&bad)
                .output()
                .unwrap();
            assert!(!out.status.success());
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("access_key_id"), "{err}");
        },
    );
}

#[test]
fn a_server_killed_mid_recording_leaves_in_the_bucket_all_but_its_last_seconds() {
    isolated(
        "a_server_killed_mid_recording_leaves_in_the_bucket_all_but_its_last_seconds",
        || async {
            let bucket = S3Server::start().await;
            let conf = tempfile::tempdir().unwrap();
            let config = s3_config(&bucket, conf.path());
            let args = ["--dev", "--config", config.to_str().unwrap()];
            let mut s = Server::start_with(Backend::Sqlite, &args).await;
            let (_, project) = send(s.dev(Method::GET, "/v1/project")).await;
            let project = project["id"].as_str().unwrap().to_owned();
            send(
                s.dev(Method::POST, "/v1/rooms")
                    .json(&json!({ "name": "sunk", "record": true })),
            )
            .await;
            let publisher = spawn_publisher(&s, "sunk", "ida", 20.0, &[]).await;
            let id = recording_under_way(&s, "sunk", 7_000).await;
            // Killed between two uploads: s3rver, unlike S3, does not keep a
            // part's old copy when a new one is cut off mid-body, so a kill
            // during an upload would test s3rver rather than the server. A
            // new saved length marks an upload starting; one second later it is done.
            let (_, rec) = send(s.dev(Method::GET, &format!("/v1/recordings/{id}"))).await;
            let saved = rec["duration_ms"].as_u64();
            eventually_changes(&s, &id, saved).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let (_, rec) = send(s.dev(Method::GET, &format!("/v1/recordings/{id}"))).await;
            let recorded_s = rec["duration_ms"].as_f64().unwrap() / 1000.0;
            s.kill_9();
            s.start_again(&args);

            // The recording fails, and the new server completes the uploads the old one left.
            let objects = Objects::new(&bucket, &project, &id);
            let deadline = Instant::now() + Duration::from_secs(60);
            let rec = loop {
                let (_, rec) = send(s.dev(Method::GET, &format!("/v1/recordings/{id}"))).await;
                let complete = rec["status"] == "failed"
                    && rec["files"].as_array().unwrap().iter().all(|f| {
                        std::fs::metadata(objects.join(f["name"].as_str().unwrap()))
                            .is_ok_and(|m| Some(m.len()) == f["size_bytes"].as_u64())
                    });
                if complete {
                    break rec;
                }
                assert!(
                    Instant::now() < deadline,
                    "the bucket never got the files as listed: {rec}\n{}",
                    s.log()
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            };
            assert_eq!(rec["files"].as_array().unwrap().len(), 2, "{rec}");
            let video = file(&rec, "video");
            let bytes = std::fs::read(objects.join(video["name"].as_str().unwrap())).unwrap();
            let frames = vp8_frames(&bytes);
            eprintln!(
                "{frames} frames in the bucket of {recorded_s:.1} s recorded before the kill"
            );
            // Uploads every second, progress saved every two: at most ~4 s are missing.
            assert!(
                frames as f64 >= (recorded_s - 4.0) * 30.0 * 0.9,
                "only {frames} frames reached the bucket of {recorded_s:.1} s recorded"
            );
            let _ = publisher.await;
        },
    );
}

#[test]
fn a_server_stopped_cleanly_finishes_its_recordings_first() {
    isolated(
        "a_server_stopped_cleanly_finishes_its_recordings_first",
        || async {
            let mut s = Server::start(Backend::Sqlite).await;
            send(
                s.dev(Method::POST, "/v1/rooms")
                    .json(&json!({ "name": "closing", "record": true })),
            )
            .await;
            let publisher = spawn_publisher(&s, "closing", "fay", 10.0, &[]).await;
            let id = recording_under_way(&s, "closing", 2_000).await;
            // SIGTERM: the rooms close, and the recording ends before the process does.
            s.restart(&["--dev"]);
            let (_, rec) = send(s.dev(Method::GET, &format!("/v1/recordings/{id}"))).await;
            assert_eq!(rec["status"], "finished", "{rec}");
            let dir = tempfile::tempdir().unwrap();
            let video = file(&rec, "video");
            let path = dir.path().join("v.webm");
            std::fs::write(
                &path,
                download(&s, &id, video["name"].as_str().unwrap()).await,
            )
            .unwrap();
            assert_eq!(decode_errors(&path), "");
            let _ = publisher.await;
        },
    );
}
