//! One meeting over three regions with 40 ms between any two (see
//! [`network`]): a Chromium publisher in region A, one subscriber in B and
//! three in C, each connected to its own region's media node. Each track
//! crosses each inter-region link once, the far subscribers see the video one
//! hop later than a subscriber next to the publisher (and not more than 25 ms
//! beyond that hop), data and the active speaker reach everyone, and a
//! subscriber in C promoted to publisher is seen in A.

mod network;

use super::cascade::{gauge, regional_token};
use super::*;
use common::sdk_peer::SdkPeer;
use network::{Wan, A, B, C};

/// The one-way delay between two regions.
const HOP: Duration = Duration::from_millis(40);

/// What the media tier may add beyond the hop, as the issue sets it.
const SLACK_MS: i64 = 25;

/// Publishes a 320x180 canvas on which every frame shows when it was drawn
/// (`Date.now()` modulo 2^16 as 16 squares, white for a one bit, and a white
/// bar below: what `sdk_peer.py --stamped` reads), and the fake microphone.
const PUBLISH_STAMPED: &str = r#"
    const canvas = document.createElement('canvas');
    canvas.width = 320; canvas.height = 180;
    const ctx = canvas.getContext('2d');
    const track = canvas.captureStream(0).getVideoTracks()[0];
    const draw = () => {
      const t = Date.now() % 65536;
      ctx.fillStyle = '#000'; ctx.fillRect(0, 0, 320, 180);
      ctx.fillStyle = '#fff';
      for (let i = 0; i < 16; i++) if ((t >> i) & 1) ctx.fillRect(20 * i, 80, 20, 20);
      ctx.fillRect(0, 120, 320, 20);
      track.requestFrame();
    };
    draw();
    window.drawing = setInterval(draw, 33);
    await room.publishTrack(track, { source: 'camera' });
    await room.publishMicrophone();
    return null;
"#;

/// `url` with its host and port replaced by `at` (`host:port`).
fn reached_at(url: &str, at: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    let (host, port) = at.rsplit_once(':').unwrap();
    url.set_host(Some(host)).unwrap();
    url.set_port(Some(port.parse().unwrap())).unwrap();
    url.to_string()
}

