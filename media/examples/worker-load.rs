//! The media worker under a forwarding load, for its CPU per delivered
//! packet: one publisher's VP8 (1100-byte packets) to N subscribers, all
//! peers of the same stack on loopback sockets in this process (on their own
//! thread), the worker on its own. Prints the worker thread's CPU time per
//! packet it delivered, read from `/proc/self/task/*/stat`.
//!
//!     cargo run --profile sfu-bench -p switchboard-media --example worker-load -- 50 10
//!
//! A third argument sends the same packets in bursts of that many back to
//! back (a frame of several packets, as keyframes and higher bitrates are).

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::RTCPeerConnection;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use switchboard_core::ParticipantSid;
use switchboard_media::peer::config::{codec_for, stack, Direction, RtcConfig};
use switchboard_media::worker::{Command, ConnId, Event, Output, Workers, EVENTS_CAPACITY};
use tokio::sync::{mpsc, oneshot};

const PACKETS_PER_S: u32 = 130;
const PAYLOAD: usize = 1100;

struct Peer {
    pc: RTCPeerConnection,
    socket: UdpSocket,
    local: SocketAddr,
    connected: bool,
    received: u64,
}

impl Peer {
    fn new() -> Self {
        let config = RtcConfig {
            relay_sender_reports: false,
            ..Default::default()
        };
        let mut pc = stack(&config, Direction::Both)
            .and_then(|s| s.build(Instant::now()))
            .expect("peer");
        let socket = UdpSocket::bind("127.0.0.1:0").expect("socket");
        socket.set_nonblocking(true).expect("nonblocking");
        let local = socket.local_addr().expect("addr");
        let candidate = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: local.ip().to_string(),
                port: local.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()
        .expect("candidate");
        let init = RTCIceCandidate::from(&candidate).to_json().expect("json");
        pc.add_local_candidate(init).expect("local candidate");
        Self {
            pc,
            socket,
            local,
            connected: false,
            received: 0,
        }
    }

    fn step(&mut self, now: Instant, buf: &mut [u8]) {
        while let Ok((n, from)) = self.socket.recv_from(buf) {
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
            if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) = event {
                self.connected = s == RTCPeerConnectionState::Connected;
            }
        }
        while let Some(read) = self.pc.poll_read() {
            if let RTCMessage::RtpPacket(..) = read.message {
                self.received += 1;
            }
        }
        while let Some(out) = self.pc.poll_write() {
            let _ = self.socket.send_to(&out.message, out.transport.peer_addr);
        }
    }
}

fn ask<T>(workers: &Workers, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> T {
    let (tx, rx) = oneshot::channel();
    workers.for_key(0).send(make(tx));
    rx.blocking_recv().expect("the worker replied")
}

/// The CPU time of this process's thread named `name`, from /proc.
fn thread_cpu(name: &str) -> Duration {
    let ticks = 100.0; // USER_HZ on Linux
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    for task in tasks.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: state is 3rd, utime 14th, stime 15th.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: f64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0.0);
        let stime: f64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0.0);
        return Duration::from_secs_f64((utime + stime) / ticks);
    }
    Duration::ZERO
}

