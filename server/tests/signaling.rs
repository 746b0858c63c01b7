//! The media node's signaling under bad input and abrupt endings, over real
//! WebSockets and HTTP: refusals before the upgrade, garbage frames, oversized
//! frames, duplicate identities, removal and room deletion, ICE that never connects.

mod common;

use std::time::Duration;

use common::ws::{connect, next, until, ws_url, Ws};
use common::{send, Server};
use futures::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard_store::Backend;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

async fn start() -> Server {
    Server::start_with(Backend::Sqlite, &["--dev", "--rtc-connect-timeout-s", "3"]).await
}

async fn token(s: &Server, room: &str, identity: &str, grants: Value, ttl_s: u64) -> String {
    let (st, t) = send(
        s.dev(Method::POST, "/v1/tokens")
            .json(&json!({ "room": room, "identity": identity, "grants": grants, "ttl_s": ttl_s })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    t["token"].as_str().unwrap().to_owned()
}

/// Reads until the server closes; returns the close code and reason.
async fn closed(ws: &mut Ws) -> (u16, String) {
    loop {
        match tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string())
            }
            Some(Ok(Message::Close(None))) | None => return (0, String::new()),
            Some(Err(_)) => return (0, String::new()),
            Some(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn joins_are_refused_before_the_upgrade_with_json_errors() {
    let s = start().await;
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "r", "max_participants": 1 })),
    )
    .await;
    let get = |url: String| s.http.get(url.replacen("ws", "http", 1)).send();
    let status = |code: &str| code.to_owned();

    let res = get(format!("{}/rtc", s.base)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = get(ws_url(&s, "garbage")).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], status("invalid_token"));

    // Unknown room without room_create: 404; with it, the room is created.
    let t = token(&s, "nope", "a", json!({}), 60).await;
    assert_eq!(
        get(ws_url(&s, &t)).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let t = token(&s, "made-by-join", "a", json!({ "room_create": true }), 60).await;
    let mut ws = connect(&s, &t).await;
    assert_eq!(until(&mut ws, "join").await["room"]["name"], "made-by-join");
    let (st, _) = send(s.dev(Method::GET, "/v1/rooms/made-by-join")).await;
    assert_eq!(st, StatusCode::OK);
    drop(ws);

    // Expired tokens.
    let t = token(&s, "r", "a", json!({}), 1).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let res = get(ws_url(&s, &t)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "token_expired"
    );

    // A token signed by a revoked key.
    let (_, key) = send(s.dev(Method::POST, "/v1/api_keys").json(&json!({}))).await;
    let secret = key["secret"].as_str().unwrap();
    let (_, t) = send(
        s.bearer(secret, Method::POST, "/v1/tokens")
            .json(&json!({ "room": "r", "identity": "x" })),
    )
    .await;
    send(s.dev(
        Method::DELETE,
        &format!("/v1/api_keys/{}", key["id"].as_str().unwrap()),
    ))
    .await;
    assert_eq!(
        get(ws_url(&s, t["token"].as_str().unwrap()))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // A full room: 409 before the upgrade.
    let t = token(&s, "r", "first", json!({}), 60).await;
    let mut first = connect(&s, &t).await;
    until(&mut first, "join").await;
    let t = token(&s, "r", "second", json!({}), 60).await;
    let res = get(ws_url(&s, &t)).await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"]["code"],
        "room_full"
    );
}

