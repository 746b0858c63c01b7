//! What one participant can do to a media node and its room.

use super::*;
use common::browser::isolated;
use futures::SinkExt;
use switchboard_store::Backend;

/// A value of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Issue 22, first item: one participant floods `update_metadata` with 60 KB
/// of metadata while five others in the room have stopped reading their
/// sockets. Before the fix the node grew by about 600 MiB a second (14.6 GiB
/// in 25 s) until the media-connect timeout ended it; the timeout is set far
/// away here, so only bounded queues, write timeouts and the rate limit hold it.
#[tokio::test]
async fn a_metadata_flood_into_stalled_sockets_does_not_exhaust_memory() {
    let s = Server::start_with(
        Backend::Sqlite,
        &["--dev", "--rtc-connect-timeout-s", "600"],
    )
    .await;
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "flood" })),
    )
    .await;
    let pid = s.pid().unwrap();
    let mut stalled = Vec::new();
    for i in 0..5 {
        let t = token(&s, "flood", &format!("stalled-{i}"), json!({}), json!({})).await;
        let mut ws = connect(&s, &t).await;
        until(&mut ws, "join").await;
        stalled.push(ws); // never read again
    }
    let before_kib = status_kib(pid, "VmRSS");

    // The worst case: the flooder holds the grant, and reads its own socket.
    let t = token(
        &s,
        "flood",
        "flooder",
        json!({ "can_update_metadata": true }),
        json!({}),
    )
    .await;
    let ws = connect(&s, &t).await;
    let (mut tx, mut rx) = ws.split();
    let reader = tokio::spawn(async move {
        let mut rate_limited = 0u64;
        while let Some(Ok(msg)) = rx.next().await {
            if let Message::Text(t) = msg {
                if t.as_str().contains(r#""code":"rate_limited""#) {
                    rate_limited += 1;
                }
            }
        }
        rate_limited
    });
    let metadata = "m".repeat(60 * 1000);
    let attack_for = Duration::from_secs(20);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut peak_kib = 0;
    while started.elapsed() < attack_for {
        let frame = json!({ "type": "update_metadata", "metadata": format!("{sent}{metadata}") });
        if tx
            .send(Message::Text(frame.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
        if sent.is_multiple_of(200) {
            peak_kib = peak_kib.max(status_kib(pid, "VmRSS"));
        }
    }
    let peak_kib = peak_kib.max(status_kib(pid, "VmHWM"));
    let _ = tx.close().await;
    let rate_limited = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the flooder's socket closes")
        .unwrap();
    eprintln!(
        "sent {sent} updates of 60 KB in {:?}; resident {} MiB before, peak {} MiB; {rate_limited} refused",
        started.elapsed(),
        before_kib / 1024,
        peak_kib / 1024
    );
    assert!(
        sent > 2000,
        "the flood was too slow to mean anything: {sent}"
    );
    assert!(rate_limited > 0, "the flooder was never told to slow down");
    assert!(
        peak_kib < 300 * 1024,
        "the node grew to {} MiB under one participant's flood",
        peak_kib / 1024
    );

    // The node still serves everyone else.
    let t = token(&s, "flood", "latecomer", json!({}), json!({})).await;
    let mut ws = connect(&s, &t).await;
    until(&mut ws, "join").await;
    drop(stalled);
}

/// Issue 22: a participant rewrote its app-set metadata and name (a viewer
/// whose token said `role=viewer` became `role=admin` named "The Host").
/// Changing one's own profile takes `can_update_metadata`.
#[tokio::test]
async fn a_participant_cannot_rewrite_its_profile_without_the_grant() {
    let s = Server::start(Backend::Sqlite).await;
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "r" })),
    )
    .await;
    let t = token(
        &s,
        "r",
        "viewer",
        json!({ "can_publish": false }),
        json!({ "name": "Vic", "metadata": "{\"role\":\"viewer\"}" }),
    )
    .await;
    let mut ws = connect(&s, &t).await;
    until(&mut ws, "join").await;
    ws.send(Message::Text(
        r#"{"type":"update_metadata","metadata":"{\"role\":\"admin\"}","name":"The Host"}"#.into(),
    ))
    .await
    .unwrap();
    let refused = until(&mut ws, "error").await;
    assert_eq!(refused["code"], "not_allowed", "{refused}");
    let (st, p) = send(s.dev(Method::GET, "/v1/rooms/r/participants/viewer")).await;
    assert_eq!(st, StatusCode::OK, "{p}");
    assert_eq!(
        (p["name"].as_str(), p["metadata"].as_str()),
        (Some("Vic"), Some("{\"role\":\"viewer\"}"))
    );

    // With the grant it may, a few times at once, and then at a measured pace.
    let t = token(
        &s,
        "r",
        "host",
        json!({ "can_update_metadata": true }),
        json!({}),
    )
    .await;
    let mut ws = connect(&s, &t).await;
    until(&mut ws, "join").await;
    for i in 0..6 {
        let frame = json!({ "type": "update_metadata", "metadata": format!("v{i}") });
        ws.send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }
    // The refusal is written at once, the updates through the room: either may come first.
    let (mut updated, mut refused) = (0, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while refused.is_none() || updated < 5 {
        let Ok(Some(Ok(Message::Text(m)))) = tokio::time::timeout_at(deadline, ws.next()).await
        else {
            break;
        };
        let m: Value = serde_json::from_str(m.as_str()).unwrap();
        match m["type"].as_str() {
            Some("participant_updated") if m["participant"]["identity"] == "host" => updated += 1,
            Some("error") => refused = Some(m["code"].clone()),
            _ => {}
        }
    }
    assert_eq!(refused, Some(json!("rate_limited")));
    assert_eq!(updated, 5, "the burst passes, the sixth is refused");
}

