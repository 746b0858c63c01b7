//! Track files: each published track to a file of its own that decodes, lasts as long as it was sent and lines up with the others; H.264 kept as received.

use super::*;

#[test]
fn an_h264_track_is_recorded_to_matroska_as_received() {
    isolated(
        "tracks::an_h264_track_is_recorded_to_matroska_as_received",
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
        "tracks::a_room_created_with_record_is_recorded_to_files_that_decode_and_line_up",
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
