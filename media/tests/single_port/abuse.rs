//! What strangers and hostile clients can do to the port: checks naming a
//! connection they do not hold, addresses trickled that are not theirs, ICE
//! restarts in a loop, and TCP streams they never use.

use std::io::Read;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use rtc::ice::network_type::NetworkType;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use switchboard_media::peer::config::RtcConfig;
use switchboard_media::worker::{Command, Event, Load, Query, Worker};

use super::harness::{ask, Call, Client};

/// What `worker` holds now.
fn load(worker: &Worker) -> Load {
    ask(worker, |reply| Command::Query(Query::Load(reply)))
}

/// A host candidate naming `addr`, as a client would trickle it.
fn host_candidate(addr: SocketAddr) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: format!(
            "candidate:1 1 udp 2130706431 {} {} typ host",
            addr.ip(),
            addr.port()
        ),
        sdp_mid: Some("0".into()),
        sdp_mline_index: Some(0),
        ..Default::default()
    }
}

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

#[test]
fn a_client_trickling_addresses_not_its_own_takes_nothing_from_them() {
    let mut call = Call::start();
    call.subscribe();
    assert!(
        call.run_until(Duration::from_secs(10), |c| c.subscribers[0].0.received()
            >= 20)
    );
    let (victim, victim_conn) = (call.subscribers[0].0.local, call.subscribers[0].1);
    // A socket no connection holds, to see that the node did try the
    // trickled candidates (and so that the test can fail).
    let bystander = UdpSocket::bind("127.0.0.1:0").unwrap();
    bystander.set_nonblocking(true).unwrap();

    // The thief joins claiming the victim's address and the bystander's as
    // its own, in its answer (where the node checks them from the start, not
    // racing its first working pair as trickled ones would), and trickles
    // them too.
    let claimed: Vec<String> = [victim, bystander.local_addr().unwrap()]
        .into_iter()
        .enumerate()
        .map(|(i, addr)| {
            host_candidate(addr).candidate.replacen(
                "candidate:1 ",
                &format!("candidate:{} ", 7 + i),
                1,
            )
        })
        .collect();
    call.subscribe_claiming(Client::new(), false, &claimed);
    let thief = call.subscribers[1].1;
    for addr in [victim, bystander.local_addr().unwrap()] {
        assert!(call.worker.send(Command::Candidate {
            conn: thief,
            candidate: host_candidate(addr),
        }));
    }
    // Longer than a connection takes to count as disconnected (5 s) when
    // what its client sends goes elsewhere.
    call.run_until(Duration::from_secs(7), |_| false);

    let mut checks = 0;
    let mut buf = [0u8; 1500];
    while bystander.recv_from(&mut buf).is_ok() {
        checks += 1;
    }
    assert!(checks > 0, "the node never checked the trickled address");
    let lost: Vec<_> = call
        .read_events()
        .into_iter()
        .filter(|e| {
            matches!(e, Event::State(conn, s) if *conn == victim_conn
                && matches!(s, RTCPeerConnectionState::Disconnected | RTCPeerConnectionState::Failed))
        })
        .collect();
    assert!(
        lost.is_empty(),
        "the victim's connection suffered: {lost:?}"
    );
    assert!(
        call.subscribers[1].0.received() >= 20,
        "the thief receives too"
    );
    // The publisher's address and each subscriber's own, nothing trickled.
    assert_eq!(load(&call.worker).addresses, 3);
    let before = call.subscribers[0].0.received();
    assert!(
        call.run_until(Duration::from_secs(2), |c| c.subscribers[0].0.received()
            >= before + 20),
        "the victim still receives"
    );
}

#[test]
fn a_client_restarting_ice_in_a_loop_holds_two_credentials_and_four_addresses() {
    let mut call = Call::start();
    call.subscribe();
    assert!(
        call.run_until(Duration::from_secs(10), |c| c.subscribers[0].0.received()
            >= 20)
    );
    for round in 0..8 {
        call.restart_publisher();
        let before = call.subscribers[0].0.received();
        assert!(
            call.run_until(Duration::from_secs(5), |c| c.subscribers[0].0.received()
                >= before + 20),
            "restart {round}: the subscriber stopped receiving"
        );
    }
    // Nine credentials and nine addresses used by the publisher; it keeps
    // the current and the previous credentials and its four latest addresses.
    let held = load(&call.worker);
    assert_eq!(held.connections, 2);
    assert_eq!(held.ufrags, 2 + 1, "{held:?}");
    assert_eq!(held.addresses, 4 + 1, "{held:?}");
}
