//! The media workers: plain threads, one per core by default, each owning
//! whole rooms' peer connections and the fan-out of their tracks, so a packet
//! is received, routed, rewritten and sent on one thread with no lock and no
//! await. Every worker reads the node's one UDP port through its own socket.
//!
//! The control plane (rooms, signaling) never touches a connection: it sends
//! a [`Command`] to the connection's worker and hears back [`Event`]s.

mod commands;
mod downtrack;
mod event_loop;
mod media;
mod memory;
mod peer;
mod receiver;
mod siblings;
mod tracks;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

use bytes::Bytes;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use switchboard_core::{ParticipantSid, TrackSid};
use tokio::sync::oneshot;

use crate::peer::config::{Direction, RtcConfig};
use crate::sfu::rate_limit::PublishBudget;
use crate::transport::tcp::listen_shared;
use crate::transport::udp::bind_shared;
use crate::MediaError;

pub use downtrack::DownTrack;
pub use peer::Peer;
pub use receiver::TrackReceiver;

/// A peer connection's id, unique in the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl ConnId {
    /// A fresh id.
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl Default for ConnId {
    fn default() -> Self {
        Self::new()
    }
}

/// A track a connection receives from its client, as the worker names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TrackRef {
    /// The publisher's connection.
    pub conn: ConnId,
    /// The track's id in that connection (the client's `MediaStreamTrack` id).
    pub track: String,
}

/// Where a subscription's packets go.
pub enum Output {
    /// An outgoing track on a subscriber's connection (on the same worker),
    /// named `msid` in its SDP (else after the publisher's connection and track).
    Peer(ConnId, Option<Msid>),
    /// A recording's track writer.
    Recorder(crate::recording::TrackSink),
}

/// How an outgoing track is named in SDP (`a=msid:{stream} {track}`): the
/// SDK reads the publisher's participant sid and the track's sid from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msid {
    /// The media stream's id.
    pub stream: String,
    /// The track's id.
    pub track: String,
}

impl Msid {
    /// How `track`, published by `publisher`, is named wherever it is
    /// forwarded: to a subscriber, or over a relay link to another node.
    pub fn of(publisher: ParticipantSid, track: TrackSid) -> Self {
        Self {
            stream: publisher.to_string(),
            track: track.to_string(),
        }
    }
}

/// A change to one subscriber's copy of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionChange {
    /// Forward at most this layer (the subscriber asked for less).
    MaxLayer(u8),
    /// This track's share of the subscriber's bandwidth estimate.
    BandwidthShare(u64),
    /// Pause, or resume at the next keyframe.
    Paused(bool),
    /// Send under the payload type the subscriber's connection negotiated.
    PayloadType(u8),
    /// Ask the publisher for a keyframe on the subscriber's behalf.
    Keyframe,
}

/// A change to a published track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackChange {
    /// Forward nothing while muted.
    Muted(bool),
    /// Read audio levels from the header extension negotiated as this id.
    AudioLevelExtension(u8),
}

/// A question about what a worker forwards, answered on its channel.
pub enum Query {
    /// The published tracks' audio levels now (0 to 1), in the order asked.
    AudioLevels(Vec<TrackRef>, oneshot::Sender<Vec<f32>>),
    /// The highest layer of a track arriving now.
    BestLayer(TrackRef, oneshot::Sender<Option<u8>>),
    /// A connection's statistics.
    Stats(ConnId, oneshot::Sender<Option<PeerStats>>),
    /// A connection's send-side bandwidth estimate (bits/s; 0 while it has none).
    Estimate(ConnId, oneshot::Sender<Option<u64>>),
    /// What the worker holds for its connections.
    Load(oneshot::Sender<Load>),
}

/// A connection's statistics: the stack's, and what the worker keeps beside them.
#[derive(Debug)]
pub struct PeerStats {
    /// The stack's report.
    pub report: rtc::statistics::report::RTCStatsReport,
    /// The worst loss the client reports of what the node sends it, 0 to 1
    /// (the stack does not read reception reports).
    pub reported_loss: f64,
}

/// What a worker holds: its connections and how many credentials and client
/// addresses route to them (each bounded per connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Peer connections open.
    pub connections: usize,
    /// ICE username fragments that route checks to a connection.
    pub ufrags: usize,
    /// Client addresses that route datagrams to a connection.
    pub addresses: usize,
}

