//! WHIP and WHEP sessions as RFC 9725 section 4.4 has them: candidates
//! trickled by `PATCH` after the offer, and an ICE restart by `PATCH` that
//! keeps the session, its participant and its tracks.

use super::*;

/// A WHIP encoder that posts its offer before any candidate and trickles
/// them, then can restart ICE (`window.restart()`), as whip.js clients do.
const TRICKLING_ENCODER: &str = r#"
    const [endpoint, token] = args;
    const media = await navigator.mediaDevices.getUserMedia({ video: true, audio: true });
    const pc = new RTCPeerConnection();
    window.pc = pc;
    for (const track of media.getTracks()) pc.addTransceiver(track, { direction: 'sendonly' });
    window.patches = [];
    const credentials = (sdp) => ({
      ufrag: sdp.match(/a=ice-ufrag:(.*)\r\n/)[1],
      pwd: sdp.match(/a=ice-pwd:(.*)\r\n/)[1],
    });
    const fragment = ({ ufrag, pwd }, candidates) =>
      `a=ice-ufrag:${ufrag}\r\na=ice-pwd:${pwd}\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:0\r\n` +
      candidates.map((c) => `a=${c}\r\n`).join('');
    const patch = async (body, ifMatch) => {
      const res = await fetch(new URL(window.location_, endpoint), {
        method: 'PATCH',
        headers: { 'Content-Type': 'application/trickle-ice-sdpfrag', 'If-Match': ifMatch, Authorization: 'Bearer ' + token },
        body,
      });
      window.patches.push(res.status);
      return res;
    };
    const early = [];
    let posted = false;
    pc.onicecandidate = (e) => {
      if (!e.candidate || !e.candidate.candidate || e.candidate.sdpMLineIndex !== 0) return;
      if (!posted) { early.push(e.candidate.candidate); return; }
      patch(fragment(credentials(pc.localDescription.sdp), [e.candidate.candidate]), window.etag);
    };
    await pc.setLocalDescription(await pc.createOffer());
    // The offer goes at once, without candidates: they follow as PATCHes.
    const offer = pc.localDescription.sdp.split('\r\n').filter((l) => !l.startsWith('a=candidate')).join('\r\n');
    const res = await fetch(endpoint, {
      method: 'POST',
      headers: { 'Content-Type': 'application/sdp', Authorization: 'Bearer ' + token },
      body: offer,
    });
    if (res.status !== 201) throw new Error('HTTP ' + res.status + ': ' + await res.text());
    window.location_ = res.headers.get('Location');
    window.etag = res.headers.get('ETag');
    window.answer = await res.text();
    await pc.setRemoteDescription({ type: 'answer', sdp: window.answer });
    posted = true;
    if (early.length) await patch(fragment(credentials(pc.localDescription.sdp), early), window.etag);

    window.restart = async () => {
      pc.restartIce();
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((resolve) => {
        if (pc.iceGatheringState === 'complete') return resolve();
        pc.onicegatheringstatechange = () => { if (pc.iceGatheringState === 'complete') resolve(); };
        setTimeout(resolve, 3000);
      });
      const local = pc.localDescription.sdp;
      const mine = local.split('\r\n').filter((l) => l.startsWith('a=candidate')).map((l) => l.slice(2));
      const res = await patch(fragment(credentials(local), mine.slice(0, 4)), '*');
      if (res.status !== 200) throw new Error('restart: HTTP ' + res.status + ': ' + await res.text());
      const theirs = await res.text();
      const creds = credentials(theirs);
      const candidates = theirs.split('\r\n').filter((l) => l.startsWith('a=candidate'));
      // The answer as it would be now: the server's new credentials and candidates.
      let sdp = window.answer
        .replace(/a=ice-ufrag:.*\r\n/g, `a=ice-ufrag:${creds.ufrag}\r\n`)
        .replace(/a=ice-pwd:.*\r\n/g, `a=ice-pwd:${creds.pwd}\r\n`)
        .split('\r\n').filter((l) => !l.startsWith('a=candidate') && l !== 'a=end-of-candidates').join('\r\n');
      sdp = sdp.replace(/(a=mid:0\r\n)/, '$1' + candidates.map((c) => c + '\r\n').join(''));
      const old = window.etag;
      window.etag = res.headers.get('ETag');
      await pc.setRemoteDescription({ type: 'answer', sdp });
      return { old, etag: window.etag, ufrag: creds.ufrag };
    };
    return window.location_;
"#;

const FRAMES: &str = r#"
    const stats = await pc.getStats();
    let frames = 0;
    stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') frames += s.framesDecoded || 0; });
    return frames;
"#;