#[tokio::test]
async fn garbage_frames_get_errors_and_the_session_survives() {
    let s = Server::start(Backend::Sqlite).await;
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "r" })),
    )
    .await;
    let t = token(
        &s,
        "r",
        "ann",
        json!({ "can_publish": false, "can_update_metadata": true }),
        60,
    )
    .await;
    let mut ws = connect(&s, &t).await;
    let join = until(&mut ws, "join").await;
    assert!(join["participant"]["sid"]
        .as_str()
        .unwrap()
        .starts_with("pa_"));
    assert_eq!(
        until(&mut ws, "offer").await["type"],
        "offer",
        "the subscriber connection is offered"
    );

    for frame in [
        "not json",
        "{}",
        r#"{"type":"nope"}"#,
        r#"{"type":"offer"}"#,
        r#"{"type":"offer","sdp":"v=0\r\ngarbage"}"#,
        r#"{"type":"answer","sdp":"v=0\r\ngarbage"}"#,
        r#"{"type":"candidate","target":"publisher","candidate":{"candidate":"candidate:garbage"}}"#,
        r#"{"type":"candidate","target":"subscriber","candidate":{"candidate":"candidate:1 1 udp x 127.0.0.1 9 typ host"}}"#,
        r#"{"type":"mute","track_sid":"tr_01JD0000000000000000000000","muted":true}"#,
        r#"{"type":"set_layer","track_sid":"tr_01JD0000000000000000000000","layer":"low"}"#,
        r#"{"type":"add_track","cid":"c","kind":"video"}"#,
    ] {
        ws.send(Message::Text(frame.into())).await.unwrap();
        let m = until(&mut ws, "error").await;
        assert!(
            !m["code"].as_str().unwrap().is_empty() && !m["message"].as_str().unwrap().is_empty(),
            "{frame}: {m}"
        );
    }
    ws.send(Message::Binary(vec![0, 1, 2].into()))
        .await
        .unwrap();
    assert_eq!(until(&mut ws, "error").await["code"], "invalid_message");
    ws.send(Message::Text(
        r#"{"type":"update_metadata","metadata":"hello"}"#.into(),
    ))
    .await
    .unwrap();
    let updated = until(&mut ws, "participant_updated").await;
    assert_eq!(updated["participant"]["metadata"], "hello");
    ws.send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await
        .unwrap();
    until(&mut ws, "pong").await;

    // A frame over 64 KiB closes the connection (1009, message too big).
    let huge = format!(r#"{{"type":"offer","sdp":"{}"}}"#, "a".repeat(70 * 1024));
    let _ = ws.send(Message::Text(huge.into())).await;
    let (code, _) = closed(&mut ws).await;
    assert!(
        code == u16::from(CloseCode::Size) || code == 0,
        "close code {code}"
    );
}

