//! `switchboard loadtest` against a real server on loopback: simulated
//! WebRTC publishers and subscribers, synthetic Opus + VP8, loss measured
//! per track at every subscriber; and the same against a real Janus
//! VideoRoom (Debian's `janus`, configured as `bench/janus`).

mod common;

use std::process::Output;

use common::{send, Server};
use reqwest::Method;
use serde_json::Value;
use switchboard_store::Backend;

/// One load test at a time: they measure loss, and two would share the 2 cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `switchboard loadtest ARGS`, with no defaults added.
async fn raw(s: &Server, args: &[&str]) -> Output {
    let mut cmd = s.command();
    cmd.arg("loadtest").args(args);
    tokio::task::spawn_blocking(move || cmd.output().expect("run switchboard loadtest"))
        .await
        .unwrap()
}

/// `switchboard loadtest` against `s` with the dev key, plus `args`.
async fn loadtest(s: &Server, args: &[&str]) -> Output {
    let base = [
        "--url",
        &s.base,
        "--api-key",
        "devkey",
        "--api-secret",
        "secret",
    ];
    raw(s, &[&base[..], args].concat()).await
}

/// Runs a load test that must succeed and returns its JSON summary.
async fn report(s: &Server, args: &[&str]) -> Value {
    let out = loadtest(s, &[args, &["--json", "-"]].concat()).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "loadtest failed:\n{stdout}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.log()
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Every subscriber received every track, at about the rate sent, with under 1% loss.
fn assert_healthy(r: &Value, publishers: usize, subscribers: usize, video_bps: f64) {
    let summary = serde_json::to_string_pretty(r).unwrap();
    eprintln!("{summary}");
    assert_eq!(r["missing_streams"], 0, "{summary}");
    let tracks = r["tracks"].as_array().unwrap();
    assert_eq!(tracks.len(), publishers * 2, "{summary}");
    for t in tracks {
        assert_eq!(t["receiving_subscribers"], subscribers, "{summary}");
        let loss = t["received"]["loss_pct"].as_f64().unwrap();
        assert!(loss < 1.0, "track {} lost {loss}%", t["track_sid"]);
        let kbps = t["received"]["bitrate_kbps"].as_f64().unwrap();
        let wanted = if t["kind"] == "video" {
            video_bps / 1000.0
        } else {
            32.0
        };
        assert!(
            (kbps / wanted - 1.0).abs() < 0.2,
            "track {} arrived at {kbps} kbps, sent at {wanted}",
            t["track_sid"]
        );
        assert!(t["received"]["latency_p50_ms"].as_f64().unwrap() > 0.0);
    }
    let expected = r["total"]["expected"].as_u64().unwrap();
    assert!(expected > 0, "{summary}");
    assert!(r["total"]["loss_pct"].as_f64().unwrap() < 1.0, "{summary}");
    assert!(r["join_ms"]["max"].as_f64().unwrap() > 0.0, "{summary}");
}

/// Ten seconds of `publishers` to `subscribers` in `room` at 500 kbps VP8 + 32 kbps Opus each,
/// checked with [`assert_healthy`].
async fn healthy_run(s: &Server, room: &str, publishers: usize, subscribers: usize) {
    let (p, n) = (publishers.to_string(), subscribers.to_string());
    let args = ["--room", room, "--publishers", &p, "--subscribers", &n];
    let media = ["--video-bitrate", "500k", "--audio", "--duration", "10s"];
    let r = report(s, &[&args[..], &media[..]].concat()).await;
    assert_healthy(&r, publishers, subscribers, 500_000.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publisher_to_fifty_subscribers_loses_under_one_percent() {
    let _one = ONE_AT_A_TIME.lock().await;
    let s = Server::start(Backend::Sqlite).await;
    healthy_run(&s, "fanout", 1, 50).await;
    // Every simulated participant left when the run ended (within 20 s: on a
    // loaded machine the last leave was once seen after 5).
    let mut left = Value::Null;
    for _ in 0..200 {
        left = send(s.dev(Method::GET, "/v1/rooms/fanout/participants"))
            .await
            .1;
        if left["data"] == serde_json::json!([]) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("participants still listed after the run: {left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_publishers_to_ten_subscribers_lose_under_one_percent() {
    let _one = ONE_AT_A_TIME.lock().await;
    let s = Server::start(Backend::Sqlite).await;
    healthy_run(&s, "mesh", 10, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_publisher_is_held_to_its_limit() {
    let _one = ONE_AT_A_TIME.lock().await;
    let s = Server::start_with(Backend::Sqlite, &["--dev", "--max-publish-bitrate", "1M"]).await;
    let r = report(
        &s,
        &[
            "--room",
            "flood",
            "--subscribers",
            "2",
            "--video-bitrate",
            "4M",
            "--audio",
            "--duration",
            "5s",
        ],
    )
    .await;
    let summary = serde_json::to_string_pretty(&r).unwrap();
    assert_eq!(r["missing_streams"], 0, "{summary}");
    // Each subscriber gets at most the publisher's 1 Mbps, over both its tracks.
    let per_subscriber_kbps: f64 = r["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["received"]["bitrate_kbps"].as_f64().unwrap())
        .sum();
    assert!(per_subscriber_kbps < 1_100.0, "{summary}");
    assert!(per_subscriber_kbps > 700.0, "{summary}");
    let video = r["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == "video")
        .unwrap();
    assert!(
        video["received"]["loss_pct"].as_f64().unwrap() > 50.0,
        "{summary}"
    );
    assert!(s.log().contains("over its rate limit"), "{}", s.log());
    let low = ["--dev", "--max-publish-bitrate", "10k"];
    let out = s.command().arg("serve").args(low).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 100k"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_and_bad_credentials_are_refused_clearly() {
    let s = Server::start(Backend::Sqlite).await;
    for (args, says) in [
        (&["--video-bitrate", "fast"][..], "not a bitrate"),
        (&["--duration", "forever"][..], "duration"),
        (&["--publishers", "0"][..], "at least 1"),
        (&["--video-bitrate", "0"][..], "nothing to send"),
        (&["--room", "bad\u{1}room"][..], "400"),
    ] {
        let out = loadtest(&s, args).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let wrong_secret = [
        "--url",
        &s.base,
        "--api-key",
        "devkey",
        "--api-secret",
        "wrong",
    ];
    let nobody_there = [
        "--url",
        "http://127.0.0.1:9",
        "--api-key",
        "k",
        "--api-secret",
        "s",
    ];
    for (args, says) in [(wrong_secret, "401"), (nobody_there, "cannot reach")] {
        let out = raw(&s, &args).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(says),
            "{args:?}: {err}"
        );
    }
}

/// Janus with `bench/janus`'s configuration on a free port, killed when dropped.
struct Janus {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Janus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The interface and IPv4 address of the default route: Janus gathers no
/// candidate on loopback.
fn host_interface() -> (String, String) {
    let out = std::process::Command::new("ip")
        .args(["-4", "route", "get", "1.1.1.1"])
        .output()
        .expect("run ip (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let after = |key: &str| {
        let mut words = text.split_whitespace();
        words.find(|w| *w == key);
        words
            .next()
            .unwrap_or_else(|| panic!("no {key} in {text}"))
            .to_owned()
    };
    (after("dev"), after("src"))
}

async fn start_janus(interface: &str) -> Janus {
    let dir = tempfile::tempdir().unwrap();
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/janus");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for file in [
        "janus.jcfg",
        "janus.plugin.videoroom.jcfg",
        "janus.transport.http.jcfg",
    ] {
        let text = std::fs::read_to_string(config.join(file)).unwrap();
        let text = text.replace("port = 18088", &format!("port = {port}"));
        std::fs::write(dir.path().join(file), text).unwrap();
    }
    let child = std::process::Command::new("janus")
        .arg("-F")
        .arg(dir.path())
        .arg("-C")
        .arg(dir.path().join("janus.jcfg"))
        .args(["-E", interface, "-o"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start janus (apt-get install janus)");
    let janus = Janus {
        child,
        url: format!("http://127.0.0.1:{port}/janus"),
        _dir: dir,
    };
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(format!("{}/info", janus.url)).await {
            if r.status().is_success() {
                return janus;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("Janus did not answer at {}", janus.url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_janus_videoroom_is_loaded_and_measured_like_switchboard() {
    let _one = ONE_AT_A_TIME.lock().await;
    let s = Server::start(Backend::Sqlite).await;
    let (interface, ip) = host_interface();
    let janus = start_janus(&interface).await;
    let pid = janus.child.id().to_string();
    let janus_args = [
        "--server",
        "janus",
        "--url",
        &janus.url,
        "--bind-ip",
        &ip,
        "--server-pid",
        &pid,
    ];
    let load = ["--publishers", "2", "--subscribers", "3"];
    let media = ["--video-bitrate", "500k", "--audio", "--duration", "6s"];
    let out = raw(
        &s,
        &[&janus_args[..], &load, &media, &["--json", "-"]].concat(),
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "loadtest against Janus failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(&stdout).unwrap();
    assert_healthy(&r, 2, 3, 500_000.0);
    // Janus's CPU time while media flowed, per delivered packet.
    let cpu = &r["server_cpu"];
    assert!(cpu["seconds"].as_f64().unwrap() > 0.0, "{cpu}");
    assert!(
        cpu["seconds_per_million_packets"].as_f64().unwrap() > 0.0,
        "{cpu}"
    );
    let pps = r["received_packets_per_s"].as_f64().unwrap();
    // 2 publishers x 3 subscribers x (50 audio + about 55 video packets a second).
    assert!((500.0..800.0).contains(&pps), "{pps} packets/s");
    // Each track is named by its Janus feed and mid, and every subscriber matched it.
    for t in r["tracks"].as_array().unwrap() {
        let sid = t["track_sid"].as_str().unwrap();
        let (feed, mid) = sid.split_once(':').unwrap_or_else(|| panic!("{sid}"));
        assert!(feed.parse::<u64>().is_ok() && !mid.is_empty(), "{sid}");
    }

    // Something that is not Janus, or no Janus at all, is refused clearly.
    for (url, says) in [
        (format!("{}/v1", s.base), "Janus"),
        ("http://127.0.0.1:9/janus".to_owned(), "cannot reach"),
    ] {
        let args = ["--server", "janus", "--url", &url, "--duration", "1s"];
        let out = raw(&s, &args).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(says), "{url}: {err}");
    }
    let out = raw(&s, &["--server", "mediasoup"]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("use switchboard or janus"), "{err}");
}
