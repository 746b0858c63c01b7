//! One participant's signaling session: the WebSocket, its two peer
//! connections, and the loop that connects them to the room.
//!
//! The loop owns the socket. Everything that happens elsewhere (another
//! participant publishes, the API removes this one, the WebRTC stack finds a
//! candidate) reaches it as a message on a channel, so signaling for one
//! participant is strictly ordered and never races with itself.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::stream::{SplitSink, StreamExt};
use futures::SinkExt;
use switchboard_core::event::{LeaveReason, TrackKind, TrackSource};
use switchboard_core::room::TrackInfo;
use switchboard_core::token::Claims;
use switchboard_core::TrackSid;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;
use webrtc::data_channel::{DataChannel, DataChannelEvent, RTCDataChannelInit};
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceCandidateInit, RTCPeerConnectionIceEvent,
    RTCPeerConnectionState, RTCSessionDescription,
};

use super::resume::{new_token, Resumes, RESUME_WINDOW};
use crate::rtc::manager::RoomManager;
use crate::rtc::participant::{lock, Command, DataChannels, Participant, PendingTrack};
use crate::rtc::room::{AdmitError, Room};
use crate::sdp::extmap_id;
use crate::sfu::audio_level::AUDIO_LEVEL_URI;
use crate::sfu::engine::new_peer_connection;
use crate::sfu::keyframe::Codec;
use crate::sfu::receiver::TrackReceiver;
use switchboard_core::signal::{
    parse_client_message, ClientMessage, Layer, RoomSummary, ServerMessage, Target,
};

/// How long the socket may stay silent (clients `ping` every 10 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// Most tracks announced and not yet offered.
const MAX_PENDING_TRACKS: usize = 16;
/// Most ICE candidates buffered before a remote description arrives.
const MAX_BUFFERED_CANDIDATES: usize = 64;

/// What the WebRTC stack reports to a session.
pub(crate) enum PcEvent {
    Candidate(Target, RTCIceCandidateInit),
    State(Target, RTCPeerConnectionState),
    Gathered,
    Track(Arc<dyn TrackRemote>),
    DataChannel(Arc<dyn DataChannel>),
}

/// Turns peer connection callbacks into [`PcEvent`]s for the session loop.
pub(crate) struct PcHandler {
    pub(crate) target: Target,
    pub(crate) events: mpsc::UnboundedSender<PcEvent>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for PcHandler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        if let Ok(init) = event.candidate.to_json() {
            let _ = self.events.send(PcEvent::Candidate(self.target, init));
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.events.send(PcEvent::State(self.target, state));
    }

