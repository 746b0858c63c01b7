//! What a killed server, a full disk and a clean stop leave of a recording.

use super::*;

#[test]
fn a_server_killed_mid_recording_leaves_its_partial_files_and_a_failed_recording() {
    isolated(
        "failures::a_server_killed_mid_recording_leaves_its_partial_files_and_a_failed_recording",
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
        "failures::a_full_disk_fails_the_recording_and_the_call_goes_on",
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

#[test]
fn a_server_stopped_cleanly_finishes_its_recordings_first() {
    isolated(
        "failures::a_server_stopped_cleanly_finishes_its_recordings_first",
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
