//! Interoperability with an independent WebRTC implementation: aiortc (Python)
//! publishes over WHIP and plays back over WHEP (`tests/peers/aiortc_peer.py`),
//! in a network namespace with only loopback; and the candidates such a
//! client is told to reach behind 1:1 NAT; and the quality summary each
//! session of two aiortc participants ends with.

mod common;

use std::process::Command;
use std::time::Duration;

use common::browser::isolated;
use common::sdk_peer::SdkPeer;
use common::{send, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard_store::Backend;

#[test]
fn aiortc_publishes_over_whip_and_plays_over_whep() {
    isolated("aiortc_publishes_over_whip_and_plays_over_whep", || async {
        let s = Server::start(Backend::Sqlite).await;
        send(
            s.dev(Method::POST, "/v1/rooms")
                .json(&json!({ "name": "interop" })),
        )
        .await;
        let mut tokens = Vec::new();
        for (identity, grants) in [
            ("aiortc-encoder", json!({})),
            ("aiortc-player", json!({ "can_publish": false })),
        ] {
            let (st, t) = send(
                s.dev(Method::POST, "/v1/tokens")
                    .json(&json!({ "room": "interop", "identity": identity, "grants": grants })),
            )
            .await;
            assert_eq!(st, StatusCode::CREATED);
            tokens.push(t["token"].as_str().unwrap().to_owned());
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/aiortc_peer.py");
        let base = s.base.clone();
        let (publish, view) = (tokens[0].clone(), tokens[1].clone());
        let out = tokio::task::spawn_blocking(move || {
            Command::new("python3")
                .arg(script)
                .args([&base, "interop", &publish, &view, "aiortc-encoder"])
                .output()
        })
        .await
        .unwrap()
        .expect("python3 with aiortc (tests/peers/requirements.txt) must be installed");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "aiortc peer failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let result: Value =
            serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("one JSON line");
        eprintln!("aiortc result: {result}");
        assert!(result["video_frames"].as_u64().unwrap() >= 30, "{result}");
        assert!(result["audio_frames"].as_u64().unwrap() >= 50, "{result}");
        assert_eq!(result["video_size"], json!([640, 480]), "{result}");
        assert_eq!(
            (
                result["deleted_whep"].as_u64(),
                result["deleted_whip"].as_u64()
            ),
            (Some(200), Some(200))
        );
        let (_, list) = send(s.dev(Method::GET, "/v1/rooms/interop/participants")).await;
        assert_eq!(list["data"], json!([]));
    });
}

/// `--node-ip` (a node behind 1:1 NAT) names the address clients must reach
/// in every host candidate the node sends: WHIP answers and the SDK's
/// subscriber offers (the node's one candidate rides in the SDP).
#[tokio::test]
async fn host_candidates_name_the_node_ip() {
    let public = "198.51.100.23";
    let s = Server::start_with(Backend::Sqlite, &["--dev", "--node-ip", public]).await;
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "nat" })),
    )
    .await;
    let token = |identity: &'static str| {
        let s = &s;
        async move {
            let (_, t) = send(
                s.dev(Method::POST, "/v1/tokens")
                    .json(&json!({ "room": "nat", "identity": identity })),
            )
            .await;
            t["token"].as_str().unwrap().to_owned()
        }
    };
    let mut ws = common::ws::connect(&s, &token("ann").await).await;
    common::ws::until(&mut ws, "join").await;
    let offer = common::ws::until(&mut ws, "offer").await;
    let sdp = offer["sdp"].as_str().unwrap();
    let hosts: Vec<&str> = sdp
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .collect();
    assert!(!hosts.is_empty(), "{sdp}");
    for c in hosts {
        assert_eq!(c.split_whitespace().nth(4), Some(public), "{c}");
    }

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/whip_answer.py");
    let out = Command::new("python3")
        .args([script, &s.base, "nat", &token("encoder").await])
        .output()
        .expect("python3 with aiortc (tests/peers/requirements.txt) must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer = String::from_utf8(out.stdout).unwrap();
    let hosts: Vec<&str> = answer
        .lines()
        .filter(|l| l.starts_with("a=candidate:") && l.contains(" typ host"))
        .collect();
    assert!(!hosts.is_empty(), "{answer}");
    for c in hosts {
        assert_eq!(c.split_whitespace().nth(4), Some(public), "{c}");
    }
}

/// Two aiortc participants of the WebSocket protocol, one publishing: when
/// each leaves, the log has its `participant.quality_summary` after its
/// `participant.left`, with what it sent or received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_session_ends_with_its_quality_summary() {
    let s = Server::start(Backend::Sqlite).await;
    let (st, _) = send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "summary" })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let token = |identity: &str| {
        let req = s
            .dev(Method::POST, "/v1/tokens")
            .json(&json!({ "room": "summary", "identity": identity }));
        async move {
            let (st, t) = send(req).await;
            assert_eq!(st, StatusCode::CREATED, "{t}");
            t["token"].as_str().unwrap().to_owned()
        }
    };
    let mut alice = SdkPeer::start(&s, &token("alice").await, true);
    // aiortc drops tracks offered while its connection is still connecting:
    // bob joins once alice's video is there.
    alice
        .until("alice's video track", |e| {
            let m = &e["msg"];
            (m["type"] == "track_published" && m["track"]["kind"] == "video").then_some(())
        })
        .await;
    let mut bob = SdkPeer::start(&s, &token("bob").await, false);
    bob.until("alice's video", |e| {
        (e["event"] == "frames" && e["video"].as_u64() > Some(20)).then_some(())
    })
    .await;
    // Two of the node's 3 s measures at least, so each session has an interval.
    tokio::time::sleep(Duration::from_secs(7)).await;
    for peer in [&mut bob, &mut alice] {
        peer.send(json!({ "type": "leave" }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let events = loop {
        let events = s.events().await;
        let summaries = events
            .iter()
            .filter(|e| e.event_type() == "participant.quality_summary")
            .count();
        if summaries == 2 {
            break events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{summaries} summaries"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let types: Vec<&str> = events.iter().map(|e| e.event_type()).collect();
    for who in ["alice", "bob"] {
        let of = |t: &str| {
            events.iter().position(|e| {
                e.event_type() == t
                    && e.payload
                        .participant()
                        .is_some_and(|p| p.identity.as_str() == who)
            })
        };
        let (left, summary) = (of("participant.left"), of("participant.quality_summary"));
        assert!(left.is_some() && summary > left, "{who}: {types:?}");
        let data = serde_json::to_value(&events[summary.unwrap()].payload).unwrap()["data"]
            ["quality"]
            .clone();
        assert!(data["measured_s"].as_u64() >= Some(3), "{who}: {data}");
        assert!(
            data["loss_per_mille"].as_u64() <= Some(1000),
            "{who}: {data}"
        );
        assert!(
            data["worst_minute"]["started_at"].is_string(),
            "{who}: {data}"
        );
        // Alice sent video and audio (aiortc's plain frames and silence: a
        // few tens of kbit/s); bob received them and sent nothing.
        let (sent, got) = (
            data["publish_bps"].as_u64().unwrap(),
            data["subscribe_bps"].as_u64().unwrap(),
        );
        if who == "alice" {
            assert!(sent > 5_000, "alice: {data}");
        } else {
            assert!(got > 5_000 && sent < 1_000, "bob: {data}");
        }
    }
}
