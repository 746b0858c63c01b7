//! What strangers and hostile clients can do to the port: checks naming a
//! connection they do not hold, and TCP streams they never use.

use std::io::Read;
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use rtc::ice::network_type::NetworkType;
use switchboard_media::peer::config::RtcConfig;

use super::harness::{Call, Client};

/// A STUN binding request with USERNAME `username` and no integrity.
fn binding_request(username: &str) -> Vec<u8> {
    let mut attrs = Vec::new();
    attrs.extend_from_slice(&0x0006u16.to_be_bytes());
    attrs.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attrs.extend_from_slice(username.as_bytes());
    while attrs.len() % 4 != 0 {
        attrs.push(0);
    }
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    m.extend_from_slice(&0x2112_A442u32.to_be_bytes());
    m.extend_from_slice(&rand::random::<[u8; 12]>());
    m.extend_from_slice(&attrs);
    m
}

/// How many UDP sockets of this machine are bound to `port` (the node's
/// workers' and any connected to clients), from /proc/net/udp: other tests
/// of this process open sockets of their own meanwhile.
fn sockets_on(port: u16) -> usize {
    let suffix = format!(":{port:04X}");
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .map(|t| {
            t.lines()
                .skip(1)
                .filter(|l| {
                    l.split_whitespace()
                        .nth(1)
                        .is_some_and(|local| local.ends_with(&suffix))
                })
                .count()
        })
        .sum()
}

#[test]
fn checks_naming_a_connection_from_strangers_open_nothing_and_take_nothing() {
    let mut call = Call::start_on(2);
    call.subscribe();
    assert!(
        call.run_until(Duration::from_secs(10), |c| c.subscribers[0].0.received()
            >= 20)
    );
    // The node's ufrag for the publisher's connection, as a stranger who
    // read the publisher's signaling would know it.
    let answer = call.publisher.pc.remote_description().unwrap().sdp.clone();
    let ufrag = answer
        .lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .unwrap()
        .trim()
        .to_owned();
    let node = call.workers.local_addr();

    let before = sockets_on(node.port());
    let strangers: Vec<UdpSocket> = (0..40)
        .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
        .collect();
    for s in &strangers {
        for _ in 0..3 {
            s.send_to(&binding_request(&format!("{ufrag}:evil")), node)
                .unwrap();
        }
    }
    let received = call.subscribers[0].0.received();
    assert!(
        call.run_until(Duration::from_secs(2), |c| c.subscribers[0].0.received()
            >= received + 50),
        "the call went on"
    );
    let after = sockets_on(node.port());
    assert!(
        after <= before,
        "{before} sockets on the node's port before {} strangers checked, {after} after: \
         the node connected sockets to them",
        strangers.len()
    );
    // Nothing answered them: their checks carry no valid integrity.
    let mut buf = [0u8; 1500];
    for s in &strangers {
        s.set_nonblocking(true).unwrap();
        assert!(s.recv_from(&mut buf).is_err(), "a stranger got an answer");
    }
}

#[test]
fn idle_tcp_streams_make_room_for_clients_that_check() {
    let config = RtcConfig {
        ice_tcp: true,
        ..Default::default()
    };
    let mut call = Call::start_with(1, config);
    let node = call.workers.local_addr();
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(node).unwrap())
        .collect();
    // The client comes after all of them and still gets in.
    call.subscribe_with(Client::with_networks(Some(vec![NetworkType::Tcp4])), true);
    assert!(
        call.run_until(Duration::from_secs(10), |c| c.subscribers[0].0.received()
            >= 20),
        "the TCP client received {} packets",
        call.subscribers[0].0.received()
    );
    // The oldest idle streams were closed to make room.
    let mut closed = 0;
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut b = [0u8; 1];
        let is_closed = match s.read(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        closed += usize::from(is_closed);
    }
    assert!(
        closed >= 44,
        "only {closed} of 300 idle streams were closed"
    );
}