/// Issue 22: `DELETE /v1/whip/sessions/{sid}` checked only that the token
/// was valid, so a subscribe-only viewer, who sees every participant's sid,
/// ended the broadcast. The resource URL now carries a key only its client
/// knows, and only the session's identity or a `room_admin` of its room may
/// end it. The broadcaster is a real WHIP client (aiortc) with media flowing.
#[test]
fn a_viewer_cannot_end_a_broadcast() {
    isolated("participants::a_viewer_cannot_end_a_broadcast", || async {
        let s = Server::start(Backend::Sqlite).await;
        for name in ["show", "other"] {
            send(
                s.dev(Method::POST, "/v1/rooms")
                    .json(&json!({ "name": name })),
            )
            .await;
        }
        let broadcaster = token(&s, "show", "encoder", json!({}), json!({})).await;
        let viewer = token(
            &s,
            "show",
            "viewer",
            json!({ "can_publish": false }),
            json!({}),
        )
        .await;
        let other_admin = token(
            &s,
            "other",
            "boss",
            json!({ "room_admin": true }),
            json!({}),
        )
        .await;
        let admin = token(
            &s,
            "show",
            "producer",
            json!({ "room_admin": true }),
            json!({}),
        )
        .await;

        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/whip_broadcast.py");
        let mut peer = Command::new("python3")
            .args([script, &s.base, "show", &broadcaster])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with aiortc (tests/peers/requirements.txt) must be installed");
        let mut lines = BufReader::new(peer.stdout.take().unwrap()).lines();
        let mut line = || -> Value {
            let l = lines.next().expect("the broadcaster reports").unwrap();
            serde_json::from_str(&l).unwrap()
        };
        let on_air = tokio::task::block_in_place(&mut line);
        let location = on_air["location"]
            .as_str()
            .expect("a WHIP location")
            .to_owned();
        let (_, list) = send(s.dev(Method::GET, "/v1/rooms/show/participants")).await;
        let sid = list["data"][0]["sid"].as_str().unwrap().to_owned();
        assert!(
            location.starts_with(&format!("/v1/whip/sessions/{sid}.")),
            "{location}"
        );

        let delete = |path: String, token: &str| {
            s.request(Method::DELETE, &path)
                .bearer_auth(token.to_owned())
        };
        // The old attack: the sid every participant and webhook sees.
        common::expect_error(
            delete(format!("/v1/whip/sessions/{sid}"), &viewer),
            StatusCode::NOT_FOUND,
            "session_not_found",
        )
        .await;
        // A guessed key, and the right location in the wrong hands.
        common::expect_error(
            delete(
                format!("/v1/whip/sessions/{sid}.00000000000000000000000000000000"),
                &viewer,
            ),
            StatusCode::NOT_FOUND,
            "session_not_found",
        )
        .await;
        common::expect_error(
            delete(location.clone(), &viewer),
            StatusCode::FORBIDDEN,
            "not_allowed",
        )
        .await;
        common::expect_error(
            delete(location.clone(), &other_admin),
            StatusCode::FORBIDDEN,
            "not_allowed",
        )
        .await;
        common::expect_error(
            delete(location.replace("/whip/", "/whep/") + "x", &viewer),
            StatusCode::NOT_FOUND,
            "session_not_found",
        )
        .await;
        let (_, list) = send(s.dev(Method::GET, "/v1/rooms/show/participants")).await;
        assert_eq!(
            list["data"][0]["identity"], "encoder",
            "still on air: {list}"
        );
        assert_eq!(list["data"][0]["state"], "active", "{list}");

        // The room's admin may end it; the broadcaster's own DELETE then finds nothing.
        let (st, _) = send(delete(location.clone(), &admin)).await;
        assert_eq!(st, StatusCode::OK);
        let stdin = peer.stdin.as_mut().unwrap();
        writeln!(stdin, "stop").unwrap();
        let done = tokio::task::block_in_place(&mut line);
        assert_eq!(done["deleted"], 404, "{done}");
        assert!(peer.wait().unwrap().success());
        let left: Vec<_> = s
            .events()
            .await
            .into_iter()
            .filter_map(|e| match e.payload {
                switchboard_core::EventPayload::ParticipantLeft {
                    participant,
                    reason,
                    ..
                } => Some((participant.identity.to_string(), reason)),
                _ => None,
            })
            .collect();
        assert_eq!(
            left,
            vec![(
                "encoder".to_owned(),
                switchboard_core::event::LeaveReason::Removed
            )]
        );
    });
}

