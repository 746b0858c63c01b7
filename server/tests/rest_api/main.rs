//! The REST control plane, driven over HTTP against the real binary, on both
//! backends: rooms, credentials and isolation here; [`tokens`] (access
//! tokens, API keys, idempotency), [`contract`] (the OpenAPI document,
//! operational endpoints, dev mode) and [`fuzzed`] (the document against an
//! independent fuzzer) apart.

#[path = "../common/mod.rs"]
mod common;
mod contract;
mod fuzzed;
mod tokens;

use std::collections::BTreeSet;

use common::{expect_error, send, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard_store::Backend;

switchboard_store::on_both_backends!(
    dev_mode_prints_how_to_make_a_first_call,
    rooms_are_created_read_listed_changed_and_deleted,
    a_room_without_a_name_gets_one,
    bad_room_input_is_refused_and_changes_nothing,
    requests_without_valid_credentials_are_refused,
    projects_never_see_each_others_rooms,
    participants_answer_from_the_room_registry,
);

async fn event_types(s: &Server) -> Vec<String> {
    s.events()
        .await
        .iter()
        .map(|e| e.event_type().to_owned())
        .collect()
}

async fn room_count(s: &Server) -> usize {
    let (status, body) = send(s.dev(Method::GET, "/v1/rooms?limit=100")).await;
    assert_eq!(status, StatusCode::OK);
    body["data"].as_array().unwrap().len()
}

/// Sends raw bytes on a fresh connection and returns what the server answers before closing it.
async fn raw_http(s: &Server, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s.base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_end(&mut out),
    )
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn dev_mode_prints_how_to_make_a_first_call(b: Backend) {
    let s = Server::start(b).await;
    assert!(s.banner.contains("devkey"), "{}", s.banner);
    assert!(s.banner.contains("secret"), "{}", s.banner);
    assert!(s.banner.contains(&format!("{}/v1", s.base)), "{}", s.banner);
    let curl = s
        .banner
        .lines()
        .find(|l| l.contains("first call:"))
        .expect("first call line");
    assert!(curl.contains("curl -u devkey:secret -X POST"), "{curl}");
    // The printed call works as printed.
    let (status, room) = send(s.dev(Method::POST, "/v1/rooms").body(r#"{"name":"hello"}"#)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(room["name"], "hello");
}

async fn rooms_are_created_read_listed_changed_and_deleted(b: Backend) {
    let s = Server::start(b).await;
    let (status, room) = send(s.dev(Method::POST, "/v1/rooms").json(&json!({
        "name": "standup", "empty_timeout_s": 60, "max_participants": 8,
        "metadata": "{\"topic\":\"daily\"}", "region": "eu-west"
    })))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    assert!(room["sid"].as_str().unwrap().starts_with("rm_"));
    assert_eq!(room["empty_timeout_s"], 60);
    assert_eq!(room["max_participants"], 8);
    assert_eq!(room["region"], "eu-west");
    assert_eq!(room["num_participants"], 0);

    let (status, got) = send(s.dev(Method::GET, "/v1/rooms/standup")).await;
    assert_eq!((status, &got), (StatusCode::OK, &room));

    for name in ["b", "c", "d", "e"] {
        let (st, _) = send(
            s.dev(Method::POST, "/v1/rooms")
                .json(&json!({ "name": name })),
        )
        .await;
        assert_eq!(st, StatusCode::CREATED);
    }
    // Cursor pagination walks every room exactly once, in creation order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/rooms?limit=2&cursor={c}"),
            None => "/v1/rooms?limit=2".to_owned(),
        };
        let (st, page) = send(s.dev(Method::GET, &path)).await;
        assert_eq!(st, StatusCode::OK);
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        seen.extend(data.iter().map(|r| r["name"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["standup", "b", "c", "d", "e"]);

    let (st, patched) = send(
        s.dev(Method::PATCH, "/v1/rooms/standup")
            .json(&json!({ "metadata": "new", "max_participants": 0 })),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{patched}");
    assert_eq!(patched["metadata"], "new");
    assert_eq!(patched["max_participants"], 0);
    assert_eq!(patched["empty_timeout_s"], 60, "fields left out stay");
    assert_eq!(patched["sid"], room["sid"]);

    let (st, body) = send(s.dev(Method::DELETE, "/v1/rooms/standup")).await;
    assert_eq!((st, body), (StatusCode::NO_CONTENT, Value::Null));
    expect_error(
        s.dev(Method::GET, "/v1/rooms/standup"),
        StatusCode::NOT_FOUND,
        "room_not_found",
    )
    .await;
    expect_error(
        s.dev(Method::DELETE, "/v1/rooms/standup"),
        StatusCode::NOT_FOUND,
        "room_not_found",
    )
    .await;

    // The name is free again, as a new incarnation.
    let (st, again) = send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "standup" })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    assert_ne!(again["sid"], room["sid"]);

    let types = event_types(&s).await;
    assert_eq!(
        types,
        [
            "room.started",
            "room.started",
            "room.started",
            "room.started",
            "room.started",
            "room.finished",
            "room.started"
        ]
    );
}

async fn a_room_without_a_name_gets_one(b: Backend) {
    let s = Server::start(b).await;
    let (st, room) = send(s.dev(Method::POST, "/v1/rooms")).await;
    assert_eq!(st, StatusCode::CREATED, "{room}");
    let name = room["name"].as_str().unwrap();
    assert!(!name.is_empty());
    assert_eq!(room["empty_timeout_s"], 300);
    let (st, _) = send(s.dev(Method::GET, &format!("/v1/rooms/{name}"))).await;
    assert_eq!(st, StatusCode::OK);
}

async fn bad_room_input_is_refused_and_changes_nothing(b: Backend) {
    let s = Server::start(b).await;
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "taken" })),
    )
    .await;
    let events_before = event_types(&s).await.len();
    let post = |body: String| {
        s.dev(Method::POST, "/v1/rooms")
            .header("content-type", "application/json")
            .body(body)
    };
    let bad = StatusCode::BAD_REQUEST;

    expect_error(post("{\"name\": ".into()), bad, "invalid_json").await;
    expect_error(post("{\"name\" \"x\"}".into()), bad, "invalid_json").await;
    expect_error(post("[1,2]".into()), bad, "invalid_request").await;
    expect_error(post("\u{0}\u{1}garbage".into()), bad, "invalid_json").await;
    let m = expect_error(
        post(json!({ "name": "x", "colour": "red" }).to_string()),
        bad,
        "invalid_request",
    )
    .await;
    assert!(m.contains("colour"), "{m}");
    expect_error(
        post(json!({ "name": "" }).to_string()),
        bad,
        "invalid_request",
    )
    .await;
    let m = expect_error(
        post(json!({ "name": "a".repeat(129) }).to_string()),
        bad,
        "invalid_request",
    )
    .await;
    assert!(m.contains("128"), "{m}");
    expect_error(
        post(json!({ "name": "a\nb" }).to_string()),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        post(json!({ "name": "tab\there" }).to_string()),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        post(json!({ "name": 42 }).to_string()),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        post(json!({ "empty_timeout_s": -1 }).to_string()),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        post(json!({ "empty_timeout_s": 86_401 }).to_string()),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        post(json!({ "max_participants": 100_001 }).to_string()),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        post(json!({ "region": "EU WEST" }).to_string()),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        post(json!({ "metadata": "x".repeat(64 * 1024 + 1) }).to_string()),
        bad,
        "metadata_too_large",
    )
    .await;
    // An over-long body is refused from its declared length, before it is read.
    let answer = raw_http(
        &s,
        "POST /v1/rooms HTTP/1.1\r\nHost: t\r\nAuthorization: Basic ZGV2a2V5OnNlY3JldA==\r\n\
         Content-Type: application/json\r\nContent-Length: 2097152\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    expect_error(
        post(json!({ "name": "taken" }).to_string()),
        StatusCode::CONFLICT,
        "room_exists",
    )
    .await;

    // Exactly 64 KiB of metadata and a 128-byte name are fine.
    let (st, _) = send(post(
        json!({ "name": "a".repeat(128), "metadata": "x".repeat(64 * 1024) }).to_string(),
    ))
    .await;
    assert_eq!(st, StatusCode::CREATED);

    let patch = |body: Value| s.dev(Method::PATCH, "/v1/rooms/taken").json(&body);
    expect_error(patch(json!({ "name": "renamed" })), bad, "invalid_request").await;
    expect_error(
        patch(json!({ "metadata": "x".repeat(64 * 1024 + 1) })),
        bad,
        "metadata_too_large",
    )
    .await;
    expect_error(
        patch(json!({ "max_participants": 1_000_000 })),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        s.dev(Method::PATCH, "/v1/rooms/nope").json(&json!({})),
        StatusCode::NOT_FOUND,
        "room_not_found",
    )
    .await;

    expect_error(
        s.dev(Method::GET, "/v1/rooms/unknown"),
        StatusCode::NOT_FOUND,
        "room_not_found",
    )
    .await;
    expect_error(
        s.dev(Method::GET, &format!("/v1/rooms/{}", "a".repeat(129))),
        bad,
        "invalid_room_name",
    )
    .await;
    expect_error(
        s.dev(Method::GET, "/v1/rooms/a%0Ab"),
        bad,
        "invalid_room_name",
    )
    .await;
    expect_error(
        s.dev(Method::GET, "/v1/rooms?limit=0"),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        s.dev(Method::GET, "/v1/rooms?limit=101"),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        s.dev(Method::GET, "/v1/rooms?limit=abc"),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        s.dev(Method::GET, "/v1/rooms?cursor=garbage"),
        bad,
        "invalid_cursor",
    )
    .await;
    expect_error(
        s.dev(Method::GET, "/v1/rooms?colour=red"),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        s.dev(Method::GET, "/v1/nothing-here"),
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        s.dev(Method::PUT, "/v1/rooms"),
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;

    // Nothing changed: the two rooms that were accepted, and only their events.
    assert_eq!(room_count(&s).await, 2);
    let (_, taken) = send(s.dev(Method::GET, "/v1/rooms/taken")).await;
    assert_eq!(taken["metadata"], "");
    assert_eq!(event_types(&s).await.len(), events_before + 1);
}

