//! A server connection and a client connection joined by a simulated wire
//! on a simulated clock: no sockets, and time moves only when both wait.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::sansio::Protocol;

use super::Connection;
use crate::peer::config::{Direction, RtcConfig};

const SERVER: &str = "10.0.0.1:7882";
const CLIENT: &str = "10.0.0.2:50000";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a test address")
}

/// A subscriber connection as the node makes it (the server offers, with
/// its data channels) and a client that answers it.
fn subscriber_pair(now: Instant) -> (Connection, Connection) {
    let config = RtcConfig {
        ice_tcp: false,
        ..RtcConfig::default()
    };
    let mut server =
        Connection::new(&config, addr(SERVER), Direction::Send, now).expect("server connection");
    server
        .pc
        .create_data_channel("reliable", None)
        .expect("a data channel");
    let offer = server.offer(now).expect("an offer");
    let mut client =
        Connection::new(&config, addr(CLIENT), Direction::Receive, now).expect("client connection");
    client.take_offer(now, offer).expect("the offer taken");
    let answer = client.answer(now).expect("an answer");
    server.accept(now, answer).expect("the answer accepted");
    (server, client)
}

/// Runs one side as a worker does: its events first, then what it has to
/// send, carried to the other side (in reverse order with `reorder`, as a
/// network may deliver it); whether anything moved, and whether `from`
/// reported its connection up.
fn step(
    from: &mut Connection,
    from_addr: &str,
    to: &mut Connection,
    now: Instant,
    reorder: bool,
) -> (bool, bool) {
    let mut up = false;
    while let Some(event) = from.poll_event(now) {
        if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) = event {
            up |= state == RTCPeerConnectionState::Connected;
        }
    }
    let mut sent = Vec::new();
    while let Some(out) = from.poll_write(now) {
        sent.push(out);
    }
    if reorder {
        sent.reverse();
    }
    for out in &sent {
        to.feed(out.now, addr(from_addr), &out.message, false);
    }
    (!sent.is_empty(), up)
}

/// How long, on the simulated clock, until the server's connection is up.
fn time_to_connect(
    mut server: Connection,
    mut client: Connection,
    start: Instant,
    reorder: bool,
) -> Duration {
    let mut now = start;
    let limit = start + Duration::from_secs(10);
    while now < limit {
        loop {
            let (server_moved, up) = step(&mut server, SERVER, &mut client, now, false);
            if up {
                return now - start;
            }
            let (client_moved, _) = step(&mut client, CLIENT, &mut server, now, reorder);
            if !server_moved && !client_moved {
                break;
            }
        }
        let next = [server.pc.poll_timeout(), client.pc.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(limit);
        now = next.max(now + Duration::from_micros(1));
        server.tick(now);
        client.tick(now);
    }
    panic!("the connection did not come up in 10 s of simulated time");
}

#[test]
fn dtls_starts_as_soon_as_ice_connects() {
    // The stack queues the client's first flight when ICE connects and would
    // send it from its retransmission timer, 50 ms later.
    let start = Instant::now();
    let (server, client) = subscriber_pair(start);
    let took = time_to_connect(server, client, start, false);
    assert!(
        took < Duration::from_millis(20),
        "connected after {took:?} of simulated time: the first DTLS flight waited"
    );
}

#[test]
fn a_hello_that_overtakes_the_nomination_answer_is_not_lost() {
    // The client's hello reaches the server before the answer that tells the
    // server its nominated pair works: the stack alone would drop it.
    let start = Instant::now();
    let (server, client) = subscriber_pair(start);
    let took = time_to_connect(server, client, start, true);
    assert!(
        took < Duration::from_millis(20),
        "connected after {took:?} of simulated time: the hello was dropped"
    );
}

#[test]
fn datagrams_held_before_ice_connects_are_bounded() {
    let start = Instant::now();
    let (mut server, _client) = subscriber_pair(start);
    let hello = [22u8, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for _ in 0..100 {
        server.feed(start, addr(CLIENT), &hello, false);
    }
    assert_eq!(server.early_dtls.len(), super::MAX_EARLY_DTLS);
}