fn main() {
    let mut args = std::env::args().skip(1);
    let subscribers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let burst: u32 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1)
        .clamp(1, 30);

    let workers = Workers::start(
        &RtcConfig::default(),
        "127.0.0.1:0".parse().expect("addr"),
        None,
        1,
    )
    .expect("workers");
    let (events_tx, mut events) = mpsc::channel(EVENTS_CAPACITY);
    let mut buf = vec![0u8; 2048];

    let mut publisher = Peer::new();
    let pub_conn = ConnId::new();
    workers.for_key(0).send(Command::Open {
        conn: pub_conn,
        events: events_tx.clone(),
        budget: None,
        direction: Direction::Receive,
        data_channels: false,
    });
    let ssrc = 0x5EED_0001;
    let vp8 = codec_for("video/VP8").expect("vp8");
    let sender = publisher
        .pc
        .add_track(MediaStreamTrack::new(
            "s".into(),
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
        ))
        .expect("track");
    let offer = publisher.pc.create_offer(None).expect("offer");
    publisher
        .pc
        .set_local_description(Instant::now(), offer)
        .expect("local");
    let offer = publisher.pc.local_description().expect("offer");
    let answer = ask(&workers, |reply| Command::Answer {
        conn: pub_conn,
        offer: Some(offer),
        reply,
    })
    .expect("answer");
    publisher
        .pc
        .set_remote_description(Instant::now(), answer)
        .expect("remote");

    let mut sequence = 0u16;
    let payload_key = {
        let mut p = vec![0u8; PAYLOAD];
        p[..3].copy_from_slice(&[0x10, 0x00, 0x9d]);
        Bytes::from(p)
    };
    let payload_delta = {
        let mut p = vec![0u8; PAYLOAD];
        p[..2].copy_from_slice(&[0x10, 0x01]);
        Bytes::from(p)
    };
    let mut send = |publisher: &mut Peer, keyframe: bool| {
        sequence = sequence.wrapping_add(1);
        let packet = Packet {
            header: Header {
                version: 2,
                marker: true,
                payload_type: 96,
                sequence_number: sequence,
                timestamp: u32::from(sequence) * 3000,
                ssrc,
                ..Default::default()
            },
            payload: if keyframe {
                payload_key.clone()
            } else {
                payload_delta.clone()
            },
        };
        if let Some(mut s) = publisher.pc.rtp_sender(sender) {
            let _ = s.write_rtp(Instant::now(), packet);
        }
    };
    let track = loop {
        publisher.step(Instant::now(), &mut buf);
        if publisher.connected {
            send(&mut publisher, true);
        }
        if let Ok(Event::Track { track, .. }) = events.try_recv() {
            break track;
        }
        std::thread::sleep(Duration::from_millis(5));
    };

    let mut peers = Vec::new();
    for _ in 0..subscribers {
        let mut peer = Peer::new();
        let conn = ConnId::new();
        workers.for_key(0).send(Command::Open {
            conn,
            events: events_tx.clone(),
            budget: None,
            direction: Direction::Send,
            data_channels: false,
        });
        let track = track.clone();
        ask(&workers, |reply| Command::Subscribe {
            track,
            participant: ParticipantSid::new(),
            output: Output::Peer(conn, None),
            reply,
        })
        .expect("subscribe");
        let offer: RTCSessionDescription = ask(&workers, |reply| Command::Offer {
            conn,
            ice_restart: false,
            reply,
        })
        .expect("offer");
        peer.pc
            .set_remote_description(Instant::now(), offer)
            .expect("remote");
        let answer = peer.pc.create_answer(None).expect("answer");
        peer.pc
            .set_local_description(Instant::now(), answer)
            .expect("local");
        let answer = peer.pc.local_description().expect("answer");
        ask(&workers, |reply| Command::Accept {
            conn,
            answer,
            reply,
        })
        .expect("accept");
        peers.push(peer);
    }

    // Connect everyone, then measure the steady state.
    let interval = Duration::from_secs(1) / PACKETS_PER_S;
    let mut next = Instant::now();
    let mut frame = 0u32;
    let mut run = |peers: &mut Vec<Peer>, publisher: &mut Peer, until: Instant| {
        while Instant::now() < until {
            let now = Instant::now();
            publisher.step(now, &mut buf);
            for p in peers.iter_mut() {
                p.step(now, &mut buf);
            }
            if now >= next {
                for _ in 0..burst {
                    frame += 1;
                    send(publisher, frame.is_multiple_of(PACKETS_PER_S));
                }
                next += interval * burst;
            }
            std::thread::sleep(Duration::from_micros(500));
        }
    };
    run(
        &mut peers,
        &mut publisher,
        Instant::now() + Duration::from_secs(3),
    );
    let connected = peers.iter().filter(|p| p.connected).count();
    let received_before: u64 = peers.iter().map(|p| p.received).sum();
    let cpu_before = thread_cpu("media-worker-0");
    let started = Instant::now();
    run(
        &mut peers,
        &mut publisher,
        started + Duration::from_secs(seconds),
    );
    let elapsed = started.elapsed();
    let cpu = thread_cpu("media-worker-0") - cpu_before;
    let delivered = peers.iter().map(|p| p.received).sum::<u64>() - received_before;
    let expected = u64::from(PACKETS_PER_S) * seconds * subscribers as u64;
    println!(
        "{{\"subscribers\": {subscribers}, \"burst\": {burst}, \"connected\": {connected}, \"seconds\": {:.1}, \"delivered\": {delivered}, \"expected\": {expected}, \"worker_cpu_s\": {:.3}, \"worker_us_per_packet\": {:.2}}}",
        elapsed.as_secs_f64(),
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / delivered.max(1) as f64
    );
}