#[tokio::test]
async fn the_api_and_the_room_end_sessions_with_a_reason() {
    let s = start().await;
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "r" })),
    )
    .await;

    // The same identity joining again replaces the first session.
    let t = token(&s, "r", "ann", json!({}), 60).await;
    let mut first = connect(&s, &t).await;
    until(&mut first, "join").await;
    let mut second = connect(&s, &t).await;
    until(&mut second, "join").await;
    assert_eq!(
        until(&mut first, "leave").await["reason"],
        "duplicate_identity"
    );
    let (code, reason) = closed(&mut first).await;
    assert_eq!((code, reason.as_str()), (4000, "duplicate_identity"));
    // The replaced session's departure is in the event log (billing counts minutes from it).
    let events = s.events().await;
    let left: Vec<Value> = events
        .iter()
        .filter(|e| e.event_type() == "participant.left")
        .map(|e| serde_json::to_value(&e.payload).unwrap()["data"].clone())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["reason"], "duplicate_identity");
    assert_eq!(left[0]["participant"]["identity"], "ann");

    // REST removal: the client is told and closed; the participant is gone.
    let t = token(&s, "r", "bob", json!({}), 60).await;
    let mut bob = connect(&s, &t).await;
    until(&mut bob, "join").await;
    assert_eq!(
        until(&mut second, "participant_joined").await["participant"]["identity"],
        "bob"
    );
    let (st, _) = send(s.dev(Method::DELETE, "/v1/rooms/r/participants/bob")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(until(&mut bob, "leave").await["reason"], "removed");
    assert_eq!(
        until(&mut second, "participant_left").await["identity"],
        "bob"
    );
    let (st, _) = send(s.dev(Method::GET, "/v1/rooms/r/participants/bob")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Deleting the room ends everyone's session.
    let (st, _) = send(s.dev(Method::DELETE, "/v1/rooms/r")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(until(&mut second, "leave").await["reason"], "room_closed");
}

#[tokio::test]
async fn a_client_that_never_connects_media_is_dropped_and_cleaned_up() {
    let s = start().await;
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "r" })),
    )
    .await;
    let t = token(&s, "r", "ghost", json!({}), 60).await;
    let mut ws = connect(&s, &t).await;
    until(&mut ws, "join").await;
    let (_, list) = send(s.dev(Method::GET, "/v1/rooms/r/participants")).await;
    assert_eq!(list["data"][0]["state"], "joining");
    // Never answer the offer: after the 3 s connect timeout the server gives up.
    assert_eq!(until(&mut ws, "error").await["code"], "ice_timeout");
    let (code, reason) = closed(&mut ws).await;
    assert_eq!((code, reason.as_str()), (4408, "ice_timeout"));
    let (_, list) = send(s.dev(Method::GET, "/v1/rooms/r/participants")).await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn whip_and_whep_refuse_bad_requests() {
    let s = start().await;
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "r" })),
    )
    .await;
    let t = token(&s, "r", "enc", json!({}), 60).await;
    let post = |path: &str| s.request(Method::POST, path);
    let sdp = "application/sdp";
    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            post("/v1/whip/rooms/r")
                .header("content-type", sdp)
                .body("v=0\r\n"),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            post("/v1/whip/rooms/r")
                .bearer_auth("garbage")
                .header("content-type", sdp)
                .body("v=0\r\n"),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            post("/v1/whip/rooms/r?access_token=garbage")
                .header("content-type", sdp)
                .body("v=0\r\n"),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            post("/v1/whep/rooms/r/participants/enc?access_token=%ff%00")
                .header("content-type", sdp)
                .body("v=0\r\n"),
            StatusCode::UNAUTHORIZED,
            "invalid_token",
        ),
        (
            post("/v1/whip/rooms/other")
                .bearer_auth(&t)
                .header("content-type", sdp)
                .body("v=0\r\n"),
            StatusCode::FORBIDDEN,
            "wrong_room",
        ),
        (
            post("/v1/whip/rooms/r")
                .bearer_auth(&t)
                .header("content-type", "text/plain")
                .body("v=0\r\n"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            post("/v1/whip/rooms/r")
                .bearer_auth(&t)
                .header("content-type", sdp)
                .body("hello"),
            StatusCode::BAD_REQUEST,
            "invalid_offer",
        ),
        (
            post("/v1/whip/rooms/r")
                .bearer_auth(&t)
                .header("content-type", sdp)
                .body("v=0\r\no=garbage\r\nm=nonsense\r\n"),
            StatusCode::BAD_REQUEST,
            "invalid_offer",
        ),
        (
            post("/v1/whep/rooms/r/participants/nobody")
                .bearer_auth(&t)
                .header("content-type", sdp)
                .body("v=0\r\n"),
            StatusCode::NOT_FOUND,
            "participant_not_found",
        ),
        (
            post("/v1/whep/rooms/r/participants/enc")
                .bearer_auth(&t)
                .header("content-type", sdp)
                .body("v=0\r\n"),
            StatusCode::CONFLICT,
            "same_identity",
        ),
        (
            s.request(
                Method::PATCH,
                "/v1/whip/sessions/pa_01JD0000000000000000000000",
            )
            .bearer_auth(&t)
            .header("content-type", "application/trickle-ice-sdpfrag")
            .header("if-match", "*"),
            // PATCH takes trickle and ICE restarts now; a session must exist.
            StatusCode::NOT_FOUND,
            "session_not_found",
        ),
        (
            s.request(
                Method::DELETE,
                "/v1/whip/sessions/pa_01JD0000000000000000000000",
            )
            .bearer_auth(&t),
            StatusCode::NOT_FOUND,
            "session_not_found",
        ),
        (
            s.request(Method::DELETE, "/v1/whip/sessions/garbage")
                .bearer_auth(&t),
            StatusCode::NOT_FOUND,
            "session_not_found",
        ),
    ];
    for (req, status, code) in cases {
        common::expect_error(req, status, code).await;
    }
    let viewer = token(&s, "r", "viewer", json!({ "can_publish": false }), 60).await;
    common::expect_error(
        post("/v1/whip/rooms/r")
            .bearer_auth(&viewer)
            .header("content-type", sdp)
            .body("v=0\r\n"),
        StatusCode::FORBIDDEN,
        "not_allowed",
    )
    .await;
    // Nothing was left behind.
    let (_, list) = send(s.dev(Method::GET, "/v1/rooms/r/participants")).await;
    assert_eq!(list["data"], json!([]));
}

