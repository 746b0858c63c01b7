//! The media workers over real UDP sockets on loopback: peers built on the
//! same WebRTC stack (sans-I/O, each on its own socket) connect to the node's
//! one port, one publishes VP8, the rest subscribe and receive it.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use switchboard_core::ParticipantSid;
use switchboard_media::peer::config::{codec_for, stack, RtcConfig, Stack};
use switchboard_media::worker::{Command, ConnId, Event, TrackRef, Workers};
use tokio::sync::{mpsc, oneshot};

/// A client peer on its own socket, stepped by the test.
struct Client {
    pc: RTCPeerConnection,
    socket: UdpSocket,
    local: SocketAddr,
    connected: bool,
    /// RTP packets received, by SSRC.
    received: HashMap<u32, u32>,
}

impl Client {
    fn new() -> Self {
        let config = RtcConfig {
            relay_sender_reports: false,
            ..Default::default()
        };
        let Stack {
            media_engine,
            registry,
            settings,
            configuration,
        } = stack(&config).unwrap();
        let pc = RTCPeerConnectionBuilder::new()
            .with_configuration(configuration)
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings.build())
            .build(Instant::now())
            .unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let local = socket.local_addr().unwrap();
        Self {
            pc,
            socket,
            local,
            connected: false,
            received: HashMap::new(),
        }
    }

    fn add_host_candidate(&mut self) {
        let candidate = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: self.local.ip().to_string(),
                port: self.local.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()
        .unwrap();
        let init = RTCIceCandidate::from(&candidate).to_json().unwrap();
        self.pc.add_local_candidate(init).unwrap();
    }

    /// Offers to publish one VP8 track sending as `ssrc`.
    fn publish_offer(&mut self, ssrc: u32) -> (RTCSessionDescription, RTCRtpSenderId) {
        let vp8 = codec_for("video/VP8").unwrap();
        let track = MediaStreamTrack::new(
            "stream".into(),
            "camera".into(),
            "camera".into(),
            RtpCodecKind::Video,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: vp8.rtp_codec,
                ..Default::default()
            }],
        );
        let sender = self.pc.add_track(track).unwrap();
        self.add_host_candidate();
        let offer = self.pc.create_offer(None).unwrap();
        self.pc
            .set_local_description(Instant::now(), offer)
            .unwrap();
        (self.pc.local_description().unwrap(), sender)
    }

    /// Answers the server's offer.
    fn answer(&mut self, offer: RTCSessionDescription) -> RTCSessionDescription {
        self.pc
            .set_remote_description(Instant::now(), offer)
            .unwrap();
        self.add_host_candidate();
        let answer = self.pc.create_answer(None).unwrap();
        self.pc
            .set_local_description(Instant::now(), answer)
            .unwrap();
        self.pc.local_description().unwrap()
    }

    /// Feeds what arrived, runs timers, sends what is due.
    fn step(&mut self, now: Instant) {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = self.socket.recv_from(&mut buf) {
            let _ = self.pc.handle_read(TaggedBytesMut {
                now,
                transport: TransportContext {
                    local_addr: self.local,
                    peer_addr: from,
                    ecn: None,
                    transport_protocol: TransportProtocol::UDP,
                },
                message: BytesMut::from(&buf[..n]),
            });
        }
        if self.pc.poll_timeout().is_some_and(|t| t <= now) {
            let _ = self.pc.handle_timeout(now);
        }
        while let Some(event) = self.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) => {
                    self.connected = s == RTCPeerConnectionState::Connected;
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(_)) => {}
                _ => {}
            }
        }
        while let Some(read) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(_, packet) = read.message {
                *self.received.entry(packet.header.ssrc).or_default() += 1;
            }
        }
        while let Some(out) = self.pc.poll_write() {
            let _ = self.socket.send_to(&out.message, out.transport.peer_addr);
        }
    }
}

