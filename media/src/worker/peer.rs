//! A peer connection as the control plane holds it: a handle that turns the
//! session's asks (answer this offer, make an offer, take this candidate)
//! into [`Command`]s to the worker that owns the connection, and keeps the
//! descriptions last exchanged for signaling to read back.

use std::sync::Arc;

use parking_lot::Mutex;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use tokio::sync::{mpsc, oneshot};

use super::{Command, ConnId, Event, PeerStats, Query, Worker, EVENTS_CAPACITY};
use crate::peer::config::Direction;
use crate::sfu::rate_limit::PublishBudget;
use crate::MediaError;

/// One peer connection on a worker. Clones refer to the same connection;
/// it closes on [`Peer::close`], not on drop.
#[derive(Clone)]
pub struct Peer {
    worker: Worker,
    conn: ConnId,
    described: Arc<Mutex<Descriptions>>,
}

#[derive(Default)]
struct Descriptions {
    local: Option<String>,
    remote: Option<String>,
}

impl Peer {
    /// Opens a connection on `worker`; its [`Event`]s arrive on the receiver.
    pub fn open(
        worker: &Worker,
        budget: Option<Arc<PublishBudget>>,
        direction: Direction,
        data_channels: bool,
    ) -> Result<(Self, mpsc::Receiver<Event>), MediaError> {
        let (events, rx) = mpsc::channel(EVENTS_CAPACITY);
        let peer = Self::open_with(worker, events, budget, direction, data_channels)?;
        Ok((peer, rx))
    }

    /// Opens a connection whose events go to `events` (shared by a session's
    /// connections: each event names its connection).
    pub fn open_with(
        worker: &Worker,
        events: mpsc::Sender<Event>,
        budget: Option<Arc<PublishBudget>>,
        direction: Direction,
        data_channels: bool,
    ) -> Result<Self, MediaError> {
        let conn = ConnId::new();
        let opened = worker.send(Command::Open {
            conn,
            events,
            budget,
            direction,
            data_channels,
        });
        if !opened {
            return Err(stopped());
        }
        Ok(Self {
            worker: worker.clone(),
            conn,
            described: Default::default(),
        })
    }

    /// Opens the downstream end of a relay link on `worker`, on a UDP socket
    /// of its own ([`Command::OpenRelay`]); its [`Event`]s arrive on the receiver.
    pub fn open_relay(worker: &Worker) -> Result<(Self, mpsc::Receiver<Event>), MediaError> {
        let (events, rx) = mpsc::channel(EVENTS_CAPACITY);
        let conn = ConnId::new();
        if !worker.send(Command::OpenRelay { conn, events }) {
            return Err(stopped());
        }
        let peer = Self {
            worker: worker.clone(),
            conn,
            described: Default::default(),
        };
        Ok((peer, rx))
    }

    /// The connection's id on its worker.
    pub fn id(&self) -> ConnId {
        self.conn
    }

    /// The worker that owns it.
    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    /// Answers the client's offer (a new session, a renegotiation or an ICE
    /// restart); the answer's SDP.
    pub async fn answer(&self, offer: RTCSessionDescription) -> Result<String, MediaError> {
        self.answer_offer(Some(offer)).await
    }

    /// Takes the client's offer without answering yet: outgoing tracks added
    /// next ride the transceivers it offered (WHEP), then [`Peer::answer_taken`].
    pub async fn take_offer(&self, offer: RTCSessionDescription) -> Result<(), MediaError> {
        let sdp = offer.sdp.clone();
        self.ask(|reply| Command::TakeOffer {
            conn: self.conn,
            offer,
            reply,
        })
        .await?;
        self.remember(None, Some(sdp));
        Ok(())
    }

    /// Answers the offer [`Peer::take_offer`] took; the answer's SDP.
    pub async fn answer_taken(&self) -> Result<String, MediaError> {
        self.answer_offer(None).await
    }

    /// Answers `offer`, or with `None` the offer taken before; remembers both.
    async fn answer_offer(
        &self,
        offer: Option<RTCSessionDescription>,
    ) -> Result<String, MediaError> {
        let remote = offer.as_ref().map(|o| o.sdp.clone());
        let answer = self
            .ask(|reply| Command::Answer {
                conn: self.conn,
                offer,
                reply,
            })
            .await?;
        self.remember(Some(answer.sdp.clone()), remote);
        Ok(answer.sdp)
    }

    /// Makes the server's offer (after subscriptions changed), restarting
    /// ICE if asked; the offer's SDP.
    pub async fn offer(&self, ice_restart: bool) -> Result<String, MediaError> {
        let offer = self
            .ask(|reply| Command::Offer {
                conn: self.conn,
                ice_restart,
                reply,
            })
            .await?;
        self.remember(Some(offer.sdp.clone()), None);
        Ok(offer.sdp)
    }

    /// Takes the client's answer to [`Peer::offer`].
    pub async fn accept(&self, answer: RTCSessionDescription) -> Result<(), MediaError> {
        let sdp = answer.sdp.clone();
        self.ask(|reply| Command::Accept {
            conn: self.conn,
            answer,
            reply,
        })
        .await?;
        self.remember(None, Some(sdp));
        Ok(())
    }

    /// Adds a candidate the client trickled.
    pub fn add_candidate(&self, candidate: RTCIceCandidateInit) {
        self.worker.send(Command::Candidate {
            conn: self.conn,
            candidate,
        });
    }

    /// Sends a text message on the server's `_reliable` or `_lossy` channel.
    pub fn send_data(&self, reliable: bool, text: String) {
        self.worker.send(Command::SendData {
            conn: self.conn,
            reliable,
            text,
        });
    }

    /// The connection's statistics now (empty once it has closed).
    pub async fn stats(&self) -> Option<PeerStats> {
        let (reply, rx) = oneshot::channel();
        self.worker
            .send(Command::Query(Query::Stats(self.conn, reply)));
        rx.await.ok().flatten()
    }

    /// The connection's send-side bandwidth estimate in bits/s (0 while it
    /// has none; `None` once it has closed).
    pub async fn estimate(&self) -> Option<u64> {
        let (reply, rx) = oneshot::channel();
        self.worker
            .send(Command::Query(Query::Estimate(self.conn, reply)));
        rx.await.ok().flatten()
    }

    /// The last description the server sent (offer or answer).
    pub fn local_description(&self) -> Option<String> {
        self.described.lock().local.clone()
    }

    /// The last description the client sent (offer or answer).
    pub fn remote_description(&self) -> Option<String> {
        self.described.lock().remote.clone()
    }

    /// Closes the connection: its tracks end, its subscriptions go.
    pub fn close(&self) {
        self.worker.send(Command::Close { conn: self.conn });
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, MediaError>>) -> Command,
    ) -> Result<T, MediaError> {
        let (reply, rx) = oneshot::channel();
        if !self.worker.send(command(reply)) {
            return Err(stopped());
        }
        rx.await.map_err(|_| stopped())?
    }

    fn remember(&self, local: Option<String>, remote: Option<String>) {
        let mut d = self.described.lock();
        if local.is_some() {
            d.local = local;
        }
        if remote.is_some() {
            d.remote = remote;
        }
    }
}

fn stopped() -> MediaError {
    MediaError::Protocol("the media worker has stopped".into())
}