#[tokio::test]
async fn an_empty_room_closes_after_its_timeout() {
    let s = start().await;
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "brief", "empty_timeout_s": 1 })),
    )
    .await;
    let t = token(&s, "brief", "ann", json!({}), 60).await;
    let mut ws = connect(&s, &t).await;
    until(&mut ws, "join").await;
    ws.send(Message::Text(r#"{"type":"leave"}"#.into()))
        .await
        .unwrap();
    // Still there right after the last participant leaves...
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        send(s.dev(Method::GET, "/v1/rooms/brief")).await.0,
        StatusCode::OK
    );
    // ...and closed once empty_timeout_s has passed, with the reason in the event log.
    let mut status = StatusCode::OK;
    for _ in 0..50 {
        status = send(s.dev(Method::GET, "/v1/rooms/brief")).await.0;
        if status == StatusCode::NOT_FOUND {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the empty room was not closed"
    );
    let events = s.events().await;
    let last = events.last().unwrap();
    assert_eq!(last.event_type(), "room.finished");
    assert_eq!(
        serde_json::to_value(&last.payload).unwrap()["data"]["reason"],
        "empty_timeout"
    );
    let types: Vec<_> = events.iter().map(|e| e.event_type()).collect();
    assert_eq!(
        types,
        [
            "room.started",
            "participant.joined",
            "participant.left",
            "room.finished"
        ]
    );
}

#[tokio::test]
async fn join_hands_out_time_limited_turn_credentials() {
    let s = Server::start_with(
        Backend::Sqlite,
        &[
            "--dev",
            "--ice-server",
            "stun:stun.example.net:3478",
            "--turn-url",
            "turn:127.0.0.1:3478?transport=udp",
            "--turn-secret",
            "coturn-shared-secret",
            "--turn-ttl-s",
            "600",
        ],
    )
    .await;
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "turn" })),
    )
    .await;
    let t = token(&s, "turn", "ann", json!({}), 60).await;
    let mut ws = connect(&s, &t).await;
    let join = until(&mut ws, "join").await;
    let servers = join["ice_servers"].as_array().unwrap();
    assert_eq!(servers[0]["urls"], json!(["stun:stun.example.net:3478"]));
    let turn = &servers[1];
    assert_eq!(turn["urls"], json!(["turn:127.0.0.1:3478?transport=udp"]));
    let username = turn["username"].as_str().unwrap();
    let (expiry, identity) = username.split_once(':').unwrap();
    assert_eq!(identity, "ann");
    let now = chrono::Utc::now().timestamp() as u64;
    let expiry: u64 = expiry.parse().unwrap();
    assert!((now + 590..=now + 610).contains(&expiry), "{username}");
    // What coturn computes for use-auth-secret, by an independent implementation.
    let openssl = std::process::Command::new("sh")
        .args([
            "-c",
            "printf '%s' \"$0\" | openssl dgst -sha1 -hmac coturn-shared-secret -binary | base64",
            username,
        ])
        .output()
        .expect("openssl");
    assert!(openssl.status.success());
    assert_eq!(
        turn["credential"].as_str().unwrap(),
        String::from_utf8_lossy(&openssl.stdout).trim()
    );

    // Half a TURN configuration is refused at start with a reason.
    for (args, says) in [
        (&["--turn-url", "turn:x:3478"][..], "needs --turn-secret"),
        (&["--turn-secret", "x"][..], "needs --turn-url"),
        (
            &["--turn-url", "http://x", "--turn-secret", "x"][..],
            "must start with turn:",
        ),
    ] {
        let out = s
            .command()
            .args(["serve", "--http-addr", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// Every peer connection of a node shares one media port, so a range no
/// longer runs out by participants: the port is the range's first free one,
/// for UDP and passive ICE-TCP alike.
#[tokio::test]
async fn every_participant_shares_the_one_media_port_taken_from_the_range() {
    // Below Linux's ephemeral range (32768-60999): there, any client socket on
    // the machine, or its TIME_WAIT, could hold one of these ports.
    let s = Server::start_with(
        Backend::Sqlite,
        &["--dev", "--rtc-port-range", "31100-31103", "--rtc-tcp"],
    )
    .await;
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "ports" })),
    )
    .await;
    let is_udp = |c: &str| c.to_lowercase().contains(" udp ");
    let is_passive = |c: &str| c.contains("tcptype passive");
    let mut ports = Vec::new();
    let mut sockets = Vec::new();
    // Eight participants, sixteen peer connections: four ports would have run out at two.
    for who in [
        "ann", "bob", "carol", "dave", "erin", "frank", "gina", "hal",
    ] {
        let mut ws = connect(&s, &token(&s, "ports", who, json!({}), 60).await).await;
        until(&mut ws, "join").await;
        let offer = until(&mut ws, "offer").await;
        let sdp = offer["sdp"].as_str().unwrap().to_owned();
        let candidates: Vec<&str> = sdp
            .lines()
            .filter(|l| l.starts_with("a=candidate:"))
            .collect();
        assert!(candidates.iter().any(|c| is_udp(c)), "{sdp}");
        assert!(candidates.iter().any(|c| is_passive(c)), "{sdp}");
        for c in candidates.iter().filter(|c| is_udp(c) || is_passive(c)) {
            let port: u16 = c.split_whitespace().nth(5).unwrap().parse().unwrap();
            ports.push(port);
        }
        sockets.push(ws);
    }
    let first = ports[0];
    assert!((31100..=31103).contains(&first), "{ports:?}");
    assert!(ports.iter().all(|p| *p == first), "{ports:?}");

    // The port of a node already running is refused to a second one, with a way out.
    let out = s
        .command()
        .args([
            "serve",
            "--http-addr",
            "127.0.0.1:0",
            "--rtc-udp-port",
            &first.to_string(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is in use") && err.contains("--rtc-udp-port"),
        "{err}"
    );

    let out = s
        .command()
        .args(["serve", "--rtc-port-range", "60000-50000"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not above the last"));
}

fn resume_url(s: &Server, token: &str, reconnect: &str) -> String {
    format!("{}&reconnect={reconnect}", ws_url(s, token))
}

/// A socket that breaks (no close frame) leaves the participant in the room;
/// the client comes back with its reconnect token and goes on as the same participant.
#[tokio::test]
async fn a_dropped_socket_resumes_the_same_session() {
    let s = start().await;
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "resume" })),
    )
    .await;
    let t = token(&s, "resume", "ann", json!({}), 600).await;
    let mut ann = connect(&s, &t).await;
    let join = until(&mut ann, "join").await;
    let sid = join["participant"]["sid"].as_str().unwrap().to_owned();
    let reconnect = join["reconnect_token"].as_str().unwrap().to_owned();
    assert_eq!(reconnect.len(), 64, "{join}");
    // Bob joins; his arrival is queued for Ann while her socket is down.
    drop(ann);
    let bob_token = token(&s, "resume", "bob", json!({}), 600).await;
    let mut bob = connect(&s, &bob_token).await;
    let bob_join = until(&mut bob, "join").await;
    assert_eq!(
        bob_join["participants"][0]["sid"],
        sid.as_str(),
        "ann is still in the room"
    );

    // Garbage and someone else's token are ignored: a fresh join for that identity.
    let (mut carol, _) = tokio_tungstenite::connect_async(resume_url(
        &s,
        &token(&s, "resume", "carol", json!({}), 600).await,
        &reconnect,
    ))
    .await
    .unwrap();
    let carol_join = next(&mut carol).await;
    assert_eq!(carol_join["type"], "join", "{carol_join}");
    assert_ne!(carol_join["participant"]["sid"], sid.as_str());
    for garbage in ["", "zz", "%00%01", &"a".repeat(5000)] {
        let (mut other, _) = tokio_tungstenite::connect_async(resume_url(
            &s,
            &token(&s, "resume", "dave", json!({}), 600).await,
            garbage,
        ))
        .await
        .unwrap();
        assert_eq!(next(&mut other).await["type"], "join");
        other.close(None).await.unwrap();
    }

    // Ann resumes with her token: the same participant, and the room as it is now.
    let (mut ann, _) = tokio_tungstenite::connect_async(resume_url(&s, &t, &reconnect))
        .await
        .unwrap();
    let resumed = until(&mut ann, "resumed").await;
    assert_eq!(resumed["participant"]["sid"], sid.as_str(), "{resumed}");
    let others: Vec<&str> = resumed["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["identity"].as_str().unwrap())
        .collect();
    assert!(others.contains(&"bob"), "{resumed}");
    ann.send(Message::Text(json!({"type": "ping"}).to_string().into()))
        .await
        .unwrap();
    until(&mut ann, "pong").await;
    let (_, list) = send(s.dev(Method::GET, "/v1/rooms/resume/participants")).await;
    let sids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["identity"] == "ann")
        .map(|p| p["sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids, [sid.as_str()]);
    // One session in the event log: joined once, never left.
    let events = s.events().await;
    let ann_events: Vec<String> = events
        .iter()
        .filter(|e| serde_json::to_value(e).unwrap()["data"]["participant"]["sid"] == sid.as_str())
        .map(|e| e.event_type().to_owned())
        .collect();
    assert_eq!(ann_events, ["participant.joined"]);

    // A token is good for the session it names only while that session waits.
    drop(ann);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (mut again, _) = tokio_tungstenite::connect_async(resume_url(&s, &t, &reconnect))
        .await
        .unwrap();
    assert_eq!(
        until(&mut again, "resumed").await["participant"]["sid"],
        sid.as_str()
    );
    again.close(None).await.unwrap();
    // A socket closed by the client itself ends the session at once.
    let mut left = false;
    for _ in 0..50 {
        let events = s.events().await;
        if events.iter().any(|e| {
            e.event_type() == "participant.left"
                && serde_json::to_value(e).unwrap()["data"]["participant"]["sid"] == sid.as_str()
        }) {
            left = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(left, "a closed socket is a leave");
}

/// A session nobody resumes leaves when the window ends.
#[tokio::test]
async fn an_unresumed_session_leaves_after_the_window() {
    let s = start().await;
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "gone" })),
    )
    .await;
    let t = token(&s, "gone", "ann", json!({}), 600).await;
    let mut ann = connect(&s, &t).await;
    let join = until(&mut ann, "join").await;
    let reconnect = join["reconnect_token"].as_str().unwrap().to_owned();
    drop(ann);
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    loop {
        let events = s.events().await;
        if let Some(left) = events.iter().find(|e| e.event_type() == "participant.left") {
            let v = serde_json::to_value(left).unwrap();
            assert_eq!(v["data"]["reason"], "connection_lost");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the session never left"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Too late: the token now starts a fresh session.
    let (mut late, _) = tokio_tungstenite::connect_async(resume_url(&s, &t, &reconnect))
        .await
        .unwrap();
    assert_eq!(next(&mut late).await["type"], "join");
}
