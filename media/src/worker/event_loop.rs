//! One worker's loop: wait for datagrams, commands or the next timer; feed
//! each datagram to its connection; route what the connections decrypted
//! through the tracks' fan-outs into the subscribers' connections; send what
//! they encrypted. The clock is read once per wake-up and passed down.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::{Events, Interest, Poll, Token, Waker};
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp::header::Header;
use rtc::rtp::packet::Packet;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters};
use rtc::sansio::Protocol;

use super::tracks::{Sink, Tracks};
use super::{Command, ConnId, Event, TrackRef};
use crate::peer::config::{codec_for, RtcConfig};
use crate::peer::connection::Connection;
use crate::sfu::fanout::Subscriber;
use crate::transport::demux::{Route, Router};
use crate::transport::udp::Port;
use crate::MediaError;

const WAKER: Token = Token(0);
const PORT: Token = Token(1);
/// How long the loop sleeps when no connection has a timer.
const IDLE: Duration = Duration::from_secs(1);

/// A connection on this worker and where its events go.
struct Entry {
    conn: Connection,
    events: tokio::sync::mpsc::UnboundedSender<Event>,
    /// Queued in `touched` and not drained since.
    touched: bool,
}

/// One worker's state; [`EventLoop::run`] owns it on the worker's thread.
pub(super) struct EventLoop {
    config: RtcConfig,
    poll: Poll,
    waker: Arc<Waker>,
    port: Port,
    advertised: SocketAddr,
    inbox: mpsc::Receiver<Command>,
    router: Router<ConnId>,
    conns: HashMap<ConnId, Entry>,
    timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// Connections fed since they were last drained, in order.
    touched: Vec<ConnId>,
    tracks: Tracks,
    /// Reused per drain: what a connection decrypted.
    reads: Vec<TaggedRTCMessage>,
}

impl EventLoop {
    pub(super) fn new(
        config: RtcConfig,
        socket: std::net::UdpSocket,
        advertised: SocketAddr,
        inbox: mpsc::Receiver<Command>,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut port = Port::new(socket)?;
        poll.registry()
            .register(port.socket_mut(), PORT, Interest::READABLE)?;
        Ok(Self {
            config,
            poll,
            waker,
            port,
            advertised,
            inbox,
            router: Router::default(),
            conns: HashMap::new(),
            timers: BinaryHeap::new(),
            touched: Vec::new(),
            tracks: Tracks::default(),
            reads: Vec::new(),
        })
    }

