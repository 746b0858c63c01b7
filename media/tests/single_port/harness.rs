//! The test harness: client peers of the same stack on their own sockets,
//! and a call (a node's workers, a publisher, subscribers) stepped together.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::ice::network_type::NetworkType;
use rtc::ice::tcp_type::TcpType;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol;
use rtc::shared::tcp_framing::{frame_packet, TcpFrameDecoder};
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use switchboard_core::ParticipantSid;
use switchboard_media::peer::config::{codec_for, stack, Direction, RtcConfig};
use switchboard_media::worker::{
    Command, ConnId, Event, Output, TrackRef, Worker, Workers, EVENTS_CAPACITY,
};
use tokio::sync::{mpsc, oneshot};

/// A client peer on its own socket, stepped by the test.
pub struct Client {
    pub pc: RTCPeerConnection,
    pub socket: UdpSocket,
    /// ICE-TCP instead of UDP: the stream to the node and what it read.
    pub tcp: Option<(std::net::TcpStream, TcpFrameDecoder)>,
    pub local: SocketAddr,
    pub connected: bool,
    /// RTP packets received, by SSRC.
    pub received: HashMap<u32, u32>,
    /// Data channel messages received, as text.
    pub messages: Vec<String>,
    /// Keyframe requests (PLI) received.
    pub plis: u32,
}

impl Client {
    pub fn received(&self) -> u32 {
        self.received.values().sum()
    }

    pub fn new() -> Self {
        Self::with_networks(None)
    }

    /// A client limited to `networks` (all when `None`).
    pub fn with_networks(networks: Option<Vec<NetworkType>>) -> Self {
        let config = RtcConfig {
            relay_sender_reports: false,
            ..Default::default()
        };
        let mut stack = stack(&config, Direction::Both).unwrap();
        if let Some(networks) = networks {
            stack.settings = stack.settings.with_network_types(networks);
        }
        let pc = stack.build(Instant::now()).unwrap();
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let local = socket.local_addr().unwrap();
        Self {
            pc,
            socket,
            tcp: None,
            local,
            connected: false,
            received: HashMap::new(),
            messages: Vec::new(),
            plis: 0,
        }
    }

    pub fn add_host_candidate(&mut self) {
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
    pub fn publish_offer(&mut self, ssrc: u32) -> (RTCSessionDescription, RTCRtpSenderId) {
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
    pub fn answer(&mut self, offer: RTCSessionDescription) -> RTCSessionDescription {
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

    /// Moves to a new socket (a new address, as when a laptop leaves Wi-Fi
    /// for a phone's hotspot) and offers an ICE restart from there.
    pub fn move_and_restart(&mut self) -> RTCSessionDescription {
        self.socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        self.socket.set_nonblocking(true).unwrap();
        self.local = self.socket.local_addr().unwrap();
        self.pc.restart_ice();
        self.add_host_candidate();
        let offer = self.pc.create_offer(None).unwrap();
        self.pc
            .set_local_description(Instant::now(), offer)
            .unwrap();
        self.pc.local_description().unwrap()
    }

    /// Answers the server's offer as a client without UDP: an active
    /// ICE-TCP candidate, and a TCP connection to the node's media port.
    pub fn answer_over_tcp(
        &mut self,
        offer: RTCSessionDescription,
        node: SocketAddr,
    ) -> RTCSessionDescription {
        self.pc
            .set_remote_description(Instant::now(), offer)
            .unwrap();
        let candidate = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "tcp".to_owned(),
                address: "127.0.0.1".into(),
                port: 9,
                component: 1,
                ..Default::default()
            },
            tcp_type: TcpType::Active,
        }
        .new_candidate_host()
        .unwrap();
        let init = RTCIceCandidate::from(&candidate).to_json().unwrap();
        self.pc.add_local_candidate(init).unwrap();
        let answer = self.pc.create_answer(None).unwrap();
        self.pc
            .set_local_description(Instant::now(), answer)
            .unwrap();
        let stream = std::net::TcpStream::connect(node).unwrap();
        stream.set_nonblocking(true).unwrap();
        self.local = stream.local_addr().unwrap();
        self.tcp = Some((stream, TcpFrameDecoder::new()));
        self.pc.local_description().unwrap()
    }

    /// Feeds what arrived, runs timers, sends what is due.
    pub fn step(&mut self, now: Instant) {
        let mut buf = [0u8; 1500];
        if let Some((stream, decoder)) = &mut self.tcp {
            use std::io::Read;
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                decoder.extend_from_slice(&buf[..n]);
            }
            let peer_addr = stream.peer_addr().unwrap();
            while let Some(frame) = decoder.next_packet() {
                let _ = self.pc.handle_read(TaggedBytesMut {
                    now,
                    transport: TransportContext {
                        local_addr: self.local,
                        peer_addr,
                        ecn: None,
                        transport_protocol: TransportProtocol::TCP,
                    },
                    message: BytesMut::from(&frame[..]),
                });
            }
        }
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
            match read.message {
                RTCMessage::RtpPacket(_, packet) => {
                    *self.received.entry(packet.header.ssrc).or_default() += 1;
                }
                RTCMessage::RtcpPacket(_, packets) => {
                    self.plis += packets
                        .iter()
                        .filter(|p| p.as_any().is::<PictureLossIndication>())
                        .count() as u32;
                }
                RTCMessage::DataChannelMessage(_, m) => {
                    self.messages
                        .push(String::from_utf8_lossy(&m.data).into_owned());
                }
                _ => {}
            }
        }
        while let Some(out) = self.pc.poll_write() {
            match &mut self.tcp {
                Some((stream, _)) if out.transport.transport_protocol == TransportProtocol::TCP => {
                    use std::io::Write;
                    let _ = stream.write_all(&frame_packet(&out.message));
                }
                _ => {
                    let _ = self.socket.send_to(&out.message, out.transport.peer_addr);
                }
            }
        }
    }
}

