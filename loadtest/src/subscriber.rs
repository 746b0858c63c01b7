//! The simulated subscribers' peer connections, on the same sans-I/O WebRTC
//! stack as the node's media workers and driven the same way: a few plain
//! threads, each polling its connections' sockets and timers with no async
//! runtime and no task per track, measuring every packet where it is
//! decrypted.
//!
//! Each connection has a UDP socket of its own: the server tells clients
//! apart by their address. At a few hundred subscribers the async driver this
//! replaces spent more CPU than the server it loaded, so the load tester, not
//! the server, set the capacity `bench/sfu.sh` measured.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::sansio::Protocol;
use switchboard_core::signal::Target;
use switchboard_media::peer::config::{Direction, RtcConfig};
use switchboard_media::peer::connection::Connection;
use switchboard_media::transport::demux::{classify, Kind};
use tokio::sync::{mpsc as async_mpsc, oneshot};

use crate::client::{PcEvent, Received, TrackNames};
use crate::clock::Epoch;
use crate::stats::StreamStats;
use crate::synth::Stamp;
use crate::LoadtestError;

/// The waker's token; connections' tokens are their ids.
const WAKER: Token = Token(usize::MAX);
/// The longest a loop sleeps with nothing due, to notice it should stop.
const IDLE: Duration = Duration::from_millis(100);
/// Larger than any datagram the server sends (its MTU is 1200 bytes).
const DATAGRAM_BYTES: usize = 2048;
/// When a browser first resends its DTLS hello if no answer came (WebRTC's
/// initial retransmission timeout; doubled on each retry). The stack's own
/// is 1 s, which would turn a server's dropped hello into a second of join
/// time no browser would see.
const HELLO_RETRY: Duration = Duration::from_millis(50);
/// How many times the hello is resent on that schedule.
const HELLO_RETRIES: u32 = 4;

/// Where a subscriber connection puts what it measures.
pub struct Measure {
    /// Statistics per received track, by name.
    pub received: Received,
    /// The run's clock, which the publishers stamp packets with.
    pub epoch: Epoch,
    /// For servers whose track ids are not the publishers' (Janus): the
    /// names to file tracks under, by msid track id or SSRC.
    pub names: Option<TrackNames>,
}

/// The loops that drive every subscriber connection of a run; they stop when
/// this is dropped.
pub struct Subscribers {
    config: RtcConfig,
    loops: Vec<LoopHandle>,
    next: AtomicUsize,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

#[derive(Clone)]
struct LoopHandle {
    commands: mpsc::Sender<Command>,
    waker: Arc<Waker>,
}

impl LoopHandle {
    fn send(&self, command: Command) -> bool {
        let sent = self.commands.send(command).is_ok();
        let _ = self.waker.wake();
        sent
    }
}

enum Command {
    Open {
        id: usize,
        socket: UdpSocket,
        advertised: SocketAddr,
        measure: Measure,
        events: async_mpsc::UnboundedSender<PcEvent>,
    },
    Answer {
        id: usize,
        offer: Box<RTCSessionDescription>,
        reply: oneshot::Sender<Result<String, LoadtestError>>,
    },
    Candidate {
        id: usize,
        candidate: RTCIceCandidateInit,
    },
    Close {
        id: usize,
    },
}

impl Subscribers {
    /// Starts `threads` loops (at least one) for connections built from `config`.
    pub fn start(config: &RtcConfig, threads: usize) -> Result<Self, LoadtestError> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut loops = Vec::new();
        let mut handles = Vec::new();
        for index in 0..threads.max(1) {
            let poll = Poll::new().map_err(io_error)?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(io_error)?);
            let (commands, inbox) = mpsc::channel();
            let event_loop = Loop {
                config: config.clone(),
                poll,
                inbox,
                stop: stop.clone(),
                clients: HashMap::new(),
                next_due: None,
            };
            handles.push(
                std::thread::Builder::new()
                    .name(format!("loadtest-subscribers-{index}"))
                    .spawn(move || event_loop.run())
                    .map_err(io_error)?,
            );
            loops.push(LoopHandle { commands, waker });
        }
        Ok(Self {
            config: config.clone(),
            loops,
            next: AtomicUsize::new(0),
            stop,
            threads: handles,
        })
    }

    /// Opens a connection on a socket of its own; its state changes go to
    /// `events` and what it receives is measured into `measure`.
    pub fn open(
        &self,
        measure: Measure,
        events: async_mpsc::UnboundedSender<PcEvent>,
    ) -> Result<SubscriberPc, LoadtestError> {
        let bind_ip = if self.config.bind_ip.is_unspecified() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            self.config.bind_ip
        };
        let socket = std::net::UdpSocket::bind(SocketAddr::new(bind_ip, 0)).map_err(io_error)?;
        socket.set_nonblocking(true).map_err(io_error)?;
        let local = socket.local_addr().map_err(io_error)?;
        let advertised = SocketAddr::new(self.config.node_ip.unwrap_or(local.ip()), local.port());
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let handle = self.loops[n % self.loops.len()].clone();
        // Ids are unique across loops too, which keeps them simple to read in logs.
        let id = n;
        handle.send(Command::Open {
            id,
            socket: UdpSocket::from_std(socket),
            advertised,
            measure,
            events,
        });
        Ok(SubscriberPc { id, handle })
    }
}

