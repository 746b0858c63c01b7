//! One peer connection on a worker: webrtc-rs's sans-I/O state machine, fed
//! datagrams and time by the worker, with the credentials the worker routes by.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use rtc::ice::tcp_type::TcpType;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::RTCPeerConnection;
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use super::config::{stack, Direction, RtcConfig};
use crate::MediaError;

/// A peer connection and what its worker knows of it.
pub struct Connection {
    /// The state machine; the worker feeds it and drains its outputs.
    pub(crate) pc: RTCPeerConnection,
    /// The address the node advertised and every datagram is tagged with.
    local: SocketAddr,
    /// Whether a passive ICE-TCP candidate is advertised too.
    ice_tcp: bool,
    /// The local ICE username fragment binding requests name, once described.
    ufrag: Option<String>,
    /// When the state machine next wants [`Connection::tick`].
    pub(crate) deadline: Option<Instant>,
}

impl Connection {
    /// A connection whose only candidate is the node's shared port at `advertised`.
    pub fn new(
        config: &RtcConfig,
        advertised: SocketAddr,
        direction: Direction,
        now: Instant,
    ) -> Result<Self, MediaError> {
        let pc = stack(config, direction)?.build(now)?;
        Ok(Self {
            pc,
            local: advertised,
            ice_tcp: config.ice_tcp,
            ufrag: None,
            deadline: None,
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
    pub fn feed(&mut self, now: Instant, from: SocketAddr, datagram: &[u8], tcp: bool) {
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
            message: BytesMut::from(datagram),
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
