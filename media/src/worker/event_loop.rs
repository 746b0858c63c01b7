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

use mio::{Events, Interest, Poll, Token, Waker};
use rtc::data_channel::RTCDataChannelId;
use rtc::peer_connection::message::TaggedRTCMessage;
use rtc::sansio::Protocol;

use super::tracks::Tracks;
use super::{Command, ConnId, Event};
use crate::peer::config::RtcConfig;
use crate::peer::connection::Connection;
use crate::sfu::rate_limit::PublishBudget;
use crate::transport::demux::{Route, Router};
use crate::transport::udp::Port;
use crate::MediaError;

const WAKER: Token = Token(0);
const PORT: Token = Token(1);
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

pub(super) fn gone() -> MediaError {
    MediaError::Protocol("the peer connection is closed".into())
}