impl Drop for Subscribers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for handle in &self.loops {
            let _ = handle.waker.wake();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// One subscriber connection on a loop; clones refer to the same one. It
/// closes on [`SubscriberPc::close`] or when the loops stop.
#[derive(Clone)]
pub struct SubscriberPc {
    id: usize,
    handle: LoopHandle,
}

impl SubscriberPc {
    /// Answers the server's `offer` (the first, or a renegotiation); the answer's SDP.
    pub async fn answer(&self, offer: String) -> Result<String, LoadtestError> {
        let offer = RTCSessionDescription::offer(offer)
            .map_err(|e| LoadtestError::WebRtc(format!("unreadable offer: {e}")))?;
        let (reply, rx) = oneshot::channel();
        if !self.handle.send(Command::Answer {
            id: self.id,
            offer: Box::new(offer),
            reply,
        }) {
            return Err(stopped());
        }
        rx.await.map_err(|_| stopped())?
    }

    /// Adds a candidate the server trickled.
    pub fn add_candidate(&self, candidate: RTCIceCandidateInit) {
        self.handle.send(Command::Candidate {
            id: self.id,
            candidate,
        });
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.handle.send(Command::Close { id: self.id });
    }
}

fn stopped() -> LoadtestError {
    LoadtestError::WebRtc("the subscribers' loop has stopped".into())
}

fn io_error(e: io::Error) -> LoadtestError {
    LoadtestError::WebRtc(format!("subscriber socket: {e}"))
}

/// One subscriber connection as its loop holds it.
struct Client {
    conn: Option<Connection>,
    socket: UdpSocket,
    tracks: Tracks,
    events: async_mpsc::UnboundedSender<PcEvent>,
    deadline: Option<Instant>,
    /// The first DTLS flight, resent as a browser would until the server answers.
    hello: Hello,
}

/// Where the client's DTLS hello stands.
enum Hello {
    /// Not sent yet.
    Unsent,
    /// Sent `retries` times over, and resent at `due` unless answered.
    Sent {
        datagram: Vec<u8>,
        to: SocketAddr,
        due: Instant,
        retries: u32,
    },
    /// Answered (or given up on): the stack's own timers take over.
    Done,
}

/// Where a connection's received tracks are counted.
struct Tracks {
    measure: Measure,
    /// Statistics of each received track, by the track id the stack reports.
    by_id: HashMap<String, Arc<Mutex<StreamStats>>>,
}

impl Tracks {
    /// The statistics a track's packets are counted into, named by the
    /// server's track id or by `measure.names`.
    fn stats_for(&mut self, track: &str, ssrc: u32) -> &Mutex<StreamStats> {
        if !self.by_id.contains_key(track) {
            let stats = self.named(track, ssrc);
            self.by_id.insert(track.to_owned(), stats);
        }
        &self.by_id[track]
    }

