//! Starting, stopping, listing and downloading recordings over REST, and what it refuses.

use super::*;

#[test]
fn recordings_start_and_stop_over_rest_and_refuse_garbage() {
    isolated(
        "api::recordings_start_and_stop_over_rest_and_refuse_garbage",
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
