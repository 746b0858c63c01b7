//! A participant of the WebSocket signaling protocol on aiortc, an
//! independent WebRTC stack (`tests/peers/sdk_peer.py`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use super::Server;

/// Starts a Python peer script (`cmd`) that talks on standard input and
/// output; its JSON output lines arrive on the receiver.
pub fn spawn_peer(
    cmd: &mut Command,
) -> (
    std::process::Child,
    tokio::sync::mpsc::UnboundedReceiver<Value>,
) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with aiortc (tests/peers/requirements.txt) must be installed");
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if tx.send(v).is_err() {
                    return;
                }
            }
        }
    });
    (child, lines)
}

/// A participant on aiortc speaking the WebSocket protocol (`tests/peers/sdk_peer.py`).
pub struct SdkPeer {
    child: std::process::Child,
    events: tokio::sync::mpsc::UnboundedReceiver<Value>,
    pub frames: (u64, u64),
}

impl SdkPeer {
    pub fn start(s: &Server, token: &str, publish: bool) -> Self {
        Self::start_on(s, token, publish, "127.0.0.1")
    }

    /// [`SdkPeer::start`] with ICE candidates on `host`, an address of the test's namespace.
    pub fn start_on(s: &Server, token: &str, publish: bool, host: &str) -> Self {
        let args: &[&str] = if publish { &["--publish"] } else { &[] };
        Self::spawn(s, token, args, host)
    }

    /// A publisher whose audio is a steady tone: the server hears it speak.
    pub fn start_speaking(s: &Server, token: &str) -> Self {
        Self::spawn(s, token, &["--publish", "--tone"], "127.0.0.1")
    }

    /// A peer started with `args` in network namespace `netns` (`ip netns
    /// exec`; the test's own with `None`), its candidates on `host`.
    pub fn start_in(
        netns: Option<&str>,
        host: &str,
        s: &Server,
        token: &str,
        args: &[&str],
    ) -> Self {
        Self::spawn_in(netns, s, token, args, host)
    }

    fn spawn(s: &Server, token: &str, args: &[&str], host: &str) -> Self {
        Self::spawn_in(None, s, token, args, host)
    }

    fn spawn_in(netns: Option<&str>, s: &Server, token: &str, args: &[&str], host: &str) -> Self {
        let url = format!(
            "{}/rtc?access_token={token}",
            s.base.replacen("http", "ws", 1)
        );
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/sdk_peer.py");
        let mut cmd = match netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns, "python3"]);
                cmd
            }
            None => Command::new("python3"),
        };
        cmd.args([script, &url])
            .args(args)
            .env("SDK_PEER_HOST", host);
        let (child, events) = spawn_peer(&mut cmd);
        Self {
            child,
            events,
            frames: (0, 0),
        }
    }

    pub fn send(&mut self, msg: Value) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{}", json!({ "send": msg })).unwrap();
    }

    /// Leaves the room as a client does when its user hangs up: it sends
    /// `leave` and exits, so the node ends the session at once instead of
    /// holding it for a resume.
    pub fn leave(mut self) {
        let stdin = self.child.stdin.as_mut().unwrap();
        let _ = writeln!(stdin, "{}", json!({ "leave": true }));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts publishing camera and microphone (a peer started without).
    pub fn publish(&mut self) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{}", json!({ "publish": true })).unwrap();
    }

    /// Sends `text` on its `_reliable` data channel (a publisher's).
    pub fn data(&mut self, text: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{}", json!({ "data": text })).unwrap();
    }

    /// The next event that `pick` accepts, keeping the frame counts current.
    pub async fn until<T>(&mut self, what: &str, mut pick: impl FnMut(&Value) -> Option<T>) -> T {
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

    /// Every event that arrived so far and was not read yet, keeping the
    /// frame counts current.
    pub fn drain(&mut self) -> Vec<Value> {
        let mut events = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            if e["event"] == "frames" {
                self.frames = (e["video"].as_u64().unwrap(), e["audio"].as_u64().unwrap());
            }
            events.push(e);
        }
        events
    }

    /// The next server message of `kind`.
    pub async fn signal(&mut self, kind: &str) -> Value {
        self.until(kind, |e| {
            (e["msg"]["type"] == kind).then(|| e["msg"].clone())
        })
        .await
    }

    /// Video frames decoded over the next `window`.
    pub async fn video_frames_over(&mut self, window: Duration) -> u64 {
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
