//! Functions end to end: the JavaScript example in `examples/functions`,
//! built with componentize-js from npm, deployed with `switchboard functions
//! deploy`, gating real browsers' joins; and the REST API's refusals.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::browser::{isolated, Driver};
use common::{expect_error, logging_component, send, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard_store::Backend;

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/functions")
}

/// Builds `examples/functions/gate.wasm` with the commands its README gives
/// (outside the test's network namespace: npm needs the registry).
fn build_example() -> PathBuf {
    let dir = example_dir();
    let wasm = dir.join("gate.wasm");
    if std::env::var_os("SWITCHBOARD_TEST_NETNS").is_some() {
        assert!(
            wasm.exists(),
            "the example was built before entering the namespace"
        );
        return wasm;
    }
    if !dir
        .join("node_modules/@bytecodealliance/componentize-js")
        .exists()
    {
        let st = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("run npm (Node.js) to install componentize-js");
        assert!(st.success(), "npm ci failed in {}", dir.display());
    }
    let st = Command::new("npm")
        .args(["run", "build"])
        .current_dir(&dir)
        .status()
        .expect("run npm run build");
    assert!(st.success(), "componentize-js failed to build the example");
    wasm
}

async fn token(s: &Server, room: &str, identity: &str) -> (String, String) {
    let (st, t) = send(
        s.dev(Method::POST, "/v1/tokens")
            .json(&json!({ "room": room, "identity": identity, "grants": {"can_publish": true, "can_subscribe": true} })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    (
        t["url"].as_str().unwrap().to_owned(),
        t["token"].as_str().unwrap().to_owned(),
    )
}

const JOIN: &str = r#"
    const [url, token] = args;
    const { connect } = await import('/sdk/switchboard.js');
    try {
      const room = await connect(url, token);
      window.room = room;
      const deadline = Date.now() + 15000;
      while (room.subscriber.connectionState !== 'connected' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
      }
      return { joined: true, name: room.localParticipant.name, state: room.subscriber.connectionState };
    } catch (e) {
      return { joined: false, error: String(e.message || e) };
    }
"#;

#[test]
fn the_javascript_gate_admits_guests_and_refuses_others_in_real_browsers() {
    let wasm = build_example();
    isolated(
        "the_javascript_gate_admits_guests_and_refuses_others_in_real_browsers",
        || async move {
            let s = Server::start(Backend::Sqlite).await;
            let deploy = s
                .command()
                .args(["functions", "deploy", "gate"])
                .arg(&wasm)
                .args(["--events", "participant.joining,participant.joined"])
                .args([
                    "--url",
                    &s.base,
                    "--api-key",
                    "devkey",
                    "--api-secret",
                    "secret",
                ])
                .output()
                .unwrap();
            assert!(
                deploy.status.success(),
                "{}",
                String::from_utf8_lossy(&deploy.stderr)
            );
            assert!(String::from_utf8_lossy(&deploy.stdout).contains("deployed gate version 1"));
            send(
                s.dev(Method::POST, "/v1/rooms")
                    .json(&json!({ "name": "lobby" })),
            )
            .await;
            let (st, _) = send(
                s.dev(Method::PUT, "/v1/kv/guest:alice")
                    .json(&json!({ "value": "{\"name\": \"Alice (host)\"}" })),
            )
            .await;
            assert_eq!(st, StatusCode::OK);

            let driver = Driver::start().await;
            let browser = driver.browser().await;
            browser
                .client
                .goto(&format!("{}/demo", s.base))
                .await
                .unwrap();
            let (url, bob) = token(&s, "lobby", "bob").await;
            let refused = browser.run(JOIN, vec![json!(url), json!(bob)]).await;
            assert_eq!(refused["joined"], false, "{refused}");
            assert_eq!(
                refused["error"], "bob is not on the guest list",
                "{refused}"
            );

            let (url, alice) = token(&s, "lobby", "alice").await;
            let admitted = browser.run(JOIN, vec![json!(url), json!(alice)]).await;
            assert_eq!(admitted["joined"], true, "{admitted}");
            assert_eq!(admitted["state"], "connected", "{admitted}");
            assert_eq!(
                admitted["name"], "Alice (host)",
                "the function renamed her: {admitted}"
            );
            let (_, people) = send(s.dev(Method::GET, "/v1/rooms/lobby/participants")).await;
            assert_eq!(people["data"][0]["identity"], "alice", "{people}");
            assert_eq!(people["data"][0]["name"], "Alice (host)", "{people}");

            // The join hook's lines, then the asynchronous handler's count of joins.
            let (_, logs) = send(s.dev(Method::GET, "/v1/functions/gate/logs")).await;
            let lines: Vec<&str> = logs["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["message"].as_str().unwrap())
                .collect();
            assert!(
                lines.contains(&"refused bob in lobby: not on the guest list"),
                "{logs}"
            );
            assert!(lines.contains(&"admitted alice in lobby"), "{logs}");
            let count = wait_for(|| async {
                let (st, v) = send(s.dev(Method::GET, "/v1/kv/joins:lobby")).await;
                (st == StatusCode::OK).then(|| v["value"].clone())
            })
            .await;
            assert_eq!(count, "1");
            // The event handler runs after the join, from the log: wait for it.
            let inv = wait_for(|| async {
                let (_, inv) = send(s.dev(Method::GET, "/v1/functions/gate/invocations")).await;
                inv["data"]
                    .as_array()
                    .is_some_and(|all| {
                        all.iter()
                            .any(|i| i["trigger"] == "event" && i["outcome"] == "ok")
                    })
                    .then_some(inv)
            })
            .await;
            let triggers: Vec<(&str, &str)> = inv["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| {
                    (
                        i["trigger"].as_str().unwrap(),
                        i["outcome"].as_str().unwrap(),
                    )
                })
                .collect();
            assert!(triggers.contains(&("event", "ok")), "{inv}");
            assert_eq!(
                triggers.iter().filter(|t| t.0 == "joining").count(),
                2,
                "{inv}"
            );
            let stdout = wait_for(|| async {
                let (_, logs) = send(s.dev(Method::GET, "/v1/functions/gate/logs")).await;
                logs["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|l| l["level"] == "stdout")
                    .map(|l| l["message"].clone())
            })
            .await;
            assert_eq!(stdout, "room lobby has had 1 joins");
            browser.close().await;
        },
    );
}

async fn wait_for<F, Fut>(mut probe: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    for _ in 0..100 {
        if let Some(v) = probe().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition not met in 10 s");
}

fn upload(s: &Server, name: &str, events: &str, body: Vec<u8>) -> reqwest::RequestBuilder {
    s.dev(
        Method::POST,
        &format!("/v1/functions/{name}/versions?events={events}"),
    )
    .header("content-type", "application/wasm")
    .body(body)
}

/// The response to an upload that declares `len` bytes and sends none of them.
async fn declared_upload(s: &Server, len: usize) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = s.base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "POST /v1/functions/gate/versions?events=room.* HTTP/1.1\r\nhost: {host}\r\n\
         authorization: Basic ZGV2a2V5OnNlY3JldA==\r\ncontent-type: application/wasm\r\n\
         content-length: {len}\r\nconnection: close\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

switchboard_store::on_both_backends!(
    functions_are_managed_over_rest,
    async_handlers_run_on_every_event_across_kill_9,
);

/// Events logged just before a `kill -9` still run the handler after the restart.
async fn async_handlers_run_on_every_event_across_kill_9(backend: Backend) {
    let mut s = Server::start(backend).await;
    let (st, _) = send(upload(&s, "watcher", "room.*", logging_component())).await;
    assert_eq!(st, StatusCode::CREATED);
    for i in 0..20 {
        let (st, _) = send(
            s.dev(Method::POST, "/v1/rooms")
                .json(&json!({ "name": format!("r{i}") })),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED);
    }
    s.kill_9();
    s.start_again(&["--dev"]);
    let wanted: std::collections::BTreeSet<String> = s
        .events()
        .await
        .iter()
        .filter(|e| e.event_type() == "room.started")
        .map(|e| e.id.to_string())
        .collect();
    assert_eq!(wanted.len(), 20);
    let ran = wait_for(|| async {
        let (_, inv) =
            send(s.dev(Method::GET, "/v1/functions/watcher/invocations?limit=100")).await;
        let ran: std::collections::BTreeSet<String> = inv["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["trigger"] == "event" && i["outcome"] == "ok")
            .filter_map(|i| i["event_id"].as_str().map(str::to_owned))
            .collect();
        (ran.len() >= 20).then(|| json!(ran))
    })
    .await;
    let ran: std::collections::BTreeSet<String> = serde_json::from_value(ran).unwrap();
    assert_eq!(ran, wanted);
}

async fn functions_are_managed_over_rest(backend: Backend) {
    let s = Server::start(backend).await;
    // Garbage is refused with the reason, and nothing is stored.
    let msg = expect_error(
        upload(&s, "gate", "participant.joining", b"not wasm".to_vec()),
        StatusCode::BAD_REQUEST,
        "invalid_component",
    )
    .await;
    assert!(msg.contains("not WebAssembly"), "{msg}");
    let core = wat::parse_str("(module)").unwrap();
    let msg = expect_error(
        upload(&s, "gate", "participant.joining", core),
        StatusCode::BAD_REQUEST,
        "invalid_component",
    )
    .await;
    assert!(msg.contains("core WebAssembly module"), "{msg}");
    expect_error(
        upload(&s, "gate", "room.nope", logging_component()),
        StatusCode::BAD_REQUEST,
        "invalid_event_types",
    )
    .await;
    expect_error(
        upload(&s, "gate", "", logging_component()),
        StatusCode::BAD_REQUEST,
        "invalid_event_types",
    )
    .await;
    expect_error(
        upload(&s, "Bad%20Name", "room.*", logging_component()),
        StatusCode::BAD_REQUEST,
        "invalid_name",
    )
    .await;
    expect_error(
        s.dev(Method::POST, "/v1/functions/gate/versions?events=room.*")
            .header("content-type", "application/json")
            .body("{}"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    // Over 32 MiB is refused from the declared length, before the body is read
    // (a client still writing would see the connection close, so send headers only).
    let answer = declared_upload(&s, switchboard_core::function::MAX_COMPONENT_BYTES + 1).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    let (_, list) = send(s.dev(Method::GET, "/v1/functions")).await;
    assert_eq!(list["data"], json!([]), "{list}");

    // Two versions, a rollback, test runs, invocations, deletion.
    let (st, v1) = send(upload(
        &s,
        "gate",
        "participant.joining,room.*",
        logging_component(),
    ))
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v1}");
    assert_eq!(v1["version"]["version"], 1);
    assert_eq!(
        v1["version"]["events"],
        json!(["participant.joining", "room.*"])
    );
    assert_eq!(v1["version"]["digest"].as_str().unwrap().len(), 64);
    let (st, v2) = send(upload(&s, "gate", "room.*", logging_component())).await;
    assert_eq!(st, StatusCode::CREATED, "{v2}");
    assert_eq!(v2["function"]["active_version"], 2);
    let (_, versions) = send(s.dev(Method::GET, "/v1/functions/gate/versions")).await;
    assert_eq!(versions["data"].as_array().unwrap().len(), 2);
    assert_eq!(versions["data"][0]["active"], true);
    let (st, rolled) = send(
        s.dev(Method::POST, "/v1/functions/gate/activate")
            .json(&json!({"version": 1})),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{rolled}");
    assert_eq!(rolled["active_version"], 1);
    expect_error(
        s.dev(Method::POST, "/v1/functions/gate/activate")
            .json(&json!({"version": 9})),
        StatusCode::NOT_FOUND,
        "version_not_found",
    )
    .await;
    let (_, f) = send(s.dev(Method::GET, "/v1/functions/gate")).await;
    assert_eq!(
        f["active_version"], 1,
        "a refused activation changes nothing: {f}"
    );
    let (st, stopped) = send(
        s.dev(Method::POST, "/v1/functions/gate/activate")
            .json(&json!({"version": null})),
    )
    .await;
    assert_eq!(
        (st, &stopped["active_version"]),
        (StatusCode::OK, &Value::Null),
        "{stopped}"
    );
    let (st, _) = send(
        s.dev(Method::POST, "/v1/functions/gate/activate")
            .json(&json!({"version": 1})),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    expect_error(
        s.dev(Method::POST, "/v1/functions/gate/activate")
            .json(&json!({"version": "one"})),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;

    let (st, report) = send(s.dev(Method::POST, "/v1/functions/gate/invoke").json(&json!({
        "event": {"type": "participant.joining", "data": {"room": "lobby", "identity": "ann"}}
    })))
    .await;
    assert_eq!(st, StatusCode::OK, "{report}");
    assert_eq!(report["outcome"], "ok");
    assert_eq!(report["decision"], json!({"allow": {}}));
    let room = json!({"sid": "rm_01JB0000000000000000000000", "name": "lobby"});
    let (st, report) = send(
        s.dev(Method::POST, "/v1/functions/gate/invoke")
            .json(&json!({
                "version": 2, "event": {"type": "room.started", "data": {"room": room}}
            })),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{report}");
    assert_eq!(report["logs"][0]["message"], "saw an event", "{report}");
    expect_error(
        s.dev(Method::POST, "/v1/functions/gate/invoke")
            .json(&json!({"event": {"type": "room.started", "data": {"nope": 1}}})),
        StatusCode::BAD_REQUEST,
        "invalid_event",
    )
    .await;
    expect_error(
        s.dev(Method::POST, "/v1/functions/gate/invoke")
            .json(&json!({"event": {"type": "participant.joining", "data": "x"}})),
        StatusCode::BAD_REQUEST,
        "invalid_event",
    )
    .await;
    let (_, inv) = send(s.dev(Method::GET, "/v1/functions/gate/invocations?limit=1")).await;
    assert_eq!(inv["data"].as_array().unwrap().len(), 1);
    assert_eq!(inv["data"][0]["trigger"], "invoke");
    let cursor = inv["next_cursor"].as_str().unwrap().to_owned();
    let (_, more) = send(s.dev(
        Method::GET,
        &format!("/v1/functions/gate/invocations?cursor={cursor}"),
    ))
    .await;
    assert_eq!(more["data"].as_array().unwrap().len(), 1, "{more}");
    expect_error(
        s.dev(Method::GET, "/v1/functions/gate/invocations?cursor=garbage"),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;

    // The failure policy is a project setting.
    let (_, p) = send(s.dev(Method::GET, "/v1/project")).await;
    assert_eq!(p["function_failure_policy"], "open");
    let (st, p) = send(
        s.dev(Method::PATCH, "/v1/project")
            .json(&json!({"function_failure_policy": "closed"})),
    )
    .await;
    assert_eq!(
        (st, &p["function_failure_policy"]),
        (StatusCode::OK, &json!("closed"))
    );
    expect_error(
        s.dev(Method::PATCH, "/v1/project")
            .json(&json!({"function_failure_policy": "maybe"})),
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;

    // Key-value store garbage.
    let long_key = "k".repeat(257);
    expect_error(
        s.dev(Method::PUT, &format!("/v1/kv/{long_key}"))
            .json(&json!({"value": "x"})),
        StatusCode::BAD_REQUEST,
        "invalid_key",
    )
    .await;
    expect_error(
        s.dev(Method::PUT, "/v1/kv/big")
            .json(&json!({"value": "x".repeat(64 * 1024 + 1)})),
        StatusCode::BAD_REQUEST,
        "value_too_large",
    )
    .await;
    expect_error(
        s.dev(Method::GET, "/v1/kv/missing"),
        StatusCode::NOT_FOUND,
        "key_not_found",
    )
    .await;

    // Another project sees none of it.
    let (_, _, other) = s.create_project("other");
    expect_error(
        s.bearer(&other, Method::GET, "/v1/functions/gate"),
        StatusCode::NOT_FOUND,
        "function_not_found",
    )
    .await;
    let (st, _) = send(s.dev(Method::DELETE, "/v1/functions/gate")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    expect_error(
        s.dev(Method::GET, "/v1/functions/gate"),
        StatusCode::NOT_FOUND,
        "function_not_found",
    )
    .await;
    expect_error(
        s.dev(Method::DELETE, "/v1/functions/gate"),
        StatusCode::NOT_FOUND,
        "function_not_found",
    )
    .await;
}