    async fn on_ice_gathering_state_change(
        &self,
        state: webrtc::peer_connection::RTCIceGatheringState,
    ) {
        if state == webrtc::peer_connection::RTCIceGatheringState::Complete {
            let _ = self.events.send(PcEvent::Gathered);
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.events.send(PcEvent::Track(track));
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        let _ = self.events.send(PcEvent::DataChannel(channel));
    }
}

/// Runs a session for the holder of `claims` in `room` until it ends.
pub async fn run(
    socket: WebSocket,
    manager: Arc<RoomManager>,
    resumes: Arc<Resumes>,
    room: Arc<Room>,
    claims: Claims,
) {
    let span = tracing::info_span!(
        "participant",
        project_id = %room.project,
        room = %room.name,
        identity = %claims.sub,
        participant = tracing::field::Empty
    );
    async move {
        let (mut ws_tx, ws_rx) = socket.split();
        let claims = match manager.gate_join(&room, claims).await {
            Ok(c) => c,
            Err(reason) => {
                tracing::info!(%reason, "join denied");
                close(&mut ws_tx, 4403, close_reason(&reason)).await;
                return;
            }
        };
        let (pc_tx, pc_rx) = mpsc::unbounded_channel();
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let pcs = async {
            let publisher = new_peer_connection(
                &manager.rtc,
                Arc::new(PcHandler {
                    target: Target::Publisher,
                    events: pc_tx.clone(),
                }),
            )
            .await?;
            let subscriber = new_peer_connection(
                &manager.rtc,
                Arc::new(PcHandler {
                    target: Target::Subscriber,
                    events: pc_tx.clone(),
                }),
            )
            .await?;
            let reliable = subscriber
                .create_data_channel("_reliable", None)
                .await
                .map_err(crate::MediaError::webrtc)?;
            let lossy = subscriber
                .create_data_channel(
                    "_lossy",
                    Some(RTCDataChannelInit {
                        ordered: false,
                        max_retransmits: Some(0),
                        ..Default::default()
                    }),
                )
                .await
                .map_err(crate::MediaError::webrtc)?;
            Ok::<_, crate::MediaError>((publisher, subscriber, reliable, lossy))
        };
        let (publisher, subscriber, reliable, lossy) = match pcs.await {
            Ok(v) => v,
            Err(e @ crate::MediaError::PortsExhausted(_)) => {
                tracing::warn!(error = %e, "no media port for a new participant");
                close(&mut ws_tx, 1013, "media_ports_exhausted").await;
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "could not create peer connections");
                close(&mut ws_tx, 1011, "internal_error").await;
                return;
            }
        };
        for channel in [reliable.clone(), lossy.clone()] {
            tokio::spawn(async move { while channel.poll().await.is_some() {} });
        }
        let participant = Participant::new(
            claims.sub.clone(),
            claims.name.clone().unwrap_or_default(),
            claims.metadata.clone().unwrap_or_default(),
            claims.grants.clone(),
            publisher,
            subscriber,
            cmd_tx,
            manager.rtc.publish_limits,
        );
        *lock(&participant.data_out) = Some(DataChannels { reliable, lossy });
        tracing::Span::current().record("participant", tracing::field::display(participant.sid));

        let others = match room.admit(&participant).await {
            Ok(o) => o,
            Err(e) => {
                let (code, reason) = match e {
                    AdmitError::Full(_) => (4409, "room_full"),
                    AdmitError::Closed => (4410, "room_closed"),
                };
                let _ = participant.publisher.close().await;
                let _ = participant.subscriber.close().await;
                close(&mut ws_tx, code, reason).await;
                return;
            }
        };
        tracing::info!("joined");
        let reconnect_token = new_token();
        let join = ServerMessage::Join {
            room: RoomSummary {
                sid: room.sid,
                name: room.name.to_string(),
                metadata: room.metadata.clone(),
            },
            participant: participant.info(),
            participants: others,
            ice_servers: manager.rtc.ice_servers_for(claims.sub.as_str()),
            reconnect_token: reconnect_token.clone(),
        };
        let mut session = Session {
            ws_tx,
            room: room.clone(),
            p: participant.clone(),
            reconnect_token,
            connected: false,
            sub_negotiating: false,
            sub_pending: false,
            pub_remote_set: false,
            sub_remote_set: false,
            buffered: Vec::new(),
        };
        session.send(&join).await;
        room.subscribe_to_existing(&participant).await;
        participant.command(Command::Renegotiate);

        let reason = session
            .run(&resumes, ws_rx, cmd_rx, pc_rx, manager.rtc.connect_timeout)
            .await;
        tracing::info!(?reason, "left");
        room.remove(&participant, reason).await;
        manager.schedule_empty_close(&room);
    }
    .instrument(span)
    .await;
}

/// `reason` cut to the 123 bytes a WebSocket close frame carries.
fn close_reason(reason: &str) -> &str {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

async fn close(ws: &mut SplitSink<WebSocket, Message>, code: u16, reason: &str) {
    let _ = ws
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_owned().into(),
        })))
        .await;
    let _ = ws.close().await;
}

