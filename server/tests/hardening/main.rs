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

use common::sdk_peer::SdkPeer;
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
