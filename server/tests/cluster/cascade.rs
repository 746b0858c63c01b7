//! One room across two regions: each participant connects to a media node
//! of its own region, and the nodes hosting the room relay its tracks to
//! each other, each track once per link.

use super::*;
use common::sdk_peer::SdkPeer;

/// A token for `identity` in `room`, asked for from `region`, and the node
/// it names.
pub(super) async fn regional_token(
    via: &Server,
    room: &str,
    identity: &str,
    region: &str,
) -> (String, String) {
    let body = json!({ "room": room, "identity": identity, "region": region });
    issue_token(via, body).await
}

/// The token `POST /v1/tokens` gives for `body`, and the node it names.
pub(super) async fn issue_token(via: &Server, body: Value) -> (String, String) {
    let (st, t) = send(via.dev(Method::POST, "/v1/tokens").json(&body)).await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    (
        t["token"].as_str().unwrap().to_owned(),
        t["url"].as_str().unwrap().to_owned(),
    )
}

/// The session id of `identity` in room `global`, as the REST API lists it.
async fn list_sid(api: &Server, identity: &str) -> String {
    let (st, p) = send(api.dev(
        Method::GET,
        &format!("/v1/rooms/global/participants/{identity}"),
    ))
    .await;
    assert_eq!(st, StatusCode::OK, "{p}");
    p["sid"].as_str().unwrap().to_owned()
}

