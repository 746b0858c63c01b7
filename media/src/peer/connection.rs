//! One peer connection on a worker: webrtc-rs's sans-I/O state machine, fed
//! datagrams and time by the worker, with the credentials the worker routes by.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use rtc::ice::tcp_type::TcpType;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCIceConnectionState;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::RTCPeerConnection;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use super::config::{stack, Direction, RtcConfig};
use crate::transport::demux::{classify, Kind};
use crate::MediaError;

/// How many DTLS datagrams a connection holds while its ICE is still
/// checking: a client's first flight (a ClientHello, or a few fragments of
/// one), not more, as a client that is not connected yet can send anything.
const MAX_EARLY_DTLS: usize = 4;

/// A peer connection and what its worker knows of it.
pub struct Connection {
    /// The state machine; the worker feeds it and drains its outputs.
    pub(crate) pc: RTCPeerConnection,
    /// Its send side's estimate and bytes.
    pub(crate) meter: std::sync::Arc<super::config::SendMeter>,
    /// The address the node advertised and every datagram is tagged with.
    local: SocketAddr,
    /// Whether a passive ICE-TCP candidate is advertised too.
    ice_tcp: bool,
    /// The local ICE username fragment binding requests name, once described.
    ufrag: Option<String>,
    /// When the state machine next wants [`Connection::tick`].
    pub(crate) deadline: Option<Instant>,
    /// Whether ICE has a selected pair, so the stack takes DTLS and media.
    ice_connected: bool,
    /// DTLS datagrams that arrived while ICE was still checking, fed once it connects.
    early_dtls: Vec<(SocketAddr, bool, BytesMut)>,
    /// ICE just connected: the stack's first DTLS flight waits to be sent.
    dtls_kick: bool,
}

impl Connection {
    /// A connection whose only candidate is the node's shared port at `advertised`.
    pub fn new(
        config: &RtcConfig,
        advertised: SocketAddr,
        direction: Direction,
        now: Instant,
    ) -> Result<Self, MediaError> {
        let stack = stack(config, direction)?;
        let meter = stack.meter.clone();
        let pc = stack.build(now)?;
        Ok(Self {
            pc,
            meter,
            local: advertised,
            ice_tcp: config.ice_tcp,
            ufrag: None,
            deadline: None,
            ice_connected: false,
            early_dtls: Vec::new(),
            dtls_kick: false,
        })
    }

    /// Sets the client's `offer` as the remote description.
    pub fn take_offer(
        &mut self,
        now: Instant,
        offer: RTCSessionDescription,
    ) -> Result<(), MediaError> {
        self.pc
            .set_remote_description(now, offer)
            .map_err(MediaError::webrtc)
    }

    /// Answers the offer [`Connection::take_offer`] set, advertising the shared port.
    pub fn answer(&mut self, now: Instant) -> Result<RTCSessionDescription, MediaError> {
        self.add_host_candidate()?;
        let answer = self.pc.create_answer(None).map_err(MediaError::webrtc)?;
        self.pc
            .set_local_description(now, answer)
            .map_err(MediaError::webrtc)?;
        self.described()
    }

    /// Makes an offer (the server's, to a subscriber), advertising the shared port.
    pub fn offer(&mut self, now: Instant) -> Result<RTCSessionDescription, MediaError> {
        self.add_host_candidate()?;
        let offer = self.pc.create_offer(None).map_err(MediaError::webrtc)?;
        self.pc
            .set_local_description(now, offer)
            .map_err(MediaError::webrtc)?;
        self.described()
    }

    /// Takes the client's answer to [`Connection::offer`].
    pub fn accept(
        &mut self,
        now: Instant,
        answer: RTCSessionDescription,
    ) -> Result<(), MediaError> {
        self.pc
            .set_remote_description(now, answer)
            .map_err(MediaError::webrtc)
    }

    /// Adds a candidate the client trickled.
    pub fn add_remote_candidate(
        &mut self,
        candidate: RTCIceCandidateInit,
    ) -> Result<(), MediaError> {
        self.pc
            .add_remote_candidate(candidate)
            .map_err(MediaError::webrtc)
    }

    /// The local ufrag binding requests for this connection carry.
    pub fn ufrag(&self) -> Option<&str> {
        self.ufrag.as_deref()
    }

    /// Hands the connection a datagram `from` the client, over UDP or ICE-TCP.
    ///
    /// A client whose check the server nominated is connected as soon as it
    /// answers, and may send its DTLS ClientHello before that answer arrives
    /// (some stacks write it first, and datagrams reorder): the stack, still
    /// checking, would drop the hello, and the handshake would wait for a
    /// retransmission. Such datagrams are held until ICE connects instead.
    pub fn feed(&mut self, now: Instant, from: SocketAddr, datagram: &[u8], tcp: bool) {
        if !self.ice_connected && classify(datagram) == Kind::Dtls {
            if self.early_dtls.len() < MAX_EARLY_DTLS {
                self.early_dtls.push((from, tcp, BytesMut::from(datagram)));
            }
            return;
        }
        self.handle_read(now, from, BytesMut::from(datagram), tcp);
    }

