//! Webhooks end to end: the real binary, REST management, real receivers on
//! loopback, signatures checked by the Standard Webhooks reference library
//! (Python, `tests/peers/verify_webhooks.py`), the SSRF refusals outside dev
//! mode, and no loss across `kill -9`.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{expect_error, send, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard_store::Backend;
use switchboard_webhooks::testing::{Received, Receiver, Reply};

switchboard_store::on_both_backends!(
    endpoints_are_managed_over_rest,
    deliveries_verify_with_the_reference_library,
    deliveries_and_events_are_listed_retried_and_replayed,
    nothing_is_lost_across_kill_9,
);

/// Outside `--dev` the address rules hold for every URL a project saves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_and_plain_http_urls_are_refused_outside_dev() {
    let s = Server::start_with(Backend::Sqlite, &[]).await;
    let (_, _, secret) = s.create_project("prod");
    let create = |url: &str| {
        s.bearer(&secret, Method::POST, "/v1/webhooks")
            .json(&json!({ "url": url, "events": ["*"] }))
    };
    expect_error(
        create("http://hooks.example.com/"),
        StatusCode::BAD_REQUEST,
        "insecure_url",
    )
    .await;
    for url in [
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://10.20.30.40/hook",
        "https://192.168.0.10/hook",
        "https://172.31.255.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/",
        "https://[::ffff:10.0.0.1]/",
        "https://0.0.0.0/",
        "https://2130706433/",
    ] {
        let msg = expect_error(create(url), StatusCode::BAD_REQUEST, "forbidden_address").await;
        assert!(msg.contains("public addresses"), "{url}: {msg}");
    }
    // A host name is resolved when delivering, and refused then (see the
    // worker's tests); saving it is fine.
    let (st, wh) = send(create("https://localhost:9/hook")).await;
    assert_eq!(st, StatusCode::CREATED, "{wh}");
    let id = wh["id"].as_str().unwrap();
    expect_error(
        s.bearer(&secret, Method::PATCH, &format!("/v1/webhooks/{id}"))
            .json(&json!({ "url": "https://169.254.169.254/" })),
        StatusCode::BAD_REQUEST,
        "forbidden_address",
    )
    .await;
    let (_, list) = send(s.bearer(&secret, Method::GET, "/v1/webhooks")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    // The test event's attempt says why nothing was sent.
    send(s.bearer(&secret, Method::POST, &format!("/v1/webhooks/{id}/test"))).await;
    let error = loop {
        let (_, d) = send(s.bearer(
            &secret,
            Method::GET,
            &format!("/v1/webhooks/{id}/deliveries"),
        ))
        .await;
        if let Some(e) = d["data"][0]["attempts"][0]["error"].as_str() {
            break e.to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(error.contains("loopback"), "{error}");
}

const WAIT: Duration = Duration::from_secs(20);

/// What the reference library says of each delivery under `secret`: true, or its error.
fn verify(secret: &str, deliveries: &[Received]) -> Vec<Value> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/verify_webhooks.py"
    );
    let input = json!({
        "secret": secret,
        "deliveries": deliveries.iter().map(|d| json!({
            "headers": d.headers,
            "body": String::from_utf8_lossy(&d.body),
        })).collect::<Vec<_>>(),
    });
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 with standardwebhooks (tests/peers/requirements.txt) must be installed");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "verify_webhooks.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn create_endpoint(s: &Server, url: &str, events: Value) -> (String, String) {
    let (st, wh) = send(
        s.dev(Method::POST, "/v1/webhooks")
            .json(&json!({ "url": url, "events": events, "description": "test receiver" })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{wh}");
    (
        wh["id"].as_str().unwrap().to_owned(),
        wh["secret"].as_str().unwrap().to_owned(),
    )
}

async fn create_room(s: &Server, name: &str) {
    let (st, body) = send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": name })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
}

async fn endpoints_are_managed_over_rest(b: Backend) {
    let s = Server::start(b).await;
    let (st, wh) = send(s.dev(Method::POST, "/v1/webhooks").json(&json!({
        "url": "http://127.0.0.1:9/hook", "events": ["participant.joined", "room.*"],
        "description": "ops", "enabled": false
    })))
    .await;
    assert_eq!(st, StatusCode::CREATED, "{wh}");
    let id = wh["id"].as_str().unwrap();
    assert!(id.starts_with("wh_"));
    assert!(wh["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(wh["events"], json!(["participant.joined", "room.*"]));
    assert_eq!(wh["enabled"], false);

    // Read, list, change: never the secret again.
    let (st, got) = send(s.dev(Method::GET, &format!("/v1/webhooks/{id}"))).await;
    assert_eq!(st, StatusCode::OK);
    assert!(got.get("secret").is_none());
    assert_eq!(got["description"], "ops");
    let (_, list) = send(s.dev(Method::GET, "/v1/webhooks")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(list["data"][0].get("secret").is_none());
    let (st, patched) = send(
        s.dev(Method::PATCH, &format!("/v1/webhooks/{id}"))
            .json(&json!({ "enabled": true, "events": ["*"] })),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{patched}");
    assert_eq!(patched["enabled"], true);
    assert_eq!(patched["events"], json!(["*"]));
    assert_eq!(patched["url"], "http://127.0.0.1:9/hook");

    // Rotation hands out a new secret and says how long the old one still signs.
    let (st, rotated) =
        send(s.dev(Method::POST, &format!("/v1/webhooks/{id}/rotate-secret"))).await;
    assert_eq!(st, StatusCode::OK);
    assert!(rotated["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_ne!(rotated["secret"], wh["secret"]);
    assert!(rotated["previous_secret_expires_at"].is_string());

    // Garbage is refused with a code that says what is wrong, and creates nothing.
    for (body, code) in [
        (json!({"url": "not a url", "events": ["*"]}), "invalid_url"),
        (
            json!({"url": "ftp://example.com/", "events": ["*"]}),
            "invalid_url",
        ),
        (
            json!({"url": "https://example.com/", "events": ["room.begun"]}),
            "invalid_event_types",
        ),
        (
            json!({"url": "https://example.com/", "events": []}),
            "invalid_event_types",
        ),
        (
            json!({"url": "https://example.com/", "events": "room.*"}),
            "invalid_request",
        ),
        (json!({"url": "https://example.com/"}), "invalid_request"),
        (
            json!({"url": "https://example.com/", "events": ["*"], "colour": "red"}),
            "invalid_request",
        ),
        (
            json!({"url": "https://example.com/", "events": ["*"], "description": "a\u{0}b"}),
            "invalid_request",
        ),
        (
            json!({"url": format!("https://example.com/{}", "a".repeat(3000)), "events": ["*"]}),
            "invalid_url",
        ),
    ] {
        let msg = expect_error(
            s.dev(Method::POST, "/v1/webhooks").json(&body),
            StatusCode::BAD_REQUEST,
            code,
        )
        .await;
        if code == "invalid_event_types" && body["events"] != json!([]) {
            assert!(
                msg.contains("room.started"),
                "the message lists the catalogue: {msg}"
            );
        }
    }
    expect_error(
        s.dev(Method::POST, "/v1/webhooks").body("{not json"),
        StatusCode::BAD_REQUEST,
        "invalid_json",
    )
    .await;
    expect_error(
        s.dev(Method::PATCH, &format!("/v1/webhooks/{id}"))
            .json(&json!({ "url": "gopher://x" })),
        StatusCode::BAD_REQUEST,
        "invalid_url",
    )
    .await;
    let (_, list) = send(s.dev(Method::GET, "/v1/webhooks")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    // Another project sees none of it.
    let (_, _, other) = s.create_project("other");
    for (method, path) in [
        (Method::GET, format!("/v1/webhooks/{id}")),
        (Method::PATCH, format!("/v1/webhooks/{id}")),
        (Method::DELETE, format!("/v1/webhooks/{id}")),
        (Method::POST, format!("/v1/webhooks/{id}/rotate-secret")),
        (Method::POST, format!("/v1/webhooks/{id}/test")),
        (Method::GET, format!("/v1/webhooks/{id}/deliveries")),
    ] {
        expect_error(
            s.bearer(&other, method, &path).json(&json!({})),
            StatusCode::NOT_FOUND,
            "webhook_not_found",
        )
        .await;
    }
    let (_, theirs) = send(s.bearer(&other, Method::GET, "/v1/webhooks")).await;
    assert_eq!(theirs["data"], json!([]));
    expect_error(
        s.dev(Method::GET, "/v1/webhooks/wh_garbage"),
        StatusCode::NOT_FOUND,
        "webhook_not_found",
    )
    .await;

    let (st, _) = send(s.dev(Method::DELETE, &format!("/v1/webhooks/{id}"))).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    expect_error(
        s.dev(Method::GET, &format!("/v1/webhooks/{id}")),
        StatusCode::NOT_FOUND,
        "webhook_not_found",
    )
    .await;
}

async fn deliveries_verify_with_the_reference_library(b: Backend) {
    let s = Server::start(b).await;
    let rx = Receiver::start().await.unwrap();
    let (id, secret) = create_endpoint(&s, &rx.url("/hooks"), json!(["room.*"])).await;
    create_room(&s, "alpha").await;
    create_room(&s, "beta").await;
    let (st, _) = send(s.dev(Method::DELETE, "/v1/rooms/alpha")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);

    let got = rx.wait_for(3, WAIT).await;
    assert_eq!(got.len(), 3, "three room events delivered");
    assert_eq!(verify(&secret, &got), vec![json!(true); 3]);
    // A wrong secret fails verification: the check is real.
    let wrong = verify("whsec_dGhpcyBpcyBub3QgdGhlIHNlY3JldCBhdCBhbGw=", &got);
    assert!(
        wrong
            .iter()
            .all(|r| r.as_str().is_some_and(|e| e.contains("signature"))),
        "{wrong:?}"
    );

    // Order holds within a room; rooms are delivered in parallel.
    let of_room = |room: &str| -> Vec<Value> {
        got.iter()
            .map(|r| r.json())
            .filter(|b| b["data"]["room"]["name"] == room)
            .map(|b| b["type"].clone())
            .collect()
    };
    assert_eq!(
        of_room("alpha"),
        vec![json!("room.started"), json!("room.finished")]
    );
    assert_eq!(of_room("beta"), vec![json!("room.started")]);
    let (_, project) = send(s.dev(Method::GET, "/v1/project")).await;
    for r in &got {
        let body = r.json();
        assert_eq!(r.headers["webhook-id"], body["id"].as_str().unwrap());
        assert!(body["id"].as_str().unwrap().starts_with("ev_"));
        assert_eq!(body["project_id"], project["id"]);
        assert!(body["created_at"].is_string());
        assert!(body["data"]["room"]["name"].is_string());
        assert_eq!(r.headers["content-type"], "application/json");
        let ts: i64 = r.headers["webhook-timestamp"].parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
    }

    // The test event goes to this endpoint although it only takes room events.
    let (st, test) = send(s.dev(Method::POST, &format!("/v1/webhooks/{id}/test"))).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let got = rx.wait_for(4, WAIT).await;
    assert_eq!(got[3].json()["type"], "webhook.test");
    assert_eq!(got[3].json()["id"], test["event_id"]);
    assert_eq!(got[3].json()["data"]["webhook_id"], id.as_str());

    // After a rotation both the new and the old secret verify, for 24 hours.
    let (_, rotated) = send(s.dev(Method::POST, &format!("/v1/webhooks/{id}/rotate-secret"))).await;
    let new_secret = rotated["secret"].as_str().unwrap();
    create_room(&s, "gamma").await;
    let got = rx.wait_for(5, WAIT).await;
    let last = &got[4..];
    assert_eq!(last[0].headers["webhook-signature"].split(' ').count(), 2);
    assert_eq!(verify(new_secret, last), vec![json!(true)]);
    assert_eq!(verify(&secret, last), vec![json!(true)]);
}

async fn deliveries_and_events_are_listed_retried_and_replayed(b: Backend) {
    let s = Server::start_with(b, &["--dev", "--webhook-retry-schedule", "1s,1s"]).await;
    let rx = Receiver::start().await.unwrap();
    rx.reply(Reply::Status(500));
    let (id, _) = create_endpoint(&s, &rx.url("/flaky"), json!(["room.started"])).await;
    create_room(&s, "retried").await;
    // Three attempts (the first and two retries a second apart), then failed.
    assert_eq!(rx.wait_for(3, WAIT).await.len(), 3);
    let deliveries = loop {
        let (_, d) = send(s.dev(Method::GET, &format!("/v1/webhooks/{id}/deliveries"))).await;
        if d["data"][0]["status"] == "failed" {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let delivery = &deliveries["data"][0];
    let attempts = delivery["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    for a in attempts {
        assert_eq!(a["status_code"], 500);
        assert_eq!(a["succeeded"], false);
        assert_eq!(a["response_body"], "receiver says 500");
        assert!(a["latency_ms"].is_u64());
        assert!(a["error"].as_str().unwrap().contains("500"));
    }
    let event_id = delivery["event_id"].as_str().unwrap();
    let (st, by_event) =
        send(s.dev(Method::GET, &format!("/v1/events/{event_id}/deliveries"))).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(by_event["data"][0]["id"], delivery["id"]);

    // A manual retry once the receiver is fixed.
    rx.reply(Reply::Status(200));
    let (st, retried) = send(s.dev(
        Method::POST,
        &format!(
            "/v1/webhooks/deliveries/{}/retry",
            delivery["id"].as_str().unwrap()
        ),
    ))
    .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{retried}");
    assert_eq!(rx.wait_for(4, WAIT).await.len(), 4);
    loop {
        let (_, d) = send(s.dev(Method::GET, &format!("/v1/events/{event_id}/deliveries"))).await;
        if d["data"][0]["status"] == "succeeded" {
            assert_eq!(d["data"][0]["attempts"].as_array().unwrap().len(), 4);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    expect_error(
        s.dev(Method::POST, "/v1/webhooks/deliveries/whd_nope/retry"),
        StatusCode::NOT_FOUND,
        "delivery_not_found",
    )
    .await;

    // Replay resends what the endpoint subscribes to, with the same webhook-ids.
    create_room(&s, "second").await;
    assert_eq!(rx.wait_for(5, WAIT).await.len(), 5);
    let (st, replayed) = send(
        s.dev(Method::POST, &format!("/v1/webhooks/{id}/replay"))
            .json(&json!({ "since": "2020-01-01T00:00:00Z" })),
    )
    .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{replayed}");
    assert_eq!(replayed["queued"], 2);
    let got = rx.wait_for(7, WAIT).await;
    let first_ids: BTreeSet<_> = got[..5]
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    let replay_ids: BTreeSet<_> = got[5..]
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    assert_eq!(replay_ids.len(), 2);
    assert!(replay_ids.is_subset(&first_ids));
    for (body, code) in [
        (json!({}), "invalid_request"),
        (json!({"since": "yesterday"}), "invalid_request"),
        (json!({"since": "2999-01-01T00:00:00Z"}), "invalid_request"),
    ] {
        expect_error(
            s.dev(Method::POST, &format!("/v1/webhooks/{id}/replay"))
                .json(&body),
            StatusCode::BAD_REQUEST,
            code,
        )
        .await;
    }

    // The event log, filtered and paged.
    let (st, page) = send(s.dev(Method::GET, "/v1/events?type=room.started&limit=1")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["data"]["room"]["name"], "retried");
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, next) = send(s.dev(
        Method::GET,
        &format!("/v1/events?type=room.started&limit=1&cursor={cursor}"),
    ))
    .await;
    assert_eq!(next["data"][0]["data"]["room"]["name"], "second");
    assert!(next["next_cursor"].is_null());
    let (_, by_room) = send(s.dev(Method::GET, "/v1/events?room=second")).await;
    assert_eq!(by_room["data"].as_array().unwrap().len(), 1);
    let (_, later) = send(s.dev(Method::GET, "/v1/events?since=2999-01-01T00:00:00Z")).await;
    assert_eq!(later["data"], json!([]));
    let (st, one) = send(s.dev(Method::GET, &format!("/v1/events/{event_id}"))).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(one["id"], event_id);
    for (query, code) in [
        ("type=room.begun", "invalid_event_type"),
        ("cursor=abc", "invalid_cursor"),
        ("cursor=-4", "invalid_cursor"),
        ("since=yesterday", "invalid_request"),
        ("limit=0", "invalid_request"),
        ("colour=red", "invalid_request"),
    ] {
        expect_error(
            s.dev(Method::GET, &format!("/v1/events?{query}")),
            StatusCode::BAD_REQUEST,
            code,
        )
        .await;
    }
    expect_error(
        s.dev(Method::GET, "/v1/events/ev_nope"),
        StatusCode::NOT_FOUND,
        "event_not_found",
    )
    .await;
    let (_, _, other) = s.create_project("other");
    expect_error(
        s.bearer(
            &other,
            Method::GET,
            &format!("/v1/events/{event_id}/deliveries"),
        ),
        StatusCode::NOT_FOUND,
        "event_not_found",
    )
    .await;
    let (_, theirs) = send(s.bearer(&other, Method::GET, "/v1/events")).await;
    assert_eq!(theirs["data"], json!([]));
}

async fn nothing_is_lost_across_kill_9(b: Backend) {
    let args = [
        "--dev",
        "--webhook-retry-schedule",
        "1s,1s,1s,1s,1s,1s,1s,1s,1s,1s",
    ];
    let mut s = Server::start_with(b, &args).await;
    let rx = Receiver::start().await.unwrap();
    // Slow answers keep deliveries in flight when the server dies.
    rx.reply(Reply::After(Duration::from_secs(3), 200));
    create_endpoint(&s, &rx.url("/durable"), json!(["*"])).await;
    for i in 0..30 {
        create_room(&s, &format!("room-{i}")).await;
    }
    assert!(!rx.wait_for(1, WAIT).await.is_empty(), "deliveries started");
    // Killed while the first requests wait for their (3 s late) answers.
    s.kill_9();
    let in_flight: BTreeSet<String> = rx
        .received()
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    let arrived_before = rx.received().len();
    rx.reply(Reply::Status(200));
    s.start_again(&args);

    let events: BTreeSet<String> = s.events().await.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(events.len(), 30);
    // Leases of the killed process lapse after the 15 s timeout and a margin.
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    loop {
        let after: BTreeSet<String> = rx.received()[arrived_before..]
            .iter()
            .map(|r| r.headers["webhook-id"].clone())
            .collect();
        let seen: BTreeSet<String> = in_flight.union(&after).cloned().collect();
        // Everything arrives, and what was in flight when the server died (never
        // answered, so never acknowledged) arrives again.
        if events.is_subset(&seen) && in_flight.is_subset(&after) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after kill -9: {} of 30 events never arrived, {} of {} in-flight deliveries were not sent again; log:\n{}",
            events.difference(&seen).count(),
            in_flight.difference(&after).count(),
            in_flight.len(),
            s.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every delivery ends up succeeded, none twice in the outbox.
    let (_, list) = send(s.dev(Method::GET, "/v1/webhooks")).await;
    let id = list["data"][0]["id"].as_str().unwrap();
    let (_, d) = send(s.dev(
        Method::GET,
        &format!("/v1/webhooks/{id}/deliveries?limit=100"),
    ))
    .await;
    let d = d["data"].as_array().unwrap();
    assert_eq!(d.len(), 30);
    assert!(d.iter().all(|x| x["status"] == "succeeded"), "{d:?}");
    let distinct: BTreeSet<_> = d.iter().map(|x| x["event_id"].as_str().unwrap()).collect();
    assert_eq!(distinct.len(), 30);
}