    /// The run's statistics of the track this connection knows as `track`.
    fn named(&self, track: &str, ssrc: u32) -> Arc<Mutex<StreamStats>> {
        let mut name = track.to_owned();
        if let Some(names) = &self.measure.names {
            let names = names.lock().unwrap_or_else(|p| p.into_inner());
            match names
                .by_track
                .get(track)
                .or_else(|| names.by_ssrc.get(&ssrc))
            {
                Some(named) => name = named.clone(),
                None => tracing::warn!(track, ssrc, "a received track matches no publisher's"),
            }
        }
        self.measure
            .received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name)
            .or_default()
            .clone()
    }
}

impl Client {
    /// Handles what the connection has for us: state changes, decrypted
    /// packets (measured as they come), datagrams to send; then reads its
    /// next deadline.
    fn drain(&mut self, now: Instant) {
        let Self {
            conn,
            socket,
            tracks,
            events,
            deadline,
            hello,
        } = self;
        let Some(conn) = conn.as_mut() else {
            return;
        };
        while let Some(event) = conn.poll_event(now) {
            match event {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(state) => {
                    let _ = events.send(PcEvent::State(Target::Subscriber, state));
                }
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    tracks.stats_for(&init.track_id, init.ssrc);
                }
                _ => {}
            }
        }
        let pc = conn.state_machine();
        let now_us = tracks.measure.epoch.us_at(now);
        while let Some(read) = pc.poll_read() {
            let RTCMessage::RtpPacket(track, packet) = read.message else {
                continue;
            };
            let Some(stamp) = Stamp::read(&packet.payload) else {
                continue;
            };
            tracks
                .stats_for(&track, packet.header.ssrc)
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .on_packet(now_us, packet.payload.len(), stamp);
        }
        while let Some(out) = conn.poll_write(now) {
            if matches!(hello, Hello::Unsent) && classify(&out.message) == Kind::Dtls {
                *hello = Hello::Sent {
                    datagram: out.message.to_vec(),
                    to: out.transport.peer_addr,
                    due: now + HELLO_RETRY,
                    retries: 0,
                };
            }
            if let Err(e) = socket.send_to(&out.message, out.transport.peer_addr) {
                tracing::debug!(error = %e, "send failed");
            }
        }
        if let Hello::Sent {
            datagram,
            to,
            due,
            retries,
        } = hello
        {
            if *due <= now {
                let _ = socket.send_to(datagram, *to);
                *retries += 1;
                *due = now + HELLO_RETRY * 2u32.pow(*retries);
                if *retries >= HELLO_RETRIES {
                    *hello = Hello::Done;
                }
            }
        }
        let hello_due = match hello {
            Hello::Sent { due, .. } => Some(*due),
            _ => None,
        };
        *deadline = [conn.state_machine().poll_timeout(), hello_due]
            .into_iter()
            .flatten()
            .min();
    }
}

/// One thread's connections, their sockets and timers.
struct Loop {
    config: RtcConfig,
    poll: Poll,
    inbox: mpsc::Receiver<Command>,
    stop: Arc<AtomicBool>,
    clients: HashMap<usize, Client>,
    /// The earliest deadline of any connection, when known.
    next_due: Option<Instant>,
}

