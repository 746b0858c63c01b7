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
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::sansio::Protocol;
use rtc::shared::TransportProtocol;

use super::siblings::{Handoff, Siblings};
use super::tracks::Tracks;
use super::{Command, ConnId, Event};
use crate::peer::config::RtcConfig;
use crate::peer::connection::Connection;
use crate::sfu::rate_limit::PublishBudget;
use crate::transport::demux::{Route, Router, Stun, StunClass};
use crate::transport::tcp::Stream;
use crate::transport::udp::{connect_shared, Outbox, Port, RecvBuffers};
use crate::MediaError;

const WAKER: Token = Token(0);
const PORT: Token = Token(1);
const LISTENER: Token = Token(2);
/// Connected sockets and ICE-TCP streams take tokens from here up.
const FIRST_CONNECTED: usize = 3;
/// How many client addresses a connection keeps routable: enough for a
/// network change or two mid-restart, few enough that a client checking from
/// many ports cannot fill the node's tables or its file descriptors.
const MAX_ADDRESSES: usize = 4;
/// How many ICE-TCP streams may wait for their first check, per worker, and
/// for how long: strangers can open streams without any credential.
const MAX_UNBOUND_STREAMS: usize = 256;
const UNBOUND_STREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// How many datagrams wait for the end of a wake-up before they are sent
/// anyway (a burst to many subscribers).
const OUTBOX_LIMIT: usize = 1024;
/// How long the loop sleeps when no connection has a timer.
const IDLE: Duration = Duration::from_secs(1);

/// A connection on this worker and where its events go.
pub(super) struct Entry {
    pub(super) conn: Connection,
    pub(super) events: tokio::sync::mpsc::Sender<Event>,
    /// Client addresses the connection has sent to, oldest first.
    pub(super) addresses: std::collections::VecDeque<SocketAddr>,
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
    /// Its DTLS and SRTP are up: media may be written to it.
    pub(super) connected: bool,
    /// The loss its client reports of what the node sends it.
    pub(super) reported_loss: crate::peer::reception::ReportedLoss,
    /// The bytes of media it had sent when its estimate was last asked for, and when.
    pub(super) sent_at_estimate: Option<(Instant, u64)>,
    /// The ceiling its client's loss reports put on its estimate.
    pub(super) ceiling: crate::sfu::estimate::LossCeiling,
    /// The socket of its own a relay link's downstream end sends and
    /// receives on (also in `sockets`); `None` for the shared port.
    pub(super) own_socket: Option<Token>,
}

impl Entry {
    /// A connection on the shared port, nothing sent or described yet.
    pub(super) fn new(
        conn: Connection,
        events: tokio::sync::mpsc::Sender<Event>,
        budget: Option<Arc<PublishBudget>>,
    ) -> Self {
        Self {
            conn,
            events,
            addresses: Default::default(),
            budget,
            channels: None,
            sockets: Vec::new(),
            ufrags: Vec::new(),
            touched: false,
            connected: false,
            reported_loss: Default::default(),
            sent_at_estimate: None,
            ceiling: Default::default(),
            own_socket: None,
        }
    }

    /// Queues connection `id` (this one) to be drained in this wake-up, once.
    pub(super) fn mark(&mut self, id: ConnId, touched: &mut Vec<ConnId>) {
        if !self.touched {
            self.touched = true;
            touched.push(id);
        }
    }

    /// Hands the connection something to send (RTP, RTCP); a refusal (not
    /// connected yet, closed) drops it.
    pub(super) fn write(&mut self, now: Instant, message: RTCMessage) {
        // A subscriber still connecting has no SRTP keys; the stack would
        // refuse (and log) every packet a publisher sends meanwhile.
        if !self.connected {
            return;
        }
        if let Err(e) = self.conn.pc.handle_write(TaggedRTCMessage { now, message }) {
            tracing::trace!(error = %e, "write refused");
        }
    }
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
    /// Addresses connections stopped using in this wake-up.
    forgotten: Vec<(SocketAddr, ConnId)>,
    /// ICE-TCP streams that have not reached a connection yet, since when.
    unbound: HashMap<Token, Instant>,
    /// Datagrams to send at the end of this wake-up, in one `sendmmsg` per batch.
    outbox: Outbox,
    /// What every socket of the worker reads its batches into.
    recv_buffers: RecvBuffers,
    /// Set when the node shuts its workers down.
    stop: Arc<AtomicBool>,
    /// ICE-TCP: the listener on the media port number, if enabled.
    listener: Option<mio::net::TcpListener>,
    /// ICE-TCP streams by poll token, and their tokens by client address.
    pub(super) streams: HashMap<Token, Stream>,
    pub(super) stream_for: HashMap<SocketAddr, Token>,
}

