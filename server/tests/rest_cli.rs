//! The REST CLI against a real server: `switchboard rooms`, `participants`,
//! `webhooks`, `recordings`, `events tail` and `usage` run as a person (tables)
//! and a script (`--json`) would, with credentials from flags, the
//! environment or a saved profile, and wrong ones refused with the API's reason.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::sdk_peer::SdkPeer;
use common::{send, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard_store::Backend;
use switchboard_webhooks::testing::Receiver;

/// The `switchboard` binary with a home of its own: no credentials but the
/// ones a test gives it.
struct Cli {
    home: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        Self {
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(common::binary());
        c.args(args)
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env_remove("SWITCHBOARD_URL")
            .env_remove("SWITCHBOARD_API_KEY")
            .env_remove("SWITCHBOARD_API_SECRET")
            .env_remove("SWITCHBOARD_PROFILE");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("the binary runs")
    }

    /// Standard output of a command that must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "switchboard {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The JSON a `--json` command printed.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let text = self.ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?} printed {text:?}: {e}"))
    }

    /// Standard error of a command that must fail.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "switchboard {args:?} should fail"
        );
        assert!(out.stdout.is_empty(), "{args:?} printed on failure");
        String::from_utf8(out.stderr).unwrap()
    }
}

/// `json` until `pick` accepts it, within 20 s.
async fn until<T>(cli: &Cli, args: &[&str], mut pick: impl FnMut(&Value) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let v = cli.json(args);
        if let Some(t) = pick(&v) {
            return t;
        }
        assert!(tokio::time::Instant::now() < deadline, "{args:?}: {v}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_is_managed_from_the_command_line() {
    let s = Server::start(Backend::Sqlite).await;
    let cli = Cli::new();

    // No credentials anywhere: the command says where to put them.
    let err = cli.fails(&["rooms", "list"]);
    assert!(
        err.contains("--api-key") && err.contains("profile save"),
        "{err}"
    );
    // A profile named on the command line must exist.
    let err = cli.fails(&["rooms", "list", "--profile", "staging"]);
    assert!(err.contains("no profile `staging`"), "{err}");

    // Saved once, the default profile serves every command after.
    let saved = cli.ok(&[
        "profile",
        "save",
        "--url",
        &s.base,
        "--api-key",
        "devkey",
        "--api-secret",
        "secret",
    ]);
    assert!(saved.contains("saved profile `default`"), "{saved}");
    let file = cli.home.path().join("config/switchboard/profiles.toml");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the profiles file is readable by others");
    }
    let listed = cli.ok(&["profile", "list"]);
    assert!(
        listed.contains("default") && listed.contains("devkey"),
        "{listed}"
    );
    assert!(
        !listed.contains("secret"),
        "profile list shows the secret: {listed}"
    );

    // Wrong credentials on the command line win over the profile, and are refused.
    let err = cli.fails(&["rooms", "list", "--api-secret", "wrong"]);
    assert!(err.contains("401") && err.contains("--api-secret"), "{err}");
    // A server that is not there.
    let err = cli.fails(&["rooms", "list", "--url", "http://127.0.0.1:9"]);
    assert!(err.contains("cannot reach http://127.0.0.1:9"), "{err}");

    // Rooms.
    let room = cli.json(&["rooms", "create", "demo", "--max-participants", "5"]);
    assert_eq!(room["name"], "demo");
    assert_eq!(room["max_participants"], 5);
    let err = cli.fails(&["rooms", "create", "demo"]);
    assert!(err.contains("room_exists") || err.contains("409"), "{err}");
    let table = cli.ok(&["rooms", "list"]);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("NAME"), "{table}");
    assert!(lines.any(|l| l.starts_with("demo ")), "{table}");
    let rooms = cli.json(&["rooms", "list"]);
    assert_eq!(rooms.as_array().unwrap().len(), 1, "{rooms}");

    // A webhook endpoint, and a test delivery to it.
    let receiver = Receiver::start().await.unwrap();
    let created = cli.json(&[
        "webhooks",
        "create",
        &receiver.url("/hook"),
        "--events",
        "participant.joined,webhook.test",
    ]);
    let hook = created["id"].as_str().unwrap().to_owned();
    assert!(
        created["secret"].as_str().unwrap().starts_with("whsec_"),
        "{created}"
    );
    let table = cli.ok(&["webhooks", "list"]);
    assert!(
        table.contains(&hook) && table.contains("participant.joined,webhook.test"),
        "{table}"
    );
    let queued = cli.ok(&["webhooks", "test", &hook]);
    assert!(queued.contains("queued test event"), "{queued}");
    until(&cli, &["webhooks", "deliveries", &hook], |d| {
        d.as_array()?
            .iter()
            .any(|d| d["event_type"] == "webhook.test" && d["status"] == "succeeded")
            .then_some(())
    })
    .await;
    let table = cli.ok(&["webhooks", "deliveries", &hook]);
    assert!(
        table.contains("webhook.test") && table.contains("204 in"),
        "{table}"
    );

    // `events tail` follows the log: a join shows up as it happens.
    let mut tail = cli
        .command(&[
            "events",
            "tail",
            "--type",
            "participant.joined",
            "--interval",
            "200ms",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel();
    let stdout = tail.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    // Joins before the tail started are not replayed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (st, t) = send(
        s.dev(Method::POST, "/v1/tokens")
            .json(&json!({ "room": "demo", "identity": "alice" })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let mut alice = SdkPeer::start_speaking(&s, t["token"].as_str().unwrap());
    let line = tokio::time::timeout(Duration::from_secs(20), lines_rx.recv())
        .await
        .expect("events tail printed the join within 20 s")
        .expect("events tail is running");
    assert!(
        line.contains("participant.joined") && line.contains("room=demo identity=alice"),
        "{line}"
    );
    let _ = tail.kill();
    let _ = tail.wait();
    receiver.wait_for(2, Duration::from_secs(20)).await;

    // Participants: alice with her tracks; her audio muted by the app.
    alice
        .until("alice's tracks published", |e| {
            (e["msg"]["type"] == "track_published" && e["msg"]["track"]["kind"] == "video")
                .then_some(())
        })
        .await;
    let audio = until(&cli, &["participants", "list", "demo"], |p| {
        let tracks = p[0]["tracks"].as_array()?;
        (tracks.len() == 2).then_some(())?;
        tracks
            .iter()
            .find(|t| t["kind"] == "audio")
            .and_then(|t| t["sid"].as_str())
            .map(str::to_owned)
    })
    .await;
    let table = cli.ok(&["participants", "list", "demo"]);
    assert!(
        table.contains("alice") && table.contains(&format!("audio {audio}")),
        "{table}"
    );
    cli.ok(&["participants", "mute", "demo", "alice", &audio]);
    until(&cli, &["participants", "list", "demo"], |p| {
        p[0]["tracks"]
            .as_array()?
            .iter()
            .any(|t| t["sid"] == audio.as_str() && t["muted"] == true)
            .then_some(())
    })
    .await;
    let err = cli.fails(&["participants", "mute", "demo", "nobody", &audio]);
    assert!(err.contains("404"), "{err}");

    // Recordings: started, stopped, downloaded; the files are what the API lists.
    let rec = cli.json(&["recordings", "start", "demo"]);
    let id = rec["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cli.ok(&["recordings", "stop", &id]);
    let files = until(&cli, &["recordings", "list", "--room", "demo"], |list| {
        let r = list.as_array()?.iter().find(|r| r["id"] == id.as_str())?;
        assert_ne!(r["status"], "failed", "{r}");
        (r["status"] == "finished").then(|| r["files"].as_array().cloned())?
    })
    .await;
    assert!(!files.is_empty());
    let out = tempfile::tempdir().unwrap();
    let printed = cli.ok(&[
        "recordings",
        "download",
        &id,
        "--out",
        out.path().to_str().unwrap(),
    ]);
    for f in &files {
        let name = f["name"].as_str().unwrap();
        let path = out.path().join(name);
        assert!(printed.contains(name), "{printed}");
        let size = std::fs::metadata(&path).map(|m| m.len());
        assert_eq!(size.ok(), f["size_bytes"].as_u64(), "{name}");
    }
    let err = cli.fails(&["recordings", "download", "rec_nope"]);
    assert!(err.contains("400") || err.contains("404"), "{err}");

    // Removing alice ends her session.
    cli.ok(&["participants", "remove", "demo", "alice"]);
    until(&cli, &["participants", "list", "demo"], |p| {
        p.as_array()?.is_empty().then_some(())
    })
    .await;
    drop(alice);

    // Usage: alice's minutes are metered.
    let usage = cli.json(&["usage"]);
    assert!(
        usage["meters"].as_array().is_some_and(|m| !m.is_empty()),
        "{usage}"
    );
    let table = cli.ok(&["usage"]);
    assert!(table.starts_with("METER"), "{table}");

    // Deleting: once, then the API's reason.
    cli.ok(&["rooms", "delete", "demo"]);
    let err = cli.fails(&["rooms", "delete", "demo"]);
    assert!(err.contains("room_not_found"), "{err}");

    // The environment is read too, and a script's garbage gets a usage error.
    let out = cli
        .command(&["rooms", "list", "--json"])
        .env("SWITCHBOARD_URL", &s.base)
        .env("SWITCHBOARD_API_KEY", "devkey")
        .env("SWITCHBOARD_API_SECRET", "secret")
        .env("XDG_CONFIG_HOME", cli.home.path().join("elsewhere"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli.run(&["events", "tail", "--interval", "soon"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--interval"));
}