pub fn ask<T>(worker: &Worker, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> T {
    let (tx, rx) = oneshot::channel();
    assert!(worker.send(make(tx)));
    rx.blocking_recv().expect("the worker replied")
}

/// Whether every candidate `sdp` names is on `port` (and there is one).
pub fn only_candidates_on(sdp: &str, port: u16) -> bool {
    let ports: Vec<u16> = sdp
        .lines()
        .filter(|l| l.starts_with("a=candidate:"))
        .filter_map(|l| l.split_whitespace().nth(5)?.parse().ok())
        .collect();
    !ports.is_empty() && ports.iter().all(|p| *p == port)
}

/// How many video m-lines of `sdp` send.
pub fn sending_video(sdp: &str) -> usize {
    sdp.split("\nm=")
        .filter(|m| m.starts_with("video"))
        .filter(|m| m.contains("a=sendrecv") || m.contains("a=sendonly"))
        .count()
}

pub const PUBLISHER_SSRC: u32 = 0x0BAD_CAFE;

/// A node's workers, one publisher and its subscribers, stepped together.
pub struct Call {
    pub workers: Workers,
    /// The worker that owns the call's connections.
    pub worker: Worker,
    pub events: mpsc::Receiver<Event>,
    pub events_tx: mpsc::Sender<Event>,
    pub publisher: Client,
    pub pub_conn: ConnId,
    pub sender: RTCRtpSenderId,
    pub sequence: u16,
    pub track: Option<TrackRef>,
    pub subscribers: Vec<(Client, ConnId)>,
}

impl Call {
    /// Starts a node of one worker and a publisher whose track has opened.
    pub fn start() -> Self {
        Self::start_on(1)
    }

    /// Starts a node of `count` workers, the call on the last one, and a
    /// publisher whose track has opened.
    pub fn start_on(count: usize) -> Self {
        Self::start_with(count, RtcConfig::default())
    }

    pub fn start_with(count: usize, config: RtcConfig) -> Self {
        let workers = Workers::start(&config, "127.0.0.1:0".parse().unwrap(), None, count).unwrap();
        let worker = workers.for_key(count as u64 - 1).clone();
        let port = workers.local_addr().port();
        let (events_tx, events) = mpsc::channel(EVENTS_CAPACITY);
        let mut publisher = Client::new();
        let pub_conn = ConnId::new();
        assert!(worker.send(Command::Open {
            conn: pub_conn,
            events: events_tx.clone(),
            budget: None,
            direction: Direction::Receive,
            data_channels: false,
        }));
        let (offer, sender) = publisher.publish_offer(PUBLISHER_SSRC);
        let answer = ask(&worker, |reply| Command::Answer {
            conn: pub_conn,
            offer: Some(offer),
            reply,
        })
        .expect("an answer");
        assert!(only_candidates_on(&answer.sdp, port), "{}", answer.sdp);
        publisher
            .pc
            .set_remote_description(Instant::now(), answer)
            .unwrap();
        let mut call = Self {
            workers,
            worker,
            events,
            events_tx,
            publisher,
            pub_conn,
            sender,
            sequence: 0,
            track: None,
            subscribers: Vec::new(),
        };
        // The track opens once media arrives: send keyframes until it does.
        let deadline = Instant::now() + Duration::from_secs(10);
        while call.track.is_none() {
            assert!(
                Instant::now() < deadline,
                "the published track never opened"
            );
            call.publisher.step(Instant::now());
            if call.publisher.connected {
                call.send(true);
            }
            call.read_events();
            std::thread::sleep(Duration::from_millis(5));
        }
        call
    }

    pub fn read_events(&mut self) -> Vec<Event> {
        let mut seen = Vec::new();
        while let Ok(event) = self.events.try_recv() {
            if let Event::Track { track, mime, .. } = &event {
                assert!(mime.eq_ignore_ascii_case("video/VP8"), "{mime}");
                self.track = Some(track.clone());
            }
            seen.push(event);
        }
        seen
    }

    /// Sends one VP8 packet from the publisher.
    pub fn send(&mut self, keyframe: bool) {
        self.sequence = self.sequence.wrapping_add(1);
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
                sequence_number: self.sequence,
                timestamp: u32::from(self.sequence) * 3000,
                ssrc: PUBLISHER_SSRC,
                ..Default::default()
            },
            payload: Bytes::copy_from_slice(payload),
        };
        // Nothing once the publisher has stopped its track.
        if let Some(mut sender) = self.publisher.pc.rtp_sender(self.sender) {
            let _ = sender.write_rtp(Instant::now(), packet);
        }
    }

    /// Moves the publisher to a new address and restarts ICE from there
    /// (the node answers).
    pub fn restart_publisher(&mut self) {
        let offer = self.publisher.move_and_restart();
        let conn = self.pub_conn;
        let answer = ask(&self.worker, |reply| Command::Answer {
            conn,
            offer: Some(offer),
            reply,
        })
        .expect("the restart is answered");
        self.publisher
            .pc
            .set_remote_description(Instant::now(), answer)
            .unwrap();
    }

    /// Renegotiates subscriber `i`'s connection (the node offers).
    pub fn renegotiate(&mut self, i: usize) -> RTCSessionDescription {
        let conn = self.subscribers[i].1;
        let offer = ask(&self.worker, |reply| Command::Offer {
            conn,
            ice_restart: false,
            reply,
        })
        .expect("an offer");
        let client = &mut self.subscribers[i].0;
        client
            .pc
            .set_remote_description(Instant::now(), offer.clone())
            .unwrap();
        let answer = client.pc.create_answer(None).unwrap();
        client
            .pc
            .set_local_description(Instant::now(), answer)
            .unwrap();
        let answer = client.pc.local_description().unwrap();
        ask(&self.worker, |reply| Command::Accept {
            conn,
            answer,
            reply,
        })
        .expect("accepted");
        offer
    }

    /// Adds a subscriber the node offers the track to.
    pub fn subscribe(&mut self) {
        self.subscribe_with(Client::new(), false);
    }

    /// Adds `client` as a subscriber, over ICE-TCP if `tcp`.
    pub fn subscribe_with(&mut self, client: Client, tcp: bool) {
        self.subscribe_claiming(client, tcp, &[]);
    }

    /// [`Self::subscribe_with`], the client's answer also claiming `extra`
    /// candidate lines (`candidate:...`) as its own.
    pub fn subscribe_claiming(&mut self, mut client: Client, tcp: bool, extra: &[String]) {
        let port = self.workers.local_addr().port();
        let conn = ConnId::new();
        assert!(self.worker.send(Command::Open {
            conn,
            events: self.events_tx.clone(),
            budget: None,
            direction: Direction::Send,
            data_channels: true,
        }));
        let track = self.track.clone().unwrap();
        ask(&self.worker, |reply| Command::Subscribe {
            track,
            participant: ParticipantSid::new(),
            output: Output::Peer(conn, None),
            reply,
        })
        .expect("subscribed");
        let offer = ask(&self.worker, |reply| Command::Offer {
            conn,
            ice_restart: false,
            reply,
        })
        .expect("an offer");
        assert!(only_candidates_on(&offer.sdp, port), "{}", offer.sdp);
        let mut answer = if tcp {
            client.answer_over_tcp(offer, self.workers.local_addr())
        } else {
            client.answer(offer)
        };
        if !extra.is_empty() {
            let lines: String = extra.iter().map(|c| format!("a={c}\r\n")).collect();
            let sdp = answer
                .sdp
                .replacen("a=mid:0\r\n", &format!("a=mid:0\r\n{lines}"), 1);
            answer = RTCSessionDescription::answer(sdp).expect("the answer with more candidates");
        }
        ask(&self.worker, |reply| Command::Accept {
            conn,
            answer,
            reply,
        })
        .expect("answer accepted");
        self.subscribers.push((client, conn));
    }

    /// Steps everyone, the publisher sending a frame a step (a keyframe
    /// every 30), until `done` or `within` has passed.
    pub fn run_until(&mut self, within: Duration, mut done: impl FnMut(&Self) -> bool) -> bool {
        let deadline = Instant::now() + within;
        let mut frame = 0u32;
        while Instant::now() < deadline {
            let now = Instant::now();
            self.publisher.step(now);
            for (s, _) in &mut self.subscribers {
                s.step(now);
            }
            frame += 1;
            self.send(frame.is_multiple_of(30));
            if done(self) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }
}
