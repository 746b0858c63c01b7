//! What a worker does when the control plane asks: open, describe and close
//! connections, subscribe, change subscriptions and tracks, answer queries.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Instant;

use mio::Interest;

use rtc::data_channel::{RTCDataChannelId, RTCDataChannelInit};
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::sansio::Protocol;
use switchboard_core::ParticipantSid;

use super::event_loop::{gone, notify, Entry, EventLoop};
use super::tracks::Sink;
use super::PeerStats;
use super::{Command, ConnId, Event, Load, Msid, Output, Query, TrackRef};
use crate::peer::config::{codec_for, Direction, RtcConfig};
use crate::peer::connection::Connection;
use crate::sfu::fanout::Subscriber;
use crate::transport::udp::Port;
use crate::MediaError;

/// The data channels the server opens on a subscriber connection.
pub(super) const RELIABLE: &str = "_reliable";
pub(super) const LOSSY: &str = "_lossy";

impl EventLoop {
    /// Runs the commands waiting; `false` once the handle is gone.
    pub(super) fn commands(&mut self, now: Instant) -> bool {
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
            Command::Open {
                conn,
                events,
                budget,
                direction,
                data_channels,
            } => match self.open(now, direction, data_channels) {
                Ok((c, channels)) => {
                    let mut entry = Entry::new(c, events, budget);
                    entry.channels = channels;
                    self.conns.insert(conn, entry);
                }
                Err(e) => tracing::warn!(error = %e, "cannot build a peer connection"),
            },
            Command::OpenRelay { conn, events } => {
                if let Err(e) = self.open_relay(now, conn, events) {
                    tracing::warn!(error = %e, "cannot open a relay link");
                }
            }
            Command::Answer { conn, offer, reply } => {
                let result = self.describe(conn, |c| match offer {
                    Some(offer) => c.take_offer(now, offer).and_then(|()| c.answer(now)),
                    None => c.answer(now),
                });
                if result.is_ok() {
                    self.end_stopped_tracks(conn);
                }
                let _ = reply.send(result);
            }
            Command::TakeOffer { conn, offer, reply } => {
                let result = self.describe(conn, |c| c.take_offer(now, offer));
                if result.is_ok() {
                    self.end_stopped_tracks(conn);
                }
                let _ = reply.send(result);
            }
            Command::Offer {
                conn,
                ice_restart,
                reply,
            } => {
                let result = self.describe(conn, |c| {
                    if ice_restart {
                        c.pc.restart_ice();
                    }
                    c.offer(now)
                });
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
                participant,
                output,
                reply,
            } => {
                // Subscribing again replaces the subscription, sender and all.
                if let Some((conn, sender)) = self.tracks.unsubscribe(&track, participant) {
                    self.remove_sender(conn, sender);
                }
                let result = self.subscribe(now, &track, participant, output);
                let _ = reply.send(result);
            }
            Command::Unsubscribe { track, participant } => {
                if let Some((conn, sender)) = self.tracks.unsubscribe(&track, participant) {
                    self.remove_sender(conn, sender);
                }
            }
            Command::Subscription {
                track,
                participant,
                change,
            } => self.tracks.change_subscription(&track, participant, change),
            Command::Track { track, change } => self.tracks.change_track(&track, change),
            Command::Query(query) => self.query(now, query),
            Command::SendData {
                conn,
                reliable,
                text,
            } => self.send_data(now, conn, reliable, text),
            Command::Close { conn } => self.close(conn),
        }
    }

    /// A new connection, with the server's data channels if asked.
    #[allow(clippy::type_complexity)]
    fn open(
        &self,
        now: Instant,
        direction: Direction,
        data_channels: bool,
    ) -> Result<(Connection, Option<(RTCDataChannelId, RTCDataChannelId)>), MediaError> {
        let mut c = Connection::new(&self.config, self.advertised, direction, now)?;
        if !data_channels {
            return Ok((c, None));
        }
        let reliable =
            c.pc.create_data_channel(RELIABLE, None)
                .map_err(MediaError::webrtc)?
                .id();
        let lossy = RTCDataChannelInit {
            ordered: false,
            max_retransmits: Some(0),
            ..Default::default()
        };
        let lossy =
            c.pc.create_data_channel(LOSSY, Some(lossy))
                .map_err(MediaError::webrtc)?
                .id();
        Ok((c, Some((reliable, lossy))))
    }

    /// A relay link's downstream end on a socket of its own, beside the
    /// shared port's address, whose ephemeral port it advertises.
    fn open_relay(
        &mut self,
        now: Instant,
        conn: ConnId,
        events: tokio::sync::mpsc::Sender<Event>,
    ) -> Result<(), MediaError> {
        let bind = SocketAddr::new(self.port.local_addr().ip(), 0);
        let socket = std::net::UdpSocket::bind(bind)?;
        let mut port = Port::new(socket)?;
        let advertised = SocketAddr::new(self.advertised.ip(), port.local_addr().port());
        // Links are UDP between nodes: a passive ICE-TCP candidate on this
        // socket's number would name a port nothing listens on.
        let config = RtcConfig {
            ice_tcp: false,
            ..self.config.clone()
        };
        let c = Connection::new(&config, advertised, Direction::Receive, now)?;
        let token = self.next_token();
        self.poll
            .registry()
            .register(port.socket_mut(), token, Interest::READABLE)?;
        let mut entry = Entry::new(c, events, None);
        entry.own_socket = Some(token);
        entry.sockets.push(token);
        self.connected.insert(token, (conn, port));
        self.conns.insert(conn, entry);
        Ok(())
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
            // The previous credentials stay routable: checks of the old pair
            // may still be in flight during a restart.
            if let Some(new) = after {
                self.router.add_ufrag(&new, conn);
                self.siblings.directory.insert(&new, self.siblings.index);
                entry.ufrags.push(new);
                // The previous credentials stay for a restart in flight; older
                // ones go, or a client restarting in a loop would grow them.
                if entry.ufrags.len() > 2 {
                    let old = entry.ufrags.remove(0);
                    self.router.remove_ufrag(&old);
                    self.siblings.directory.remove(&old);
                }
            }
        }
        self.touch(conn);
        result
    }

    fn subscribe(
        &mut self,
        now: Instant,
        track: &TrackRef,
        participant: ParticipantSid,
        output: Output,
    ) -> Result<(), MediaError> {
        let mime = self
            .tracks
            .published_mut(track.conn, &track.track)
            .map(|p| p.mime.clone())
            .ok_or_else(|| MediaError::Protocol("no such track".into()))?;
        let codec = codec_for(&mime)
            .ok_or_else(|| MediaError::Protocol(format!("codec {mime} is not forwarded")))?;
        let ssrc = rand::random::<u32>();
        let mut sender = None;
        let sink = match output {
            Output::Recorder(writer) => self.tracks.add_recorder(writer),
            Output::Peer(subscriber, msid) => {
                let entry = self.conns.get_mut(&subscriber).ok_or_else(gone)?;
                let kind = if mime.to_ascii_lowercase().starts_with("audio/") {
                    RtpCodecKind::Audio
                } else {
                    RtpCodecKind::Video
                };
                let msid = msid.unwrap_or_else(|| {
                    let id = format!("{}-{}", track.conn.0, track.track);
                    Msid {
                        stream: id.clone(),
                        track: id,
                    }
                });
                let local = MediaStreamTrack::new(
                    msid.stream,
                    msid.track,
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
                sender = Some(entry.conn.pc.add_track(local).map_err(MediaError::webrtc)?);
                Sink::Peer(subscriber)
            }
        };
        let copy = Subscriber::new(
            participant,
            sink,
            ssrc,
            codec.payload_type,
            codec.rtp_codec.clock_rate,
        );
        self.tracks.subscribe(now, track, (ssrc, sender), copy);
        Ok(())
    }

    fn query(&mut self, now: Instant, query: Query) {
        match query {
            Query::AudioLevels(tracks, reply) => {
                let _ = reply.send(self.tracks.audio_levels(now, &tracks));
            }
            Query::BestLayer(track, reply) => {
                let best = self
                    .tracks
                    .published_mut(track.conn, &track.track)
                    .map(|p| p.fanout.best_layer(now));
                let _ = reply.send(best);
            }
            Query::Stats(conn, reply) => {
                let stats = self.conns.get_mut(&conn).map(|e| PeerStats {
                    report: e
                        .conn
                        .pc
                        .get_stats(now, rtc::statistics::StatsSelector::None),
                    reported_loss: e.reported_loss.worst(now),
                });
                let _ = reply.send(stats);
            }
            Query::Estimate(conn, reply) => {
                let estimate = self.conns.get_mut(&conn).map(|e| {
                    let estimate = e.conn.meter.target_bps();
                    let sent = e.conn.meter.payload_bytes();
                    let previous = e.sent_at_estimate.replace((now, sent));
                    let sent_bps = match previous {
                        Some((at, before)) if now > at => {
                            let secs = now.duration_since(at).as_secs_f64();
                            (sent.saturating_sub(before) as f64 * 8.0 / secs) as u64
                        }
                        _ => 0,
                    };
                    let loss = previous.and_then(|(at, _)| e.reported_loss.worst_since(at));
                    let capped = e.ceiling.update(now, estimate, sent_bps, loss);
                    tracing::trace!(estimate, sent_bps, ?loss, capped, "subscriber estimate");
                    capped
                });
                let _ = reply.send(estimate);
            }
            Query::Load(reply) => {
                let (ufrags, addresses) = self.router.len();
                let _ = reply.send(Load {
                    connections: self.conns.len(),
                    ufrags,
                    addresses,
                });
            }
        }
    }

    fn send_data(&mut self, now: Instant, conn: ConnId, reliable: bool, text: String) {
        let Some(entry) = self.conns.get_mut(&conn) else {
            return;
        };
        let Some((reliable_id, lossy_id)) = entry.channels else {
            return;
        };
        let id = if reliable { reliable_id } else { lossy_id };
        if let Some(mut channel) = entry.conn.pc.data_channel(id) {
            if let Err(e) = channel.send_text(now, text) {
                tracing::debug!(error = %e, "data message not sent");
            }
        }
        self.touch(conn);
    }

    fn close(&mut self, conn: ConnId) {
        let Some(mut entry) = self.conns.remove(&conn) else {
            return;
        };
        super::memory::connection_closed();
        let _ = entry.conn.pc.close();
        // The close alert goes out now; nothing is read from the connection again.
        while let Some(out) = entry.conn.pc.poll_write() {
            let port = match entry.own_socket.and_then(|t| self.connected.get(&t)) {
                Some((_, own)) => own,
                None => &self.port,
            };
            let _ = port.send(out.transport.peer_addr, &out.message);
        }
        self.router.remove(conn);
        for ufrag in &entry.ufrags {
            self.siblings.directory.remove(ufrag);
        }
        self.disconnect(&entry);
        let mut senders = Vec::new();
        for track in self.tracks.close(conn, &mut senders) {
            notify(&entry.events, Event::TrackEnded(TrackRef { conn, track }));
        }
        for (subscriber, sender) in senders {
            self.remove_sender(subscriber, sender);
        }
    }

    /// Ends the tracks of `conn` its client stopped sending in its last offer.
    /// The stack says when a track opens but not when it ends: a track has
    /// ended when no transceiver still receiving carries it.
    fn end_stopped_tracks(&mut self, conn: ConnId) {
        let Some(entry) = self.conns.get_mut(&conn) else {
            return;
        };
        let pc = &mut entry.conn.pc;
        let transceivers: Vec<_> = pc.get_transceivers().collect();
        let mut receiving = Vec::new();
        for id in transceivers {
            let receiver = pc
                .rtp_transceiver(id)
                .filter(|t| t.current_direction().has_recv())
                .and_then(|t| t.receiver());
            if let Some(track) = receiver
                .and_then(|r| pc.rtp_receiver(r))
                .map(|r| r.track().track_id().clone())
            {
                receiving.push(track);
            }
        }
        let stopped: Vec<String> = self
            .tracks
            .published_by(conn)
            .filter(|t| !receiving.iter().any(|r| r == *t))
            .map(str::to_owned)
            .collect();
        let mut senders = Vec::new();
        for track in stopped {
            self.tracks.end(conn, &track, &mut senders);
            notify(&entry.events, Event::TrackEnded(TrackRef { conn, track }));
        }
        for (subscriber, sender) in senders {
            self.remove_sender(subscriber, sender);
        }
    }

    /// Removes an outgoing track from a subscriber's connection (the caller
    /// renegotiates).
    pub(super) fn remove_sender(&mut self, conn: ConnId, sender: RTCRtpSenderId) {
        if let Some(entry) = self.conns.get_mut(&conn) {
            if let Err(e) = entry.conn.pc.remove_track(sender) {
                tracing::debug!(error = %e, "outgoing track not removed");
            }
        }
        self.touch(conn);
    }
}