/// The value of the gauge `name` on `server`'s `/metrics`.
pub(super) async fn gauge(server: &Server, name: &str) -> f64 {
    let text = server
        .request(Method::GET, "/metrics")
        .send()
        .await
        .expect("metrics answered")
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Whether `event` tells the connection quality of participant `sid`.
fn quality_of(event: &Value, sid: &str) -> bool {
    let m = &event["msg"];
    m["type"] == "connection_quality"
        && m["updates"]
            .as_array()
            .is_some_and(|u| u.iter().any(|u| u["sid"] == sid))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_spans_two_regions_and_each_track_crosses_once() {
    let _alone = media_heavy().await;
    let api = Server::start_with(Backend::Postgres, &args(&node_args("api", "eu-west"))).await;
    let eu = api.sibling(&args(&node_args("media", "eu-west")));
    let us = api.sibling(&args(&node_args("media", "us-east")));
    let (st, _) = send(
        api.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "global", "record": true })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);

    // Alice publishes in Europe: the room goes live there.
    let (alice_token, url) = regional_token(&api, "global", "alice", "eu-west").await;
    assert_eq!(url, rtc_url(&eu));
    let mut alice = SdkPeer::start_speaking(&eu, &alice_token);
    alice
        .until("alice's video track", |e| {
            let m = &e["msg"];
            (m["type"] == "track_published" && m["track"]["kind"] == "video").then_some(())
        })
        .await;

    // Three people in America are sent to the American node, which hosts
    // the room too: each sees alice and decodes her video.
    let mut viewers = Vec::new();
    for name in ["bob", "carol", "dave"] {
        let (token, url) = regional_token(&api, "global", name, "us-east").await;
        assert_eq!(
            url,
            rtc_url(&us),
            "{name} is sent to a node of their region"
        );
        viewers.push(SdkPeer::start(&us, &token, false));
    }
    let alice_sid = list_sid(&api, "alice").await;
    // Whether each viewer was told alice's connection quality, measured in Europe.
    let mut qualities = Vec::new();
    for (i, viewer) in viewers.iter_mut().enumerate() {
        let mut seen = Vec::new();
        let got = tokio::time::timeout(
            Duration::from_secs(15),
            viewer.until("alice's video, relayed", |e| {
                if e["event"] != "frames" {
                    seen.push(e.clone());
                }
                (e["event"] == "frames" && e["video"].as_u64() > Some(20)).then_some(())
            }),
        )
        .await;
        qualities.push(seen.iter().any(|e| quality_of(e, &alice_sid)));
        if got.is_err() {
            // What the viewer heard, and what the nodes did.
            for e in &seen {
                eprintln!("viewer {i}: {e}");
            }
            eprintln!("EU LOG:\n{}\nUS LOG:\n{}", eu.log(), us.log());
            panic!("viewer {i} decoded no video: {:?}", viewer.frames);
        }
    }

    // America sees Alice's connection quality, measured in Europe: when
    // they join, or when Europe first says it (checked before anything else
    // reads what the viewers heard).
    for (viewer, told) in viewers.iter_mut().zip(qualities) {
        if !told {
            viewer
                .until("alice's connection quality in America", |e| {
                    quality_of(e, &alice_sid).then_some(())
                })
                .await;
        }
    }

    // Europe sends her two tracks once, over one link, for all three.
    assert_eq!(gauge(&eu, "switchboard_relay_links").await, 1.0);
    assert_eq!(gauge(&eu, "switchboard_relay_tracks").await, 2.0);
    // America publishes nothing: its link to Europe carries no track.
    assert_eq!(gauge(&us, "switchboard_relay_tracks").await, 0.0);

    // Someone in America publishes: Europe receives it over the other link.
    let (erin_token, _) = regional_token(&api, "global", "erin", "us-east").await;
    let mut erin = SdkPeer::start(&us, &erin_token, true);
    alice
        .until("erin's video in Europe", |e| {
            (e["event"] == "frames" && e["video"].as_u64() > Some(20)).then_some(())
        })
        .await;
    assert_eq!(gauge(&us, "switchboard_relay_tracks").await, 2.0);

    // Alice speaks in Europe: America hears who speaks.
    for viewer in &mut viewers {
        viewer
            .until("alice among America's active speakers", |e| {
                let m = &e["msg"];
                (m["type"] == "active_speakers"
                    && m["speakers"]
                        .as_array()
                        .is_some_and(|s| s.iter().any(|s| s["sid"] == alice_sid.as_str())))
                .then_some(())
            })
            .await;
    }

    // Data messages reach everyone, on either side.
    alice.data(r#"{"topic":"chat","payload":"hello from Europe"}"#);
    for viewer in &mut viewers {
        let text = viewer
            .until("alice's message in America", |e| {
                (e["event"] == "data").then(|| e["text"].as_str().unwrap_or("").to_owned())
            })
            .await;
        let message: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            message,
            json!({ "from": "alice", "topic": "chat", "payload": "hello from Europe" })
        );
    }
    erin.data(r#"{"payload":"hello from America"}"#);
    let text = alice
        .until("erin's message in Europe", |e| {
            (e["event"] == "data").then(|| e["text"].as_str().unwrap_or("").to_owned())
        })
        .await;
    assert!(text.contains("hello from America"), "{text}");

    // One room: Europe's node lists everyone, wherever they connected.
    let (st, list) = send(api.dev(Method::GET, "/v1/rooms/global/participants")).await;
    assert_eq!(st, StatusCode::OK, "{list}");
    let mut who: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["identity"].as_str().unwrap())
        .collect();
    who.sort_unstable();
    assert_eq!(who, ["alice", "bob", "carol", "dave", "erin"], "{list}");

    // A viewer who leaves America leaves Europe's roster too.
    // (It hangs up: a client that merely vanishes is held for its resume.)
    viewers.pop().unwrap().leave();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, list) = send(api.dev(Method::GET, "/v1/rooms/global/participants")).await;
        if list["data"].as_array().map(Vec::len) == Some(4) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "dave is still listed: {list}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Each participant joined once, on the node it connected to.
    let events = api.events().await;
    let joins = events
        .iter()
        .filter(|e| e.event_type() == "participant.joined")
        .count();
    assert_eq!(joins, 5);

    // The room's recording, made once in Europe, has erin's tracks from
    // America as well as alice's.
    let (st, list) = send(api.dev(Method::GET, "/v1/recordings")).await;
    assert_eq!(st, StatusCode::OK, "{list}");
    let recordings = list["data"].as_array().unwrap();
    assert_eq!(recordings.len(), 1, "{list}");
    let id = recordings[0]["id"].as_str().unwrap().to_owned();
    let (st, body) = send(api.dev(Method::POST, &format!("/v1/recordings/{id}/stop"))).await;
    assert!(st.is_success(), "{st} {body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let recording = loop {
        let (_, r) = send(api.dev(Method::GET, &format!("/v1/recordings/{id}"))).await;
        if r["status"] == "finished" || r["status"] == "failed" {
            break r;
        }
        assert!(tokio::time::Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(recording["status"], "finished", "{recording}");
    for who in ["alice", "erin"] {
        let video = recording["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["participant"]["identity"] == who && f["track"]["kind"] == "video");
        let video = video.unwrap_or_else(|| panic!("no video of {who}: {recording}"));
        assert!(video["size_bytes"].as_u64() > Some(1_000), "{video}");
        assert!(video["duration_ms"].as_u64() > Some(1_000), "{video}");
    }
}