    /// The state machine's next event. When ICE connects, this also starts
    /// DTLS without waiting: the datagrams held until then are fed, and the
    /// next [`Connection::poll_write`] sends the first flight.
    pub fn poll_event(&mut self, now: Instant) -> Option<RTCPeerConnectionEvent> {
        let event = self.pc.poll_event()?;
        if let RTCPeerConnectionEvent::OnIceConnectionStateChangeEvent(state) = &event {
            let was_connected = self.ice_connected;
            self.ice_connected = !matches!(
                state,
                RTCIceConnectionState::New | RTCIceConnectionState::Checking
            );
            if self.ice_connected && !was_connected {
                self.dtls_kick = true;
                for (from, tcp, datagram) in std::mem::take(&mut self.early_dtls) {
                    self.handle_read(now, from, datagram, tcp);
                }
            }
        }
        Some(event)
    }

    /// The next datagram to send.
    ///
    /// The stack's DTLS client queues its ClientHello when ICE selects a
    /// pair but sends it only from its timers, the next of which is up to an
    /// ICE check interval (50 ms) away, or a DTLS retransmission (1 s) once
    /// ICE has nothing left to check. Once everything else is out
    /// (the answer to the check that nominated the pair first, so the peer
    /// knows the pair before the hello reaches it), the timers are run at
    /// `now` to send it at once; timers that are not due do nothing.
    pub fn poll_write(&mut self, now: Instant) -> Option<TaggedBytesMut> {
        loop {
            if let Some(out) = self.pc.poll_write() {
                return Some(out);
            }
            if !std::mem::take(&mut self.dtls_kick) {
                return None;
            }
            self.tick(now);
        }
    }

    fn handle_read(&mut self, now: Instant, from: SocketAddr, message: BytesMut, tcp: bool) {
        let message = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.local,
                peer_addr: from,
                ecn: None,
                transport_protocol: if tcp {
                    TransportProtocol::TCP
                } else {
                    TransportProtocol::UDP
                },
            },
            message,
        };
        if let Err(e) = self.pc.handle_read(message) {
            tracing::debug!(%from, error = %e, "datagram refused");
        }
    }

    /// Runs the connection's timers due at `now`.
    pub fn tick(&mut self, now: Instant) {
        if let Err(e) = self.pc.handle_timeout(now) {
            tracing::debug!(error = %e, "peer connection timer failed");
        }
    }

    /// The state machine itself, for a driver of its own (the load tester's
    /// subscribers poll its outputs the way the worker does).
    pub fn state_machine(&mut self) -> &mut RTCPeerConnection {
        &mut self.pc
    }

    /// Re-reads when the connection next wants [`Connection::tick`];
    /// `true` if that changed.
    pub(crate) fn rearm(&mut self) -> bool {
        let next = self.pc.poll_timeout();
        let changed = next != self.deadline;
        self.deadline = next;
        changed
    }

    fn add_host_candidate(&mut self) -> Result<(), MediaError> {
        if self.ufrag.is_some() {
            // Described before: the candidate is already there (an ICE restart
            // or a renegotiation keeps it).
            return Ok(());
        }
        let networks: &[(&str, TcpType)] = if self.ice_tcp {
            &[("udp", TcpType::Unspecified), ("tcp", TcpType::Passive)]
        } else {
            &[("udp", TcpType::Unspecified)]
        };
        for &(network, tcp_type) in networks {
            let candidate = CandidateHostConfig {
                base_config: CandidateConfig {
                    network: network.to_owned(),
                    address: self.local.ip().to_string(),
                    port: self.local.port(),
                    component: 1,
                    ..Default::default()
                },
                tcp_type,
            }
            .new_candidate_host()
            .map_err(MediaError::webrtc)?;
            let init = RTCIceCandidate::from(&candidate)
                .to_json()
                .map_err(MediaError::webrtc)?;
            self.pc
                .add_local_candidate(init)
                .map_err(MediaError::webrtc)?;
        }
        Ok(())
    }

    /// Reads the local ufrag from the description just set and returns it.
    fn described(&mut self) -> Result<RTCSessionDescription, MediaError> {
        let local = self
            .pc
            .local_description()
            .ok_or_else(|| MediaError::Protocol("no local description".into()))?;
        self.ufrag = local
            .sdp
            .lines()
            .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
            .map(str::to_owned);
        Ok(local)
    }
}

#[cfg(test)]
mod tests;
