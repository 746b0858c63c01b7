//! Twenty peers of two WebRTC stacks in one room, every one of them on the
//! node's one media port.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use super::common::browser::{isolated, Driver};
use super::common::sdk_peer::spawn_peer;
use super::common::{send, Server};
use reqwest::Method;
use switchboard_store::Backend;

const CHROMIUM_PARTICIPANTS: usize = 4;
const AIORTC_PARTICIPANTS: usize = 16;

/// Joins one SDK participant per token in this page; the first publishes a
/// small camera picture and the microphone.
const JOIN_MANY: &str = r#"
    const [url, tokens] = args;
    const { connect } = await import('/sdk/switchboard.js');
    window.crowd = [];
    for (const t of tokens) window.crowd.push(await connect(url, t));
    await crowd[0].publishCamera({ width: 160, height: 120, frameRate: 15 });
    await crowd[0].publishMicrophone();
    return crowd.length;
"#;

/// Video tracks of a participant's state that decoded more than a few frames.
fn receiving(p: &Value) -> usize {
    p["videos"]
        .as_array()
        .map(|v| v.iter().filter(|f| f.as_u64().unwrap_or(0) > 10).count())
        .unwrap_or(0)
}

/// Per participant of this page: its connections' states, the ports of the
/// server's candidates and, per video track received, the frames decoded.
const CROWD_STATE: &str = r#"
    const out = [];
    for (const room of crowd) {
      const ports = [], states = {}, videos = [];
      for (const [name, pc] of [['publisher', room.publisher], ['subscriber', room.subscriber]]) {
        if (!pc || !pc.remoteDescription) continue;
        states[name] = pc.connectionState;
        for (const l of pc.remoteDescription.sdp.split('\r\n')) {
          if (l.startsWith('a=candidate:')) ports.push(Number(l.split(' ')[5]));
        }
      }
      const stats = await room.subscriber.getStats();
      stats.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') videos.push(s.framesDecoded || 0); });
      out.push({ states, ports, videos });
    }
    return out;
"#;

/// The aiortc participants' process (`tests/peers/crowd.py`): one JSON line
/// with every participant's state each 500 ms.
struct Crowd {
    child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<Value>,
}

impl Crowd {
    fn start(urls: &[String]) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/crowd.py");
        let (child, lines) = spawn_peer(Command::new("python3").arg(script).args(urls));
        Self { child, lines }
    }

    /// The latest state line.
    fn latest(&mut self) -> Value {
        let mut last = Value::Null;
        while let Ok(v) = self.lines.try_recv() {
            assert!(
                v.get("failed").is_none(),
                "an aiortc participant failed: {v}"
            );
            last = v;
        }
        last
    }
}

impl Drop for Crowd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn token(s: &Server, identity: &str) -> (String, String) {
    let (_, t) = send(
        s.dev(Method::POST, "/v1/tokens")
            .json(&json!({ "room": "crowd", "identity": identity })),
    )
    .await;
    (
        t["url"].as_str().unwrap().to_owned(),
        t["token"].as_str().unwrap().to_owned(),
    )
}

/// Whether a participant's connections are up: both (one, for a participant
/// that publishes nothing) connected, and every candidate the server gave
/// names `port`.
fn settled(p: &Value, port: u16, publisher: bool) -> bool {
    let states = p["states"].as_object().cloned().unwrap_or_default();
    let wanted = if publisher { 2 } else { 1 };
    let ports = p["ports"].as_array().cloned().unwrap_or_default();
    states.len() >= wanted
        && states.values().all(|s| s == "connected")
        && !ports.is_empty()
        && ports.iter().all(|p| *p == json!(port))
}

/// The video tracks participant `i` of a group receives: both publishers'
/// (the first of each group), less its own.
fn publishers_but(i: usize) -> usize {
    if i == 0 {
        1
    } else {
        2
    }
}

#[test]
fn twenty_peers_of_two_stacks_share_the_one_media_port() {
    isolated(
        "one_port::twenty_peers_of_two_stacks_share_the_one_media_port",
        || async {
            let s = Server::start_with(Backend::Sqlite, &["--dev"]).await;
            let port = s.media_port();
            send(
                s.dev(Method::POST, "/v1/rooms")
                    .json(&json!({ "name": "crowd" })),
            )
            .await;
            let driver = Driver::start().await;
            let page = driver.browser().await;
            page.client.goto(&format!("{}/demo", s.base)).await.unwrap();
            let mut tokens = Vec::new();
            let mut url = String::new();
            for i in 0..CHROMIUM_PARTICIPANTS {
                let (u, t) = token(&s, &format!("chromium-{i}")).await;
                url = u;
                tokens.push(t);
            }
            let joined = page.run(JOIN_MANY, vec![json!(url), json!(tokens)]).await;
            assert_eq!(joined, json!(CHROMIUM_PARTICIPANTS));
            let mut urls = Vec::new();
            for i in 0..AIORTC_PARTICIPANTS {
                let (_, t) = token(&s, &format!("aiortc-{i}")).await;
                urls.push(format!(
                    "{}/rtc?access_token={t}",
                    s.base.replacen("http", "ws", 1)
                ));
            }
            let mut crowd = Crowd::start(&urls);

            // Everyone receives both publishers' video: the Chromium one and the aiortc one.
            let (mut browsers, mut peers) = (Value::Null, Value::Null);
            for _ in 0..120 {
                tokio::time::sleep(Duration::from_millis(500)).await;
                browsers = page.run(CROWD_STATE, vec![]).await;
                let latest = crowd.latest();
                if !latest.is_null() {
                    peers = latest;
                }
                let browsers_done = browsers.as_array().is_some_and(|list| {
                    list.iter()
                        .enumerate()
                        .all(|(i, p)| settled(p, port, i == 0) && receiving(p) >= publishers_but(i))
                });
                let peers_done = peers.as_array().is_some_and(|list| {
                    list.len() == AIORTC_PARTICIPANTS
                        && list.iter().enumerate().all(|(i, p)| {
                            settled(p, port, i == 0) && receiving(p) >= publishers_but(i)
                        })
                });
                if browsers_done && peers_done {
                    break;
                }
            }
            for (i, p) in browsers
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                assert!(settled(p, port, i == 0), "chromium-{i} on port {port}: {p}");
                assert!(
                    receiving(p) >= publishers_but(i),
                    "chromium-{i} decodes both publishers' video: {p}"
                );
            }
            let list = peers.as_array().cloned().unwrap_or_default();
            assert_eq!(list.len(), AIORTC_PARTICIPANTS, "{peers}");
            for (i, p) in list.iter().enumerate() {
                assert!(settled(p, port, i == 0), "aiortc-{i} on port {port}: {p}");
                assert!(
                    receiving(p) >= publishers_but(i),
                    "aiortc-{i} decodes both publishers' video: {p}"
                );
            }
            let (_, listed) = send(s.dev(Method::GET, "/v1/rooms/crowd/participants")).await;
            let count = listed["data"].as_array().map(|l| l.len()).unwrap_or(0);
            assert_eq!(
                count,
                CHROMIUM_PARTICIPANTS + AIORTC_PARTICIPANTS,
                "{listed}"
            );
            page.close().await;
        },
    );
}
