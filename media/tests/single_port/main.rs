//! The media workers over real UDP sockets on loopback: peers built on the
//! same WebRTC stack (sans-I/O, each on its own socket) connect to the node's
//! one port, one publishes VP8, the rest subscribe and receive it. [`relay`]:
//! links carrying a track from one node's workers to another's.

mod abuse;
mod harness;
mod relay;

use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::ice::network_type::NetworkType;
use switchboard_core::ParticipantSid;
use switchboard_media::peer::config::RtcConfig;
use switchboard_media::worker::{Command, Event, Output};

use harness::{ask, sending_video, Call, Client, PUBLISHER_SSRC};

#[test]
fn twenty_peers_share_one_port_and_every_subscriber_receives_the_publisher() {
    twenty_peers_on(1);
}

#[test]
fn with_several_workers_each_connection_reaches_the_worker_that_owns_it() {
    // The kernel spreads the clients over four sockets by address; the call
    // lives on one worker, so most first checks are handed over.
    twenty_peers_on(4);
}

fn twenty_peers_on(workers: usize) {
    let mut call = Call::start_on(workers);
    for _ in 0..19 {
        call.subscribe();
    }
    let all_received = call.run_until(Duration::from_secs(20), |c| {
        c.subscribers.iter().all(|(s, _)| s.received() >= 20)
    });
    let counts: Vec<u32> = call.subscribers.iter().map(|(s, _)| s.received()).collect();
    assert!(all_received, "packets received per subscriber: {counts:?}");
    for (s, _) in &call.subscribers {
        assert_eq!(s.received.len(), 1, "one stream per subscriber");
        assert!(
            !s.received.contains_key(&PUBLISHER_SSRC),
            "the SSRC is rewritten per subscriber"
        );
    }
}

#[test]
fn a_publisher_whose_address_changes_restarts_ice_and_its_subscribers_receive_again() {
    let mut call = Call::start();
    call.subscribe();
    assert!(
        call.run_until(Duration::from_secs(10), |c| c.subscribers[0].0.received()
            >= 20)
    );

    // The publisher's network changes: its old address is gone for good.
    call.restart_publisher();
    let before = call.subscribers[0].0.received();
    assert!(
        call.run_until(Duration::from_secs(3), |c| c.subscribers[0].0.received()
            >= before + 20),
        "the subscriber received {} packets after the restart",
        call.subscribers[0].0.received() - before
    );
    let ended: Vec<_> = call
        .read_events()
        .into_iter()
        .filter(|e| matches!(e, Event::TrackEnded(_)))
        .collect();
    assert!(ended.is_empty(), "the track lived on: {ended:?}");
}

#[test]
fn a_client_without_udp_receives_over_ice_tcp_on_the_same_port_number() {
    let config = RtcConfig {
        ice_tcp: true,
        ..Default::default()
    };
    let mut call = Call::start_with(2, config);
    let client = Client::with_networks(Some(vec![NetworkType::Tcp4]));
    call.subscribe_with(client, true);
    assert!(
        call.run_until(Duration::from_secs(10), |c| c.subscribers[0].0.received()
            >= 20),
        "received {} packets over TCP",
        call.subscribers[0].0.received()
    );
}

