//! A broadcast: once the room's node is full, its viewers go to the region's
//! other nodes, each fed by a relay link from the publisher's node; when an
//! edge node dies, its viewers reconnect to the others and receive again.

use super::cascade::{gauge, issue_token, regional_token};
use super::*;
use common::sdk_peer::SdkPeer;

/// Waits until `peer` decodes video, or fails with the nodes' logs.
async fn decodes(peer: &mut SdkPeer, who: &str, nodes: &[&Server]) {
    let got = tokio::time::timeout(
        Duration::from_secs(20),
        peer.until("video", |e| {
            (e["event"] == "frames" && e["video"].as_u64() > Some(20)).then_some(())
        }),
    )
    .await;
    if got.is_err() {
        for (i, node) in nodes.iter().enumerate() {
            eprintln!("NODE {i} LOG:\n{}", node.log());
        }
        panic!("{who} decoded no video: {:?}", peer.frames);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_nodes_viewers_go_to_the_regions_other_nodes_fed_by_relays() {
    let _alone = media_heavy().await;
    // Each node takes two participants: a small broadcast fills one fast.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("switchboard.toml");
    std::fs::write(&config, "[placement]\nmax_participants = 2\n").unwrap();
    let with_config = |role: &str| {
        let mut a = node_args(role, "eu-west");
        a.extend(["--config".to_owned(), config.display().to_string()]);
        a
    };
    let api = Server::start_with(Backend::Postgres, &args(&with_config("api"))).await;
    let mut nodes: Vec<Server> = (0..3)
        .map(|_| api.sibling(&args(&with_config("media"))))
        .collect();
    let node_of = |url: &str, nodes: &[Server]| {
        nodes
            .iter()
            .position(|n| rtc_url(n) == url)
            .unwrap_or_else(|| panic!("{url} is no media node"))
    };

    let (st, _) = send(
        api.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "show" })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);

    // Alice broadcasts: the room goes live on the origin.
    let (token, url) = regional_token(&api, "show", "alice", "eu-west").await;
    let origin = node_of(&url, &nodes);
    let mut alice = SdkPeer::start(&nodes[origin], &token, true);
    alice
        .until("alice's video track", |e| {
            let m = &e["msg"];
            (m["type"] == "track_published" && m["track"]["kind"] == "video").then_some(())
        })
        .await;

    // Four viewers: the origin takes one more, the other two nodes the rest,
    // and every viewer decodes alice's video.
    let mut viewers = Vec::new();
    for i in 0..4 {
        let name = format!("viewer-{i}");
        let (token, url) = viewer_token(&api, &name).await;
        let at = node_of(&url, &nodes);
        let mut peer = SdkPeer::start(&nodes[at], &token, false);
        decodes(&mut peer, &name, &nodes.iter().collect::<Vec<_>>()).await;
        viewers.push((name, at, Some(peer)));
    }
    let on = |node: usize, viewers: &[(String, usize, Option<SdkPeer>)]| {
        viewers.iter().filter(|(_, at, _)| *at == node).count()
    };
    assert_eq!(on(origin, &viewers), 1, "the origin took one viewer");
    let edges: Vec<usize> = (0..3).filter(|n| *n != origin).collect();
    for edge in &edges {
        let here = on(*edge, &viewers);
        assert!((1..=2).contains(&here), "edge {edge} has {here} viewers");
    }

    // The origin sends alice's two tracks once to each edge, whatever its
    // audience; the edges send nothing back.
    assert_eq!(gauge(&nodes[origin], "switchboard_relay_links").await, 2.0);
    assert_eq!(gauge(&nodes[origin], "switchboard_relay_tracks").await, 4.0);
    for edge in &edges {
        assert_eq!(gauge(&nodes[*edge], "switchboard_relay_tracks").await, 0.0);
    }

    // One room: everyone is listed, and each joined once.
    let (st, list) = send(api.dev(Method::GET, "/v1/rooms/show/participants")).await;
    assert_eq!(st, StatusCode::OK, "{list}");
    assert_eq!(list["data"].as_array().unwrap().len(), 5, "{list}");
    let joins = |events: &[switchboard_core::Event]| {
        events
            .iter()
            .filter(|e| e.event_type() == "participant.joined")
            .count()
    };
    assert_eq!(joins(&api.events().await), 5);

    // REST calls reach the room's first node, which sends them on to the
    // node a participant is connected to. A viewer on the emptier edge is
    // allowed to publish, starts to, and alice on the origin receives it.
    let victim = *edges
        .iter()
        .max_by_key(|e| (on(**e, &viewers), **e))
        .unwrap();
    assert_eq!(on(victim, &viewers), 2);
    let (promoted, _, peer) = viewers
        .iter_mut()
        .find(|(_, at, _)| *at != origin && *at != victim)
        .unwrap();
    let path = format!("/v1/rooms/show/participants/{promoted}");
    let (st, _) = send(api.dev(Method::GET, &path)).await;
    assert_eq!(st, StatusCode::OK);
    let allow = json!({ "permissions": {
        "can_publish": true, "can_subscribe": true, "can_publish_data": true,
    }, "metadata": "on stage" });
    let (st, info) = send(api.dev(Method::PATCH, &path).json(&allow)).await;
    assert_eq!(st, StatusCode::OK, "{info}");
    assert_eq!(info["permissions"]["can_publish"], true, "{info}");
    assert_eq!(info["metadata"], "on stage", "{info}");
    let peer = peer.as_mut().unwrap();
    peer.until("the viewer's new permission", |e| {
        (e["msg"]["participant"]["permissions"]["can_publish"] == true).then_some(())
    })
    .await;
    peer.publish();
    alice
        .until("the promoted viewer's video on the origin", |e| {
            (e["event"] == "frames" && e["video"].as_u64() > Some(20)).then_some(())
        })
        .await;
    // Its host mutes its track when asked through the API; a track or
    // participant the room does not have is a clear 404.
    let (_, info) = send(api.dev(Method::GET, &path)).await;
    let track = info["tracks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["kind"] == "video"))
        .map(|t| t["sid"].clone())
        .unwrap_or_else(|| panic!("the promoted viewer's video is not listed: {info}"));
    let mute = json!({ "track_sid": track, "muted": true });
    let (st, info) = send(api.dev(Method::POST, &format!("{path}/mute")).json(&mute)).await;
    assert_eq!(st, StatusCode::OK, "{info}");
    let muted = info["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["sid"] == track);
    assert_eq!(muted.unwrap()["muted"], true, "{info}");
    let wrong = json!({ "track_sid": switchboard_core::TrackSid::new(), "muted": true });
    let (st, _) = send(api.dev(Method::POST, &format!("{path}/mute")).json(&wrong)).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    expect_error(
        api.dev(Method::DELETE, "/v1/rooms/show/participants/nobody"),
        StatusCode::NOT_FOUND,
        "participant_not_found",
    )
    .await;

    // The fuller edge dies. Its viewers ask for a token again, as the SDK
    // does: a full node is never named, so they go to a live one and
    // receive again.
    nodes[victim].kill_9();
    let mut moved = 0;
    for (name, at, peer) in viewers.iter_mut().filter(|(_, at, _)| *at == victim) {
        drop(peer.take());
        let started = std::time::Instant::now();
        let (token, url) = regional_token(&api, "show", name, "eu-west").await;
        let now_at = node_of(&url, &nodes);
        assert_ne!(now_at, victim, "{name} was sent back to the dead node");
        let mut again = SdkPeer::start(&nodes[now_at], &token, false);
        let alive: Vec<&Server> = (0..3).filter(|n| *n != victim).map(|n| &nodes[n]).collect();
        decodes(&mut again, name, &alive).await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name} took {:?} to receive again",
            started.elapsed()
        );
        (*at, *peer) = (now_at, Some(again));
        moved += 1;
    }
    assert_eq!(moved, 2);
    // Each reconnect is one more join, on the node it reached.
    assert_eq!(joins(&api.events().await), 7);

    // Removing a viewer connected to another node ends its session there.
    let (name, _, peer) = viewers.iter_mut().find(|(_, at, _)| *at != origin).unwrap();
    let (st, body) = send(api.dev(
        Method::DELETE,
        &format!("/v1/rooms/show/participants/{name}"),
    ))
    .await;
    assert!(st.is_success(), "{st} {body}");
    peer.take()
        .unwrap()
        .until("the removed viewer's end", |e| {
            (e["event"] == "closed").then_some(())
        })
        .await;

    // Deleting the room ends everyone's session, on every node.
    let (st, body) = send(api.dev(Method::DELETE, "/v1/rooms/show")).await;
    assert!(st.is_success(), "{st} {body}");
    let closed = |e: &Value| (e["event"] == "closed").then_some(());
    alice.until("alice's end", closed).await;
    for (name, _, peer) in &mut viewers {
        if let Some(peer) = peer {
            peer.until(&format!("{name}'s end"), closed).await;
        }
    }
}

/// A token for viewer `name`, who may not publish, and the node it names.
async fn viewer_token(api: &Server, name: &str) -> (String, String) {
    let body = json!({
        "room": "show", "identity": name, "region": "eu-west",
        "grants": { "can_publish": false },
    });
    issue_token(api, body).await
}
