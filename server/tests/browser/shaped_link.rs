//! A subscriber on a downlink shaped with `tc` (a token bucket on its veth:
//! 2 Mbit/s, then 400 kbit/s, then 2 Mbit/s again): the simulcast layer the
//! node sends it follows the link within 10 s each time, with no freeze of a
//! second. The publisher is Chromium in the test's namespace; the subscriber
//! is Chromium in a namespace of its own behind the shaped link.

use std::process::Command;
use std::time::{Duration, Instant};

use super::common::browser::{isolated, netns_run, Driver};
use super::common::{send, Server};
use super::{token, JOIN};
use reqwest::Method;
use serde_json::json;
use switchboard_store::Backend;

/// The node's address, on the test's end of the veth.
const NODE: &str = "10.50.0.1";
/// The subscriber's address, in its namespace.
const HOME: &str = "10.50.0.2";
/// The test's end of the veth, where the subscriber's downlink is shaped.
const LINK: &str = "shaped";

/// The subscriber's video: the width of what it decodes, and its freezes so far.
const VIDEO_IN: &str = r#"
    const stats = await room.subscriber.getStats();
    let v = { width: 0, frames: 0, freezes: 0, frozen: 0 };
    stats.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        v.width = s.frameWidth || 0;
        v.frames += s.framesDecoded || 0;
        v.freezes += s.freezeCount || 0;
        v.frozen += s.totalFreezesDuration || 0;
      }
    });
    return v;
"#;

/// The subscriber's namespace, deleted with it.
struct Home(String);

impl Drop for Home {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Limits what the node sends the subscriber to `rate` (a `tc` rate).
fn shape(rate: &str) {
    netns_run(
        "tc",
        &[
            "qdisc", "replace", "dev", LINK, "root", "tbf", "rate", rate, "burst", "16kb",
            "latency", "100ms",
        ],
    );
}

#[test]
#[ignore = "not met yet: the layer goes down about 4 s after the link shrinks, with a freeze of 2 to 3 s, and \
            probing back up congests a link that has not grown (the stack's delay-based estimate climbs \
            without bound while the node sends less than it allows); see docs/media-engine.md"]
fn the_layer_follows_a_shaped_downlink() {
    isolated(
        "shaped_link::the_layer_follows_a_shaped_downlink",
        || async {
            let home = Home(format!("sbshaped{}", std::process::id()));
            netns_run("ip", &["netns", "add", &home.0]);
            let inside = |args: &[&str]| {
                let mut all = vec!["netns", "exec", home.0.as_str()];
                all.extend_from_slice(args);
                netns_run("ip", &all);
            };
            netns_run(
                "ip",
                &[
                    "link", "add", LINK, "type", "veth", "peer", "name", "eth0", "netns", &home.0,
                ],
            );
            netns_run("ip", &["addr", "add", &format!("{NODE}/24"), "dev", LINK]);
            netns_run("ip", &["link", "set", LINK, "up"]);
            inside(&["ip", "addr", "add", &format!("{HOME}/24"), "dev", "eth0"]);
            inside(&["ip", "link", "set", "eth0", "up"]);
            inside(&["ip", "link", "set", "lo", "up"]);
            shape("2mbit");

            let s =
                Server::start_on(Backend::Sqlite, NODE, &["--dev", "--rtc-bind-ip", NODE]).await;
            send(
                s.dev(Method::POST, "/v1/rooms")
                    .json(&json!({ "name": "shaped" })),
            )
            .await;
            // The publisher's camera needs the node's origin treated as secure
            // (it is not localhost).
            let secure = format!("--unsafely-treat-insecure-origin-as-secure={}", s.base);
            let here = Driver::start().await;
            let alice = here.browser_with(&[&secure], &[]).await;
            let there = Driver::start_in(&home.0, HOME, NODE).await;
            let bob = there.browser().await;
            for browser in [&alice, &bob] {
                browser
                    .client
                    .goto(&format!("{}/demo", s.base))
                    .await
                    .unwrap();
            }
            let (url, t) = token(&s, "shaped", "alice", json!({})).await;
            alice.run(JOIN, vec![json!(url), json!(t)]).await;
            alice
            .run(
                "await room.publishCamera({ width: 1280, height: 720 }, { simulcast: true }); return null;",
                vec![],
            )
            .await;
            let (url, t) = token(&s, "shaped", "bob", json!({ "can_publish": false })).await;
            bob.run(JOIN, vec![json!(url), json!(t)]).await;

            // Waits up to `within` for the decoded width to satisfy `ok`; returns
            // the reading, and how long the video froze meanwhile (seconds).
            let follow = |ok: fn(u64) -> bool, within: Duration| {
                let bob = &bob;
                async move {
                    let start = bob.run(VIDEO_IN, vec![]).await;
                    let deadline = Instant::now() + within;
                    let mut seen = start.clone();
                    while Instant::now() < deadline {
                        seen = bob.run(VIDEO_IN, vec![]).await;
                        if seen["frames"].as_u64() > start["frames"].as_u64()
                            && ok(seen["width"].as_u64().unwrap_or(0))
                        {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    let frozen = seen["frozen"].as_f64().unwrap_or(0.0)
                        - start["frozen"].as_f64().unwrap_or(0.0);
                    (seen, frozen)
                }
            };
            // Up to 2 Mbit/s: more than the low layer (the full one needs 1.5
            // Mbit/s of it and the estimate's headroom; the half one fits).
            let (seen, _) = follow(|w| w >= 640, Duration::from_secs(30)).await;
            assert!(
                seen["width"].as_u64() >= Some(640),
                "at 2 Mbit/s bob gets {seen}"
            );
            // Down to 400 kbit/s: the low layer within 10 s, without freezing a second.
            shape("400kbit");
            let (seen, frozen) = follow(|w| w <= 320, Duration::from_secs(10)).await;
            assert!(
                seen["width"].as_u64() <= Some(320) && seen["width"].as_u64() > Some(0),
                "at 400 kbit/s bob still gets {seen}"
            );
            assert!(
                frozen < 1.0,
                "bob's video froze {frozen} s going down: {seen}"
            );
            // Back to 2 Mbit/s: a higher layer again within 10 s.
            shape("2mbit");
            let (seen, frozen) = follow(|w| w >= 640, Duration::from_secs(10)).await;
            assert!(
                seen["width"].as_u64() >= Some(640),
                "back at 2 Mbit/s bob gets {seen}"
            );
            assert!(
                frozen < 1.0,
                "bob's video froze {frozen} s going up: {seen}"
            );
            bob.close().await;
            alice.close().await;
        },
    );
}
