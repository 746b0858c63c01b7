//! The `switchboard` commands other than the REST API: shutdown, projects, plans,
//! suspension, tokens, migrate, config.

mod common;

use std::process::Command;

use common::{send, Server};
use reqwest::{Method, StatusCode};
use switchboard_store::Backend;

switchboard_store::on_both_backends!(
    sigterm_stops_the_server_cleanly,
    project_create_refuses_short_secrets_and_accepts_good_ones,
    migrate_runs_alone,
    operators_set_plans_and_suspend_and_resume_projects,
);

async fn sigterm_stops_the_server_cleanly(b: Backend) {
    let mut s = Server::start(b).await;
    assert_eq!(
        send(s.dev(Method::GET, "/v1/rooms")).await.0,
        StatusCode::OK
    );
    assert!(
        s.terminate(),
        "exit status was not success; log:\n{}",
        s.log()
    );
    assert!(s.log().contains("shutting down"), "{}", s.log());
}

async fn project_create_refuses_short_secrets_and_accepts_good_ones(b: Backend) {
    let s = Server::start(b).await;
    let out = s.cli(&["project", "create", "acme", "--secret", "short"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least 32"), "{err}");
    let out = s.cli(&["project", "create", "", "--json"]);
    assert!(!out.status.success());
    let out = s.cli(&["project", "create", "acme", "--key-id", "bad key!"]);
    assert!(!out.status.success());

    let secret = "a-long-enough-secret-for-the-acme-project";
    let out = s.cli(&[
        "project", "create", "acme", "--key-id", "acme-key", "--secret", secret,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("acme-key") && text.contains(secret) && text.contains("shown only now"),
        "{text}"
    );
    let (st, project) = send(
        s.request(Method::GET, "/v1/project")
            .basic_auth("acme-key", Some(secret)),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(project["name"], "acme");
    // Key ids are unique.
    let out = s.cli(&[
        "project", "create", "again", "--key-id", "acme-key", "--secret", secret,
    ]);
    assert!(!out.status.success());
}

async fn migrate_runs_alone(b: Backend) {
    let s = Server::start(b).await;
    for _ in 0..2 {
        let out = s.cli(&["migrate"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));
    }
}

#[test]
fn token_create_signs_offline_with_the_key_and_secret() {
    let secret = "x".repeat(40);
    let out = Command::new(common::binary())
        .env("SWITCHBOARD_RTC_UDP_PORT", "0")
        .args([
            "token",
            "create",
            "--room",
            "r",
            "--identity",
            "ann",
            "--api-key",
            "k1",
            "--api-secret",
            &secret,
        ])
        .args(["--no-publish", "--room-admin", "--ttl-s", "60"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let claims =
        switchboard_core::token::verify(token.trim(), &secret, chrono::Utc::now()).unwrap();
    assert_eq!(switchboard_core::token::key_id(token.trim()).unwrap(), "k1");
    assert_eq!(claims.sub.as_str(), "ann");
    assert!(!claims.grants.can_publish && claims.grants.room_admin && claims.grants.can_subscribe);
    assert_eq!(claims.exp - claims.nbf, 60);

    let refused = |args: &[&str]| {
        let out = Command::new(common::binary())
            .env("SWITCHBOARD_RTC_UDP_PORT", "0")
            .args(["token", "create"])
            .args(args)
            .env_remove("SWITCHBOARD_API_KEY")
            .env_remove("SWITCHBOARD_API_SECRET")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(refused(&[
        "--room",
        "r",
        "--identity",
        "a",
        "--api-key",
        "k",
        "--api-secret",
        "short"
    ])
    .contains("32"));
    assert!(refused(&["--room", "r", "--identity", "a"]).contains("--api-key"));
    refused(&["--room", "", "--identity", "a", "--dev"]);
    refused(&["--room", "r", "--identity", "a", "--dev", "--ttl-s", "0"]);
    // --dev signs with the dev key.
    let out = Command::new(common::binary())
        .env("SWITCHBOARD_RTC_UDP_PORT", "0")
        .args(["token", "create", "--room", "r", "--identity", "a", "--dev"])
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap();
    assert!(switchboard_core::token::verify(token.trim(), "secret", chrono::Utc::now()).is_ok());
}

#[test]
fn serve_reads_a_toml_config_file_and_refuses_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("switchboard.toml");
    std::fs::write(&config, "http_adr = \"127.0.0.1:0\"\n").unwrap();
    let out = Command::new(common::binary())
        .env("SWITCHBOARD_RTC_UDP_PORT", "0")
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not valid") && err.contains("http_adr"),
        "{err}"
    );

    let out = Command::new(common::binary())
        .env("SWITCHBOARD_RTC_UDP_PORT", "0")
        .args(["serve", "--http-addr", "not-an-address"])
        .output()
        .unwrap();
    assert!(!out.status.success());

    // Placement settings out of range or malformed say which and why.
    for (bad, says) in [
        ("[placement]\nmax_cpu = 1.5\n", "max_cpu"),
        ("[placement]\nmax_cpu = 0.0\n", "max_cpu"),
        ("[placement]\nmax_participants = 0\n", "max_participants"),
        (
            "[placement]\nclient_ip_header = \"not a header\"\n",
            "client_ip_header",
        ),
        (
            "[[placement.client_regions]]\ncidr = \"10.0.0.0/40\"\nregion = \"eu-west\"\n",
            "cidr",
        ),
        (
            "[[placement.client_regions]]\ncidr = \"10.0.0.0/8\"\nregion = \"EU West\"\n",
            "region",
        ),
    ] {
        std::fs::write(&config, bad).unwrap();
        let out = Command::new(common::binary())
            .env("SWITCHBOARD_RTC_UDP_PORT", "0")
            .args(["serve", "--http-addr", "127.0.0.1:0", "--config"])
            .arg(&config)
            .env("SWITCHBOARD_DATA_DIR", dir.path().join("unused"))
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{bad}: {err}");
    }

    // A valid file: its address, data dir and dev mode are used; the flag still wins over it.
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "http_addr = \"127.0.0.1:1\"\ndata_dir = \"{}\"\ndev = true\n",
            data.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(common::binary())
        .env("SWITCHBOARD_RTC_UDP_PORT", "0")
        .args(["serve", "--http-addr", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env_remove("DATABASE_URL")
        .env_remove("SWITCHBOARD_DATA_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::BufRead;
    let stdout = child.stdout.take().unwrap();
    let mut banner = String::new();
    for line in std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
    {
        banner.push_str(&line);
        banner.push('\n');
        if line.contains("listening on") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        banner.contains("devkey"),
        "dev = true from the file: {banner}"
    );
    assert!(
        !banner.contains("127.0.0.1:1 "),
        "the flag wins over the file: {banner}"
    );
    assert!(data.join("switchboard.db").exists() && data.join("master.key").exists());
}

async fn operators_set_plans_and_suspend_and_resume_projects(b: Backend) {
    let s = Server::start(b).await;
    let (_, project) = send(s.dev(Method::GET, "/v1/project")).await;
    let id = project["id"].as_str().unwrap();
    let stderr = |args: &[&str]| {
        let out = s.cli(args);
        assert!(!out.status.success(), "{args:?} must fail");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let ok = |args: &[&str]| {
        let out = s.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let suspension =
        || async { send(s.dev(Method::GET, "/v1/billing/stripe")).await.1["suspension"].clone() };

    // Plans must exist in the configuration; without one only `default` does.
    assert!(stderr(&["project", "set-plan", id, "gold"]).contains("no plan \"gold\""));
    assert!(ok(&["project", "set-plan", id]).contains("is on plan default"));
    assert!(stderr(&["project", "set-plan", "prj_nope", "gold"]).contains("prj_nope"));

    assert!(stderr(&["project", "suspend", id, "--reason", "not a code!"]).contains("A-Z"));
    assert!(suspension().await.is_null());
    ok(&["project", "suspend", id]);
    assert_eq!(suspension().await["reason"], "operator");
    ok(&["project", "resume", id]);
    assert!(suspension().await.is_null());
    let missing = switchboard_core::ProjectId::new().to_string();
    assert!(stderr(&["project", "resume", &missing]).contains("no project"));

    // Settling needs Stripe.
    assert!(stderr(&["billing", "settle", "--period", "2026-11"]).contains("[stripe]"));
    assert!(stderr(&["billing", "settle", "--period", "November"]).contains("YYYY-MM"));
}