fn ask<T>(workers: &Workers, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> T {
    let (tx, rx) = oneshot::channel();
    assert!(workers.for_key(0).send(make(tx)));
    rx.blocking_recv().expect("the worker replied")
}

/// Whether every candidate `sdp` names is on `port` (and there is one).
fn only_candidates_on(sdp: &str, port: u16) -> bool {
    let ports: Vec<u16> = sdp
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .filter_map(|l| l.split_whitespace().nth(5)?.parse().ok())
        .collect();
    !ports.is_empty() && ports.iter().all(|p| *p == port)
}

#[test]
fn twenty_peers_share_one_port_and_every_subscriber_receives_the_publisher() {
    let config = RtcConfig::default();
    let workers = Workers::start(&config, "127.0.0.1:0".parse().unwrap(), None, 1).unwrap();
    let port = workers.local_addr().port();
    let (events_tx, mut events) = mpsc::unbounded_channel();

    // The publisher offers; the node answers on the shared port.
    let mut publisher = Client::new();
    let pub_conn = ConnId::new();
    assert!(workers.for_key(0).send(Command::Open {
        conn: pub_conn,
        events: events_tx.clone(),
    }));
    let publisher_ssrc = 0x0BAD_CAFE;
    let (offer, sender) = publisher.publish_offer(publisher_ssrc);
    let answer = ask(&workers, |reply| Command::Answer {
        conn: pub_conn,
        offer,
        reply,
    })
    .expect("an answer");
    assert!(only_candidates_on(&answer.sdp, port), "{}", answer.sdp);
    publisher
        .pc
        .set_remote_description(Instant::now(), answer)
        .unwrap();

    // Its track opens once media arrives; send a keyframe until it does.
    let mut sequence = 0u16;
    let mut send = |publisher: &mut Client, keyframe: bool| {
        sequence = sequence.wrapping_add(1);
        let payload: &[u8] = if keyframe {
            &[0x10, 0x00, 0x9d, 0x01, 0x2a, 0, 0, 0]
        } else {
            &[0x10, 0x01, 0, 0, 0, 0, 0, 0]
        };
        let packet = Packet {
            header: Header {
                version: 2,
                marker: true,
                payload_type: 96,
                sequence_number: sequence,
                timestamp: u32::from(sequence) * 3000,
                ssrc: publisher_ssrc,
                ..Default::default()
            },
            payload: Bytes::copy_from_slice(payload),
        };
        let _ = publisher
            .pc
            .rtp_sender(sender)
            .unwrap()
            .write_rtp(Instant::now(), packet);
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let track: TrackRef = loop {
        assert!(
            Instant::now() < deadline,
            "the published track never opened"
        );
        publisher.step(Instant::now());
        if publisher.connected {
            send(&mut publisher, true);
        }
        match events.try_recv() {
            Ok(Event::Track { track, mime, .. }) => {
                assert!(mime.eq_ignore_ascii_case("video/VP8"), "{mime}");
                break track;
            }
            Ok(_) | Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    };

    // Nineteen subscribers, each offered the track by the node.
    let mut subscribers = Vec::new();
    for _ in 0..19 {
        let mut client = Client::new();
        let conn = ConnId::new();
        assert!(workers.for_key(0).send(Command::Open {
            conn,
            events: events_tx.clone(),
        }));
        ask(&workers, |reply| Command::Subscribe {
            track: track.clone(),
            subscriber: conn,
            participant: ParticipantSid::new(),
            reply,
        })
        .expect("subscribed");
        let offer = ask(&workers, |reply| Command::Offer { conn, reply }).expect("an offer");
        assert!(only_candidates_on(&offer.sdp, port), "{}", offer.sdp);
        let answer = client.answer(offer);
        ask(&workers, |reply| Command::Accept {
            conn,
            answer,
            reply,
        })
        .expect("answer accepted");
        subscribers.push(client);
    }

    // Every subscriber connects through the one port and receives video.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut frame = 0u32;
    loop {
        let now = Instant::now();
        publisher.step(now);
        for s in &mut subscribers {
            s.step(now);
        }
        frame += 1;
        send(&mut publisher, frame.is_multiple_of(30));
        let done = subscribers
            .iter()
            .filter(|s| s.received.values().sum::<u32>() >= 20)
            .count();
        if done == subscribers.len() {
            break;
        }
        assert!(
            now < deadline,
            "{done} of {} subscribers received 20 packets; connected: {}",
            subscribers.len(),
            subscribers.iter().filter(|s| s.connected).count()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    for s in &subscribers {
        assert_eq!(s.received.len(), 1, "one stream per subscriber");
        assert!(
            !s.received.contains_key(&publisher_ssrc),
            "the SSRC is rewritten per subscriber"
        );
    }
}