/// Video frames the player has decoded, once more than `above`.
async fn frames_above(player: &Browser, above: u64) -> u64 {
    let mut frames = 0;
    for _ in 0..100 {
        frames = player.run(FRAMES, vec![]).await.as_u64().unwrap_or(0);
        if frames > above {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    frames
}

#[test]
fn a_whip_encoder_trickles_and_restarts_ice_without_leaving() {
    isolated(
        "ice_restart::a_whip_encoder_trickles_and_restarts_ice_without_leaving",
        || async {
            let (s, _driver, encoder, player) = two_browsers("studio").await;
            let (_, obs) = token(&s, "studio", "obs", json!({})).await;
            let location = encoder
                .run(
                    TRICKLING_ENCODER,
                    vec![
                        json!(format!("{}/v1/whip/rooms/studio", s.base)),
                        json!(obs.clone()),
                    ],
                )
                .await;
            let location = location.as_str().unwrap().to_owned();
            // Its tracks are the room's once its media connection is up, a
            // moment after the answer: a player asking before that is told
            // `obs` publishes nothing yet.
            let mut tracks = 0;
            for _ in 0..100 {
                let (_, obs) = send(s.dev(Method::GET, "/v1/rooms/studio/participants/obs")).await;
                tracks = obs["tracks"].as_array().map_or(0, Vec::len);
                if tracks == 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert_eq!(tracks, 2, "the encoder publishes video and audio");
            let (_, viewer) = token(&s, "studio", "viewer", json!({ "can_publish": false })).await;
            let play = format!(
                "const [endpoint, token] = args;
                 const pc = new RTCPeerConnection();
                 window.pc = pc;
                 pc.addTransceiver('video', {{ direction: 'recvonly' }});
                 pc.addTransceiver('audio', {{ direction: 'recvonly' }});
                 {}",
                super::HTTP_SIGNAL
            );
            player
                .run(
                    &play,
                    vec![
                        json!(format!("{}/v1/whep/rooms/studio/participants/obs", s.base)),
                        json!(viewer.clone()),
                    ],
                )
                .await;
            let before = frames_above(&player, 20).await;
            assert!(before > 20, "the trickled session carries video: {before}");
            let patches = encoder.run("return window.patches;", vec![]).await;
            let patches = patches.as_array().unwrap();
            assert!(
                !patches.is_empty() && patches.iter().all(|s| s == 204),
                "candidates were trickled: {patches:?}"
            );
            let (_, list) = send(s.dev(Method::GET, "/v1/rooms/studio/participants/obs")).await;
            let sid = list["sid"].clone();

            // An ICE restart: new credentials both ways, the same session.
            let restarted = encoder.run("return await window.restart();", vec![]).await;
            assert_ne!(restarted["old"], restarted["etag"], "{restarted}");
            assert_eq!(
                restarted["etag"],
                json!(format!("\"{}\"", restarted["ufrag"].as_str().unwrap()))
            );
            let mut state = Value::Null;
            for _ in 0..100 {
                state = encoder.run("return pc.iceConnectionState;", vec![]).await;
                if state == "connected" || state == "completed" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(state == "connected" || state == "completed", "{state}");
            let after = frames_above(&player, before + 30).await;
            assert!(
                after > before + 30,
                "video flows after the restart: {before} then {after}"
            );
            let (_, list) = send(s.dev(Method::GET, "/v1/rooms/studio/participants/obs")).await;
            assert_eq!(list["sid"], sid, "the same participant");
            assert_eq!(list["tracks"].as_array().map(Vec::len), Some(2), "{list}");
            let left = s.events().await.into_iter().any(|e| {
                matches!(
                    e.payload,
                    switchboard_core::EventPayload::ParticipantLeft { .. }
                )
            });
            assert!(!left, "nobody left");

            // What the endpoint refuses, and why.
            let old = restarted["old"].as_str().unwrap();
            let etag = restarted["etag"].as_str().unwrap();
            let candidate = "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n";
            let patch = |token: &str, content_type: &str, if_match: Option<&str>, body: &str| {
                let mut req = s
                    .request(Method::PATCH, &location)
                    .bearer_auth(token.to_owned())
                    .header("content-type", content_type.to_owned())
                    .body(body.to_owned());
                if let Some(m) = if_match {
                    req = req.header("if-match", m.to_owned());
                }
                send(req)
            };
            let frag = "application/trickle-ice-sdpfrag";
            for (req, status, code) in [
                (
                    patch(&obs, frag, Some(old), candidate).await,
                    412,
                    "etag_mismatch",
                ),
                (
                    patch(&obs, frag, None, candidate).await,
                    428,
                    "if_match_required",
                ),
                (
                    patch(&obs, "application/sdp", Some(etag), candidate).await,
                    415,
                    "unsupported_media_type",
                ),
                (
                    patch(&obs, frag, Some(etag), "not sdp at all").await,
                    400,
                    "invalid_fragment",
                ),
                (
                    patch(&obs, frag, Some("*"), "a=ice-ufrag:only\r\n").await,
                    400,
                    "invalid_fragment",
                ),
                (
                    patch(&viewer, frag, Some(etag), candidate).await,
                    403,
                    "not_allowed",
                ),
                (
                    // New credentials under the current ETag: candidates for
                    // an ICE session not yet asked for, not a restart.
                    patch(
                        &obs,
                        frag,
                        Some(etag),
                        &format!(
                            "a=ice-ufrag:nxt1\r\na=ice-pwd:{}\r\n{candidate}",
                            "p".repeat(24)
                        ),
                    )
                    .await,
                    422,
                    "restart_needs_if_match_any",
                ),
            ] {
                assert_eq!(
                    (req.0.as_u16(), req.1["error"]["code"].as_str()),
                    (status, Some(code)),
                    "{}",
                    req.1
                );
            }
            let (st, _) = patch(&obs, frag, Some(etag), candidate).await;
            assert_eq!(
                st,
                StatusCode::NO_CONTENT,
                "a candidate under the current ETag"
            );
            let options = s
                .request(Method::OPTIONS, "/v1/whip/rooms/studio")
                .send()
                .await
                .unwrap();
            assert_eq!(options.headers()["accept-post"], "application/sdp");
            player.close().await;
            encoder.close().await;
        },
    );
}

/// The ICE username fragments each of the page's two connections uses now,
/// and whether both are connected.
const ICE: &str = r#"
    const ufrag = (d) => d && d.sdp.match(/a=ice-ufrag:(.*)\r\n/)[1];
    const up = (pc) => ['connected', 'completed'].includes(pc.iceConnectionState);
    return {
      publisher: [ufrag(room.publisher.localDescription), ufrag(room.publisher.remoteDescription)],
      subscriber: [ufrag(room.subscriber.localDescription), ufrag(room.subscriber.remoteDescription)],
      connected: up(room.publisher) && up(room.subscriber),
    };
"#;

/// The SDK's ICE restart (what it does by itself when the network changes
/// or a connection fails): new credentials on both connections, the same
/// participant and tracks, and the other side keeps decoding.
#[test]
fn an_sdk_participant_restarts_ice_and_stays_in_the_room() {
    isolated(
        "ice_restart::an_sdk_participant_restarts_ice_and_stays_in_the_room",
        || async {
            let (s, _driver, alice, bob) = two_browsers("huddle").await;
            super::alice_publishes_then_bob_joins(&s, &alice, &bob, "huddle").await;
            let mut before = 0;
            for _ in 0..100 {
                before = decoded(&bob).await;
                if before > 20 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(before > 20, "bob decodes alice's video: {before}");
            let (_, listed) = send(s.dev(Method::GET, "/v1/rooms/huddle/participants/alice")).await;
            let old = alice.run(ICE, vec![]).await;

            alice
                .run("await room.restartIce(); return null;", vec![])
                .await;
            let mut now = Value::Null;
            for _ in 0..100 {
                now = alice.run(ICE, vec![]).await;
                let changed =
                    now["publisher"] != old["publisher"] && now["subscriber"] != old["subscriber"];
                if changed && now["connected"] == true {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            for pc in ["publisher", "subscriber"] {
                for side in 0..2 {
                    assert_ne!(
                        now[pc][side], old[pc][side],
                        "{pc} credentials changed on both sides: {old} then {now}"
                    );
                }
            }
            assert_eq!(now["connected"], true, "{now}");
            let mut after = 0;
            for _ in 0..100 {
                after = decoded(&bob).await;
                if after > before + 30 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(
                after > before + 30,
                "bob still decodes: {before} then {after}"
            );
            let (_, again) = send(s.dev(Method::GET, "/v1/rooms/huddle/participants/alice")).await;
            assert_eq!(again["sid"], listed["sid"], "the same participant");
            assert_eq!(again["tracks"], listed["tracks"], "the same tracks");
            let events = bob.run("return window.events;", vec![]).await;
            assert!(
                !events.to_string().contains("participant_left"),
                "nobody left: {events}"
            );
            alice.close().await;
            bob.close().await;
        },
    );
}

/// Video frames the SDK page has decoded from its subscriber connection.
async fn decoded(b: &Browser) -> u64 {
    b.run(super::STATS, vec![]).await["framesDecoded"]
        .as_u64()
        .unwrap_or(0)
}
