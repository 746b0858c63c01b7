//! The signaling WebSocket from a test: connect with a token, read JSON messages.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::Server;

/// A client's signaling socket.
pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// `ws://…/rtc?access_token=TOKEN` on `s`.
pub fn ws_url(s: &Server, token: &str) -> String {
    format!(
        "{}/rtc?access_token={token}",
        s.base.replacen("http", "ws", 1)
    )
}

/// Opens the signaling socket with `token`.
pub async fn connect(s: &Server, token: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(ws_url(s, token))
        .await
        .expect("websocket upgrade");
    ws
}

/// The next JSON message, skipping none; panics on close or timeout.
pub async fn next(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message in time")
            .expect("socket open")
            .unwrap();
        match msg {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// Reads until a message of `kind` arrives.
pub async fn until(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let m = next(ws).await;
        if m["type"] == kind {
            return m;
        }
    }
}