/// Issue 22: moderation did not hold on live media. Revoking `can_publish`
/// left the tracks flowing, revoking `can_subscribe` left subscriptions
/// flowing, `subscribe: true` resumed one without `can_subscribe`, and a
/// publisher undid a server mute with its own `mute`. Two aiortc participants.
#[test]
fn moderation_holds_on_live_media() {
    isolated("participants::moderation_holds_on_live_media", || async {
        let s = Server::start(Backend::Sqlite).await;
        send(
            s.dev(Method::POST, "/v1/rooms")
                .json(&json!({ "name": "mod" })),
        )
        .await;
        let alice_token = token(&s, "mod", "alice", json!({}), json!({})).await;
        let bob_token = token(&s, "mod", "bob", json!({ "can_publish": false }), json!({})).await;
        let mut alice = SdkPeer::start(&s, &alice_token, true);
        let video = alice
            .until("alice's video track", |e| {
                let m = &e["msg"];
                (m["type"] == "track_published" && m["track"]["kind"] == "video")
                    .then(|| m["track"]["sid"].as_str().unwrap().to_owned())
            })
            .await;
        let mut bob = SdkPeer::start(&s, &bob_token, false);
        bob.until("bob's first frames", |e| {
            (e["event"] == "frames" && e["video"].as_u64() > Some(20)).then_some(())
        })
        .await;

        // A server mute sticks: the publisher cannot lift it.
        let (st, _) = send(
            s.dev(Method::POST, "/v1/rooms/mod/participants/alice/mute")
                .json(&json!({ "track_sid": video, "muted": true })),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        alice.send(json!({ "type": "mute", "track_sid": video, "muted": false }));
        let refused = alice.signal("error").await;
        assert_eq!(refused["code"], "muted_by_server", "{refused}");
        let (_, a) = send(s.dev(Method::GET, "/v1/rooms/mod/participants/alice")).await;
        let muted: Vec<_> = a["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["sid"] == video.as_str())
            .map(|t| t["muted"].clone())
            .collect();
        assert_eq!(muted, vec![json!(true)], "{a}");
        let (st, _) = send(
            s.dev(Method::POST, "/v1/rooms/mod/participants/alice/mute")
                .json(&json!({ "track_sid": video, "muted": false })),
        )
        .await;
        assert_eq!(st, StatusCode::OK);

        // Revoking can_subscribe stops what bob receives, and he cannot resume it.
        // Video resumes after the unmute (once the publisher answers the SFU's keyframe request).
        let start = bob.frames.0;
        bob.until("bob's video after the unmute", |e| {
            (e["event"] == "frames" && e["video"].as_u64() >= Some(start + 10)).then_some(())
        })
        .await;
        let (st, b) = send(s.dev(Method::PATCH, "/v1/rooms/mod/participants/bob").json(&json!({
            "permissions": { "can_publish": false, "can_subscribe": false, "can_publish_data": true }
        })))
        .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        bob.send(json!({ "type": "subscribe", "track_sids": [video], "subscribe": true }));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let after = bob.video_frames_over(Duration::from_secs(2)).await;
        assert!(
            after <= 2,
            "bob still decoded {after} frames after losing can_subscribe"
        );

        // Revoking can_publish unpublishes alice's tracks at once.
        let (st, _) = send(s.dev(Method::PATCH, "/v1/rooms/mod/participants/alice").json(&json!({
            "permissions": { "can_publish": false, "can_subscribe": true, "can_publish_data": true }
        })))
        .await;
        assert_eq!(st, StatusCode::OK);
        let gone = alice.signal("track_unpublished").await;
        assert_eq!(gone["participant_sid"], a["sid"], "{gone}");
        let mut tracks = json!(null);
        for _ in 0..20 {
            let (_, a) = send(s.dev(Method::GET, "/v1/rooms/mod/participants/alice")).await;
            tracks = a["tracks"].clone();
            if tracks == json!([]) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(tracks, json!([]), "alice publishes nothing any more");
        let unpublished = s
            .events()
            .await
            .into_iter()
            .filter(|e| {
                matches!(
                    e.payload,
                    switchboard_core::EventPayload::TrackUnpublished { .. }
                )
            })
            .count();
        assert_eq!(unpublished, 2, "both of alice's tracks");
    });
}

/// The next message on `ws` that is not a subscriber offer, a candidate or a
/// quality update.
async fn next_roster_message(ws: &mut Ws) -> Value {
    loop {
        let v = next(ws).await;
        if !matches!(
            v["type"].as_str(),
            Some("offer" | "candidate" | "connection_quality" | "active_speakers")
        ) {
            return v;
        }
    }
}

/// Issue 22: the `recorder` grant only hid a participant from the REST
/// lists, while the docs promise it is hidden from the room and not billed.
/// Now the room never hears of it, it appears in no event (so in no bill and
/// no webhook), and it only receives.
#[tokio::test]
async fn a_recorder_is_hidden_from_the_room_and_not_billed() {
    let s = Server::start(Backend::Sqlite).await;
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "r" })),
    )
    .await;
    let ann = token(&s, "r", "ann", json!({}), json!({})).await;
    let rec = token(&s, "r", "rec", json!({ "recorder": true }), json!({})).await;
    let bob = token(&s, "r", "bob", json!({}), json!({})).await;
    let mut ann = connect(&s, &ann).await;
    until(&mut ann, "join").await;
    let mut rec = connect(&s, &rec).await;
    let join = until(&mut rec, "join").await;
    assert_eq!(
        join["participants"][0]["identity"], "ann",
        "a recorder sees the room"
    );
    rec.send(Message::Text(
        r#"{"type":"add_track","cid":"c","kind":"video"}"#.into(),
    ))
    .await
    .unwrap();
    assert_eq!(until(&mut rec, "error").await["code"], "not_allowed");
    let mut bob = connect(&s, &bob).await;
    let join = until(&mut bob, "join").await;
    let seen: Vec<_> = join["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["identity"].clone())
        .collect();
    assert_eq!(seen, vec![json!("ann")], "bob is not told of the recorder");
    // The room's messages reach ann in order: bob's arrival comes after whatever rec's caused.
    let m = next_roster_message(&mut ann).await;
    assert_eq!(
        (m["type"].as_str(), m["participant"]["identity"].as_str()),
        (Some("participant_joined"), Some("bob")),
        "{m}"
    );
    rec.send(Message::Text(r#"{"type":"leave"}"#.into()))
        .await
        .unwrap();
    // Long enough for the recorder's departure to reach ann, were it announced.
    tokio::time::sleep(Duration::from_millis(300)).await;
    bob.send(Message::Text(r#"{"type":"leave"}"#.into()))
        .await
        .unwrap();
    let m = next_roster_message(&mut ann).await;
    assert_eq!(
        (m["type"].as_str(), m["identity"].as_str()),
        (Some("participant_left"), Some("bob")),
        "{m}"
    );

    let (st, _) = send(s.dev(Method::GET, "/v1/rooms/r/participants/rec")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let people: Vec<String> = s
        .events()
        .await
        .into_iter()
        .filter_map(|e| match e.payload {
            switchboard_core::EventPayload::ParticipantJoined { participant, .. }
            | switchboard_core::EventPayload::ParticipantLeft { participant, .. } => {
                Some(participant.identity.to_string())
            }
            _ => None,
        })
        .collect();
    assert_eq!(people, ["ann", "bob", "bob"], "the recorder is in no event");
}

/// Issue 22: a `participant.joined` that could not be appended to the event
/// log was logged and ignored, so the participant was in the room and never
/// billed. The database refuses the append here (a trigger); the join must fail.
#[tokio::test]
async fn a_join_that_cannot_be_recorded_is_refused() {
    use sqlx::{Connection, Executor};
    let s = Server::start(Backend::Postgres).await;
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "r" })),
    )
    .await;
    let mut db = sqlx::PgConnection::connect(&s.db.url).await.unwrap();
    db.execute(
        "CREATE FUNCTION refuse_joins() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN RAISE EXCEPTION 'disk full'; END $$; \
         CREATE TRIGGER refuse_joins BEFORE INSERT ON events FOR EACH ROW \
         WHEN (NEW.type = 'participant.joined') EXECUTE FUNCTION refuse_joins();",
    )
    .await
    .unwrap();
    let t = token(&s, "r", "ann", json!({}), json!({})).await;
    let mut ws = connect(&s, &t).await;
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an answer in time")
        {
            Some(Ok(Message::Close(frame))) => {
                break frame.map(|f| (u16::from(f.code), f.reason.to_string()))
            }
            Some(Ok(Message::Text(t))) => {
                assert!(!t.as_str().contains(r#""type":"join""#), "admitted: {t}")
            }
            Some(Ok(_)) => {}
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(closed, Some((1013, "unavailable".to_owned())));
    let (_, list) = send(s.dev(Method::GET, "/v1/rooms/r/participants")).await;
    assert_eq!(list["data"], json!([]), "nobody is in the room unbilled");
}

/// Issue 22: a client's ICE candidates could point the node's ICE agent at
/// addresses only the node reaches (the cloud metadata service, link-local
/// neighbours, its own loopback services). Such candidates are refused when
/// trickled and dropped from offers; the node in this test serves on a
/// non-loopback address, so loopback is refused too.
#[tokio::test]
async fn candidates_at_the_nodes_own_side_are_refused() {
    // 127.0.0.2 is loopback to the kernel but not the address candidates are compared against.
    let s = Server::start_with(Backend::Sqlite, &["--dev", "--rtc-bind-ip", "0.0.0.0"]).await;
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "r" })),
    )
    .await;
    let t = token(&s, "r", "ann", json!({}), json!({})).await;
    let mut ws = connect(&s, &t).await;
    until(&mut ws, "join").await;
    for addr in [
        "169.254.169.254",
        "fd00:ec2::254",
        "127.0.0.1",
        "fe80::1",
        "224.0.0.251",
    ] {
        let frame = json!({ "type": "candidate", "target": "publisher", "candidate": {
            "candidate": format!("candidate:1 1 udp 2130706431 {addr} 80 typ host"), "sdpMid": "0", "sdpMLineIndex": 0 } });
        ws.send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
        let refused = until(&mut ws, "error").await;
        assert_eq!(refused["code"], "invalid_candidate", "{addr}: {refused}");
        assert!(
            refused["message"].as_str().unwrap().contains("metadata"),
            "{refused}"
        );
    }
    // An ordinary public or private address is taken (buffered until the offer).
    let frame = json!({ "type": "candidate", "target": "publisher", "candidate": {
        "candidate": "candidate:1 1 udp 2130706431 192.168.1.20 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0 } });
    ws.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
    ws.send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await
        .unwrap();
    let next = loop {
        let m = next(&mut ws).await;
        if m["type"] == "error" || m["type"] == "pong" {
            break m;
        }
    };
    assert_eq!(next["type"], "pong", "{next}");
}

/// Issue 22: `room_admin` was enforced nowhere. A room admin now removes,
/// mutes and updates other participants over signaling; anyone else who
/// tries is refused.
#[tokio::test]
async fn a_room_admin_moderates_over_signaling_and_others_may_not() {
    let s = Server::start(Backend::Sqlite).await;
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "r" })),
    )
    .await;
    let host = token(&s, "r", "host", json!({ "room_admin": true }), json!({})).await;
    let bob = token(&s, "r", "bob", json!({}), json!({})).await;
    let eve = token(&s, "r", "eve", json!({}), json!({})).await;
    let mut host = connect(&s, &host).await;
    until(&mut host, "join").await;
    let mut bob = connect(&s, &bob).await;
    until(&mut bob, "join").await;
    let mut eve = connect(&s, &eve).await;
    until(&mut eve, "join").await;

    // Not an admin: refused, and nothing changes.
    for frame in [
        json!({ "type": "remove_participant", "identity": "bob" }),
        json!({ "type": "update_participant", "identity": "bob", "name": "Pwned" }),
        json!({ "type": "mute_participant", "identity": "bob", "track_sid": "tr_01JD0000000000000000000000", "muted": true }),
    ] {
        eve.send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
        let refused = until(&mut eve, "error").await;
        assert_eq!(refused["code"], "not_allowed", "{frame}: {refused}");
    }
    let (_, b) = send(s.dev(Method::GET, "/v1/rooms/r/participants/bob")).await;
    assert_eq!(b["name"], "", "{b}");

    // The admin: an update everyone hears, then a removal.
    let frame = json!({ "type": "update_participant", "identity": "bob", "name": "Bob",
        "permissions": { "can_publish": false, "can_subscribe": true, "can_publish_data": false } });
    host.send(Message::Text(frame.to_string().into()))
        .await
        .unwrap();
    let updated = until(&mut bob, "participant_updated").await;
    assert_eq!(updated["participant"]["name"], "Bob", "{updated}");
    assert_eq!(
        updated["participant"]["permissions"]["can_publish"], false,
        "{updated}"
    );
    host.send(Message::Text(
        json!({ "type": "remove_participant", "identity": "nobody" })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(
        until(&mut host, "error").await["code"],
        "participant_not_found"
    );
    host.send(Message::Text(
        json!({ "type": "remove_participant", "identity": "bob" })
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let leave = until(&mut bob, "leave").await;
    assert_eq!(leave["reason"], "removed", "{leave}");
    let (st, _) = send(s.dev(Method::GET, "/v1/rooms/r/participants/bob")).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "bob is gone");
}

/// Issue 22: a participant that vanished without leaving (an encoder killed,
/// a laptop lid closed) was billed until its connection timed out, 20 s past
/// its last packet (an aiortc WHIP publisher). Its session now ends at the
/// last packet the node received from it.
#[test]
fn a_vanished_participant_is_billed_up_to_its_last_packet() {
    isolated(
        "participants::a_vanished_participant_is_billed_up_to_its_last_packet",
        || async {
            let s = Server::start(Backend::Sqlite).await;
            send(
                s.dev(Method::POST, "/v1/rooms")
                    .json(&json!({ "name": "show" })),
            )
            .await;
            let broadcaster = token(&s, "show", "encoder", json!({}), json!({})).await;
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/whip_broadcast.py");
            let mut peer = Command::new("python3")
                .args([script, &s.base, "show", &broadcaster])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("python3 with aiortc (tests/peers/requirements.txt) must be installed");
            let mut lines = BufReader::new(peer.stdout.take().unwrap()).lines();
            let on_air = tokio::task::block_in_place(|| lines.next())
                .expect("the broadcaster reports")
                .unwrap();
            assert!(on_air.contains("location"), "{on_air}");
            tokio::time::sleep(Duration::from_secs(2)).await;
            peer.kill().unwrap();
            peer.wait().unwrap();
            let vanished = chrono::Utc::now();

            let deadline = Instant::now() + Duration::from_secs(90);
            let session = loop {
                let (_, sessions) = send(s.dev(Method::GET, "/v1/usage/sessions?limit=10")).await;
                let session = sessions["data"][0].clone();
                if !session["left_at"].is_null() {
                    break session;
                }
                assert!(
                    Instant::now() < deadline,
                    "the session never ended: {sessions}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            };
            let noticed = chrono::Utc::now();
            assert_eq!(session["leave_reason"], "connection_lost", "{session}");
            let left_at: chrono::DateTime<chrono::Utc> =
                session["left_at"].as_str().unwrap().parse().unwrap();
            let past_last_packet = (left_at - vanished).num_milliseconds();
            assert!(
                (-1500..=1000).contains(&past_last_packet),
                "billed {past_last_packet} ms past the moment it vanished; the node noticed {} ms after",
                (noticed - vanished).num_milliseconds()
            );
        },
    );
}
