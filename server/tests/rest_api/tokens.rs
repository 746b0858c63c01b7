//! Access tokens, API keys and idempotent creates.

use super::*;

switchboard_store::on_both_backends!(
    tokens_round_trip_and_expire,
    bad_token_requests_are_refused,
    api_keys_are_created_listed_and_revoked,
    idempotency_key_replays_the_first_answer,
);

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