impl Loop {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut buf = vec![0u8; DATAGRAM_BYTES];
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let wait = self
                .next_due
                .map_or(IDLE, |due| due.saturating_duration_since(now).min(IDLE));
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "subscribers' poll failed");
                    return;
                }
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    WAKER => self.commands(now),
                    Token(id) => self.read(now, id, &mut buf),
                }
            }
            self.timers(now);
        }
        for client in self.clients.values_mut() {
            if let Some(conn) = client.conn.as_mut() {
                let _ = conn.state_machine().close();
            }
        }
    }

    fn commands(&mut self, now: Instant) {
        while let Ok(command) = self.inbox.try_recv() {
            match command {
                Command::Open {
                    id,
                    mut socket,
                    advertised,
                    measure,
                    events,
                } => {
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut socket, Token(id), Interest::READABLE)
                    {
                        tracing::warn!(error = %e, "cannot poll a subscriber's socket");
                        continue;
                    }
                    let conn = Connection::new(&self.config, advertised, Direction::Receive, now)
                        .map_err(|e| tracing::warn!(error = %e, "cannot build a connection"))
                        .ok();
                    self.clients.insert(
                        id,
                        Client {
                            conn,
                            socket,
                            tracks: Tracks {
                                measure,
                                by_id: HashMap::new(),
                            },
                            events,
                            deadline: None,
                            hello: Hello::Unsent,
                        },
                    );
                }
                Command::Answer { id, offer, reply } => {
                    let answer = self.answer(now, id, *offer);
                    let _ = reply.send(answer);
                    self.drained(now, id);
                }
                Command::Candidate { id, candidate } => {
                    if let Some(conn) = self.clients.get_mut(&id).and_then(|c| c.conn.as_mut()) {
                        if let Err(e) = conn.add_remote_candidate(candidate) {
                            tracing::debug!(error = %e, "candidate refused");
                        }
                    }
                    self.drained(now, id);
                }
                Command::Close { id } => {
                    if let Some(mut client) = self.clients.remove(&id) {
                        if let Some(conn) = client.conn.as_mut() {
                            let _ = conn.state_machine().close();
                        }
                        client.drain(now);
                        let _ = self.poll.registry().deregister(&mut client.socket);
                    }
                }
            }
        }
    }

    fn answer(
        &mut self,
        now: Instant,
        id: usize,
        offer: RTCSessionDescription,
    ) -> Result<String, LoadtestError> {
        let conn = self
            .clients
            .get_mut(&id)
            .and_then(|c| c.conn.as_mut())
            .ok_or_else(|| LoadtestError::WebRtc("the connection could not be built".into()))?;
        conn.take_offer(now, offer)
            .map_err(|e| LoadtestError::WebRtc(format!("offer refused: {e}")))?;
        let answer = conn
            .answer(now)
            .map_err(|e| LoadtestError::WebRtc(format!("cannot answer: {e}")))?;
        Ok(answer.sdp)
    }

    /// Reads every datagram waiting on `id`'s socket into its connection.
    fn read(&mut self, now: Instant, id: usize, buf: &mut [u8]) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        loop {
            match client.socket.recv_from(buf) {
                Ok((n, from)) => {
                    if classify(&buf[..n]) == Kind::Dtls {
                        client.hello = Hello::Done;
                    }
                    if let Some(conn) = client.conn.as_mut() {
                        conn.feed(now, from, &buf[..n], false);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!(error = %e, "receive failed");
                    break;
                }
            }
        }
        self.drained(now, id);
    }

    /// Drains `id` and keeps the loop's earliest deadline up to date.
    fn drained(&mut self, now: Instant, id: usize) {
        let Some(client) = self.clients.get_mut(&id) else {
            return;
        };
        client.drain(now);
        if let Some(due) = client.deadline {
            self.next_due = Some(self.next_due.map_or(due, |d| d.min(due)));
        }
    }

    /// Runs the timers due at `now` and finds the next deadline.
    fn timers(&mut self, now: Instant) {
        if self.next_due.is_some_and(|due| due > now) {
            return;
        }
        let mut next: Option<Instant> = None;
        for client in self.clients.values_mut() {
            if client.deadline.is_some_and(|due| due <= now) {
                if let Some(conn) = client.conn.as_mut() {
                    conn.tick(now);
                }
                client.drain(now);
            }
            if let Some(due) = client.deadline {
                next = Some(next.map_or(due, |d| d.min(due)));
            }
        }
        self.next_due = next;
    }
}