impl EventLoop {
    pub(super) fn new(
        config: RtcConfig,
        socket: std::net::UdpSocket,
        advertised: SocketAddr,
        inbox: mpsc::Receiver<Command>,
        siblings: Siblings,
        stop: Arc<AtomicBool>,
        listener: Option<std::net::TcpListener>,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut port = Port::new(socket)?;
        poll.registry()
            .register(port.socket_mut(), PORT, Interest::READABLE)?;
        let listener = match listener {
            Some(l) => {
                let mut l = mio::net::TcpListener::from_std(l);
                poll.registry()
                    .register(&mut l, LISTENER, Interest::READABLE)?;
                Some(l)
            }
            None => None,
        };
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
            forgotten: Vec::new(),
            unbound: HashMap::new(),
            outbox: Outbox::default(),
            recv_buffers: RecvBuffers::default(),
            stop,
            listener,
            streams: HashMap::new(),
            stream_for: HashMap::new(),
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
                    LISTENER => self.accept(now),
                    token if self.streams.contains_key(&token) => {
                        self.read_stream(now, token, event.is_writable())
                    }
                    token => self.read_socket(now, token),
                }
            }
            self.close_unbound(now);
            self.expire(now);
            self.drain(now);
            // Before the answers that taught them go out: a client sends its
            // next datagrams (a DTLS hello) as soon as it is answered, and
            // they must find the connected socket, not another worker's.
            self.connect_learned();
            self.port.send_all(&mut self.outbox);
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
            recv_buffers,
            ..
        } = self;
        let (port, own) = if token == PORT {
            (port, None)
        } else {
            match connected.get_mut(&token) {
                Some((conn, p)) => {
                    let own = conns
                        .get(conn)
                        .filter(|e| e.own_socket == Some(token))
                        .map(|_| *conn);
                    (p, own)
                }
                None => return,
            }
        };
        let mut ctx = Delivery {
            router,
            conns,
            touched,
            siblings,
        };
        loop {
            match port.recv_batch(recv_buffers, |from, datagram| match own {
                // A socket of one connection's own: everything on it is
                // that connection's, whatever address it came from.
                Some(id) => {
                    ctx.feed(now, id, from, datagram, false);
                }
                None => {
                    ctx.deliver(now, from, datagram, false);
                }
            }) {
                Ok(0) => return,
                Ok(_) => {}
                // A connected socket reports the ICMP errors of earlier
                // sends; the datagrams behind them still wait to be read.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
                Err(e) => {
                    tracing::warn!(error = %e, "media socket read failed");
                    return;
                }
            }
        }
    }

    /// Feeds the datagrams and streams other workers handed over.
    fn handoffs(&mut self, now: Instant) {
        let handoffs: Vec<_> = self.siblings.inbox.try_iter().collect();
        for handoff in handoffs {
            match handoff {
                Handoff::Datagram { from, datagram } => {
                    self.delivery().deliver(now, from, &datagram, false);
                }
                Handoff::Stream {
                    stream,
                    remote,
                    pending,
                } => {
                    let stream =
                        Stream::new(mio::net::TcpStream::from_std(stream), remote, &pending);
                    self.adopt_stream(now, stream);
                }
            }
        }
    }

    fn delivery(&mut self) -> Delivery<'_> {
        Delivery {
            router: &mut self.router,
            conns: &mut self.conns,
            touched: &mut self.touched,
            siblings: &self.siblings,
        }
    }

    /// Closes ICE-TCP streams that sent no check of a connection in time.
    fn close_unbound(&mut self, now: Instant) {
        let stale: Vec<Token> = self
            .unbound
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) > UNBOUND_STREAM_TIMEOUT)
            .map(|(t, _)| *t)
            .collect();
        for token in stale {
            self.close_stream(token);
        }
    }

    fn close_stream(&mut self, token: Token) {
        self.unbound.remove(&token);
        if let Some(mut stream) = self.streams.remove(&token) {
            self.stream_for.remove(&stream.remote());
            let _ = self.poll.registry().deregister(stream.socket_mut());
        }
    }

    /// Accepts ICE-TCP connections.
    fn accept(&mut self, now: Instant) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((socket, remote)) => {
                    if self.unbound.len() >= MAX_UNBOUND_STREAMS {
                        // The oldest stranger goes: a client sends its first
                        // check at once, so it gets in however many idle
                        // streams someone keeps opening.
                        let oldest = self
                            .unbound
                            .iter()
                            .min_by_key(|(_, at)| **at)
                            .map(|(t, _)| *t);
                        if let Some(token) = oldest {
                            self.close_stream(token);
                        }
                    }
                    let _ = socket.set_nodelay(true);
                    self.adopt_stream(now, Stream::new(socket, remote, &[]));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!(error = %e, "ICE-TCP accept failed");
                    return;
                }
            }
        }
    }

    /// Polls a stream this worker now serves and reads what it holds.
    fn adopt_stream(&mut self, now: Instant, mut stream: Stream) {
        let token = self.next_token();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(stream.socket_mut(), token, interest)
        {
            tracing::debug!(error = %e, "cannot poll an ICE-TCP stream");
            return;
        }
        self.stream_for.insert(stream.remote(), token);
        self.streams.insert(token, stream);
        self.unbound.insert(token, now);
        self.read_stream(now, token, true);
    }

    /// Reads an ICE-TCP stream's datagrams (and writes what it holds unsent).
    fn read_stream(&mut self, now: Instant, token: Token, writable: bool) {
        let Some(mut stream) = self.streams.remove(&token) else {
            return;
        };
        if writable {
            let _ = stream.flush();
        }
        let remote = stream.remote();
        let mut hand_to = None;
        let open = {
            let mut delivery = self.delivery();
            stream.read(
                |datagram| match delivery.deliver(now, remote, datagram, true) {
                    Delivered::Fed | Delivered::Dropped => true,
                    Delivered::Elsewhere(owner) => {
                        // Left unread: it goes over with the stream.
                        hand_to = Some(owner);
                        false
                    }
                },
            )
        };
        if let Some(owner) = hand_to {
            self.unbound.remove(&token);
            self.stream_for.remove(&remote);
            let _ = self.poll.registry().deregister(stream.socket_mut());
            let (socket, pending) = stream.into_parts();
            let std_stream = std::net::TcpStream::from(std::os::fd::OwnedFd::from(socket));
            self.siblings.send(
                owner,
                Handoff::Stream {
                    stream: std_stream,
                    remote,
                    pending,
                },
            );
            return;
        }
        match open {
            Ok(true) => {
                self.streams.insert(token, stream);
            }
            Ok(false) | Err(_) => {
                self.unbound.remove(&token);
                self.stream_for.remove(&remote);
                let _ = self.poll.registry().deregister(stream.socket_mut());
            }
        }
    }

    /// Opens a socket connected to each client address learned, so the
    /// kernel brings that client's datagrams to this worker.
    fn connect_learned(&mut self) {
        self.disconnect_forgotten();
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

    /// Closes the streams and connected sockets of client addresses their
    /// connections no longer use.
    fn disconnect_forgotten(&mut self) {
        for (remote, conn) in std::mem::take(&mut self.forgotten) {
            if let Some(token) = self.stream_for.get(&remote).copied() {
                self.close_stream(token);
            }
            let Some(entry) = self.conns.get_mut(&conn) else {
                continue;
            };
            let connected = &mut self.connected;
            let poll = &self.poll;
            entry.sockets.retain(|t| {
                let keep = connected
                    .get(t)
                    .is_none_or(|(_, p)| p.peer() != Some(remote));
                if !keep {
                    if let Some((_, mut port)) = connected.remove(t) {
                        let _ = poll.registry().deregister(port.socket_mut());
                    }
                }
                keep
            });
        }
    }

    /// Closes the sockets connected to `entry`'s client and its ICE-TCP streams.
    pub(super) fn disconnect(&mut self, entry: &Entry) {
        for token in &entry.sockets {
            if let Some((_, mut port)) = self.connected.remove(token) {
                let _ = self.poll.registry().deregister(port.socket_mut());
            }
        }
        for remote in &entry.addresses {
            if let Some(token) = self.stream_for.get(remote).copied() {
                self.close_stream(token);
            }
        }
    }

    /// A poll token no socket or stream has had.
    pub(super) fn next_token(&mut self) -> Token {
        self.next_token += 1;
        Token(self.next_token - 1)
    }

    pub(super) fn touch(&mut self, conn: ConnId) {
        if let Some(entry) = self.conns.get_mut(&conn) {
            entry.mark(conn, &mut self.touched);
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
    pub(super) fn flush(&mut self, now: Instant, id: ConnId) {
        let Some(entry) = self.conns.get_mut(&id) else {
            return;
        };
        while let Some(out) = entry.conn.poll_write(now) {
            let to = out.transport.peer_addr;
            if let Some((_, own)) = entry.own_socket.and_then(|t| self.connected.get(&t)) {
                // Nothing to learn: what arrives on its socket is its own.
                if let Err(e) = own.send(to, &out.message) {
                    tracing::debug!(%to, error = %e, "send failed");
                }
                continue;
            }
            let tcp = out.transport.transport_protocol == TransportProtocol::TCP;
            // The client's answer to a check may come before its address is
            // learned, and to another worker's socket.
            if let Some(check) = Stun::parse(&out.message).filter(|s| s.class == StunClass::Request)
            {
                let transaction = *check.transaction_id;
                self.router.expect_response(transaction, id);
                if !self.siblings.alone() {
                    self.siblings
                        .checks
                        .insert(transaction, self.siblings.index);
                }
            }
            // An address routes to this connection once the agent answers a
            // check from it (a success response: the check carried valid
            // integrity), not when a check merely names it or the agent
            // checks an address a client claimed; and never away from a
            // live connection that holds it.
            if !entry.addresses.contains(&to)
                && is_success_response(&out.message)
                && self.router.owner(to).is_none_or(|owner| owner == id)
            {
                self.router.learn(to, id);
                entry.addresses.push_back(to);
                if entry.addresses.len() > MAX_ADDRESSES {
                    if let Some(oldest) = entry.addresses.pop_front() {
                        self.router.unlearn(oldest, id);
                        self.forgotten.push((oldest, id));
                    }
                }
                if !tcp {
                    self.learned.push((to, id));
                }
            }
            let sent = if tcp {
                let token = self.stream_for.get(&to).copied();
                if let Some(token) = token.filter(|_| entry.addresses.contains(&to)) {
                    // Answered: the stream is a client's, not a stranger's.
                    self.unbound.remove(&token);
                }
                match token.and_then(|t| self.streams.get_mut(&t)) {
                    Some(stream) => stream.send(&out.message),
                    None => Ok(()),
                }
            } else {
                self.outbox.push(to, out.message);
                if self.outbox.len() >= OUTBOX_LIMIT {
                    self.port.send_all(&mut self.outbox);
                }
                Ok(())
            };
            if let Err(e) = sent {
                tracing::debug!(%to, error = %e, "send failed");
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
}

/// Where a delivered datagram went.
enum Delivered {
    /// To a connection of this worker.
    Fed,
    /// Nowhere: it was for no connection.
    Dropped,
    /// It is for a connection of that worker (handed over if it came over UDP).
    Elsewhere(usize),
}

impl Delivery<'_> {
    /// Feeds one datagram `from` a client to its connection, or hands it to
    /// the worker that owns it.
    fn deliver(&mut self, now: Instant, from: SocketAddr, datagram: &[u8], tcp: bool) -> Delivered {
        let id = match self.router.route(from, datagram) {
            Route::Known(id) | Route::Check(id) | Route::Response(id) => id,
            Route::Unknown => {
                let owner = Stun::parse(datagram).and_then(|s| match s.class {
                    StunClass::Request => s
                        .local_ufrag()
                        .and_then(|u| self.siblings.directory.owner(u)),
                    StunClass::Success | StunClass::Error => {
                        self.siblings.checks.owner(s.transaction_id)
                    }
                    StunClass::Indication => None,
                });
                return match owner.filter(|o| *o != self.siblings.index) {
                    Some(owner) if tcp => Delivered::Elsewhere(owner),
                    Some(owner) => {
                        self.siblings.hand_to(owner, from, datagram);
                        Delivered::Elsewhere(owner)
                    }
                    None => Delivered::Dropped,
                };
            }
        };
        self.feed(now, id, from, datagram, tcp)
    }

    /// Feeds one datagram `from` a client to connection `id`.
    fn feed(
        &mut self,
        now: Instant,
        id: ConnId,
        from: SocketAddr,
        datagram: &[u8],
        tcp: bool,
    ) -> Delivered {
        let Some(entry) = self.conns.get_mut(&id) else {
            return Delivered::Dropped;
        };
        // The address is learned when the connection answers it (`flush`).
        entry.conn.feed(now, from, datagram, tcp);
        entry.mark(id, self.touched);
        Delivered::Fed
    }
}

/// Tells the control plane about a connection; an event that does not fit
/// is logged and dropped (the control plane is far behind).
pub(super) fn notify(events: &tokio::sync::mpsc::Sender<Event>, event: Event) {
    if let Err(tokio::sync::mpsc::error::TrySendError::Full(event)) = events.try_send(event) {
        tracing::warn!(
            ?event,
            "the control plane is not reading a connection's events"
        );
    }
}

/// Whether an outgoing datagram is a STUN success response.
fn is_success_response(datagram: &[u8]) -> bool {
    Stun::parse(datagram).is_some_and(|s| s.class == StunClass::Success)
}

pub(super) fn gone() -> MediaError {
    MediaError::Protocol("the peer connection is closed".into())
}
