//! One participant's signaling session: the WebSocket, its two peer
//! connections, and the loop that connects them to the room.
//!
//! The loop owns the socket. Everything that happens elsewhere (another
//! participant publishes, the API removes this one, the WebRTC stack finds a
//! candidate) reaches it as a message on a channel, so signaling for one
//! participant is strictly ordered and never races with itself.
//!
//! - this module: joining, the loop, the socket and its loss and resumption;
//! - [`client`]: what the client's frames ask for;
//! - [`negotiation`]: offers and answers of the two peer connections.

mod client;
mod negotiation;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::stream::{SplitSink, StreamExt};
use futures::SinkExt;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use switchboard_core::event::LeaveReason;
use switchboard_core::rate::TokenBucket;
use switchboard_core::token::Claims;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use super::resume::{new_token, Resumes, RESUME_WINDOW};
use super::tracks::{data_received, end_track, publish_track, Opened};
use crate::peer::config::Direction;
use crate::room::live::{AdmitError, Room};
use crate::room::mailbox::{mailbox, Command, Inbox, Mail};
use crate::room::manager::RoomManager;
use crate::room::participant::Participant;
use crate::sfu::rate_limit::PublishBudget;
use crate::worker::{Event, Peer, EVENTS_CAPACITY};
use client::{FRAMES_PER_S, FRAME_BURST, METADATA_BURST, METADATA_PER_S};
use negotiation::Negotiation;
use switchboard_core::signal::{RoomSummary, ServerMessage, Target};

/// How long the socket may stay silent (clients `ping` every 10 s).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// How long one write to the socket may wait for the client to read, before
/// the socket counts as lost (the client may resume).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

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
        // Both connections live on the room's worker; their events share one channel.
        let (pc_tx, pc_rx) = mpsc::channel(EVENTS_CAPACITY);
        let (mailbox, inbox) = mailbox();
        let worker = manager.worker_for(&room);
        let budget = Arc::new(PublishBudget::new(manager.rtc.publish_limits));
        let pcs = Peer::open_with(
            &worker,
            pc_tx.clone(),
            Some(budget.clone()),
            Direction::Receive,
            false,
        )
        .and_then(|publisher| {
            let subscriber =
                Peer::open_with(&worker, pc_tx, Some(budget.clone()), Direction::Send, true)?;
            Ok((publisher, subscriber))
        });
        let (publisher, subscriber) = match pcs {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(error = %e, "could not create peer connections");
                close(&mut ws_tx, 1011, "internal_error").await;
                return;
            }
        };
        let participant = Participant::new(
            claims.sub.clone(),
            claims.name.clone().unwrap_or_default(),
            claims.metadata.clone().unwrap_or_default(),
            claims.grants.clone(),
            publisher,
            subscriber,
            mailbox,
            budget,
        );
        tracing::Span::current().record("participant", tracing::field::display(participant.sid));

        let others = match room.admit(&participant).await {
            Ok(o) => o,
            Err(e) => {
                let (code, reason) = match e {
                    AdmitError::Full(_) => (4409, "room_full"),
                    AdmitError::Closed => (4410, "room_closed"),
                    AdmitError::Unavailable => (1013, "unavailable"),
                };
                participant.publisher.close();
                participant.subscriber.close();
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
            negotiation: Negotiation::default(),
            buffered: Vec::new(),
            socket_lost: false,
            loopback_candidates: manager.rtc.bind_ip.is_loopback(),
            frames: TokenBucket::new(FRAMES_PER_S, FRAME_BURST),
            metadata_updates: TokenBucket::new(METADATA_PER_S, METADATA_BURST),
        };
        session.send(&join).await;
        // Everyone's connection quality now, not at its next change.
        let updates = room.qualities(participant.sid);
        if !updates.is_empty() {
            session
                .send(&ServerMessage::ConnectionQuality { updates })
                .await;
        }
        room.subscribe_to_existing(&participant).await;
        participant.command(Command::Renegotiate);

        let reason = session
            .run(&resumes, ws_rx, inbox, pc_rx, manager.rtc.connect_timeout)
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

/// Sends a close frame and closes, giving up after [`SEND_TIMEOUT`] on a client that does not read.
async fn close(ws: &mut SplitSink<WebSocket, Message>, code: u16, reason: &str) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_owned().into(),
    }));
    let _ = tokio::time::timeout(SEND_TIMEOUT, async {
        let _ = ws.send(frame).await;
        let _ = ws.close().await;
    })
    .await;
}
struct Session {
    ws_tx: SplitSink<WebSocket, Message>,
    room: Arc<Room>,
    p: Arc<Participant>,
    /// What the client presents to resume this session after a dropped socket.
    reconnect_token: String,
    /// Whether media has connected once.
    connected: bool,
    /// Where the two connections' offers and answers stand.
    negotiation: Negotiation,
    buffered: Vec<(Target, RTCIceCandidateInit)>,
    /// A write failed or timed out: nothing more is written until the client resumes.
    socket_lost: bool,
    /// Whether client candidates may name loopback addresses (the node serves on loopback).
    loopback_candidates: bool,
    /// Client frames, and `update_metadata` among them.
    frames: TokenBucket,
    metadata_updates: TokenBucket,
}

