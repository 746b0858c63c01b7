//! What a hostile participant, a noisy tenant or a stranger can do to
//! Switchboard, tried as an attacker would, over real sockets (issue 22).
//! Each test is the attack or the fault; it fails on a server without the
//! defence (`SWITCHBOARD_TEST_BIN=<older build>` runs the tests against one).
//!
//! - [`participants`]: what one participant can do to a media node and its room;
//! - [`tenants`]: what one project can do to the others sharing the platform;
//! - [`strangers`]: what anyone who reaches a port can do.

#[path = "../common/mod.rs"]
mod common;
mod participants;
mod strangers;
mod tenants;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) use common::ws::{connect, next, until, Ws};
use common::{send, Server};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

pub(crate) async fn token(
    s: &Server,
    room: &str,
    identity: &str,
    grants: Value,
    extra: Value,
) -> String {
    let mut body = json!({ "room": room, "identity": identity, "grants": grants });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let (st, t) = send(s.dev(Method::POST, "/v1/tokens").json(&body)).await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    t["token"].as_str().unwrap().to_owned()
}

/// A participant on aiortc speaking the WebSocket protocol (`tests/peers/sdk_peer.py`).
pub(crate) struct SdkPeer {
    child: std::process::Child,
    events: tokio::sync::mpsc::UnboundedReceiver<Value>,
    pub(crate) frames: (u64, u64),
}

impl SdkPeer {
    pub(crate) fn start(s: &Server, token: &str, publish: bool) -> Self {
        let url = format!(
            "{}/rtc?access_token={token}",
            s.base.replacen("http", "ws", 1)
        );
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/sdk_peer.py");
        let mut cmd = Command::new("python3");
        cmd.args([script, &url]);
        if publish {
            cmd.arg("--publish");
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 with aiortc (tests/peers/requirements.txt) must be installed");
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        Self {
            child,
            events,
            frames: (0, 0),
        }
    }

    pub(crate) fn send(&mut self, msg: Value) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{}", json!({ "send": msg })).unwrap();
    }

    /// The next event that `pick` accepts, keeping the frame counts current.
    pub(crate) async fn until<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&Value) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let e = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} in time"))
                .unwrap_or_else(|| panic!("the peer ended before {what}"));
            if e["event"] == "frames" {
                self.frames = (e["video"].as_u64().unwrap(), e["audio"].as_u64().unwrap());
            }
            if let Some(t) = pick(&e) {
                return t;
            }
        }
    }

    /// The next server message of `kind`.
    pub(crate) async fn signal(&mut self, kind: &str) -> Value {
        self.until(kind, |e| {
            (e["msg"]["type"] == kind).then(|| e["msg"].clone())
        })
        .await
    }

    /// Video frames decoded over the next `window`.
    pub(crate) async fn video_frames_over(&mut self, window: Duration) -> u64 {
        let end = tokio::time::Instant::now() + window;
        self.until("a frame count", |e| (e["event"] == "frames").then_some(()))
            .await;
        let start = self.frames.0;
        while tokio::time::Instant::now() < end {
            self.until("a frame count", |e| (e["event"] == "frames").then_some(()))
                .await;
        }
        self.frames.0 - start
    }
}

impl Drop for SdkPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
