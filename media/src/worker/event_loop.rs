//! One worker's loop: wait for datagrams, commands or the next timer; feed
//! each datagram to its connection; route what the connections decrypted
//! through the tracks' fan-outs into the subscribers' connections; send what
//! they encrypted. The clock is read once per wake-up and passed down.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token, Waker};
use rtc::data_channel::RTCDataChannelId;
use rtc::peer_connection::message::TaggedRTCMessage;
use rtc::sansio::Protocol;

use super::siblings::Siblings;
use super::tracks::Tracks;
use super::{Command, ConnId, Event};
use crate::peer::config::RtcConfig;
use crate::peer::connection::Connection;
use crate::sfu::rate_limit::PublishBudget;
use crate::transport::demux::{Route, Router, Stun};
use crate::transport::udp::{connect_shared, Port};
use crate::MediaError;

const WAKER: Token = Token(0);
const PORT: Token = Token(1);
/// Sockets connected to clients take tokens from here up.
const FIRST_CONNECTED: usize = 2;
/// How long the loop sleeps when no connection has a timer.
const IDLE: Duration = Duration::from_secs(1);

/// A connection on this worker and where its events go.
pub(super) struct Entry {
    pub(super) conn: Connection,
    pub(super) events: tokio::sync::mpsc::UnboundedSender<Event>,
    /// What its client may publish.
    pub(super) budget: Option<Arc<PublishBudget>>,
    /// The data channels the server opened on it (reliable, lossy).
    pub(super) channels: Option<(RTCDataChannelId, RTCDataChannelId)>,
    /// Sockets connected to its client's addresses (with several workers).
    pub(super) sockets: Vec<Token>,
    /// Every local ufrag it has had (an ICE restart adds one).
    pub(super) ufrags: Vec<String>,
    /// Queued in `touched` and not drained since.
    pub(super) touched: bool,
}

/// One worker's state; [`EventLoop::run`] owns it on the worker's thread.
pub(super) struct EventLoop {
    pub(super) config: RtcConfig,
    pub(super) poll: Poll,
    pub(super) waker: Arc<Waker>,
    pub(super) port: Port,
    pub(super) advertised: SocketAddr,
    pub(super) inbox: mpsc::Receiver<Command>,
    pub(super) router: Router<ConnId>,
    pub(super) conns: HashMap<ConnId, Entry>,
    pub(super) timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// Connections fed since they were last drained, in order.
    pub(super) touched: Vec<ConnId>,
    pub(super) tracks: Tracks,
    /// Reused per drain: what a connection decrypted.
    pub(super) reads: Vec<TaggedRTCMessage>,
    pub(super) siblings: Siblings,
    /// Sockets connected to one client address each, by poll token.
    pub(super) connected: HashMap<Token, (ConnId, Port)>,
    next_token: usize,
    /// Addresses a connection's agent was checked from in this wake-up.
    learned: Vec<(SocketAddr, ConnId)>,
    /// Set when the node shuts its workers down.
    stop: Arc<AtomicBool>,
}