impl Session {
    /// Writes a message, unless the socket is lost; a write that fails or
    /// waits over [`SEND_TIMEOUT`] loses it.
    async fn send(&mut self, msg: &ServerMessage) {
        if self.socket_lost {
            return;
        }
        let text = match serde_json::to_string(msg) {
            Ok(text) => text,
            Err(e) => {
                tracing::error!(error = %e, "could not encode a signaling message");
                return;
            }
        };
        match tokio::time::timeout(SEND_TIMEOUT, self.ws_tx.send(Message::Text(text.into()))).await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "socket write failed");
                self.socket_lost = true;
            }
            Err(_) => {
                tracing::info!("the client stopped reading its socket");
                self.socket_lost = true;
            }
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

    fn pc(&self, target: Target) -> &Peer {
        match target {
            Target::Publisher => &self.p.publisher,
            Target::Subscriber => &self.p.subscriber,
        }
    }

    async fn run(
        &mut self,
        resumes: &Resumes,
        mut ws_rx: futures::stream::SplitStream<WebSocket>,
        mut inbox: Inbox,
        mut pc_events: mpsc::Receiver<Event>,
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
                        Some(Ok(Message::Text(_) | Message::Binary(_))) if !self.frames.try_take(std::time::Instant::now(), 1.0) => {
                            self.error("rate_limited", format!("at most {FRAMES_PER_S} signaling messages a second")).await;
                        }
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
                Some(mail) = inbox.recv() => match mail {
                    Mail::Command(command) => self.on_command(command).await,
                    Mail::Close(reason) => {
                        self.close_with(reason).await;
                        return reason;
                    }
                    Mail::FellBehind => {
                        tracing::info!("the session fell behind its room; dropping the socket");
                        lost = true;
                    }
                },
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
            if lost || self.socket_lost {
                match self.await_resume(resumes, &mut inbox, &mut pc_events).await {
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
        inbox: &mut Inbox,
        pc_events: &mut mpsc::Receiver<Event>,
    ) -> Result<futures::stream::SplitStream<WebSocket>, LeaveReason> {
        // Let go of the old socket now: its client must see it end.
        let _ = tokio::time::timeout(SEND_TIMEOUT, self.ws_tx.close()).await;
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
                Some(mail) = inbox.recv() => match mail {
                    Mail::Close(reason) => return Err(reason),
                    // The resumed client is sent the whole room; only so much is worth keeping.
                    Mail::Command(_) | Mail::FellBehind if held_commands.len() >= crate::room::mailbox::CAPACITY => {
                        tracing::info!("too much happened while the socket was away");
                        return Err(LeaveReason::ConnectionLost);
                    }
                    Mail::Command(command) => held_commands.push(command),
                    Mail::FellBehind => {}
                },
                Some(event) = pc_events.recv() => match event {
                    Event::State(_, RTCPeerConnectionState::Failed) => return Err(LeaveReason::ConnectionLost),
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
        self.socket_lost = false;
        tracing::info!("resumed");
        let others = self
            .room
            .visible_others(self.p.sid)
            .iter()
            .map(|o| o.info())
            .collect();
        self.send(&ServerMessage::Resumed {
            participant: self.p.info(),
            participants: others,
            reconnect_token: self.reconnect_token.clone(),
        })
        .await;
        for command in held_commands {
            self.on_command(command).await;
        }
        for event in held_events {
            if let Some(reason) = self.on_pc_event(event).await {
                return Err(reason);
            }
        }
        Ok(rx)
    }

    /// Carries out one command of the room.
    async fn on_command(&mut self, command: Command) {
        match command {
            Command::Signal(m) => self.send(&m).await,
            Command::Renegotiate => self.offer_subscriber(false).await,
        }
    }

    /// Tells the client why its session ends, once, and closes the socket.
    async fn close_with(&mut self, reason: LeaveReason) {
        let text = leave_reason_text(reason);
        self.send(&ServerMessage::Leave {
            reason: text.into(),
        })
        .await;
        if !self.socket_lost {
            close(&mut self.ws_tx, 4000, text).await;
        }
    }

    /// Handles one peer connection event; `Some` ends the session.
    async fn on_pc_event(&mut self, event: Event) -> Option<LeaveReason> {
        match event {
            Event::State(conn, state) => {
                let target = if conn == self.p.publisher.id() {
                    Target::Publisher
                } else {
                    Target::Subscriber
                };
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
            Event::Track {
                track,
                kind,
                mime,
                clock_rate,
            } => {
                let opened = Opened {
                    track,
                    kind,
                    mime,
                    clock_rate,
                };
                publish_track(&self.room, &self.p, opened).await;
            }
            Event::TrackEnded(track) => end_track(&self.room, &self.p, &track).await,
            Event::Data { reliable, data, .. } => {
                data_received(&self.room, &self.p, reliable, &data).await;
            }
        }
        None
    }
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