struct Session {
    ws_tx: SplitSink<WebSocket, Message>,
    room: Arc<Room>,
    p: Arc<Participant>,
    /// What the client presents to resume this session after a dropped socket.
    reconnect_token: String,
    /// Whether media has connected once.
    connected: bool,
    sub_negotiating: bool,
    sub_pending: bool,
    pub_remote_set: bool,
    sub_remote_set: bool,
    buffered: Vec<(Target, RTCIceCandidateInit)>,
}

impl Session {
    async fn send(&mut self, msg: &ServerMessage) {
        match serde_json::to_string(msg) {
            Ok(text) => {
                let _ = self.ws_tx.send(Message::Text(text.into())).await;
            }
            Err(e) => tracing::error!(error = %e, "could not encode a signaling message"),
        }
    }

    async fn error(&mut self, code: &str, message: impl Into<String>) {
        let message = message.into();
        tracing::debug!(code, %message, "refused a client message");
        self.send(&ServerMessage::Error {
            code: code.into(),
            message,
        })
        .await;
    }

    fn pc(&self, target: Target) -> &Arc<dyn PeerConnection> {
        match target {
            Target::Publisher => &self.p.publisher,
            Target::Subscriber => &self.p.subscriber,
        }
    }

    async fn run(
        &mut self,
        resumes: &Resumes,
        mut ws_rx: futures::stream::SplitStream<WebSocket>,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut pc_events: mpsc::UnboundedReceiver<PcEvent>,
        connect_timeout: Duration,
    ) -> LeaveReason {
        let connect_deadline = Instant::now() + connect_timeout;
        let mut last_heard = Instant::now();
        loop {
            let mut lost = false;
            tokio::select! {
                frame = ws_rx.next() => {
                    last_heard = Instant::now();
                    match frame {
                        Some(Ok(Message::Text(text))) => {
                            if let Some(reason) = self.on_client_frame(text.as_str()).await {
                                return reason;
                            }
                        }
                        Some(Ok(Message::Binary(_))) => self.error("invalid_message", "signaling frames are JSON text").await,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        // A client that closes the socket itself (normally, going away,
                        // or without a code) is gone; a socket that just breaks, or closes
                        // with any other code, may come back.
                        Some(Ok(Message::Close(None))) => return LeaveReason::ConnectionLost,
                        Some(Ok(Message::Close(Some(frame)))) if matches!(frame.code, 1000 | 1001) => {
                            return LeaveReason::ConnectionLost;
                        }
                        Some(Ok(Message::Close(_))) | None => lost = true,
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "socket failed");
                            lost = true;
                        }
                    }
                }
                Some(command) = commands.recv() => {
                    if let Some(reason) = self.on_command(command).await {
                        return reason;
                    }
                }
                Some(event) = pc_events.recv() => {
                    if let Some(reason) = self.on_pc_event(event).await {
                        return reason;
                    }
                }
                _ = tokio::time::sleep_until(connect_deadline), if !self.connected => {
                    tracing::info!("media did not connect in time");
                    self.error("ice_timeout", format!("media did not connect within {} s; check that UDP can reach the server", connect_timeout.as_secs())).await;
                    close(&mut self.ws_tx, 4408, "ice_timeout").await;
                    return LeaveReason::ConnectionLost;
                }
                _ = tokio::time::sleep_until(last_heard + IDLE_TIMEOUT) => {
                    close(&mut self.ws_tx, 4408, "idle_timeout").await;
                    lost = true;
                }
            }
            if lost {
                match self
                    .await_resume(resumes, &mut commands, &mut pc_events)
                    .await
                {
                    Ok(rx) => {
                        ws_rx = rx;
                        last_heard = Instant::now();
                    }
                    Err(reason) => return reason,
                }
            }
        }
    }

    /// After the socket dropped: keeps the participant in the room for
    /// [`RESUME_WINDOW`] until its client comes back with the reconnect token.
    /// Commands and peer connection events that arrive meanwhile are handled
    /// after the resume (a close or a failed connection ends the wait at once).
    async fn await_resume(
        &mut self,
        resumes: &Resumes,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        pc_events: &mut mpsc::UnboundedReceiver<PcEvent>,
    ) -> Result<futures::stream::SplitStream<WebSocket>, LeaveReason> {
        // Let go of the old socket now: its client must see it end.
        let _ = self.ws_tx.close().await;
        tracing::info!("socket lost; waiting for the client to resume");
        let mut ticket = resumes.wait(
            &self.reconnect_token,
            self.room.sid,
            self.p.sid,
            self.p.identity.as_str(),
        );
        let deadline = Instant::now() + RESUME_WINDOW;
        let mut held_commands = Vec::new();
        let mut held_events = Vec::new();
        let socket = loop {
            tokio::select! {
                socket = &mut ticket.socket => match socket {
                    Ok(socket) => break socket,
                    Err(_) => return Err(LeaveReason::ConnectionLost),
                },
                Some(command) = commands.recv() => match command {
                    Command::Close(reason) => return Err(reason),
                    other => held_commands.push(other),
                },
                Some(event) = pc_events.recv() => match event {
                    PcEvent::State(_, RTCPeerConnectionState::Failed) => return Err(LeaveReason::ConnectionLost),
                    other => held_events.push(other),
                },
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::info!("not resumed in time");
                    return Err(LeaveReason::ConnectionLost);
                }
            }
        };
        drop(ticket);
        let (tx, rx) = socket.split();
        self.ws_tx = tx;
        tracing::info!("resumed");
        let others = self
            .room
            .participants()
            .into_iter()
            .filter(|o| o.sid != self.p.sid)
            .map(|o| o.info())
            .collect();
        self.send(&ServerMessage::Resumed {
            participant: self.p.info(),
            participants: others,
            reconnect_token: self.reconnect_token.clone(),
        })
        .await;
        for command in held_commands {
            if let Some(reason) = self.on_command(command).await {
                return Err(reason);
            }
        }
        for event in held_events {
            if let Some(reason) = self.on_pc_event(event).await {
                return Err(reason);
            }
        }
        Ok(rx)
    }

    /// Carries out one command of the room; `Some` ends the session.
    async fn on_command(&mut self, command: Command) -> Option<LeaveReason> {
        match command {
            Command::Signal(m) => self.send(&m).await,
            Command::Renegotiate => self.offer_subscriber().await,
            Command::Close(reason) => {
                let text = leave_reason_text(reason);
                self.send(&ServerMessage::Leave {
                    reason: text.into(),
                })
                .await;
                close(&mut self.ws_tx, 4000, text).await;
                return Some(reason);
            }
        }
        None
    }

    /// Handles one peer connection event; `Some` ends the session.
    async fn on_pc_event(&mut self, event: PcEvent) -> Option<LeaveReason> {
        match event {
            PcEvent::Candidate(target, init) => {
                let candidate = super::candidate::from_stack(init);
                self.send(&ServerMessage::Candidate { target, candidate })
                    .await;
            }
            PcEvent::State(target, state) => {
                tracing::debug!(?target, %state, "peer connection state");
                match state {
                    RTCPeerConnectionState::Connected if !self.connected => {
                        self.connected = true;
                        self.p.set_active();
                    }
                    RTCPeerConnectionState::Failed => return Some(LeaveReason::ConnectionLost),
                    _ => {}
                }
            }
            PcEvent::Gathered => {}
            PcEvent::Track(track) => {
                tokio::spawn(
                    publish_track(self.room.clone(), self.p.clone(), track).in_current_span(),
                );
            }
            PcEvent::DataChannel(channel) => {
                tokio::spawn(
                    read_data(self.room.clone(), self.p.clone(), channel).in_current_span(),
                );
            }
        }
        None
    }

    /// Handles one client frame; `Some` ends the session.
    async fn on_client_frame(&mut self, text: &str) -> Option<LeaveReason> {
        let msg = match parse_client_message(text) {
            Ok(m) => m,
            Err(e) => {
                self.error("invalid_message", e).await;
                return None;
            }
        };
        match msg {
            ClientMessage::Offer { sdp } => self.on_publisher_offer(sdp).await,
            ClientMessage::Answer { sdp } => self.on_subscriber_answer(sdp).await,
            ClientMessage::Candidate { target, candidate } => {
                let init = super::candidate::to_stack(candidate);
                if !candidate_is_well_formed(&init.candidate) {
                    self.error("invalid_candidate", "a candidate must be empty (end of candidates) or an RFC 8839 `candidate:` line").await;
                    return None;
                }
                let ready = match target {
                    Target::Publisher => self.pub_remote_set,
                    Target::Subscriber => self.sub_remote_set,
                };
                if ready {
                    if let Err(e) = self.pc(target).add_ice_candidate(init).await {
                        self.error("invalid_candidate", format!("candidate refused: {e}"))
                            .await;
                    }
                } else if self.buffered.len() < MAX_BUFFERED_CANDIDATES {
                    self.buffered.push((target, init));
                }
            }
            ClientMessage::AddTrack {
                cid,
                kind,
                source,
                simulcast,
                ..
            } => {
                if !self.p.permissions().can_publish {
                    self.error(
                        "not_allowed",
                        "this participant may not publish (token lacks can_publish)",
                    )
                    .await;
                } else if cid.is_empty() || cid.len() > 256 {
                    self.error("invalid_message", "cid must be 1 to 256 characters")
                        .await;
                } else {
                    let accepted = {
                        let mut pending = lock(&self.p.pending);
                        let room_left = pending.len() < MAX_PENDING_TRACKS;
                        if room_left {
                            pending.insert(
                                cid,
                                PendingTrack {
                                    kind,
                                    source,
                                    simulcast,
                                },
                            );
                        }
                        room_left
                    };
                    if !accepted {
                        self.error(
                            "too_many_tracks",
                            "too many tracks announced and not offered",
                        )
                        .await;
                    }
                }
            }
            ClientMessage::Mute { track_sid, muted } => {
                if !self.room.set_track_muted(&self.p, track_sid, muted) {
                    self.error(
                        "track_not_found",
                        format!("you publish no track {track_sid}"),
                    )
                    .await;
                }
            }
            ClientMessage::Subscribe {
                track_sids,
                subscribe,
            } => {
                self.room
                    .set_subscribed(&self.p, &track_sids, subscribe)
                    .await;
            }
            ClientMessage::SetLayer { track_sid, layer } => {
                let dt = lock(&self.p.subscriptions)
                    .get(&track_sid)
                    .map(|s| s.downtrack.clone());
                match dt {
                    Some(dt) => dt.set_max_layer(match layer {
                        Layer::Low => 0,
                        Layer::Medium => 1,
                        Layer::High => 2,
                    }),
                    None => {
                        self.error(
                            "track_not_found",
                            format!("you receive no track {track_sid}"),
                        )
                        .await
                    }
                }
            }
            ClientMessage::UpdateMetadata { metadata, name } => {
                let too_big = metadata
                    .as_ref()
                    .is_some_and(|m| m.len() > switchboard_core::room::MAX_METADATA_BYTES);
                let bad_name = name
                    .as_ref()
                    .is_some_and(|n| n.len() > 128 || n.chars().any(char::is_control));
                if too_big || bad_name {
                    self.error("invalid_message", "metadata is limited to 64 KiB and name to 128 bytes without control characters").await;
                } else {
                    self.p.update(name, metadata, None);
                    self.room.announce_update(&self.p);
                }
            }
            ClientMessage::Leave => return Some(LeaveReason::ClientLeft),
            ClientMessage::Ping => self.send(&ServerMessage::Pong).await,
        }
        None
    }

    async fn flush_candidates(&mut self, target: Target) {
        let (ready, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.buffered)
            .into_iter()
            .partition(|(t, _)| *t == target);
        self.buffered = keep;
        for (_, init) in ready {
            if let Err(e) = self.pc(target).add_ice_candidate(init).await {
                tracing::debug!(error = %e, "buffered candidate refused");
            }
        }
    }

    async fn on_publisher_offer(&mut self, sdp: String) {
        let result = async {
            let offer = RTCSessionDescription::offer(sdp)
                .map_err(|e| format!("the offer is not valid SDP: {e}"))?;
            let pc = &self.p.publisher;
            pc.set_remote_description(offer)
                .await
                .map_err(|e| format!("the offer was refused: {e}"))?;
            let answer = pc
                .create_answer(None)
                .await
                .map_err(|e| format!("cannot answer this offer: {e}"))?;
            pc.set_local_description(answer)
                .await
                .map_err(|e| format!("cannot answer this offer: {e}"))?;
            pc.local_description()
                .await
                .map(|d| d.sdp)
                .ok_or_else(|| "no local description".to_owned())
        }
        .await;
        match result {
            Ok(sdp) => {
                self.pub_remote_set = true;
                self.send(&ServerMessage::Answer { sdp }).await;
                self.flush_candidates(Target::Publisher).await;
            }
            Err(e) => self.error("invalid_offer", e).await,
        }
    }

    async fn on_subscriber_answer(&mut self, sdp: String) {
        if !self.sub_negotiating {
            self.error(
                "unexpected_answer",
                "no subscriber offer is waiting for an answer",
            )
            .await;
            return;
        }
        let result = async {
            let answer = RTCSessionDescription::answer(sdp)
                .map_err(|e| format!("the answer is not valid SDP: {e}"))?;
            self.p
                .subscriber
                .set_remote_description(answer)
                .await
                .map_err(|e| format!("the answer was refused: {e}"))
        }
        .await;
        self.sub_negotiating = false;
        match result {
            Ok(()) => {
                self.sub_remote_set = true;
                self.flush_candidates(Target::Subscriber).await;
            }
            Err(e) => self.error("invalid_answer", e).await,
        }
        if std::mem::take(&mut self.sub_pending) {
            self.offer_subscriber().await;
        }
    }

    async fn offer_subscriber(&mut self) {
        if self.sub_negotiating {
            self.sub_pending = true;
            return;
        }
        let pc = self.p.subscriber.clone();
        let result = async {
            let offer = pc.create_offer(None).await?;
            pc.set_local_description(offer).await?;
            Ok::<_, webrtc::error::Error>(pc.local_description().await.map(|d| d.sdp))
        }
        .await;
        match result {
            Ok(Some(sdp)) => {
                self.sub_negotiating = true;
                self.send(&ServerMessage::Offer { sdp }).await;
            }
            Ok(None) => tracing::error!("subscriber offer has no local description"),
            Err(e) => tracing::error!(error = %e, "could not create the subscriber offer"),
        }
    }
}

