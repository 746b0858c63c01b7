//! End to end with real browsers: two headless Chromiums join a room through
//! the JS SDK; one publishes camera and microphone, the other receives them.
//! Each test runs in a network namespace with only loopback (see `common::browser`).

mod call_quality;
#[path = "../common/mod.rs"]
mod common;
mod ice_restart;
mod lossy_link;
mod network_change;
mod npm_package;
mod one_port;
mod shaped_link;

use std::time::Duration;

use common::browser::{isolated, netns_run, Browser, Driver};
use common::{send, Server};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use switchboard_store::Backend;

async fn token(s: &Server, room: &str, identity: &str, grants: Value) -> (String, String) {
    let (st, t) = send(
        s.dev(Method::POST, "/v1/tokens")
            .json(&json!({ "room": room, "identity": identity, "grants": grants })),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    (
        t["url"].as_str().unwrap().to_owned(),
        t["token"].as_str().unwrap().to_owned(),
    )
}

/// A server with room `room`, and two headless Chromiums on its `/demo` page
/// (same origin as the SDK).
async fn two_browsers(room: &str) -> (Server, Driver, Browser, Browser) {
    two_browsers_with(room, &["--dev"]).await
}

/// [`two_browsers`] with a server started with `args`.
async fn two_browsers_with(room: &str, args: &[&str]) -> (Server, Driver, Browser, Browser) {
    let s = Server::start_with(Backend::Sqlite, args).await;
    send(
        s.dev(Method::POST, "/v1/rooms")
            .json(&json!({ "name": room })),
    )
    .await;
    let driver = Driver::start().await;
    let a = driver.browser().await;
    let b = driver.browser().await;
    for browser in [&a, &b] {
        browser
            .client
            .goto(&format!("{}/demo", s.base))
            .await
            .unwrap();
    }
    (s, driver, a, b)
}

const JOIN: &str = r#"
    const [url, token] = args;
    const { connect } = await import('/sdk/switchboard.js');
    window.events = [];
    window.tracks = [];
    const room = await connect(url, token);
    window.room = room;
    for (const name of ['participant_joined', 'participant_left', 'track_published', 'track_unpublished', 'disconnected']) {
      room.on(name, (x) => events.push([name, (x && (x.identity || (x.participant && x.participant.identity))) || x]));
    }
    room.on('data', (d) => events.push(['data', d.from, d.payload, d.reliable]));
    window.speakers = [];
    window.qualities = {};
    room.on('active_speakers', (list) => { for (const s of list) speakers.push(s.sid); });
    room.on('connection_quality', (updates) => { for (const u of updates) qualities[u.sid] = u.quality; });
    room.on('track_subscribed', ({ track }) => {
      tracks.push(track.kind);
      const el = document.createElement(track.kind);
      el.autoplay = true; el.muted = true; el.srcObject = new MediaStream([track]);
      document.body.appendChild(el);
    });
    return { sid: room.localParticipant.sid, others: room.participants.size };
"#;

const STATS: &str = r#"
    const stats = await room.subscriber.getStats();
    let framesDecoded = 0, audioPackets = 0, videoCodec = null;
    const codecs = {}, senderReports = { audio: 0, video: 0 };
    stats.forEach((s) => { if (s.type === 'codec') codecs[s.id] = s.mimeType; });
    stats.forEach((s) => {
      // The RTCP sender reports that reached the subscriber, per kind.
      if (s.type === 'remote-outbound-rtp') senderReports[s.kind] += s.reportsSent || 0;
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') { framesDecoded += s.framesDecoded || 0; videoCodec = codecs[s.codecId] || videoCodec; }
      if (s.kind === 'audio') audioPackets += s.packetsReceived || 0;
    });
    return { framesDecoded, audioPackets, videoCodec, senderReports, tracks: window.tracks };
"#;

#[test]
fn a_browser_receives_what_another_publishes() {
    isolated("a_browser_receives_what_another_publishes", || async {
        let (s, _driver, alice, bob) = two_browsers("e2e").await;

        // Alice joins first and publishes camera and microphone.
        let (url, t) = token(&s, "e2e", "alice", json!({})).await;
        let joined = alice.run(JOIN, vec![json!(url), json!(t)]).await;
        assert_eq!(joined["others"], 0);
        let published = alice
            .run(
                "const cam = await room.publishCamera(); const mic = await room.publishMicrophone();
                 return { video: cam.sid, audio: mic.sid, videoMime: cam.info.mime_type, audioMime: mic.info.mime_type };",
                vec![],
            )
            .await;
        assert_eq!(published["videoMime"], "video/VP8", "{published}");
        assert_eq!(published["audioMime"], "audio/opus", "{published}");

        // Bob joins later, subscribe-only, and receives both tracks.
        let (url, t) = token(&s, "e2e", "bob", json!({ "can_publish": false })).await;
        let joined = bob.run(JOIN, vec![json!(url), json!(t)]).await;
        assert_eq!(joined["others"], 1);
        let mut stats = Value::Null;
        for _ in 0..100 {
            stats = bob.run(STATS, vec![]).await;
            if stats["framesDecoded"].as_u64().unwrap_or(0) > 20
                && stats["audioPackets"].as_u64().unwrap_or(0) > 50
                && stats["senderReports"]["audio"].as_u64().unwrap_or(0) >= 2
                && stats["senderReports"]["video"].as_u64().unwrap_or(0) >= 2
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!("subscriber getStats: {stats}");
        // Alice's sender reports, relayed on her clock, reach Bob for both tracks.
        for kind in ["audio", "video"] {
            assert!(
                stats["senderReports"][kind].as_u64().unwrap_or(0) >= 2,
                "{kind} sender reports relayed to the subscriber: {stats}"
            );
        }
        assert!(
            stats["framesDecoded"].as_u64().unwrap_or(0) > 20,
            "video frames decoded by the subscriber: {stats}"
        );
        assert!(
            stats["audioPackets"].as_u64().unwrap_or(0) > 50,
            "audio packets received by the subscriber: {stats}"
        );
        assert_eq!(stats["videoCodec"], "video/VP8");

        // Data messages: reliable from Alice to Bob, with the sender's identity.
        alice
            .run(
                "for (let i = 0; i < 50; i++) { try { room.sendData('hello bob', { topic: 'chat' }); return; } catch (e) { await new Promise(r => setTimeout(r, 100)); } } throw new Error('data channel never opened');",
                vec![],
            )
            .await;
        let mut events = Value::Null;
        for _ in 0..50 {
            events = bob.run("return window.events;", vec![]).await;
            if events.as_array().unwrap().iter().any(|e| e[0] == "data") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            events
                .as_array()
                .unwrap()
                .iter()
                .any(|e| *e == json!(["data", "alice", "hello bob", true])),
            "{events}"
        );
        // Alice's microphone (Chromium's fake device beeps) makes her an active speaker,
        // and both connections are rated.
        let own_sid = "return room.localParticipant.sid;";
        let alice_sid = alice.run(own_sid, vec![]).await;
        let bob_sid = bob.run(own_sid, vec![]).await;
        let mut seen = Value::Null;
        for _ in 0..100 {
            seen = bob
                .run(
                    "return { speakers: window.speakers, qualities: window.qualities };",
                    vec![],
                )
                .await;
            let spoke = seen["speakers"].as_array().unwrap().contains(&alice_sid);
            let rated = [&alice_sid, &bob_sid]
                .iter()
                .all(|sid| seen["qualities"][sid.as_str().unwrap()].is_string());
            if spoke && rated {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            seen["speakers"].as_array().unwrap().contains(&alice_sid),
            "alice {alice_sid} never an active speaker: {seen}"
        );
        assert!(
            !seen["speakers"].as_array().unwrap().contains(&bob_sid),
            "bob publishes no audio yet spoke: {seen}"
        );
        for sid in [&alice_sid, &bob_sid] {
            let q = &seen["qualities"][sid.as_str().unwrap()];
            assert!(q == "excellent" || q == "good", "{sid}: {seen}");
        }

        // Bob may not publish: the server refuses his announcement.
        let refused = bob
            .run(
                "return await new Promise((resolve) => { room.on('error', (e) => resolve(e.code)); room._send({ type: 'add_track', cid: 'x', kind: 'video' }); });",
                vec![],
            )
            .await;
        assert_eq!(refused, "not_allowed");

        // The REST API sees both live participants and Alice's tracks.
        let (st, list) = send(s.dev(Method::GET, "/v1/rooms/e2e/participants")).await;
        assert_eq!(st, StatusCode::OK);
        let people = list["data"].as_array().unwrap();
        assert_eq!(people.len(), 2, "{list}");
        let a = people
            .iter()
            .find(|p| p["identity"] == "alice")
            .expect("alice listed");
        assert_eq!(a["state"], "active");
        let kinds: Vec<_> = a["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["kind"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kinds.len(), 2, "{a}");
        assert!(kinds.contains(&"audio".to_owned()) && kinds.contains(&"video".to_owned()));
        let (_, room) = send(s.dev(Method::GET, "/v1/rooms/e2e")).await;
        assert_eq!(room["num_participants"], 2);

        // Alice leaves: Bob is told, and the log holds the whole story in order.
        alice.run("room.leave(); return null;", vec![]).await;
        for _ in 0..50 {
            events = bob.run("return window.events;", vec![]).await;
            if events
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e[0] == "participant_left")
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            events
                .as_array()
                .unwrap()
                .iter()
                .any(|e| *e == json!(["participant_left", "alice"])),
            "{events}"
        );
        let (_, list) = send(s.dev(Method::GET, "/v1/rooms/e2e/participants")).await;
        assert_eq!(list["data"].as_array().unwrap().len(), 1);

        let log = s.events().await;
        let types: Vec<&str> = log.iter().map(|e| e.event_type()).collect();
        let count = |t: &str| types.iter().filter(|x| **x == t).count();
        assert_eq!(types[0], "room.started");
        assert_eq!(
            (count("participant.joined"), count("track.published")),
            (2, 2),
            "{types:?}"
        );
        assert_eq!(
            (count("track.unpublished"), count("participant.left")),
            (2, 1),
            "{types:?}"
        );
        let pos = |t: &str| types.iter().position(|x| *x == t).unwrap();
        assert!(pos("participant.joined") < pos("track.published"));
        assert!(
            types
                .iter()
                .rposition(|x| *x == "track.unpublished")
                .unwrap()
                < pos("participant.left")
        );
        for w in log.windows(2) {
            assert!(w[0].created_at <= w[1].created_at && w[0].seq + 1 == w[1].seq);
        }

        bob.close().await;
        alice.close().await;
    });
}

/// Offers `pc` to a WHIP/WHEP endpoint, applies the answer; returns the session location.
const HTTP_SIGNAL: &str = r#"
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    await new Promise((resolve) => {
      if (pc.iceGatheringState === 'complete') return resolve();
      pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') resolve(); };
      setTimeout(resolve, 3000);
    });
    const res = await fetch(endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', Authorization: 'Bearer ' + token },
      body: pc.localDescription.sdp,
    });
    if (res.status !== 201) throw new Error('HTTP ' + res.status + ': ' + await res.text());
    const location = res.headers.get('Location');
    await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
    return location;
"#;

#[test]
fn whip_in_and_whep_out_from_browser_pages() {
    isolated("whip_in_and_whep_out_from_browser_pages", || async {
        let (s, _driver, encoder, player) = two_browsers("studio").await;

        // An encoder publishes with nothing but fetch and RTCPeerConnection, as OBS would.
        let (_, obs_token) = token(&s, "studio", "obs", json!({})).await;
        let t = obs_token.clone();
        let publish = format!(
            "const [endpoint, token] = args;
             const media = await navigator.mediaDevices.getUserMedia({{ video: true, audio: true }});
             const pc = new RTCPeerConnection();
             window.pc = pc;
             for (const track of media.getTracks()) pc.addTransceiver(track, {{ direction: 'sendonly' }});
             {HTTP_SIGNAL}"
        );
        let whip_location = encoder
            .run(
                &publish,
                vec![json!(format!("{}/v1/whip/rooms/studio", s.base)), json!(t)],
            )
            .await;
        let whip_location = whip_location.as_str().unwrap().to_owned();
        assert!(
            whip_location.starts_with("/v1/whip/sessions/pa_"),
            "{whip_location}"
        );

        // Wait until the server has both tracks published.
        let mut tracks = 0;
        for _ in 0..100 {
            let (_, p) = send(s.dev(Method::GET, "/v1/rooms/studio/participants/obs")).await;
            tracks = p["tracks"].as_array().map_or(0, Vec::len);
            if tracks == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            tracks, 2,
            "the WHIP session's audio and video were published"
        );

        // A player watches it over WHEP.
        let (_, t) = token(&s, "studio", "viewer-1", json!({ "can_publish": false })).await;
        let play = format!(
            "const [endpoint, token] = args;
             const pc = new RTCPeerConnection();
             window.pc = pc;
             pc.addTransceiver('video', {{ direction: 'recvonly' }});
             pc.addTransceiver('audio', {{ direction: 'recvonly' }});
             pc.ontrack = (e) => {{
               const el = document.createElement(e.track.kind);
               el.autoplay = true; el.muted = true; el.srcObject = new MediaStream([e.track]);
               document.body.appendChild(el);
             }};
             {HTTP_SIGNAL}"
        );
        let whep_location = player
            .run(
                &play,
                vec![
                    json!(format!("{}/v1/whep/rooms/studio/participants/obs", s.base)),
                    json!(t.clone()),
                ],
            )
            .await;
        let whep_location = whep_location.as_str().unwrap().to_owned();
        assert!(
            whep_location.starts_with("/v1/whep/sessions/pa_"),
            "{whep_location}"
        );

        let stats_script = r#"
            const stats = await pc.getStats();
            let framesDecoded = 0, audioPackets = 0;
            stats.forEach((s) => {
              if (s.type === 'inbound-rtp' && s.kind === 'video') framesDecoded += s.framesDecoded || 0;
              if (s.type === 'inbound-rtp' && s.kind === 'audio') audioPackets += s.packetsReceived || 0;
            });
            return { framesDecoded, audioPackets };
        "#;
        let mut stats = Value::Null;
        for _ in 0..100 {
            stats = player.run(stats_script, vec![]).await;
            if stats["framesDecoded"].as_u64().unwrap_or(0) > 20
                && stats["audioPackets"].as_u64().unwrap_or(0) > 50
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!("WHEP player getStats: {stats}");
        assert!(
            stats["framesDecoded"].as_u64().unwrap_or(0) > 20,
            "WHEP video frames decoded: {stats}"
        );
        assert!(
            stats["audioPackets"].as_u64().unwrap_or(0) > 50,
            "WHEP audio packets: {stats}"
        );

        // CORS lets pages on other origins call WHIP/WHEP.
        let preflight = s
            .request(Method::OPTIONS, "/v1/whip/rooms/studio")
            .header("Origin", "https://studio.example")
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization,content-type",
            )
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.headers()["access-control-allow-origin"], "*");

        // DELETE on the locations ends both sessions, each with its own identity's token
        // (issue 22: the viewer's token may not end the broadcast).
        let (st, _) = send(s.request(Method::DELETE, &whep_location).bearer_auth(&t)).await;
        assert_eq!(st, StatusCode::OK);
        let (st, _) = send(
            s.request(Method::DELETE, &whip_location)
                .bearer_auth(&obs_token),
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        let (st, body) = send(
            s.request(Method::DELETE, &whip_location)
                .bearer_auth(&obs_token),
        )
        .await;
        assert_eq!(
            (st, body["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("session_not_found"))
        );
        let (_, list) = send(s.dev(Method::GET, "/v1/rooms/studio/participants")).await;
        assert_eq!(list["data"], json!([]));

        player.close().await;
        encoder.close().await;
    });
}

/// Alice joins `room` and publishes camera and microphone; then Bob joins.
async fn alice_publishes_then_bob_joins(s: &Server, alice: &Browser, bob: &Browser, room: &str) {
    let (url, t) = token(s, room, "alice", json!({})).await;
    alice.run(JOIN, vec![json!(url), json!(t)]).await;
    alice
        .run(
            "await room.publishCamera(); await room.publishMicrophone(); return null;",
            vec![],
        )
        .await;
    let (url, t) = token(s, room, "bob", json!({})).await;
    bob.run(JOIN, vec![json!(url), json!(t)]).await;
}

#[test]
fn a_publisher_resumes_after_its_socket_drops() {
    isolated("a_publisher_resumes_after_its_socket_drops", || async {
        let (s, _driver, alice, bob) = two_browsers("blip").await;
        alice_publishes_then_bob_joins(&s, &alice, &bob, "blip").await;

        // Bob is decoding Alice's video before the blip.
        const FRAMES: &str = "const stats = await room.subscriber.getStats(); let frames = 0;
             stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames = Math.max(frames, s.framesDecoded || 0); });
             return { frames, subscribed: window.tracks.length };";
        let mut before = Value::Null;
        for _ in 0..100 {
            before = bob.run(FRAMES, vec![]).await;
            if before["frames"].as_u64().unwrap_or(0) > 20 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(before["frames"].as_u64().unwrap_or(0) > 20, "{before}");

        // A network blip: Alice's socket breaks. The SDK comes back with its
        // reconnect token and the server resumes the same session.
        let resumed = alice
            .run(
                "const first = room.localParticipant.sid;
                 const done = new Promise((resolve) => room.on('reconnected', resolve));
                 room._ws.close(4001, 'simulated blip');
                 await done;
                 return { first, now: room.localParticipant.sid, tracks: room.localTracks.size };",
                vec![],
            )
            .await;
        assert_eq!(
            resumed["first"], resumed["now"],
            "the same session: {resumed}"
        );
        assert_eq!(resumed["tracks"], 2, "{resumed}");

        // Media never stopped: Bob keeps the same two tracks and keeps decoding.
        let mut after = Value::Null;
        for _ in 0..100 {
            after = bob.run(FRAMES, vec![]).await;
            if after["frames"].as_u64().unwrap_or(0) > before["frames"].as_u64().unwrap_or(0) + 20 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            after["frames"].as_u64().unwrap_or(0) > before["frames"].as_u64().unwrap_or(0) + 20,
            "bob keeps decoding: before {before}, after {after}"
        );
        assert_eq!(after["subscribed"], 2, "no new tracks: {after}");
        let (_, list) = send(s.dev(Method::GET, "/v1/rooms/blip/participants")).await;
        assert_eq!(list["data"].as_array().unwrap().len(), 2, "{list}");
        let left = s
            .events()
            .await
            .iter()
            .filter(|e| e.event_type() == "participant.left")
            .count();
        assert_eq!(left, 0, "nobody left");
        bob.close().await;
        alice.close().await;
    });
}

#[test]
fn a_publisher_rejoins_when_its_session_cannot_be_resumed() {
    isolated(
        "a_publisher_rejoins_when_its_session_cannot_be_resumed",
        || async {
            let (s, _driver, alice, bob) = two_browsers("blip").await;
            alice_publishes_then_bob_joins(&s, &alice, &bob, "blip").await;

            // The socket drops and the session cannot be resumed (here: the server does
            // not know the token, as after the resume window or on another node). The
            // SDK joins afresh with the same access token and publishes again.
            let rejoined = alice
                .run(
                    "const first = room.localParticipant.sid;
                 const done = new Promise((resolve) => room.on('reconnected', resolve));
                 room._reconnectToken = 'not-a-token-the-server-knows';
                 room._ws.close(4001, 'simulated blip');
                 await done;
                 return { first, now: room.localParticipant.sid, tracks: room.localTracks.size };",
                    vec![],
                )
                .await;
            assert_ne!(rejoined["first"], rejoined["now"], "{rejoined}");
            assert_eq!(rejoined["tracks"], 2, "{rejoined}");

            // Bob receives Alice's new tracks and decodes them.
            let mut stats = Value::Null;
            for _ in 0..100 {
                stats = bob
                .run(
                    "const stats = await room.subscriber.getStats(); let frames = 0;
                     stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames = Math.max(frames, s.framesDecoded || 0); });
                     return { frames, subscribed: window.tracks.length };",
                    vec![],
                )
                .await;
                if stats["subscribed"].as_u64() >= Some(4)
                    && stats["frames"].as_u64().unwrap_or(0) > 20
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            assert!(
                stats["subscribed"].as_u64() >= Some(4),
                "bob got the republished tracks: {stats}"
            );
            assert!(stats["frames"].as_u64().unwrap_or(0) > 20, "{stats}");
            let (_, list) = send(s.dev(Method::GET, "/v1/rooms/blip/participants")).await;
            assert_eq!(
                list["data"].as_array().unwrap().len(),
                2,
                "the replaced session is gone: {list}"
            );
            bob.close().await;
            alice.close().await;
        },
    );
}

/// Where no UDP gets through (a corporate firewall), a browser still joins:
/// nftables drops every UDP datagram in the test's network namespace, and
/// the subscriber connects over passive ICE-TCP on the node's one media port
/// and decodes the publisher's video.
#[test]
fn a_subscriber_without_udp_receives_over_ice_tcp() {
    isolated("a_subscriber_without_udp_receives_over_ice_tcp", || async {
        let (s, _driver, alice, bob) = two_browsers_with("tcp", &["--dev", "--rtc-tcp"]).await;
        netns_run("nft", &["add", "table", "inet", "no_udp"]);
        for hook in ["input", "output"] {
            netns_run(
                "nft",
                &[
                    "add",
                    "chain",
                    "inet",
                    "no_udp",
                    hook,
                    &format!("{{ type filter hook {hook} priority 0; }}"),
                ],
            );
            netns_run(
                "nft",
                &[
                    "add", "rule", "inet", "no_udp", hook, "meta", "l4proto", "udp", "drop",
                ],
            );
        }
        let (url, t) = token(&s, "tcp", "alice", json!({})).await;
        alice.run(JOIN, vec![json!(url), json!(t)]).await;
        alice
            .run("await room.publishCamera(); return null;", vec![])
            .await;

        let (url, t) = token(&s, "tcp", "bob", json!({ "can_publish": false })).await;
        bob.run(JOIN, vec![json!(url), json!(t)]).await;
        let transport = r#"
            const stats = await room.subscriber.getStats();
            let frames = 0, pair = null;
            const pairs = {}, candidates = {};
            let selected = null;
            stats.forEach((s) => {
              if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0;
              if (s.type === 'candidate-pair') pairs[s.id] = s;
              if (s.type === 'transport' && s.selectedCandidatePairId) selected = s.selectedCandidatePairId;
              if (s.type === 'local-candidate' || s.type === 'remote-candidate') candidates[s.id] = s;
            });
            if (!selected) for (const p of Object.values(pairs)) if (p.nominated && p.state === 'succeeded') selected = p.id;
            if (selected && pairs[selected]) {
              const p = pairs[selected];
              const local = candidates[p.localCandidateId] || {}, remote = candidates[p.remoteCandidateId] || {};
              pair = { protocol: local.protocol, remoteProtocol: remote.protocol, remotePort: remote.port };
            }
            return { frames, pair };
        "#;
        let mut seen = Value::Null;
        for _ in 0..100 {
            seen = bob.run(transport, vec![]).await;
            if seen["frames"].as_u64().unwrap_or(0) > 20 && !seen["pair"].is_null() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(seen["frames"].as_u64().unwrap_or(0) > 20, "{seen}");
        assert_eq!(seen["pair"]["protocol"], "tcp", "{seen}");
        assert_eq!(seen["pair"]["remoteProtocol"], "tcp", "{seen}");
        assert_eq!(
            seen["pair"]["remotePort"],
            json!(s.media_port()),
            "ICE-TCP on the media port's number: {seen}"
        );
    });
}

#[test]
fn a_subscriber_picks_simulcast_layers() {
    isolated("a_subscriber_picks_simulcast_layers", || async {
        let (s, _driver, alice, bob) = two_browsers("simulcast").await;
        let (url, t) = token(&s, "simulcast", "alice", json!({})).await;
        alice.run(JOIN, vec![json!(url), json!(t)]).await;
        let cam = alice
            .run(
                "const cam = await room.publishCamera({ width: 1280, height: 720 }, { simulcast: true });
                 return cam.sid;",
                vec![],
            )
            .await;

        let (url, t) = token(&s, "simulcast", "bob", json!({ "can_publish": false })).await;
        bob.run(JOIN, vec![json!(url), json!(t)]).await;
        let width = r#"
            const stats = await room.subscriber.getStats();
            let width = 0, frames = 0;
            stats.forEach((s) => {
              if (s.type === 'inbound-rtp' && s.kind === 'video') { width = s.frameWidth || 0; frames = s.framesDecoded || 0; }
            });
            return { width, frames };
        "#;
        // Waits until the decoded width satisfies `ok`; returns the last reading.
        let wait_for = |ok: fn(u64) -> bool| {
            let bob = &bob;
            async move {
                let mut seen = Value::Null;
                for _ in 0..150 {
                    seen = bob.run(width, vec![]).await;
                    if seen["frames"].as_u64().unwrap_or(0) > 0
                        && ok(seen["width"].as_u64().unwrap_or(0))
                    {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                seen
            }
        };
        // The publisher's bandwidth estimate ramps up: the full layer arrives once it is sent.
        let full = wait_for(|w| w >= 1280).await;
        assert_eq!(full["width"], 1280, "never received the full layer: {full}");

        bob.run(
            "room.setLayer(args[0], 'low'); return null;",
            vec![cam.clone()],
        )
        .await;
        let low = wait_for(|w| w == 320).await;
        assert_eq!(low["width"], 320, "the low layer never arrived: {low}");

        bob.run("room.setLayer(args[0], 'high'); return null;", vec![cam])
            .await;
        let back = wait_for(|w| w >= 1280).await;
        assert_eq!(back["width"], 1280, "never switched back up: {back}");
    });
}
