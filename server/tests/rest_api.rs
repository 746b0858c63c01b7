//! The REST control plane, driven over HTTP against the real binary, on both backends.

mod common;

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
    tokens_round_trip_and_expire,
    bad_token_requests_are_refused,
    api_keys_are_created_listed_and_revoked,
    idempotency_key_replays_the_first_answer,
    openapi_describes_every_route,
    operational_endpoints_answer,
    the_dev_secret_works_only_in_dev_mode,
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

fn decode(
    token: &str,
    secret: &str,
    leeway: u64,
) -> Result<jsonwebtoken::TokenData<Value>, jsonwebtoken::errors::Error> {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.leeway = leeway;
    v.validate_nbf = true;
    v.set_required_spec_claims(&["exp", "nbf", "sub", "iss"]);
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        &v,
    )
}

async fn tokens_round_trip_and_expire(b: Backend) {
    let s = Server::start(b).await;
    let (st, t) = send(s.dev(Method::POST, "/v1/tokens").json(&json!({
        "room": "standup", "identity": "ann", "name": "Ann", "metadata": "{\"role\":\"host\"}",
        "grants": { "can_publish": false, "room_admin": true }, "ttl_s": 600
    })))
    .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    // The node hosting the room: this one, the only node.
    assert_eq!(
        t["url"],
        format!("{}/rtc", s.base.replacen("http://", "ws://", 1)),
        "{t}"
    );
    let token = t["token"].as_str().unwrap();
    let data = decode(token, "secret", 0).expect("verifies with the key's secret");
    assert_eq!(data.header.kid.as_deref(), Some("devkey"));
    assert_eq!(data.header.alg, jsonwebtoken::Algorithm::HS256);
    let c = data.claims;
    assert_eq!(c["iss"], "devkey");
    assert_eq!(c["sub"], "ann");
    assert_eq!(c["name"], "Ann");
    assert_eq!(c["exp"].as_i64().unwrap() - c["nbf"].as_i64().unwrap(), 600);
    assert_eq!(
        c["grants"],
        json!({ "room": "standup", "can_publish": false, "can_subscribe": true, "can_publish_data": true,
                "room_admin": true, "room_create": false, "recorder": false })
    );
    assert!(
        decode(token, "not-the-secret", 0).is_err(),
        "another secret must not verify it"
    );
    // Verified by the project's own verifier too.
    let claims = switchboard_core::token::verify(token, "secret", chrono::Utc::now()).unwrap();
    assert_eq!(claims.sub.as_str(), "ann");

    // A token signed by a new key names that key and verifies with its secret only.
    let (_, key) = send(
        s.dev(Method::POST, "/v1/api_keys")
            .json(&json!({ "description": "signer" })),
    )
    .await;
    let (st, t2) = send(
        s.bearer(key["secret"].as_str().unwrap(), Method::POST, "/v1/tokens")
            .json(&json!({ "room": "r", "identity": "bob", "ttl_s": 1 })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let token2 = t2["token"].as_str().unwrap();
    let d2 = decode(token2, key["secret"].as_str().unwrap(), 0).unwrap();
    assert_eq!(d2.header.kid.as_deref(), key["id"].as_str());
    assert!(decode(token2, "secret", 0).is_err());
    // Expired tokens are refused.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let err = decode(token2, key["secret"].as_str().unwrap(), 0).unwrap_err();
    assert_eq!(
        err.kind(),
        &jsonwebtoken::errors::ErrorKind::ExpiredSignature
    );
    assert!(matches!(
        switchboard_core::token::verify(
            token2,
            key["secret"].as_str().unwrap(),
            chrono::Utc::now()
        ),
        Err(switchboard_core::token::TokenError::Expired(_))
    ));
}

async fn bad_token_requests_are_refused(b: Backend) {
    let s = Server::start(b).await;
    let post = |body: Value| s.dev(Method::POST, "/v1/tokens").json(&body);
    let bad = StatusCode::BAD_REQUEST;
    expect_error(
        post(json!({ "room": "r", "identity": "a", "ttl_s": 0 })),
        bad,
        "invalid_ttl",
    )
    .await;
    expect_error(
        post(json!({ "room": "r", "identity": "a", "ttl_s": 86_401 })),
        bad,
        "invalid_ttl",
    )
    .await;
    expect_error(
        post(json!({ "room": "r", "identity": "a", "ttl_s": -5 })),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(post(json!({ "identity": "a" })), bad, "invalid_request").await;
    expect_error(post(json!({ "room": "r" })), bad, "invalid_request").await;
    expect_error(
        post(json!({ "room": "", "identity": "a" })),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        post(json!({ "room": "r", "identity": "a\u{7}" })),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        post(json!({ "room": "r", "identity": "a", "grants": { "superuser": true } })),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        post(json!({ "room": "r", "identity": "a", "grants": { "room": "other" } })),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        post(json!({ "room": "r", "identity": "a", "metadata": "m".repeat(4097) })),
        bad,
        "metadata_too_large",
    )
    .await;
    expect_error(
        post(json!({ "room": "r", "identity": "a", "name": "n".repeat(129) })),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        s.dev(Method::POST, "/v1/tokens").body("{nope"),
        bad,
        "invalid_json",
    )
    .await;
    for region in [json!("EU WEST"), json!(""), json!(["eu"]), json!("é")] {
        let msg = expect_error(
            post(json!({ "room": "r", "identity": "a", "region": region })),
            bad,
            "invalid_request",
        )
        .await;
        assert!(
            msg.contains("region") || msg.contains("expected a string"),
            "{msg}"
        );
    }
    // This server is a node of the region `local`: a room preferring
    // `eu-west`, where no node is, still gets this one.
    let (st, t) = send(post(
        json!({ "room": "r", "identity": "a", "region": "eu-west" }),
    ))
    .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    assert_eq!(
        t["url"],
        format!("{}/rtc", s.base.replacen("http://", "ws://", 1))
    );
    expect_error(
        s.request(Method::POST, "/v1/tokens")
            .json(&json!({ "room": "r", "identity": "a" })),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
}

async fn api_keys_are_created_listed_and_revoked(b: Backend) {
    let s = Server::start(b).await;
    let (st, created) = send(
        s.dev(Method::POST, "/v1/api_keys")
            .json(&json!({ "description": "ci" })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 32);

    let (_, list) = send(s.bearer(&secret, Method::GET, "/v1/api_keys")).await;
    let keys = list["data"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter().all(|k| k.get("secret").is_none()),
        "secrets are shown once only: {list}"
    );
    assert!(!list.to_string().contains(&secret));
    // Nor are secrets stored in the clear.
    let store = s.store().await;
    drop(store);
    let db_dump = std::fs::read(s.dir().join("switchboard.db")).unwrap_or_default();
    assert!(!db_dump
        .windows(secret.len())
        .any(|w| w == secret.as_bytes()));

    let bad = StatusCode::BAD_REQUEST;
    expect_error(
        s.dev(Method::POST, "/v1/api_keys")
            .json(&json!({ "description": "d".repeat(257) })),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        s.dev(Method::POST, "/v1/api_keys")
            .json(&json!({ "scope": "all" })),
        bad,
        "invalid_request",
    )
    .await;
    expect_error(
        s.dev(Method::DELETE, "/v1/api_keys/ak_unknown"),
        StatusCode::NOT_FOUND,
        "api_key_not_found",
    )
    .await;

    assert_eq!(
        send(s.bearer(&secret, Method::DELETE, "/v1/api_keys/devkey"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    expect_error(
        s.dev(Method::GET, "/v1/rooms"),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    expect_error(
        s.bearer(&secret, Method::DELETE, &format!("/v1/api_keys/{id}")),
        StatusCode::CONFLICT,
        "last_api_key",
    )
    .await;
    assert_eq!(
        send(s.bearer(&secret, Method::GET, "/v1/rooms")).await.0,
        StatusCode::OK
    );
    let (_, list) = send(s.bearer(&secret, Method::GET, "/v1/api_keys")).await;
    let revoked: Vec<_> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| !k["revoked_at"].is_null())
        .collect();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["id"], "devkey");
}

async fn idempotency_key_replays_the_first_answer(b: Backend) {
    let s = Server::start(b).await;
    let post = |key: &str, body: Value| {
        s.dev(Method::POST, "/v1/rooms")
            .header("Idempotency-Key", key)
            .json(&body)
    };
    let (st1, first) = send(post("k-1", json!({ "name": "once" }))).await;
    assert_eq!(st1, StatusCode::CREATED);
    let res = post("k-1", json!({ "name": "once" })).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers().get("idempotent-replayed").unwrap(), "true");
    let replay: Value = res.json().await.unwrap();
    assert_eq!(replay, first, "the first answer, not a 409");
    assert_eq!(room_count(&s).await, 1);
    assert_eq!(event_types(&s).await, ["room.started"]);

    expect_error(
        post("k-1", json!({ "name": "other" })),
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_key_reused",
    )
    .await;
    expect_error(
        post(&"k".repeat(256), json!({ "name": "x" })),
        StatusCode::BAD_REQUEST,
        "invalid_idempotency_key",
    )
    .await;
    // Errors are replayed too, and a different key acts anew.
    let (st, _) = send(post("k-2", json!({ "name": "once" }))).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _) = send(post("k-2", json!({ "name": "once" }))).await;
    assert_eq!(st, StatusCode::CONFLICT);
    // Keys are per project: another project's identical key is independent.
    let (_, _, other) = s.create_project("other");
    let (st, _) = send(
        s.bearer(&other, Method::POST, "/v1/rooms")
            .header("Idempotency-Key", "k-1")
            .json(&json!({ "name": "once" })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);

    // Concurrent duplicates create one room.
    let reqs: Vec<_> = (0..8)
        .map(|_| post("race", json!({ "name": "raced" })).send())
        .collect();
    let results = futures::future::join_all(reqs).await;
    let created = results
        .iter()
        .filter(|r| r.as_ref().unwrap().status() == StatusCode::CREATED)
        .count();
    assert!(created >= 1);
    for r in &results {
        let st = r.as_ref().unwrap().status();
        assert!(
            st == StatusCode::CREATED || st == StatusCode::CONFLICT,
            "{st}"
        );
    }
    assert_eq!(room_count(&s).await, 2);
}

/// Every route the API serves, as `METHOD path` in OpenAPI form.
const ROUTES: &[&str] = &[
    "GET /v1/project",
    "PATCH /v1/project",
    "GET /v1/api_keys",
    "POST /v1/api_keys",
    "DELETE /v1/api_keys/{id}",
    "GET /v1/rooms",
    "POST /v1/rooms",
    "GET /v1/rooms/{name}",
    "PATCH /v1/rooms/{name}",
    "DELETE /v1/rooms/{name}",
    "GET /v1/rooms/{name}/participants",
    "GET /v1/rooms/{name}/participants/{identity}",
    "PATCH /v1/rooms/{name}/participants/{identity}",
    "DELETE /v1/rooms/{name}/participants/{identity}",
    "POST /v1/rooms/{name}/participants/{identity}/mute",
    "POST /v1/rooms/{name}/recordings",
    "GET /v1/recordings",
    "GET /v1/recordings/{id}",
    "DELETE /v1/recordings/{id}",
    "POST /v1/recordings/{id}/stop",
    "GET /v1/recordings/{id}/files/{file}",
    "POST /v1/recordings/{id}/files/{file}/url",
    "POST /v1/tokens",
    "GET /v1/rtc/route",
    "POST /v1/whip/rooms/{room}",
    "DELETE /v1/whip/sessions/{sid}",
    "PATCH /v1/whip/sessions/{sid}",
    "POST /v1/whep/rooms/{room}/participants/{identity}",
    "DELETE /v1/whep/sessions/{sid}",
    "PATCH /v1/whep/sessions/{sid}",
    "GET /v1/webhooks",
    "POST /v1/webhooks",
    "GET /v1/webhooks/{id}",
    "PATCH /v1/webhooks/{id}",
    "DELETE /v1/webhooks/{id}",
    "POST /v1/webhooks/{id}/rotate-secret",
    "POST /v1/webhooks/{id}/test",
    "GET /v1/webhooks/{id}/deliveries",
    "POST /v1/webhooks/{id}/replay",
    "POST /v1/webhooks/deliveries/{id}/retry",
    "GET /v1/events",
    "GET /v1/events/{id}",
    "GET /v1/events/{id}/deliveries",
    "GET /v1/functions",
    "GET /v1/functions/{name}",
    "DELETE /v1/functions/{name}",
    "POST /v1/functions/{name}/versions",
    "GET /v1/functions/{name}/versions",
    "POST /v1/functions/{name}/activate",
    "GET /v1/functions/{name}/invocations",
    "GET /v1/functions/{name}/logs",
    "POST /v1/functions/{name}/invoke",
    "GET /v1/kv/{key}",
    "PUT /v1/kv/{key}",
    "DELETE /v1/kv/{key}",
    "GET /v1/usage",
    "GET /v1/usage/sessions",
    "GET /v1/billing/preview",
    "GET /v1/billing/stripe",
];

async fn openapi_describes_every_route(b: Backend) {
    let s = Server::start(b).await;
    let (st, spec) = send(s.request(Method::GET, "/v1/openapi.json")).await;
    assert_eq!(st, StatusCode::OK);
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.insert(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    let expected: BTreeSet<String> = ROUTES.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        documented, expected,
        "the OpenAPI document and the route list differ"
    );
    // Each listed route is really served: it answers with something other than "no such endpoint".
    for route in ROUTES {
        let (method, path) = route.split_once(' ').unwrap();
        let path = path
            .replace("{name}", "r")
            .replace("{identity}", "i")
            .replace("{id}", "k")
            .replace("{file}", "f")
            .replace("{key}", "k");
        let (st, body) = send(s.dev(method.parse().unwrap(), &path).json(&json!({}))).await;
        assert!(
            !(st == StatusCode::NOT_FOUND && body["error"]["code"] == "not_found")
                && st != StatusCode::METHOD_NOT_ALLOWED,
            "{route} is documented but not served ({st} {body})"
        );
    }
    assert!(spec["components"]["securitySchemes"]["bearer"].is_object());
}

async fn operational_endpoints_answer(b: Backend) {
    let s = Server::start(b).await;
    let (st, h) = send(s.request(Method::GET, "/healthz")).await;
    assert_eq!((st, h["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (st, r) = send(s.request(Method::GET, "/readyz")).await;
    assert_eq!((st, r["database"].as_str()), (StatusCode::OK, Some("ok")));
    send(s.dev(Method::GET, "/v1/rooms")).await;
    let metrics = s
        .request(Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("http_requests_total{method=\"GET\",route=\"/v1/rooms\",status=\"200\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    // Request ids: generated when absent, kept when given, and on the log lines.
    let res = s.dev(Method::GET, "/v1/rooms").send().await.unwrap();
    assert!(res.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
    let res = s
        .dev(Method::GET, "/v1/rooms/logged")
        .header("x-request-id", "my-trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "my-trace-42");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        s.log()
            .lines()
            .any(|l| l.contains("my-trace-42") && l.contains("404")),
        "{}",
        s.log()
    );
}

async fn the_dev_secret_works_only_in_dev_mode(b: Backend) {
    let mut s = Server::start(b).await;
    assert_eq!(
        send(s.dev(Method::GET, "/v1/rooms")).await.0,
        StatusCode::OK
    );
    let (_, created) = send(s.dev(Method::POST, "/v1/api_keys").json(&json!({}))).await;
    s.restart(&[]);
    assert!(!s.banner.contains("devkey"), "{}", s.banner);
    expect_error(
        s.dev(Method::GET, "/v1/rooms"),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    expect_error(
        s.bearer("secret", Method::GET, "/v1/rooms"),
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    )
    .await;
    // Real keys keep working across the restart.
    assert_eq!(
        send(s.bearer(
            created["secret"].as_str().unwrap(),
            Method::GET,
            "/v1/rooms"
        ))
        .await
        .0,
        StatusCode::OK
    );
    s.restart(&["--dev"]);
    assert_eq!(
        send(s.dev(Method::GET, "/v1/rooms")).await.0,
        StatusCode::OK
    );
}
