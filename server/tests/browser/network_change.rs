//! A publisher whose network changes under it (Wi-Fi to cellular): its
//! address goes away, the SDK restarts ICE from the new one, and the room
//! never sees it leave. The subscriber is an aiortc participant on an
//! address of its own, which the change does not touch.

use std::time::{Duration, Instant};

use super::common::browser::{isolated, netns_run, Driver};
use super::common::sdk_peer::SdkPeer;
use super::common::{send, Server};
use super::{token, JOIN};
use reqwest::Method;
use serde_json::{json, Value};
use switchboard_store::Backend;

/// The server's address, on an interface of its own. WebRTC in Chromium
/// gathers on no interface named `vmnet*` (a virtual machine's host side), so
/// the publisher's only route is its own network's.
const NODE: &str = "10.20.0.1";
/// The publisher's first network and its second.
const WIFI: &str = "10.10.0.2";
const CELLULAR: &str = "10.30.0.2";
/// The subscriber's address.
const HOME: &str = "10.40.0.2";

/// An interface `name` holding `address`: one end of a veth pair, both ends
/// up (the namespace's kernel may lack the dummy driver).
fn interface(name: &str, address: &str) {
    let peer = format!("{name}-peer");
    netns_run(
        "ip",
        &["link", "add", name, "type", "veth", "peer", "name", &peer],
    );
    netns_run(
        "ip",
        &["addr", "add", &format!("{address}/24"), "dev", name],
    );
    for link in [name, peer.as_str()] {
        netns_run("ip", &["link", "set", link, "up"]);
    }
}

/// The publisher connection's local and remote candidate addresses of its selected pair.
const PUBLISHER_PAIR: &str = r#"
    const stats = await room.publisher.getStats();
    const pairs = {}, candidates = {};
    let selected = null;
    stats.forEach((s) => {
      if (s.type === 'candidate-pair') pairs[s.id] = s;
      if (s.type === 'transport' && s.selectedCandidatePairId) selected = s.selectedCandidatePairId;
      if (s.type === 'local-candidate' || s.type === 'remote-candidate') candidates[s.id] = s;
    });
    const p = selected && pairs[selected];
    if (!p || p.state !== 'succeeded') return null;
    return { local: (candidates[p.localCandidateId] || {}).address, remote: (candidates[p.remoteCandidateId] || {}).address };
"#;

/// The video frames `bob` has decoded, as of its next report.
async fn decoded(bob: &mut SdkPeer) -> u64 {
    bob.until("a frame count", |e| (e["event"] == "frames").then_some(()))
        .await;
    bob.frames.0
}

#[test]
fn a_publisher_whose_address_changes_restarts_ice_and_stays() {
    isolated(
        "network_change::a_publisher_whose_address_changes_restarts_ice_and_stays",
        || async {
            interface("vmnet0", NODE);
            interface("vmnet1", HOME);
            interface("wifi0", WIFI);
            let s = Server::start_with(Backend::Sqlite, &["--dev", "--rtc-bind-ip", NODE]).await;
            send(
                s.dev(Method::POST, "/v1/rooms")
                    .json(&json!({ "name": "commute" })),
            )
            .await;
            let driver = Driver::start().await;
            let alice = driver
                .browser_with(&[], &["--allow-loopback-in-peer-connection"])
                .await;
            alice
                .client
                .goto(&format!("{}/demo", s.base))
                .await
                .unwrap();
            let (url, t) = token(&s, "commute", "alice", json!({})).await;
            alice.run(JOIN, vec![json!(url), json!(t)]).await;
            alice
                .run("await room.publishCamera(); return null;", vec![])
                .await;
            alice
                .run("room.on('ice_restart', () => { window.restartedAt = performance.now(); }); return null;", vec![])
                .await;
            let (_, t) = token(&s, "commute", "bob", json!({ "can_publish": false })).await;
            let mut bob = SdkPeer::start_on(&s, &t, false, HOME);

            let mut pair = Value::Null;
            let mut before = 0;
            for _ in 0..100 {
                pair = alice.run(PUBLISHER_PAIR, vec![]).await;
                before = decoded(&mut bob).await;
                if before > 20 && !pair.is_null() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(before > 20, "bob decodes alice's video: {before}");
            assert_eq!(
                pair,
                json!({ "local": WIFI, "remote": NODE }),
                "alice publishes from Wi-Fi"
            );
            let (_, listed) =
                send(s.dev(Method::GET, "/v1/rooms/commute/participants/alice")).await;

            // Wi-Fi gone, cellular up: a new interface, the old address removed.
            interface("cell0", CELLULAR);
            netns_run(
                "ip",
                &["addr", "del", &format!("{WIFI}/24"), "dev", "wifi0"],
            );
            let changed = Instant::now();
            let mut frozen = decoded(&mut bob).await;
            let mut resumed = None;
            while changed.elapsed() < Duration::from_secs(30) {
                let now = decoded(&mut bob).await;
                pair = alice.run(PUBLISHER_PAIR, vec![]).await;
                if pair["local"] == CELLULAR && now > frozen + 5 {
                    resumed = Some(changed.elapsed());
                    break;
                }
                if pair["local"] != CELLULAR {
                    // Frames still counted on the old path are not a recovery.
                    frozen = now;
                }
            }
            let resumed =
                resumed.unwrap_or_else(|| panic!("bob never decoded alice over cellular: {pair}"));
            // Chromium notices the lost path after about 5 s without answers
            // (its ICE state turns `disconnected`) and the SDK gives that 2 s
            // to heal by itself; from the restart on it is the server's part,
            // timed on the page's clock.
            let since_restart = alice
                .run(
                    "return window.restartedAt === undefined ? null : performance.now() - window.restartedAt;",
                    vec![],
                )
                .await
                .as_f64()
                .expect("the SDK restarted ICE");
            let since_restart = Duration::from_secs_f64(since_restart / 1000.0);
            eprintln!("bob decodes again {resumed:?} after the change, at most {since_restart:?} after the restart");
            assert!(
                since_restart <= Duration::from_secs(3),
                "bob decodes again {since_restart:?} after the ICE restart, over 3 s"
            );
            let (_, again) = send(s.dev(Method::GET, "/v1/rooms/commute/participants/alice")).await;
            assert_eq!(again["sid"], listed["sid"], "the same participant");
            assert_eq!(again["tracks"], listed["tracks"], "the same tracks");
            let (_, room) = send(s.dev(Method::GET, "/v1/rooms/commute/participants")).await;
            assert!(room.to_string().contains("alice"), "{room}");
            let left = s
                .events()
                .await
                .into_iter()
                .filter(|e| e.event_type() == "participant.left")
                .count();
            assert_eq!(left, 0, "nobody left");
            alice.close().await;
        },
    );
}
