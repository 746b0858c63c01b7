//! A deployment of several processes on one PostgreSQL and one NATS
//! (JetStream): two `--role api` instances and three `--role media` nodes in
//! two regions, on loopback. Tokens from either API instance name the node
//! that hosts the room, chosen by region and load; REST calls on a room reach
//! its node from either instance; every node's events land in one log;
//! a project pinned to a region stays there; `switchboard node drain` and a
//! `kill -9` change where rooms go. [`failures`]: what a `kill -9` does to a
//! live room (a browser in it follows the room to a healthy node of its
//! region with the same token, and the log records the lost session and
//! room), and a room whose node stops answering. [`cascade`], [`broadcast`]
//! and [`regions`]: one room over several nodes, on loopback or over three
//! network namespaces with a delay between them.

mod broadcast;
mod cascade;
#[path = "../common/mod.rs"]
mod common;
mod failures;
mod regions;

use std::time::Duration;

use common::browser::Driver;
use common::{binary, expect_error, send, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard_store::Backend;

/// Held by the tests that carry media among many peers (`cascade`,
/// `broadcast`, `regions`), so they run one at a time: together on two cores
/// they starve each other's peers, and `regions` measures latency.
static MEDIA_HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Takes [`MEDIA_HEAVY`] for the rest of the calling test (a test that
/// failed while holding it leaves it usable: tokio's mutex is not poisoned).
async fn media_heavy() -> tokio::sync::MutexGuard<'static, ()> {
    MEDIA_HEAVY.lock().await
}

/// The NATS server (with JetStream) the nodes share.
fn nats_url() -> String {
    std::env::var("SWITCHBOARD_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// `serve` arguments of a node with `role` in `region`.
fn node_args(role: &str, region: &str) -> Vec<String> {
    let nats = nats_url();
    [
        "--dev",
        "--role",
        role,
        "--region",
        region,
        "--nats-url",
        &nats,
    ]
    .map(str::to_owned)
    .to_vec()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The `ws://.../rtc` URL of `server`.
fn rtc_url(server: &Server) -> String {
    format!("{}/rtc", server.base.replacen("http://", "ws://", 1))
}

/// Asks `via` for a token to `room` with region hint `region`; returns the node URL it names.
async fn token_url(via: &Server, room: &str, region: Option<&str>) -> String {
    let mut body = json!({ "room": room, "identity": "ann" });
    if let Some(r) = region {
        body["region"] = json!(r);
    }
    let (st, t) = send(via.dev(Method::POST, "/v1/tokens").json(&body)).await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    t["url"].as_str().unwrap().to_owned()
}

/// An access token from `via` for `identity` in `room` (which it may create).
async fn api_token(via: &Server, room: &str, identity: &str) -> String {
    let body = json!({ "room": room, "identity": identity, "grants": { "room_create": true } });
    let (st, t) = send(via.dev(Method::POST, "/v1/tokens").json(&body)).await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    t["token"].as_str().unwrap().to_owned()
}

/// `switchboard node list --json`, as seen from `server`'s database.
fn node_list(server: &Server) -> Vec<Value> {
    let out = server.cli(&["node", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn listed<'a>(server: &Server, nodes: &'a [Value]) -> &'a Value {
    nodes
        .iter()
        .find(|n| n["url"] == server.base.as_str())
        .unwrap_or_else(|| panic!("{} is not in {nodes:?}", server.base))
}

/// A token for `identity` in `room`, signed offline with the dev key
/// (`switchboard token create`): no API instance placed the room.
fn offline_token(server: &Server, room: &str, identity: &str) -> String {
    let out = server.cli(&[
        "token",
        "create",
        "--room",
        room,
        "--identity",
        identity,
        "--api-key",
        "devkey",
        "--api-secret",
        "secret",
        "--dev",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn node_id_of(server: &Server, nodes: &[Value]) -> String {
    listed(server, nodes)["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_api_instances_and_three_media_nodes_in_two_regions() {
    // A node counts as loaded with a few participants, so the test can see load steer rooms.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("switchboard.toml");
    std::fs::write(&config, "[placement]\nmax_participants = 3\n").unwrap();
    let api_args = |region: &str| {
        let mut a = node_args("api", region);
        a.extend(["--config".to_owned(), config.display().to_string()]);
        a
    };
    let api1 = Server::start_with(Backend::Postgres, &args(&api_args("eu-west"))).await;
    let api2 = api1.sibling(&args(&api_args("us-east")));
    let eu1 = api1.sibling(&args(&node_args("media", "eu-west")));
    let eu2 = api1.sibling(&args(&node_args("media", "eu-west")));
    let us = api1.sibling(&args(&node_args("media", "us-east")));
    let apis = [&api1, &api2];
    let eu = [rtc_url(&eu1), rtc_url(&eu2)];

    // Every process registered with its role and region; media nodes report load.
    let nodes = node_list(&api1);
    assert_eq!(nodes.len(), 5, "{nodes:?}");
    for (server, role, region) in [
        (&api1, "api", "eu-west"),
        (&api2, "api", "us-east"),
        (&eu1, "media", "eu-west"),
        (&eu2, "media", "eu-west"),
        (&us, "media", "us-east"),
    ] {
        let n = listed(server, &nodes);
        assert_eq!(
            (n["role"].as_str(), n["region"].as_str()),
            (Some(role), Some(region)),
            "{n}"
        );
        assert!(n["load"]["cpu"].is_number(), "{n}");
    }
    // API instances serve no media, media nodes no REST API.
    let (st, _) = send(api1.http.get(format!("{}/sdk/switchboard.js", api1.base))).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = send(eu1.dev(Method::GET, "/v1/rooms")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = send(eu1.http.get(format!("{}/readyz", eu1.base))).await;
    assert_eq!(st, StatusCode::OK);

    // Placement by region, whichever instance is asked.
    assert_eq!(
        token_url(&api1, "nyc-standup", Some("us-east")).await,
        rtc_url(&us)
    );
    let standup = token_url(&api2, "standup", Some("eu-west")).await;
    assert!(eu.contains(&standup), "{standup}");
    for via in apis {
        assert_eq!(token_url(via, "standup", Some("eu-west")).await, standup);
        // Once live, the room is joined through each region's own node.
        assert_eq!(
            token_url(via, "standup", Some("us-east")).await,
            rtc_url(&us)
        );
    }
    // A room created in a region goes there whatever the token asks.
    let (st, _) = send(
        api2.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "board", "region": "us-east" })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    assert_eq!(
        token_url(&api1, "board", Some("eu-west")).await,
        rtc_url(&us)
    );
    // A region without nodes is a preference, not a refusal; garbage is a clear 400.
    let far = token_url(&api1, "far", Some("ap-south")).await;
    assert!(far == rtc_url(&us) || eu.contains(&far), "{far}");
    for bad in [json!("EU WEST"), json!(""), json!(7), json!("x".repeat(65))] {
        let msg = expect_error(
            api1.dev(Method::POST, "/v1/tokens")
                .json(&json!({ "room": "r", "identity": "a", "region": bad })),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
        assert!(
            msg.contains("region") || msg.contains("expected a string"),
            "{msg}"
        );
    }

    // A live room: REST calls reach its node from either API instance, and
    // the node reports the load.
    let meeting = token_url(&api1, "meeting", Some("eu-west")).await;
    let host = [&eu1, &eu2, &us]
        .into_iter()
        .find(|s| rtc_url(s) == meeting)
        .unwrap();
    let mut loadtest = api1.command();
    loadtest.args([
        "loadtest",
        "--url",
        &api2.base,
        "--api-key",
        "devkey",
        "--api-secret",
        "secret",
        "--room",
        "meeting",
        "--publishers",
        "1",
        "--subscribers",
        "1",
        "--video-bitrate",
        "300k",
        "--duration",
        "10s",
    ]);
    let loadtest = tokio::task::spawn_blocking(move || loadtest.output().unwrap());
    let mut people = Vec::new();
    let mut last = Value::Null;
    for _ in 0..60 {
        // The room exists once the first participant joined.
        let (st, list) = send(api1.dev(Method::GET, "/v1/rooms/meeting/participants")).await;
        assert!(
            st == StatusCode::OK || st == StatusCode::NOT_FOUND,
            "{list}"
        );
        people = list["data"].as_array().cloned().unwrap_or_default();
        last = list;
        if people.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    if people.len() != 2 {
        let out = loadtest.await.unwrap();
        panic!(
            "the load test's two participants never showed ({last}); load test:\n{}\n{}\nhost's log:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            host.log()
        );
    }
    let identity = people[0]["identity"].as_str().unwrap().to_owned();
    for (i, via) in apis.iter().enumerate() {
        let (st, list) = send(via.dev(Method::GET, "/v1/rooms/meeting/participants")).await;
        assert_eq!(st, StatusCode::OK, "{list}");
        assert_eq!(list["data"].as_array().unwrap().len(), 2, "{list}");
        let (st, p) = send(
            via.dev(
                Method::PATCH,
                &format!("/v1/rooms/meeting/participants/{identity}"),
            )
            .json(&json!({ "metadata": format!("set through api {i}") })),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{p}");
        assert_eq!(p["metadata"], format!("set through api {i}"));
        // Someone not there is a clear 404, not a timeout.
        expect_error(
            via.dev(Method::DELETE, "/v1/rooms/meeting/participants/nobody"),
            StatusCode::NOT_FOUND,
            "participant_not_found",
        )
        .await;
    }
    let mut load = Value::Null;
    for _ in 0..30 {
        load = listed(host, &node_list(&api1))["load"].clone();
        if load["participants"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(load["participants"], 2, "{load}");
    assert_eq!(load["rooms"], 1, "{load}");
    assert!(load["tracks"].as_u64().unwrap() >= 1, "{load}");
    // Placement by load: the next new room of the region goes to the other,
    // idle node (2 of 3 participants outweighs any idle node's CPU share).
    let idle = eu.iter().find(|u| **u != meeting).unwrap();
    assert_eq!(
        &token_url(&api2, "second-meeting", Some("eu-west")).await,
        idle
    );
    let out = loadtest.await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every node's events are in one log, gap-free and in order, whichever
    // instance is asked.
    let (_, events) = send(api2.dev(Method::GET, "/v1/events?limit=100")).await;
    let log = events["data"].as_array().unwrap().clone();
    let seqs: Vec<i64> = log.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "{events}"
    );
    let joined = log
        .iter()
        .filter(|e| e["type"] == "participant.joined")
        .count();
    assert_eq!(joined, 2, "{events}");
    let (_, same) = send(api1.dev(Method::GET, "/v1/events?limit=100")).await;
    assert_eq!(same["data"].as_array().unwrap()[..log.len()], log[..]);

    // Data residency: a project pinned to eu-west gets no new room elsewhere,
    // whatever the hint, and says so to anyone who asks for another region.
    let (st, project) = send(
        api1.dev(Method::PATCH, "/v1/project")
            .json(&json!({ "regions": ["eu-west"] })),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{project}");
    assert_eq!(project["regions"], json!(["eu-west"]));
    let pinned = token_url(&api2, "pinned", Some("us-east")).await;
    assert!(eu.contains(&pinned), "{pinned}");
    expect_error(
        api2.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "abroad", "region": "us-east" })),
        StatusCode::BAD_REQUEST,
        "region_not_allowed",
    )
    .await;
    let many: Vec<String> = (0..17).map(|i| format!("r{i}")).collect();
    for bad in [
        json!(["EU"]),
        json!("eu-west"),
        json!(["eu-west", "eu-west"]),
        json!(many),
        json!([1]),
    ] {
        expect_error(
            api1.dev(Method::PATCH, "/v1/project")
                .json(&json!({ "regions": bad })),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
    }
    // A token signed offline cannot make the us-east node host a room.
    let offline = offline_token(&api1, "sneaky", "eve");
    let msg = expect_error(
        us.http
            .get(format!("{}/rtc?access_token={}", us.base, offline)),
        StatusCode::FORBIDDEN,
        "region_not_allowed",
    )
    .await;
    assert!(msg.contains("eu-west"), "{msg}");
    let (st, project) = send(
        api1.dev(Method::PATCH, "/v1/project")
            .json(&json!({ "regions": [] })),
    )
    .await;
    assert_eq!((st, &project["regions"]), (StatusCode::OK, &json!([])));

    // A dead node: its rooms go to a healthy node of the same region, not
    // to the idle node elsewhere, once its heartbeats have stopped long enough.
    let (mut dead, survivor) = if standup == eu[0] {
        (eu1, eu2)
    } else {
        (eu2, eu1)
    };
    dead.kill_9();
    tokio::time::sleep(Duration::from_secs(17)).await;
    assert_eq!(token_url(&api2, "standup", None).await, rtc_url(&survivor));
    // The meter then closes the dead node (its sessions end at its last heartbeat).
    let mut nodes = node_list(&api1);
    for _ in 0..20 {
        if nodes.iter().all(|n| n["url"] != dead.base.as_str()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        nodes = node_list(&api1);
    }
    assert_eq!(nodes.len(), 4, "the dead node is still listed: {nodes:?}");

    // Draining: the node keeps its room, and new rooms go to another.
    let replacement = api1.sibling(&args(&node_args("media", "eu-west")));
    let out = api1.cli(&["node", "drain", &node_id_of(&survivor, &nodes)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("is draining"));
    assert_eq!(token_url(&api1, "standup", None).await, rtc_url(&survivor));
    // (Two: each token counts as a join on its way, and nodes here take three.)
    for i in 0..2 {
        assert_eq!(
            token_url(&api2, &format!("new-{i}"), Some("eu-west")).await,
            rtc_url(&replacement)
        );
    }
    assert!(listed(&survivor, &node_list(&api1))["draining_since"].is_string());
    // A WHIP encoder posting to another node of the room's region is
    // redirected to the room's node with its token in the URL (HTTP clients drop Authorization on the way);
    // the offer is garbage, so the node that read it says so.
    let obs = api_token(&api1, "standup", "obs").await;
    let answer = replacement
        .http
        .post(format!("{}/v1/whip/rooms/standup", replacement.base))
        .bearer_auth(&obs)
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.url().origin(),
        reqwest::Url::parse(&survivor.base).unwrap().origin()
    );
    assert_eq!(answer.url().path(), "/v1/whip/rooms/standup");
    let (st, body) = (answer.status(), answer.text().await.unwrap());
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("invalid_offer"), "{body}");
    let redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let whep = redirect
        .post(format!(
            "{}/v1/whep/rooms/standup/participants/obs?access_token={}",
            replacement.base,
            api_token(&api2, "standup", "viewer").await
        ))
        .header("content-type", "application/sdp")
        .body("v=0\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(whep.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = whep.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with(&format!(
            "{}/v1/whep/rooms/standup/participants/obs?access_token=",
            survivor.base
        )),
        "{location}"
    );
    // Draining an unknown node, or garbage, says what is wrong.
    let out = api1.cli(&["node", "drain", &format!("nd_{}", "0".repeat(26))]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("switchboard node list"), "{err}");
    let out = api1.cli(&["node", "drain", "not-a-node"]);
    assert!(!out.status.success());
    assert!(!out.stderr.is_empty());

    // With every media node draining, a new room is refused with the reason;
    // placed rooms still route.
    let nodes = node_list(&api1);
    for server in [&replacement, &us] {
        assert!(api1
            .cli(&["node", "drain", &node_id_of(server, &nodes)])
            .status
            .success());
    }
    let msg = expect_error(
        api2.dev(Method::POST, "/v1/tokens")
            .json(&json!({ "room": "late", "identity": "a" })),
        StatusCode::SERVICE_UNAVAILABLE,
        "no_media_node",
    )
    .await;
    assert!(msg.contains("draining or full"), "{msg}");
    assert_eq!(token_url(&api2, "standup", None).await, rtc_url(&survivor));
}

#[test]
fn split_roles_refuse_to_start_without_nats_or_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |extra: &[&str]| {
        std::process::Command::new(binary())
            .env("SWITCHBOARD_DATA_DIR", dir.path())
            .env("SWITCHBOARD_RTC_UDP_PORT", "0")
            .env_remove("DATABASE_URL")
            .args(["serve", "--http-addr", "127.0.0.1:0"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = serve(&["--role", "media"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--nats-url"), "{err}");
    let out = serve(&["--role", "api", "--nats-url", &nats_url()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PostgreSQL"), "{err}");
    let out = serve(&["--role", "sfu"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`all`, `api` and `media`"), "{err}");
    let out = serve(&["--nats-url", "nats://127.0.0.1:1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot connect to NATS at nats://127.0.0.1:1"),
        "{err}"
    );
}
