//! `composite` mode: the room mixed into one MP4.

use super::*;

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
        "composite::a_composite_mixes_the_room_into_one_mp4_with_everyone_in_their_place",
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
