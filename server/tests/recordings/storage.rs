//! Recordings in an S3-compatible bucket, and what a killed server leaves there.

use super::*;

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
        "storage::recordings_are_uploaded_to_an_s3_compatible_bucket_and_read_back_from_it",
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
        "storage::a_server_killed_mid_recording_leaves_in_the_bucket_all_but_its_last_seconds",
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