/// Whether a trickled candidate has the shape of an RFC 8839 candidate line
/// (foundation, component, transport, priority, address, port, `typ`, type), or is
/// the empty end-of-candidates marker. Checked before buffering, so garbage is refused at once.
fn candidate_is_well_formed(candidate: &str) -> bool {
    if candidate.is_empty() {
        return true;
    }
    let body = candidate.strip_prefix("a=").unwrap_or(candidate);
    let Some(rest) = body.strip_prefix("candidate:") else {
        return false;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields.len() >= 8
        && fields[1].parse::<u16>().is_ok()
        && fields[3].parse::<u32>().is_ok()
        && fields[5].parse::<u16>().is_ok()
        && fields[6] == "typ"
}

pub(crate) fn leave_reason_text(reason: LeaveReason) -> &'static str {
    match reason {
        LeaveReason::ClientLeft => "client_left",
        LeaveReason::ConnectionLost => "connection_lost",
        LeaveReason::Removed => "removed",
        LeaveReason::RoomClosed => "room_closed",
        LeaveReason::DuplicateIdentity => "duplicate_identity",
        LeaveReason::NodeLost => "server_shutdown",
    }
}

/// Turns a track the client started sending into a published track, and forwards it until it ends.
pub(crate) async fn publish_track(
    room: Arc<Room>,
    p: Arc<Participant>,
    remote: Arc<dyn TrackRemote>,
) {
    if !p.permissions().can_publish {
        tracing::warn!("dropping media from a participant without can_publish");
        return;
    }
    let cid = remote.track_id().await.to_string();
    let pending = lock(&p.pending).remove(&cid);
    let kind = match remote.kind().await {
        rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Audio => TrackKind::Audio,
        _ => TrackKind::Video,
    };
    let ssrcs = remote.ssrcs().await;
    let Some(&first) = ssrcs.first() else { return };
    let Some(codec) = remote.codec(first).await else {
        tracing::warn!(cid, "track without a negotiated codec");
        return;
    };
    let source = pending.as_ref().map(|t| t.source).unwrap_or(match kind {
        TrackKind::Audio => TrackSource::Microphone,
        TrackKind::Video => TrackSource::Camera,
    });
    let simulcast = pending.as_ref().is_some_and(|t| t.simulcast);
    let info = TrackInfo {
        sid: TrackSid::new(),
        kind,
        source,
        mime_type: Some(codec.mime_type.clone()),
        muted: false,
        simulcast,
    };
    let receiver = TrackReceiver::new(
        info.sid,
        remote.clone(),
        Codec::from_mime(&codec.mime_type),
        codec.clock_rate,
        p.budget.clone(),
    );
    for ssrc in ssrcs {
        let rid = remote.rid(ssrc).await;
        receiver.add_layer(ssrc, rid.as_deref());
    }
    if kind == TrackKind::Audio {
        let offer = p.publisher.remote_description().await;
        if let Some(id) = offer.and_then(|d| extmap_id(&d.sdp, AUDIO_LEVEL_URI)) {
            receiver.set_audio_level_extension(id);
        }
    }
    let track_sid = info.sid;
    tracing::info!(track = %track_sid, mime = %codec.mime_type, simulcast, "track published");
    room.publish(&p, Some(cid), info, receiver.clone()).await;
    receiver.run().await;
    room.unpublish(&p, track_sid).await;
}