/// What a worker is asked to do. Replies come back on the command's channel.
pub enum Command {
    /// Creates connection `conn`; its events go to `events`.
    Open {
        /// The new connection's id.
        conn: ConnId,
        /// Where its [`Event`]s go: a bounded channel, of at least
        /// [`EVENTS_CAPACITY`] (data messages are dropped once it is three
        /// quarters full, so a client cannot grow the node through a slow
        /// control plane).
        events: tokio::sync::mpsc::Sender<Event>,
        /// What its client may publish (packets over it are dropped).
        budget: Option<Arc<PublishBudget>>,
        /// Which way media flows on it.
        direction: Direction,
        /// Open the `_reliable` and `_lossy` data channels from the server's side.
        data_channels: bool,
    },
    /// Creates connection `conn` for the downstream end of a relay link: it
    /// receives another node's tracks, answering that node's offers
    /// ([`Command::Answer`]). Its events go to `events`.
    ///
    /// It sends and receives on a UDP socket of its own rather than the
    /// shared port: every node sends from its one port, so two links from
    /// that node's port to this one would otherwise share one address pair,
    /// and datagrams are routed by address.
    OpenRelay {
        /// The new connection's id.
        conn: ConnId,
        /// Where its [`Event`]s go (as for [`Command::Open`]).
        events: tokio::sync::mpsc::Sender<Event>,
    },
    /// Answers the client's offer on `conn` (also an ICE restart: an offer
    /// with new credentials).
    Answer {
        /// The connection.
        conn: ConnId,
        /// The client's offer; `None` answers the one [`Command::TakeOffer`] took.
        offer: Option<RTCSessionDescription>,
        /// The answer, or why not.
        reply: oneshot::Sender<Result<RTCSessionDescription, MediaError>>,
    },
    /// Sets the client's offer on `conn` without answering it yet, so that
    /// outgoing tracks added next ride the transceivers it offered (WHEP).
    TakeOffer {
        /// The connection.
        conn: ConnId,
        /// The client's offer.
        offer: RTCSessionDescription,
        /// Done, or why not.
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    /// Makes the server's offer on `conn` (after subscribing it to tracks).
    Offer {
        /// The connection.
        conn: ConnId,
        /// Restart ICE: new credentials, new checks.
        ice_restart: bool,
        /// The offer, or why not.
        reply: oneshot::Sender<Result<RTCSessionDescription, MediaError>>,
    },
    /// Takes the client's answer to the server's offer on `conn`.
    Accept {
        /// The connection.
        conn: ConnId,
        /// The client's answer.
        answer: RTCSessionDescription,
        /// Whether it was accepted.
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    /// Adds a candidate the client trickled.
    Candidate {
        /// The connection.
        conn: ConnId,
        /// The candidate.
        candidate: RTCIceCandidateInit,
    },
    /// Forwards `track` to `participant` through `output` (a connection's new
    /// outgoing track: the caller renegotiates with [`Command::Offer`]).
    Subscribe {
        /// The published track.
        track: TrackRef,
        /// The subscribing participant.
        participant: ParticipantSid,
        /// Where the packets go.
        output: Output,
        /// Done, or why not.
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    /// Stops forwarding `track` to `participant`.
    Unsubscribe {
        /// The published track.
        track: TrackRef,
        /// The subscriber.
        participant: ParticipantSid,
    },
    /// Changes `participant`'s copy of `track`.
    Subscription {
        /// The published track.
        track: TrackRef,
        /// The subscriber.
        participant: ParticipantSid,
        /// What changes.
        change: SubscriptionChange,
    },
    /// Changes a published track.
    Track {
        /// The track.
        track: TrackRef,
        /// What changes.
        change: TrackChange,
    },
    /// Answers a question.
    Query(Query),
    /// Sends a text message on one of `conn`'s data channels.
    SendData {
        /// The connection.
        conn: ConnId,
        /// `_reliable` or `_lossy`.
        reliable: bool,
        /// The message.
        text: String,
    },
    /// Closes `conn`: its tracks end and its subscriptions are dropped.
    Close {
        /// The connection.
        conn: ConnId,
    },
}

/// What a worker tells the control plane about a connection.
#[derive(Debug, Clone)]
pub enum Event {
    /// The connection's state changed.
    State(ConnId, RTCPeerConnectionState),
    /// The client started sending a track (once per track, whatever its layers).
    Track {
        /// The track.
        track: TrackRef,
        /// Audio or video.
        kind: RtpCodecKind,
        /// Its codec's MIME type, as negotiated.
        mime: String,
        /// Its codec's clock rate.
        clock_rate: u32,
    },
    /// The client's track ended.
    TrackEnded(TrackRef),
    /// A message arrived on one of the connection's data channels.
    Data {
        /// The connection.
        conn: ConnId,
        /// Whether it came on `_reliable` (else `_lossy`, or a channel of another name).
        reliable: bool,
        /// The message.
        data: Bytes,
    },
}

/// The capacity a connection's event channel should have.
pub const EVENTS_CAPACITY: usize = 1024;

/// One worker's mailbox.
#[derive(Clone)]
pub struct Worker {
    commands: mpsc::Sender<Command>,
    waker: Arc<mio::Waker>,
}

impl Worker {
    /// Sends `command` to the worker; `false` if the worker has stopped.
    pub fn send(&self, command: Command) -> bool {
        let sent = self.commands.send(command).is_ok();
        // A failed wake means the poller is gone; the send above says so too.
        let _ = self.waker.wake();
        sent
    }
}

/// A port's UDP sockets, its TCP listeners (with ICE-TCP) and its address.
type BoundPort = (
    Vec<std::net::UdpSocket>,
    Vec<Option<std::net::TcpListener>>,
    SocketAddr,
);

/// Binds `count` UDP sockets and, with ICE-TCP, as many TCP listeners, all
/// on one port number. With port 0 the kernel picks a free UDP port, and
/// the same number may be taken for TCP (an outgoing connection's port, say):
/// then another UDP port is tried, a few times.
fn bind_port(config: &RtcConfig, bind: SocketAddr, count: usize) -> io::Result<BoundPort> {
    const TRIES: usize = 8;
    let mut tries = 0;
    loop {
        tries += 1;
        match bind_port_once(config, bind, count) {
            Err(e) if bind.port() == 0 && e.kind() == io::ErrorKind::AddrInUse && tries < TRIES => {
            }
            other => return other,
        }
    }
}

fn bind_port_once(config: &RtcConfig, bind: SocketAddr, count: usize) -> io::Result<BoundPort> {
    let first = bind_shared(bind)?;
    let local = first.local_addr()?;
    let mut sockets = vec![first];
    for _ in 1..count {
        sockets.push(bind_shared(local)?);
    }
    let listeners = (0..count)
        .map(|_| config.ice_tcp.then(|| listen_shared(local)).transpose())
        .collect::<io::Result<Vec<_>>>()?;
    Ok((sockets, listeners, local))
}

/// The node's media workers and the port they share.
pub struct Workers {
    workers: Vec<Worker>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    local: SocketAddr,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Starts `count` workers on `bind` (port 0 picks one), advertising
    /// `advertise` (the node's public IP, else the bound one) in candidates.
    pub fn start(
        config: &RtcConfig,
        bind: SocketAddr,
        advertise: Option<IpAddr>,
        count: usize,
    ) -> io::Result<Self> {
        let (sockets, listeners, local) = bind_port(config, bind, count.max(1))?;
        let advertised = SocketAddr::new(advertise.unwrap_or(local.ip()), local.port());
        // Every loop exists before any starts: each needs the others' queues.
        let directory = Arc::new(siblings::Directory::default());
        let checks = Arc::new(siblings::Checks::default());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut loops = Vec::new();
        let mut handoffs = Vec::new();
        for (index, (socket, listener)) in sockets.into_iter().zip(listeners).enumerate() {
            let (commands, inbox) = mpsc::channel();
            let (handoff_tx, handoff_rx) = mpsc::sync_channel(siblings::HANDOFF_CAPACITY);
            let siblings = siblings::Siblings {
                index,
                directory: directory.clone(),
                checks: checks.clone(),
                inbox: handoff_rx,
                all: Vec::new(),
            };
            let event_loop = event_loop::EventLoop::new(
                config.clone(),
                socket,
                advertised,
                inbox,
                siblings,
                stop.clone(),
                listener,
            )?;
            handoffs.push((handoff_tx, event_loop.waker()));
            loops.push((commands, event_loop));
        }
        let mut workers = Vec::new();
        let mut threads = Vec::new();
        for (index, (commands, mut event_loop)) in loops.into_iter().enumerate() {
            event_loop.siblings.all = handoffs.clone();
            workers.push(Worker {
                commands,
                waker: event_loop.waker(),
            });
            threads.push(
                std::thread::Builder::new()
                    .name(format!("media-worker-{index}"))
                    .spawn(move || event_loop.run())?,
            );
        }
        threads.push(memory::trimmer(stop.clone())?);
        Ok(Self {
            workers,
            stop,
            local,
            threads,
        })
    }

    /// The address the shared port is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// How many workers there are.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Always false: there is at least one worker.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The worker that owns everything keyed by `key` (a room's hash).
    pub fn for_key(&self, key: u64) -> &Worker {
        &self.workers[(key % self.workers.len() as u64) as usize]
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // Worker handles may outlive this one: each loop stops on the flag.
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers.drain(..) {
            let _ = worker.waker.wake();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