    pub(super) fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    /// Runs until the workers' handle is dropped.
    pub(super) fn run(mut self) {
        let mut events = Events::with_capacity(64);
        loop {
            let timeout = self.timers.peek().map_or(IDLE, |Reverse((at, _))| {
                at.saturating_duration_since(Instant::now())
            });
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                tracing::error!(error = %e, "media worker cannot poll; stopping");
                return;
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    PORT => self.read_port(now),
                    WAKER if !self.commands(now) => return,
                    _ => {}
                }
            }
            self.expire(now);
            self.drain(now);
        }
    }

    /// Reads every waiting datagram and feeds it to its connection.
    fn read_port(&mut self, now: Instant) {
        let Self {
            port,
            router,
            conns,
            touched,
            ..
        } = self;
        loop {
            let read = port.recv_batch(|from, datagram| {
                let (id, check) = match router.route(from, datagram) {
                    Route::Known(id) => (id, false),
                    Route::Check(id) => (id, true),
                    Route::Unknown => return,
                };
                let Some(entry) = conns.get_mut(&id) else {
                    return;
                };
                entry.conn.feed(now, from, datagram);
                if check {
                    // The agent answers a check that passes its integrity
                    // check; an address belongs to the last connection that
                    // was checked from it.
                    router.learn(from, id);
                }
                if !entry.touched {
                    entry.touched = true;
                    touched.push(id);
                }
            });
            match read {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "media port read failed");
                    return;
                }
            }
        }
    }

    /// Runs the commands waiting; `false` once the handle is gone.
    fn commands(&mut self, now: Instant) -> bool {
        loop {
            match self.inbox.try_recv() {
                Ok(command) => self.command(now, command),
                Err(mpsc::TryRecvError::Empty) => return true,
                Err(mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    fn command(&mut self, now: Instant, command: Command) {
        match command {
            Command::Open { conn, events } => {
                match Connection::new(&self.config, self.advertised, now) {
                    Ok(c) => {
                        self.conns.insert(
                            conn,
                            Entry {
                                conn: c,
                                events,
                                touched: false,
                            },
                        );
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot build a peer connection"),
                }
            }
            Command::Answer { conn, offer, reply } => {
                let result = self.describe(conn, |c| c.answer(now, offer));
                let _ = reply.send(result);
            }
            Command::Offer { conn, reply } => {
                let result = self.describe(conn, |c| c.offer(now));
                let _ = reply.send(result);
            }
            Command::Accept {
                conn,
                answer,
                reply,
            } => {
                let result = match self.conns.get_mut(&conn) {
                    Some(entry) => entry.conn.accept(now, answer),
                    None => Err(gone()),
                };
                self.touch(conn);
                let _ = reply.send(result);
            }
            Command::Candidate { conn, candidate } => {
                if let Some(entry) = self.conns.get_mut(&conn) {
                    if let Err(e) = entry.conn.add_remote_candidate(candidate) {
                        tracing::debug!(error = %e, "trickled candidate refused");
                    }
                }
                self.touch(conn);
            }
            Command::Subscribe {
                track,
                subscriber,
                participant,
                reply,
            } => {
                let result = self.subscribe(now, &track, subscriber, participant);
                let _ = reply.send(result);
            }
            Command::Close { conn } => self.close(conn),
        }
    }

    /// Sets a description through `f` and keeps the router's ufrags in step
    /// (a new connection, or an ICE restart's new credentials).
    fn describe<T>(
        &mut self,
        conn: ConnId,
        f: impl FnOnce(&mut Connection) -> Result<T, MediaError>,
    ) -> Result<T, MediaError> {
        let entry = self.conns.get_mut(&conn).ok_or_else(gone)?;
        let before = entry.conn.ufrag().map(str::to_owned);
        let result = f(&mut entry.conn);
        let after = entry.conn.ufrag().map(str::to_owned);
        if before != after {
            if let Some(old) = before {
                self.router.remove_ufrag(&old);
            }
            if let Some(new) = after {
                self.router.add_ufrag(&new, conn);
            }
        }
        self.touch(conn);
        result
    }

    fn subscribe(
        &mut self,
        now: Instant,
        track: &TrackRef,
        subscriber: ConnId,
        participant: switchboard_core::ParticipantSid,
    ) -> Result<(), MediaError> {
        let mime = self
            .tracks
            .published_mut(track.conn, &track.track)
            .map(|p| p.mime.clone())
            .ok_or_else(|| MediaError::Protocol("no such track".into()))?;
        let codec = codec_for(&mime)
            .ok_or_else(|| MediaError::Protocol(format!("codec {mime} is not forwarded")))?;
        let entry = self.conns.get_mut(&subscriber).ok_or_else(gone)?;
        let ssrc = rand::random::<u32>();
        let kind = if codec.rtp_codec.clock_rate == 90_000 {
            rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Video
        } else {
            rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Audio
        };
        let local = MediaStreamTrack::new(
            format!("{}-{}", track.conn.0, track.track),
            format!("{}-{}", track.conn.0, track.track),
            track.track.clone(),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: codec.rtp_codec.clone(),
                ..Default::default()
            }],
        );
        entry.conn.pc.add_track(local).map_err(MediaError::webrtc)?;
        let sink = Sink { conn: subscriber };
        let copy = Subscriber::new(
            participant,
            sink,
            ssrc,
            codec.payload_type,
            codec.rtp_codec.clock_rate,
        );
        self.tracks.subscribe(now, track, ssrc, copy);
        Ok(())
    }

    fn close(&mut self, conn: ConnId) {
        let Some(mut entry) = self.conns.remove(&conn) else {
            return;
        };
        let _ = entry.conn.pc.close();
        // The close alert goes out now; nothing is read from the connection again.
        while let Some(out) = entry.conn.pc.poll_write() {
            let _ = self.port.send(out.transport.peer_addr, &out.message);
        }
        self.router.remove(conn);
        for track in self.tracks.close(conn) {
            let _ = entry
                .events
                .send(Event::TrackEnded(TrackRef { conn, track }));
        }
    }

    fn touch(&mut self, conn: ConnId) {
        if let Some(entry) = self.conns.get_mut(&conn) {
            if !entry.touched {
                entry.touched = true;
                self.touched.push(conn);
            }
        }
    }

    /// Runs the timers due at `now`.
    fn expire(&mut self, now: Instant) {
        while let Some(Reverse((at, conn))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(entry) = self.conns.get_mut(&conn) else {
                continue;
            };
            // A stale entry: the connection re-armed for another time since.
            if entry.conn.deadline != Some(at) {
                continue;
            }
            entry.conn.deadline = None;
            entry.conn.tick(now);
            self.touch(conn);
        }
    }

    /// Drains every touched connection: its events, what it decrypted
    /// (routed into other connections, which are touched in turn), what it
    /// has to send; then re-arms its timer.
    fn drain(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.touched.len() {
            let id = self.touched[i];
            i += 1;
            self.drain_one(now, id);
        }
        self.touched.clear();
    }

    fn drain_one(&mut self, now: Instant, id: ConnId) {
        let Self {
            conns,
            tracks,
            reads,
            ..
        } = self;
        let Some(entry) = conns.get_mut(&id) else {
            return;
        };
        entry.touched = false;
        while let Some(event) = entry.conn.pc.poll_event() {
            match event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                    let _ = entry.events.send(Event::State(id, state));
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let Some((kind, mime)) = track_codec(&mut entry.conn, init.receiver_id) else {
                        continue;
                    };
                    let track = TrackRef {
                        conn: id,
                        track: init.track_id,
                    };
                    if tracks.publish(&track, &mime) {
                        let _ = entry.events.send(Event::Track { track, kind, mime });
                    }
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnClose(track)) => {
                    let _ = entry
                        .events
                        .send(Event::TrackEnded(TrackRef { conn: id, track }));
                }
                _ => {}
            }
        }
        reads.clear();
        while let Some(read) = entry.conn.pc.poll_read() {
            reads.push(read);
        }
        let mut reads = std::mem::take(&mut self.reads);
        for read in reads.drain(..) {
            match read.message {
                RTCMessage::RtpPacket(track, packet) => {
                    self.forward(now, id, &track, &packet.header, &packet.payload)
                }
                RTCMessage::RtcpPacket(_, packets) => {
                    for p in &packets {
                        let any = p.as_any();
                        let media_ssrc =
                            if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                                Some(pli.media_ssrc)
                            } else {
                                any.downcast_ref::<FullIntraRequest>()
                                    .and_then(|fir| fir.fir.first().map(|e| e.ssrc))
                            };
                        if let Some(ssrc) = media_ssrc {
                            self.keyframe_requested(id, ssrc);
                        }
                    }
                }
                _ => {}
            }
        }
        self.reads = reads;
        self.flush(id);
    }

    /// Sends what `id` has to send and re-arms its timer.
    fn flush(&mut self, id: ConnId) {
        let Some(entry) = self.conns.get_mut(&id) else {
            return;
        };
        while let Some(out) = entry.conn.pc.poll_write() {
            if let Err(e) = self.port.send(out.transport.peer_addr, &out.message) {
                tracing::debug!(to = %out.transport.peer_addr, error = %e, "send failed");
            }
        }
        if entry.conn.rearm() {
            if let Some(at) = entry.conn.deadline {
                self.timers.push(Reverse((at, id)));
            }
        }
    }

    /// Routes one packet of `conn`'s `track` to its subscribers' connections.
    fn forward(
        &mut self,
        now: Instant,
        conn: ConnId,
        track: &str,
        header: &Header,
        payload: &Bytes,
    ) {
        let conns = &mut self.conns;
        self.tracks
            .route(now, conn, track, (header, payload), |ssrc| {
                layer_rid(conns.get_mut(&conn)?, ssrc)
            });
        let routed = &mut self.tracks.routed;
        for (sink, header) in routed.copies.drain(..) {
            let Some(entry) = self.conns.get_mut(&sink.conn) else {
                continue;
            };
            let packet = Packet {
                header,
                payload: payload.clone(),
            };
            // The stack finds the sender by the packet's SSRC; the track id is
            // not read, and an empty String allocates nothing.
            if let Err(e) = entry.conn.pc.handle_write(TaggedRTCMessage {
                now,
                message: RTCMessage::RtpPacket(String::new(), packet),
            }) {
                tracing::trace!(error = %e, "forwarded packet refused");
            }
            if !entry.touched {
                entry.touched = true;
                self.touched.push(sink.conn);
            }
        }
        let mut keyframe_ssrcs = std::mem::take(&mut routed.keyframe_ssrcs);
        for &media_ssrc in &keyframe_ssrcs {
            self.request_keyframe(now, conn, media_ssrc);
        }
        keyframe_ssrcs.clear();
        self.tracks.routed.keyframe_ssrcs = keyframe_ssrcs;
    }

    /// A subscriber on `conn` asked for a keyframe of its outgoing `ssrc`.
    fn keyframe_requested(&mut self, conn: ConnId, ssrc: u32) {
        let Some((track, participant)) = self.tracks.subscription(conn, ssrc).cloned() else {
            return;
        };
        if let Some(published) = self.tracks.published_mut(track.conn, &track.track) {
            if let Some(sub) = published.fanout.subscriber_mut(participant) {
                sub.request_keyframe();
            }
        }
    }

    /// Sends the publisher on `conn` a PLI for `media_ssrc`.
    fn request_keyframe(&mut self, now: Instant, conn: ConnId, media_ssrc: u32) {
        let Some(entry) = self.conns.get_mut(&conn) else {
            return;
        };
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        if let Err(e) = entry.conn.pc.handle_write(TaggedRTCMessage {
            now,
            message: RTCMessage::RtcpPacket(String::new(), vec![Box::new(pli)]),
        }) {
            tracing::debug!(error = %e, "keyframe request refused");
        }
        if !entry.touched {
            entry.touched = true;
            self.touched.push(conn);
        }
    }
}