impl EventLoop {
    pub(super) fn new(
        config: RtcConfig,
        socket: std::net::UdpSocket,
        advertised: SocketAddr,
        inbox: mpsc::Receiver<Command>,
        siblings: Siblings,
        stop: Arc<AtomicBool>,
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
            siblings,
            connected: HashMap::new(),
            next_token: FIRST_CONNECTED,
            learned: Vec::new(),
            stop,
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
                    WAKER => {
                        if self.stop.load(Ordering::Relaxed) || !self.commands(now) {
                            return;
                        }
                        self.handoffs(now);
                    }
                    token => self.read_socket(now, token),
                }
            }
            self.connect_learned();
            self.expire(now);
            self.drain(now);
        }
    }

    /// Reads every datagram waiting on the socket of `token` and feeds it
    /// to its connection.
    fn read_socket(&mut self, now: Instant, token: Token) {
        let Self {
            port,
            connected,
            router,
            conns,
            touched,
            siblings,
            learned,
            ..
        } = self;
        let port = if token == PORT {
            port
        } else {
            match connected.get_mut(&token) {
                Some((_, p)) => p,
                None => return,
            }
        };
        let mut ctx = Delivery {
            router,
            conns,
            touched,
            siblings,
            learned,
        };
        loop {
            match port.recv_batch(|from, datagram| ctx.deliver(now, from, datagram)) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "media socket read failed");
                    return;
                }
            }
        }
    }

    /// Feeds the datagrams other workers handed over.
    fn handoffs(&mut self, now: Instant) {
        let Self {
            router,
            conns,
            touched,
            siblings,
            learned,
            ..
        } = self;
        let handoffs: Vec<_> = siblings.inbox.try_iter().collect();
        let mut ctx = Delivery {
            router,
            conns,
            touched,
            siblings,
            learned,
        };
        for h in handoffs {
            ctx.deliver(now, h.from, &h.datagram);
        }
    }

    /// Opens a socket connected to each client address learned, so the
    /// kernel brings that client's datagrams to this worker.
    fn connect_learned(&mut self) {
        if self.siblings.alone() {
            self.learned.clear();
            return;
        }
        let local = self.port.local_addr();
        for (remote, conn) in std::mem::take(&mut self.learned) {
            let Some(entry) = self.conns.get_mut(&conn) else {
                continue;
            };
            let known = entry.sockets.iter().any(|t| {
                self.connected
                    .get(t)
                    .is_some_and(|(_, p)| p.peer() == Some(remote))
            });
            if known {
                continue;
            }
            let port = connect_shared(local, remote).and_then(Port::new);
            let mut port = match port {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(%remote, error = %e, "cannot connect a media socket");
                    continue;
                }
            };
            let token = Token(self.next_token);
            self.next_token += 1;
            if let Err(e) =
                self.poll
                    .registry()
                    .register(port.socket_mut(), token, Interest::READABLE)
            {
                tracing::warn!(error = %e, "cannot poll a media socket");
                continue;
            }
            entry.sockets.push(token);
            self.connected.insert(token, (conn, port));
        }
    }

    /// Closes the sockets connected to `entry`'s client.
    pub(super) fn disconnect(&mut self, entry: &Entry) {
        for token in &entry.sockets {
            if let Some((_, mut port)) = self.connected.remove(token) {
                let _ = self.poll.registry().deregister(port.socket_mut());
            }
        }
    }

    pub(super) fn touch(&mut self, conn: ConnId) {
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

    /// Sends what `id` has to send and re-arms its timer.
    pub(super) fn flush(&mut self, id: ConnId) {
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
}

/// What delivering a datagram touches, borrowed from the [`EventLoop`]
/// while one of its sockets is being read.
struct Delivery<'a> {
    router: &'a mut Router<ConnId>,
    conns: &'a mut HashMap<ConnId, Entry>,
    touched: &'a mut Vec<ConnId>,
    siblings: &'a Siblings,
    learned: &'a mut Vec<(SocketAddr, ConnId)>,
}

impl Delivery<'_> {
    /// Feeds one datagram `from` a client to its connection, or hands it to
    /// the worker that owns it.
    fn deliver(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let (id, check) = match self.router.route(from, datagram) {
            Route::Known(id) => (id, false),
            Route::Check(id) => (id, true),
            Route::Unknown => {
                let owner = Stun::parse(datagram)
                    .and_then(|s| s.local_ufrag())
                    .and_then(|u| self.siblings.directory.owner(u));
                if let Some(owner) = owner.filter(|o| *o != self.siblings.index) {
                    self.siblings.hand_to(owner, from, datagram);
                }
                return;
            }
        };
        let Some(entry) = self.conns.get_mut(&id) else {
            return;
        };
        entry.conn.feed(now, from, datagram);
        if check {
            // An address belongs to the last connection checked from it.
            self.router.learn(from, id);
            self.learned.push((from, id));
        }
        if !entry.touched {
            entry.touched = true;
            self.touched.push(id);
        }
    }
}

pub(super) fn gone() -> MediaError {
    MediaError::Protocol("the peer connection is closed".into())
}