/// Whether `event` names participant `sid` among the active speakers.
fn speaks(event: &Value, sid: &str) -> bool {
    let m = &event["msg"];
    m["type"] == "active_speakers"
        && m["speakers"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s["sid"] == sid))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_over_three_regions_crosses_each_link_once_and_one_hop_late() {
    let _alone = media_heavy().await;
    // Several crates enable both ring and aws-lc in rustls; pick one for the WebDriver client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Dropped last: every process in its namespaces has stopped by then.
    let wan = Wan::new(HOP);
    let api = Server::start_with(Backend::Postgres, &args(&node_args("api", "eu-west"))).await;
    let database = reached_at(&api.db.url, &wan.postgres);
    let nats = format!("nats://{}", wan.nats);
    let node = |netns: Option<&str>, ip: &str, region: &str| {
        let flags = [
            "--dev",
            "--role",
            "media",
            "--region",
            region,
            "--nats-url",
            &nats,
            "--rtc-bind-ip",
            ip,
        ];
        api.sibling_in(netns, ip, &[("DATABASE_URL", &database)], &flags)
    };
    let a = node(None, A, "eu-west");
    let b = node(Some(&wan.b), B, "us-east");
    let c = node(Some(&wan.c), C, "ap-south");

    let (st, room) = send(
        api.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": "world" })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{room}");

    // The publisher: Chromium in region A, on A's node.
    let (token, url) = regional_token(&api, "world", "ana", "eu-west").await;
    assert_eq!(url, rtc_url(&a));
    let driver = Driver::start().await;
    // The node's origin is not localhost: the microphone needs it treated as secure.
    let secure = format!("--unsafely-treat-insecure-origin-as-secure={}", a.base);
    let browser = driver.browser_with(&[&secure], &[]).await;
    browser
        .client
        .goto(&format!("{}/readyz", a.base))
        .await
        .unwrap();
    let ana = browser
        .run(
            r#"const [url, token] = args;
               const { connect } = await import('/sdk/switchboard.js');
               try { window.room = await connect(url, token); } catch (e) { return { error: String(e) }; }
               return room.localParticipant.sid;"#,
            vec![json!(url), json!(token)],
        )
        .await;
    let ana = ana
        .as_str()
        .unwrap_or_else(|| panic!("ana cannot join: {ana}\nA:\n{}", a.log()))
        .to_owned();
    browser.run(PUBLISH_STAMPED, vec![]).await;

    // Subscribers, each on its own region's node: one next to the publisher
    // (the reference), one in B and three in C. Each joins once the one
    // before decodes ana's video and reads its stamps: aiortc drops a track
    // offered while its connection is still connecting, as it would be to a
    // second joiner in C while the first one's link is still bringing the
    // tracks. (Whether each heard ana speak is noted from here on: her fake
    // microphone beeps, and the speakers are told when they change.)
    let mut peers = Vec::new();
    let mut heard = Vec::new();
    for (name, region, server, netns, ip) in [
        ("a1", "eu-west", &a, None, A),
        ("b1", "us-east", &b, Some(wan.b.as_str()), B),
        ("c1", "ap-south", &c, Some(wan.c.as_str()), C),
        ("c2", "ap-south", &c, Some(wan.c.as_str()), C),
        ("c3", "ap-south", &c, Some(wan.c.as_str()), C),
    ] {
        let (token, url) = regional_token(&api, "world", name, region).await;
        assert_eq!(url, rtc_url(server), "{name} is sent to its region's node");
        let mut peer = SdkPeer::start_in(netns, ip, server, &token, &["--stamped"]);
        let mut spoke = false;
        let start = tokio::time::Instant::now();
        let mut rejoined = false;
        loop {
            let report = peer
                .until("a frame report", |e| {
                    spoke |= speaks(e, &ana);
                    (e["event"] == "frames").then(|| e.clone())
                })
                .await;
            if report["video"].as_u64() > Some(30) && report["latency"].is_i64() {
                break;
            }
            // Audio and no video at all: aiortc dropped the video track it
            // was offered while still connecting (seen with the whole
            // cluster suite on two cores). The same identity joins again,
            // once; a second miss fails.
            let waited = start.elapsed();
            if !rejoined
                && waited > Duration::from_secs(12)
                && report["video"] == 0
                && report["audio"].as_u64() > Some(0)
            {
                eprintln!("{name}: audio and no video after {waited:?}; joining again");
                let (token, _) = regional_token(&api, "world", name, region).await;
                peer = SdkPeer::start_in(netns, ip, server, &token, &["--stamped"]);
                rejoined = true;
                continue;
            }
            if waited > Duration::from_secs(40) {
                panic!(
                    "{name} decoded no stamped video (last report {report});\nA:\n{}\nB:\n{}\nC:\n{}",
                    a.log(),
                    b.log(),
                    c.log()
                );
            }
        }
        peers.push((name, peer));
        heard.push(spoke);
    }

    // The media crosses the regions through the delay line.
    assert!(wan.delayed() > 100, "{} datagrams delayed", wan.delayed());
    // A sends each of ana's two tracks once over each of its two links,
    // though C has three subscribers; B and C send nothing.
    assert_eq!(gauge(&a, "switchboard_relay_links").await, 2.0);
    assert_eq!(gauge(&a, "switchboard_relay_tracks").await, 4.0);
    assert_eq!(gauge(&b, "switchboard_relay_tracks").await, 0.0);
    assert_eq!(gauge(&c, "switchboard_relay_tracks").await, 0.0);

    // Latency, once the video has run a while: the median of each
    // subscriber's last 60 frames, from drawing in Chromium to decoding.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut latency = Vec::new();
    for ((name, peer), heard) in peers.iter_mut().zip(&mut heard) {
        let events = peer.drain();
        *heard |= events.iter().any(|e| speaks(e, &ana));
        let report = match events.into_iter().rfind(|e| e["event"] == "frames") {
            Some(r) => r,
            None => {
                peer.until("a frame report", |e| {
                    *heard |= speaks(e, &ana);
                    (e["event"] == "frames").then(|| e.clone())
                })
                .await
            }
        };
        let ms = report["latency"]
            .as_i64()
            .unwrap_or_else(|| panic!("{name} reads no stamps now: {report}"));
        latency.push((*name, ms));
    }
    eprintln!("publisher-to-subscriber latency (ms), median of 60 frames: {latency:?}");
    let reference = latency[0].1;
    let hop = i64::try_from(HOP.as_millis()).unwrap();
    for (name, ms) in &latency[1..] {
        assert!(
            *ms <= reference + hop + SLACK_MS,
            "{name}: {ms} ms, more than one {hop} ms hop and {SLACK_MS} ms beyond the {reference} ms next to the publisher: {latency:?}"
        );
        // The hop is real: the far subscribers' frames crossed the line.
        assert!(
            *ms >= reference + hop / 2,
            "{name}: {ms} ms, not a hop behind {reference} ms: {latency:?}"
        );
    }

    // Ana speaks (Chromium's fake microphone beeps): everyone hears who.
    for ((name, peer), heard) in peers.iter_mut().zip(heard) {
        if !heard {
            peer.until(&format!("ana among {name}'s active speakers"), |e| {
                speaks(e, &ana).then_some(())
            })
            .await;
        }
    }

    // A data message from A reaches every region.
    browser
        .run(
            "room.sendData('hello from A', { topic: 'chat' }); return null;",
            vec![],
        )
        .await;
    for (name, peer) in &mut peers {
        let text = peer
            .until(&format!("ana's message at {name}"), |e| {
                (e["event"] == "data").then(|| e["text"].as_str().unwrap_or("").to_owned())
            })
            .await;
        let message: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(message["from"], "ana", "{message}");
        assert_eq!(message["payload"], "hello from A", "{message}");
    }

    // c1 is promoted and publishes from C; A's publisher receives its video.
    let path = "/v1/rooms/world/participants/c1";
    let allow = json!({ "permissions": {
        "can_publish": true, "can_subscribe": true, "can_publish_data": true,
    } });
    let (st, info) = send(api.dev(Method::PATCH, path).json(&allow)).await;
    assert_eq!(st, StatusCode::OK, "{info}");
    let c1 = &mut peers[2].1;
    c1.until("c1's new permission", |e| {
        (e["msg"]["participant"]["permissions"]["can_publish"] == true).then_some(())
    })
    .await;
    c1.publish();
    let mut seen = Value::Null;
    for _ in 0..100 {
        seen = browser
            .run(
                r#"const stats = await room.subscriber.getStats();
                   let frames = 0;
                   stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0; });
                   return frames;"#,
                vec![],
            )
            .await;
        if seen.as_u64() > Some(20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        seen.as_u64() > Some(20),
        "A decoded {seen} frames of c1's video;\nC:\n{}",
        c.log()
    );
    // C sends c1's two tracks once to each of A and B.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while gauge(&c, "switchboard_relay_tracks").await < 4.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "C relays {} tracks",
            gauge(&c, "switchboard_relay_tracks").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(gauge(&c, "switchboard_relay_tracks").await, 4.0);
    drop(peers);
    browser.close().await;
}