/// The kind and codec of the track a receiver of `conn` opened.
fn track_codec(
    conn: &mut Connection,
    receiver: rtc::rtp_transceiver::RTCRtpReceiverId,
) -> Option<(rtc::rtp_transceiver::rtp_sender::RtpCodecKind, String)> {
    let mut receiver = conn.pc.rtp_receiver(receiver)?;
    let kind = receiver.track().kind();
    let from_ssrc = receiver
        .track()
        .ssrcs()
        .find_map(|ssrc| receiver.track().codec(ssrc).map(|c| c.mime_type.clone()));
    let mime = match from_ssrc {
        Some(mime) => mime,
        None => receiver
            .get_parameters()
            .rtp_parameters
            .codecs
            .first()?
            .rtp_codec
            .mime_type
            .clone(),
    };
    Some((kind, mime))
}

/// The RID of the simulcast layer `ssrc` of a connection, if it has one.
fn layer_rid(entry: &mut Entry, ssrc: u32) -> Option<String> {
    let receivers: Vec<_> = entry.conn.pc.get_receivers().collect();
    receivers.into_iter().find_map(|r| {
        let receiver = entry.conn.pc.rtp_receiver(r)?;
        receiver.track().rid(ssrc).map(|rid| rid.to_string())
    })
}

fn gone() -> MediaError {
    MediaError::Protocol("the peer connection is closed".into())
}