async fn requests_without_valid_credentials_are_refused(b: Backend) {
    let s = Server::start(b).await;
    let unauthorized = StatusCode::UNAUTHORIZED;
    expect_error(
        s.request(Method::GET, "/v1/rooms"),
        unauthorized,
        "unauthorized",
    )
    .await;
    expect_error(
        s.bearer("wrong", Method::GET, "/v1/rooms"),
        unauthorized,
        "unauthorized",
    )
    .await;
    expect_error(
        s.request(Method::GET, "/v1/rooms")
            .basic_auth("devkey", Some("wrong")),
        unauthorized,
        "unauthorized",
    )
    .await;
    expect_error(
        s.request(Method::GET, "/v1/rooms")
            .basic_auth("nokey", Some("secret")),
        unauthorized,
        "unauthorized",
    )
    .await;
    expect_error(
        s.request(Method::GET, "/v1/rooms")
            .header("authorization", "Basic !!!notbase64"),
        unauthorized,
        "unauthorized",
    )
    .await;
    expect_error(
        s.request(Method::GET, "/v1/rooms")
            .header("authorization", "Basic ZGV2a2V5"),
        unauthorized,
        "unauthorized",
    )
    .await;
    expect_error(
        s.request(Method::GET, "/v1/rooms")
            .header("authorization", "Token secret"),
        unauthorized,
        "unauthorized",
    )
    .await;
    expect_error(
        s.request(Method::GET, "/v1/rooms")
            .header("authorization", "Bearer "),
        unauthorized,
        "unauthorized",
    )
    .await;
    expect_error(
        s.request(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "x" })),
        unauthorized,
        "unauthorized",
    )
    .await;
    // Both accepted forms work.
    assert_eq!(
        send(s.bearer("secret", Method::GET, "/v1/rooms")).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(s.dev(Method::GET, "/v1/rooms")).await.0,
        StatusCode::OK
    );
    assert_eq!(room_count(&s).await, 0);
}

