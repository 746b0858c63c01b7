//! Relay links between two nodes, each a set of workers on its own port:
//! a track published on node A crosses to node B once, and B's subscribers
//! receive it there.

use std::time::{Duration, Instant};

use switchboard_core::{ParticipantSid, TrackSid};
use switchboard_media::peer::config::{Direction, RtcConfig};
use switchboard_media::relay::{relayed_track, Downstream, Upstream};
use switchboard_media::sfu::keyframe::Codec;
use switchboard_media::worker::{
    Command, ConnId, Event, Load, Output, Query, SubscriptionChange, TrackReceiver, TrackRef,
    Worker, Workers, EVENTS_CAPACITY,
};
use tokio::sync::mpsc;

use super::harness::{ask, only_candidates_on, Call, Client};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Node B: `workers` workers on a port of their own, and the one links go to.
fn node_b(workers: usize) -> (Workers, Worker) {
    let node = Workers::start(
        &RtcConfig::default(),
        "127.0.0.1:0".parse().unwrap(),
        None,
        workers,
    )
    .unwrap();
    let worker = node.for_key(0).clone();
    (node, worker)
}

fn load(worker: &Worker) -> Load {
    ask(worker, |reply| Command::Query(Query::Load(reply)))
}

/// A link from node A's call to a worker of node B: the upstream end
/// carries the call's track, the downstream end has answered.
struct Link {
    upstream: Upstream,
    downstream: Downstream,
    events: mpsc::Receiver<Event>,
    /// How B's worker names the track, once it arrives.
    track: Option<TrackRef>,
}

fn link(rt: &tokio::runtime::Runtime, call: &Call, sid: TrackSid, b: &Worker) -> Link {
    let receiver = TrackReceiver::new(
        sid,
        call.track.clone().expect("the call's track"),
        call.worker.clone(),
        Codec::from_mime("video/VP8"),
        90_000,
    );
    let (upstream, _) = Upstream::open(&call.worker).expect("the upstream end");
    let (downstream, events) = Downstream::open(b).expect("the downstream end");
    rt.block_on(async {
        assert!(upstream
            .carry(ParticipantSid::new(), &receiver, "video/VP8")
            .await
            .expect("carried"));
        let offer = upstream.offer().await.expect("the link's offer");
        let answer = downstream.answer(&offer).await.expect("the link's answer");
        upstream.accept(&answer).await.expect("the answer taken");
        assert_eq!(upstream.carried(), vec![sid]);
        answer
    });
    Link {
        upstream,
        downstream,
        events,
        track: None,
    }
}

/// Waits (stepping the call) until every link's track has arrived on B.
fn arrive(call: &mut Call, links: &mut [Link], sids: &[TrackSid]) {
    let arrived = call.run_until(Duration::from_secs(10), |_| {
        for (link, sid) in links.iter_mut().zip(sids) {
            while let Ok(event) = link.events.try_recv() {
                if let Some((found, track)) = relayed_track(&event) {
                    assert_eq!(found, *sid, "the track is known by its sid on B");
                    assert!(link.track.is_none(), "one track per carried track");
                    link.track = Some(track);
                }
            }
        }
        links.iter().all(|l| l.track.is_some())
    });
    assert!(arrived, "a carried track never arrived on node B");
}

/// Adds a subscriber on B's worker `b` to `track`, stepped with the call;
/// the subscriber's participant sid.
fn subscribe_on_b(call: &mut Call, b: &Worker, track: &TrackRef) -> ParticipantSid {
    let (events, _) = mpsc::channel(EVENTS_CAPACITY);
    let conn = ConnId::new();
    assert!(b.send(Command::Open {
        conn,
        events,
        budget: None,
        direction: Direction::Send,
        data_channels: true,
    }));
    let track = track.clone();
    let participant = ParticipantSid::new();
    ask(b, |reply| Command::Subscribe {
        track,
        participant,
        output: Output::Peer(conn, None),
        reply,
    })
    .expect("subscribed on B");
    let offer = ask(b, |reply| Command::Offer {
        conn,
        ice_restart: false,
        reply,
    })
    .expect("B's offer");
    let mut client = Client::new();
    let answer = client.answer(offer);
    ask(b, |reply| Command::Accept {
        conn,
        answer,
        reply,
    })
    .expect("the subscriber's answer");
    call.subscribers.push((client, conn));
    participant
}

#[test]
fn a_track_crosses_a_link_once_and_every_subscriber_on_the_far_node_receives_it() {
    let rt = runtime();
    let mut call = Call::start();
    let (node_b, b) = node_b(2);
    let sid = TrackSid::new();
    let mut links = [link(&rt, &call, sid, &b)];
    let answer = links[0]
        .downstream
        .peer()
        .local_description()
        .expect("the answer");
    assert!(
        !only_candidates_on(&answer, node_b.local_addr().port()),
        "the downstream end has a socket of its own: {answer}"
    );
    arrive(&mut call, &mut links, &[sid]);

    let track = links[0].track.clone().unwrap();
    let on_b: Vec<ParticipantSid> = (0..3)
        .map(|_| subscribe_on_b(&mut call, &b, &track))
        .collect();
    let all_received = call.run_until(Duration::from_secs(15), |c| {
        c.subscribers.iter().all(|(s, _)| s.received() >= 20)
    });
    let counts: Vec<u32> = call.subscribers.iter().map(|(s, _)| s.received()).collect();
    assert!(all_received, "packets received on B: {counts:?}");
    for (s, _) in &call.subscribers {
        assert_eq!(s.received.len(), 1, "one stream per subscriber");
    }
    // On A: the publisher and the link, whatever B's audience.
    assert_eq!(load(&call.worker).connections, 2);
    // On B: the link's end and three subscribers.
    assert_eq!(load(&b).connections, 4);

    // A subscriber on B asks for a keyframe: the link carries the request
    // up to the publisher on A.
    let before = call.publisher.plis;
    assert!(b.send(Command::Subscription {
        track: track.clone(),
        participant: on_b[0],
        change: SubscriptionChange::Keyframe,
    }));
    assert!(
        call.run_until(Duration::from_secs(5), |c| c.publisher.plis > before),
        "the publisher on A never heard B's keyframe request"
    );

    // The link ends: B's track ends with it, as a publisher's would.
    links[0].upstream.close();
    links[0].downstream.close();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut ended = false;
    while !ended && Instant::now() < deadline {
        while let Ok(event) = links[0].events.try_recv() {
            ended |= matches!(event, Event::TrackEnded(t) if t == track);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(ended, "the relayed track ended with its link");
    assert_eq!(load(&call.worker).connections, 1);
}

#[test]
fn two_links_between_the_same_two_nodes_each_carry_their_own_track() {
    // Node A sends every link from its one port: only the downstream ends'
    // own sockets tell the two links apart.
    let rt = runtime();
    let mut call = Call::start();
    let (_node_b, b) = node_b(1);
    let sids = [TrackSid::new(), TrackSid::new()];
    let mut links = [link(&rt, &call, sids[0], &b), link(&rt, &call, sids[1], &b)];
    arrive(&mut call, &mut links, &sids);
    for l in &links {
        let track = l.track.clone().unwrap();
        subscribe_on_b(&mut call, &b, &track);
    }
    let all_received = call.run_until(Duration::from_secs(15), |c| {
        c.subscribers.iter().all(|(s, _)| s.received() >= 20)
    });
    let counts: Vec<u32> = call.subscribers.iter().map(|(s, _)| s.received()).collect();
    assert!(all_received, "packets received over each link: {counts:?}");
    assert_eq!(load(&call.worker).connections, 3);
}