#[test]
fn an_unsubscribed_track_stops_and_leaves_the_subscribers_offer() {
    let mut call = Call::start();
    call.subscribe();
    call.subscribe();
    assert!(call.run_until(Duration::from_secs(10), |c| {
        c.subscribers.iter().all(|(s, _)| s.received() >= 20)
    }));
    let participant = ParticipantSid::new();
    // A second subscription on the first subscriber's connection, under a
    // participant id the test knows, then taken away again.
    let conn = call.subscribers[0].1;
    let track = call.track.clone().unwrap();
    ask(&call.worker, |reply| Command::Subscribe {
        track: track.clone(),
        participant,
        output: Output::Peer(conn, None),
        reply,
    })
    .expect("subscribed");
    let offer = call.renegotiate(0);
    assert_eq!(sending_video(&offer.sdp), 2, "{}", offer.sdp);
    assert!(call.run_until(Duration::from_secs(10), |c| c.subscribers[0]
        .0
        .received
        .len()
        == 2));

    assert!(call
        .worker
        .send(Command::Unsubscribe { track, participant }));
    let offer = call.renegotiate(0);
    assert_eq!(sending_video(&offer.sdp), 1, "{}", offer.sdp);
    call.run_until(Duration::from_millis(300), |_| false);
    let frozen = call.subscribers[0].0.received.clone();
    let other = call.subscribers[1].0.received();
    call.run_until(Duration::from_secs(1), |_| false);
    let now = &call.subscribers[0].0.received;
    let growing: Vec<_> = now
        .iter()
        .filter(|(ssrc, n)| frozen.get(ssrc) != Some(n))
        .collect();
    assert_eq!(
        growing.len(),
        1,
        "only the remaining stream grows: {frozen:?} then {now:?}"
    );
    assert!(
        call.subscribers[1].0.received() > other,
        "the other subscriber is untouched"
    );
}

#[test]
fn the_server_sends_on_its_data_channels_and_hands_up_what_clients_send() {
    let mut call = Call::start();
    call.subscribe();
    assert!(call.run_until(Duration::from_secs(10), |c| c.subscribers[0].0.connected));
    let conn = call.subscribers[0].1;
    // Sent until it arrives: the channel opens some time after the connection.
    let arrived = call.run_until(Duration::from_secs(10), |c| {
        c.worker.send(Command::SendData {
            conn,
            reliable: true,
            text: "hello".into(),
        });
        !c.subscribers[0].0.messages.is_empty()
    });
    assert!(arrived, "no data message arrived");
    assert_eq!(call.subscribers[0].0.messages[0], "hello");

    // The client opens its own channel on the same association and sends.
    let channel = call.subscribers[0]
        .0
        .pc
        .create_data_channel("_reliable", None)
        .unwrap()
        .id();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut heard = None;
    while heard.is_none() && Instant::now() < deadline {
        call.run_until(Duration::from_millis(20), |_| false);
        if let Some(mut ch) = call.subscribers[0].0.pc.data_channel(channel) {
            // Refused until the channel is open.
            let _ = ch.send_text(Instant::now(), "from the client");
        }
        heard = call.read_events().into_iter().find_map(|e| match e {
            Event::Data {
                conn: from,
                reliable,
                data,
            } if from == conn => Some((reliable, data)),
            _ => None,
        });
    }
    assert_eq!(heard, Some((true, Bytes::from_static(b"from the client"))));
}

#[test]
fn a_track_the_client_stops_ends_for_its_subscribers() {
    let mut call = Call::start();
    call.subscribe();
    assert!(
        call.run_until(Duration::from_secs(10), |c| c.subscribers[0].0.received()
            >= 20)
    );
    call.read_events();

    // The publisher stops its camera and renegotiates.
    call.publisher.pc.remove_track(call.sender).unwrap();
    let offer = call.publisher.pc.create_offer(None).unwrap();
    call.publisher
        .pc
        .set_local_description(Instant::now(), offer)
        .unwrap();
    let offer = call.publisher.pc.local_description().unwrap();
    let conn = call.pub_conn;
    let answer = ask(&call.worker, |reply| Command::Answer {
        conn,
        offer: Some(offer),
        reply,
    })
    .expect("answered");
    call.publisher
        .pc
        .set_remote_description(Instant::now(), answer)
        .unwrap();
    let mut ended = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    while !ended && Instant::now() < deadline {
        call.run_until(Duration::from_millis(50), |_| false);
        ended = call
            .read_events()
            .iter()
            .any(|e| matches!(e, Event::TrackEnded(t) if Some(t) == call.track.as_ref()));
    }
    assert!(ended, "the node never said the track ended");
    // Its subscriber's outgoing track went with it: the next offer sends nothing.
    let offer = call.renegotiate(0);
    assert_eq!(sending_video(&offer.sdp), 0, "{}", offer.sdp);
}