async fn projects_never_see_each_others_rooms(b: Backend) {
    let s = Server::start(b).await;
    let (other_project, other_key, other_secret) = s.create_project("other");
    assert!(other_project.starts_with("pr_"));
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "private", "metadata": "dev's" })),
    )
    .await;
    let other = |m: Method, p: &str| s.bearer(&other_secret, m, p);

    let (_, list) = send(other(Method::GET, "/v1/rooms")).await;
    assert_eq!(list["data"], json!([]));
    let nf = StatusCode::NOT_FOUND;
    expect_error(
        other(Method::GET, "/v1/rooms/private"),
        nf,
        "room_not_found",
    )
    .await;
    expect_error(
        other(Method::PATCH, "/v1/rooms/private").json(&json!({ "metadata": "mine" })),
        nf,
        "room_not_found",
    )
    .await;
    expect_error(
        other(Method::DELETE, "/v1/rooms/private"),
        nf,
        "room_not_found",
    )
    .await;
    expect_error(
        other(Method::GET, "/v1/rooms/private/participants"),
        nf,
        "room_not_found",
    )
    .await;
    expect_error(
        other(Method::DELETE, "/v1/rooms/private/participants/ann"),
        nf,
        "room_not_found",
    )
    .await;
    expect_error(
        other(Method::DELETE, "/v1/api_keys/devkey"),
        nf,
        "api_key_not_found",
    )
    .await;
    // Basic auth with the other key id works for its own project only.
    let (st, _) = send(
        s.request(Method::GET, "/v1/rooms")
            .basic_auth(&other_key, Some(&other_secret)),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    expect_error(
        s.request(Method::GET, "/v1/rooms")
            .basic_auth(&other_key, Some("secret")),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;

    // The same name is free in the other project; the first room is untouched.
    let (st, _) = send(other(Method::POST, "/v1/rooms").json(&json!({ "name": "private" }))).await;
    assert_eq!(st, StatusCode::CREATED);
    let (_, mine) = send(s.dev(Method::GET, "/v1/rooms/private")).await;
    assert_eq!(mine["metadata"], "dev's");
    let (_, keys) = send(other(Method::GET, "/v1/api_keys")).await;
    let ids: Vec<_> = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [other_key.as_str()]);
    let (_, project) = send(other(Method::GET, "/v1/project")).await;
    assert_eq!(project["id"], other_project.as_str());
}