/// Forwards messages from one of the client's data channels.
async fn read_data(room: Arc<Room>, p: Arc<Participant>, channel: Arc<dyn DataChannel>) {
    let reliable = channel
        .label()
        .await
        .map(|l| l == "_reliable")
        .unwrap_or(false);
    while let Some(event) = channel.poll().await {
        match event {
            DataChannelEvent::OnMessage(m) => {
                if let Err(e) = room.forward_data(&p, reliable, &m.data).await {
                    p.signal(ServerMessage::Error {
                        code: "data_rejected".into(),
                        message: e,
                    });
                }
            }
            DataChannelEvent::OnClose => break,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::candidate_is_well_formed;

    #[test]
    fn candidate_lines_are_checked_for_shape() {
        assert!(candidate_is_well_formed(""));
        assert!(candidate_is_well_formed(
            "candidate:842163049 1 udp 1677729535 127.0.0.1 52050 typ srflx raddr 0.0.0.0 rport 0"
        ));
        assert!(candidate_is_well_formed(
            "a=candidate:1 1 UDP 2130706431 127.0.0.1 9 typ host"
        ));
        for bad in [
            "garbage",
            "candidate:",
            "candidate:1 1 udp x 127.0.0.1 9 typ host",
            "candidate:1 1 udp 1 127.0.0.1 99999 typ host",
            "candidate:1 1 udp 1 h 9 type host",
        ] {
            assert!(!candidate_is_well_formed(bad), "{bad}");
        }
    }
}