async fn participants_answer_from_the_room_registry(b: Backend) {
    let s = Server::start(b).await;
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "r" })),
    )
    .await;
    let (st, list) = send(s.dev(Method::GET, "/v1/rooms/r/participants")).await;
    assert_eq!((st, list), (StatusCode::OK, json!({ "data": [] })));
    let nf = StatusCode::NOT_FOUND;
    expect_error(
        s.dev(Method::GET, "/v1/rooms/nope/participants"),
        nf,
        "room_not_found",
    )
    .await;
    expect_error(
        s.dev(Method::GET, "/v1/rooms/r/participants/ann"),
        nf,
        "participant_not_found",
    )
    .await;
    expect_error(
        s.dev(Method::DELETE, "/v1/rooms/r/participants/ann"),
        nf,
        "participant_not_found",
    )
    .await;
    let track = switchboard_core::TrackSid::new().to_string();
    expect_error(
        s.dev(Method::POST, "/v1/rooms/r/participants/ann/mute")
            .json(&json!({ "track_sid": track, "muted": true })),
        nf,
        "participant_not_found",
    )
    .await;
    expect_error(
        s.dev(Method::PATCH, "/v1/rooms/r/participants/ann")
            .json(&json!({ "metadata": "m" })),
        nf,
        "participant_not_found",
    )
    .await;
    let bad = StatusCode::BAD_REQUEST;
    expect_error(
        s.dev(Method::POST, "/v1/rooms/r/participants/ann/mute")
            .json(&json!({ "track_sid": "nope", "muted": true })),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        s.dev(Method::POST, "/v1/rooms/r/participants/ann/mute")
            .json(&json!({ "muted": true })),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        s.dev(Method::PATCH, "/v1/rooms/r/participants/ann")
            .json(&json!({ "role": "x" })),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        s.dev(
            Method::GET,
            &format!("/v1/rooms/r/participants/{}", "i".repeat(129)),
        ),
        bad,
        "invalid_identity",
    )
    .await;
}
