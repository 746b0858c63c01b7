//! Building peer connections: codecs, interceptors and ICE settings shared by every session.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::Registry;
use rtc::interceptor::{
    Attribute, CongestionControlBuilder, Gcc, Interceptor, NackGeneratorBuilder, Packet,
    ReceiverReportBuilder, SenderReportBuilder, Slot, StreamInfo, TaggedPacket,
    TwccReceiverBuilder, TwccSenderBuilder, GCC_MAX_BITRATE, GCC_MIN_BITRATE,
};
use rtc::peer_connection::configuration::interceptor_registry::configure_simulcast_extension_headers;
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_AV1, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8, MIME_TYPE_VP9,
};
use rtc::peer_connection::configuration::setting_engine::{
    SctpMaxMessageSize, SettingEngineBuilder,
};
use rtc::peer_connection::configuration::{RTCConfigurationBuilder, RTCIceServer};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::RTCRtpTransceiverDirection;
use rtc::sansio::Protocol;

use super::nack::Retransmitter;
use crate::MediaError;

/// How peer connections reach the network.
#[derive(Debug, Clone)]
pub struct RtcConfig {
    /// The local IP that media sockets bind to (one port per connection).
    pub bind_ip: IpAddr,
    /// The IP to advertise in host candidates instead of the bound one (`--node-ip`).
    pub node_ip: Option<IpAddr>,
    /// STUN/TURN servers handed to clients and used by the server.
    pub ice_servers: Vec<switchboard_core::signal::IceServer>,
    /// A TURN server given each client time-limited credentials.
    pub turn: Option<crate::turn::TurnRest>,
    /// How long a session has to get media connected before it is dropped.
    pub connect_timeout: Duration,
    /// What one participant may publish before packets are dropped.
    pub publish_limits: crate::sfu::rate_limit::PublishLimits,
    /// Ports media sockets bind; an ephemeral port per connection when unset.
    pub port_range: Option<PortRange>,
    /// Also offer passive ICE-TCP candidates, on the same port number as UDP.
    pub ice_tcp: bool,
    /// Whether outgoing streams carry the publishers' RTCP sender reports,
    /// translated per subscriber (the SFU: lip sync follows the publisher's
    /// clock), instead of reports the stack makes up from forwarding times (an
    /// endpoint such as the load tester, which is the publisher itself).
    pub relay_sender_reports: bool,
}

impl Default for RtcConfig {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            node_ip: None,
            ice_servers: Vec::new(),
            turn: None,
            connect_timeout: Duration::from_secs(30),
            publish_limits: Default::default(),
            port_range: None,
            ice_tcp: false,
            relay_sender_reports: true,
        }
    }
}

impl RtcConfig {
    /// The STUN/TURN servers for a client joining as `identity` now.
    pub fn ice_servers_for(&self, identity: &str) -> Vec<switchboard_core::signal::IceServer> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        crate::turn::ice_servers_for(&self.ice_servers, self.turn.as_ref(), identity, now)
    }
}

/// The codecs the SFU forwards, with the payload types it offers subscribers.
pub fn codecs() -> Vec<(RTCRtpCodecParameters, RtpCodecKind)> {
    let video_feedback = vec![
        RTCPFeedback {
            typ: "goog-remb".into(),
            parameter: String::new(),
        },
        RTCPFeedback {
            typ: "transport-cc".into(),
            parameter: String::new(),
        },
        RTCPFeedback {
            typ: "ccm".into(),
            parameter: "fir".into(),
        },
        RTCPFeedback {
            typ: "nack".into(),
            parameter: String::new(),
        },
        RTCPFeedback {
            typ: "nack".into(),
            parameter: "pli".into(),
        },
    ];
    let codec = |mime: &str, clock_rate, channels, fmtp: &str, rtcp_feedback: Vec<RTCPFeedback>| {
        RTCRtpCodec {
            mime_type: mime.into(),
            clock_rate,
            channels,
            sdp_fmtp_line: fmtp.into(),
            rtcp_feedback,
        }
    };
    let audio_feedback = vec![RTCPFeedback {
        typ: "transport-cc".into(),
        parameter: String::new(),
    }];
    let mut out = vec![(
        RTCRtpCodecParameters {
            rtp_codec: codec(
                MIME_TYPE_OPUS,
                48_000,
                2,
                "minptime=10;useinbandfec=1",
                audio_feedback,
            ),
            payload_type: 111,
        },
        RtpCodecKind::Audio,
    )];
    for (mime, payload_type, fmtp) in [
        (MIME_TYPE_VP8, 96, ""),
        (MIME_TYPE_VP9, 98, "profile-id=0"),
        (
            MIME_TYPE_H264,
            102,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        ),
        (MIME_TYPE_AV1, 41, "profile-id=0"),
    ] {
        out.push((
            RTCRtpCodecParameters {
                rtp_codec: codec(mime, 90_000, 0, fmtp, video_feedback.clone()),
                payload_type,
            },
            RtpCodecKind::Video,
        ));
    }
    out
}

/// The SFU's own codec entry for `mime` (case-insensitive), as offered to subscribers.
pub fn codec_for(mime: &str) -> Option<RTCRtpCodecParameters> {
    codecs()
        .into_iter()
        .map(|(c, _)| c)
        .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
}

fn media_engine() -> Result<MediaEngine, MediaError> {
    let mut me = MediaEngine::default();
    for (codec, kind) in codecs() {
        me.register_codec(codec, kind).map_err(MediaError::webrtc)?;
    }
    // Publishers' audio levels drive active speaker detection.
    me.register_header_extension(
        RTCRtpHeaderExtensionCapability {
            uri: crate::sfu::audio_level::AUDIO_LEVEL_URI.into(),
        },
        RtpCodecKind::Audio,
        Some(RTCRtpTransceiverDirection::Recvonly),
    )
    .map_err(MediaError::webrtc)?;
    Ok(me)
}

/// Where a subscriber connection's bandwidth estimate starts: high enough for a
/// 720p simulcast layer, so a subscriber starts on the best layer and the
/// estimate backs off from what actually arrives once the path congests
/// (climbing from GCC's 300 kbit/s default would hold everyone on the lowest
/// layer for the first twenty seconds).
const INITIAL_ESTIMATE_BPS: f64 = 2_500_000.0;

/// What every peer connection of the node is built from.
pub struct Stack {
    /// Codecs and header extensions.
    pub media_engine: MediaEngine,
    /// NACK, reports, TWCC, congestion control and the SFU's keyframe relay.
    pub registry: Registry,
    /// ICE timing, mDNS off.
    pub settings: SettingEngineBuilder,
    /// STUN/TURN servers.
    pub configuration: rtc::peer_connection::configuration::RTCConfiguration,
    /// The send side's estimate and bytes, read without a statistics report.
    pub meter: Arc<SendMeter>,
}

/// A connection's send side as the node reads it twice a second per
/// subscriber: the congestion controller's latest target and the media
/// payload sent. Reading them from the stack's statistics report instead
/// built a whole report each time, and at 200 subscribers those reports
/// held up forwarding for milliseconds every half second.
#[derive(Debug, Default)]
pub struct SendMeter {
    target_bps: AtomicU64,
    payload_bytes: AtomicU64,
}

impl SendMeter {
    /// The congestion controller's latest target, bit/s (0 before its first).
    pub fn target_bps(&self) -> u64 {
        self.target_bps.load(Ordering::Relaxed)
    }

    /// Media payload bytes the application sent (retransmissions aside, as
    /// in the statistics' `bytesSent`).
    pub fn payload_bytes(&self) -> u64 {
        self.payload_bytes.load(Ordering::Relaxed)
    }
}

impl Stack {
    /// A sans-I/O peer connection of this stack, started at `now`.
    pub fn build(
        self,
        now: Instant,
    ) -> Result<rtc::peer_connection::RTCPeerConnection, MediaError> {
        rtc::peer_connection::RTCPeerConnectionBuilder::new()
            .with_configuration(self.configuration)
            .with_media_engine(self.media_engine)
            .with_interceptor_registry(self.registry)
            .with_setting_engine(self.settings.build())
            .build(now)
            .map_err(MediaError::webrtc)
    }
}

/// The largest data channel message a connection takes, in bytes.
const SCTP_MAX_MESSAGE_BYTES: u32 = 16 * 1024;

/// NACK (and PLI) as feedback every video codec offers.
fn register_nack(me: &mut MediaEngine) {
    for parameter in ["", "pli"] {
        me.register_feedback(
            RTCPFeedback {
                typ: "nack".into(),
                parameter: parameter.into(),
            },
            RtpCodecKind::Video,
        );
    }
}

/// Transport-wide congestion control (the header extension and its feedback)
/// offered for audio and video.
fn register_twcc(me: &mut MediaEngine) -> Result<(), rtc::shared::error::Error> {
    for kind in [RtpCodecKind::Video, RtpCodecKind::Audio] {
        me.register_feedback(
            RTCPFeedback {
                typ: "transport-cc".into(),
                parameter: String::new(),
            },
            kind,
        );
        me.register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: rtc::sdp::extmap::TRANSPORT_CC_URI.to_owned(),
            },
            kind,
            None,
        )?;
    }
    Ok(())
}

/// Which way media flows on a connection. Every packet passes through each
/// interceptor of its connection's chain, so a connection that only sends
/// carries none of the receiving side's, and the other way round; the SDP
/// offers the same feedback either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A publisher's connection: media in, feedback out.
    Receive,
    /// A subscriber's connection: media out, feedback in.
    Send,
    /// Both (WHIP and WHEP sessions, and clients).
    Both,
}

/// The codecs, feedback and ICE settings of a peer connection under
/// `config`, for media flowing `direction`.
pub fn stack(config: &RtcConfig, direction: Direction) -> Result<Stack, MediaError> {
    let receives = direction != Direction::Send;
    let sends = direction != Direction::Receive;
    let mut me = media_engine()?;
    register_nack(&mut me);
    register_twcc(&mut me).map_err(MediaError::webrtc)?;
    let mut registry = Registry::new();
    configure_simulcast_extension_headers(&mut me).map_err(MediaError::webrtc)?;
    if receives {
        registry = registry
            .with(Slot::NackGenerator, NackGeneratorBuilder::new().build())
            .with(Slot::ReceiverReport, ReceiverReportBuilder::new().build())
            .with(Slot::TwccReceiver, TwccReceiverBuilder::new().build());
    }
    if sends {
        registry = registry
            .with(Slot::NackResponder, Retransmitter::default())
            .with(Slot::TwccSender, TwccSenderBuilder::new().build())
            // Send-side bandwidth estimation (Google Congestion Control over
            // TWCC feedback); it only estimates: no pacer holds packets back.
            .with(
                Slot::CongestionControl,
                CongestionControlBuilder::new(Gcc::new(
                    INITIAL_ESTIMATE_BPS,
                    GCC_MIN_BITRATE,
                    GCC_MAX_BITRATE,
                ))
                .build(),
            );
        // With relayed reports the down-tracks send the publishers' sender
        // reports, so the stack makes none of its own.
        if !config.relay_sender_reports {
            registry = registry.with(Slot::SenderReport, SenderReportBuilder::new().build());
        }
    }
    let meter = Arc::new(SendMeter::default());
    let registry = registry.with(Slot::from(14_000), ToApplication::new(meter.clone()));

    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        // Data messages are at most 15 KiB (room::data::MAX_DATA_BYTES, and
        // the SDK's limit); the stack reads each into a buffer of this size
        // per connection, 64 KiB by default. 16 KiB rather than 32 took
        // 2 MB off the node at 200 subscribers.
        .with_sctp_max_message_size(SctpMaxMessageSize::Bounded(SCTP_MAX_MESSAGE_BYTES))
        .with_ice_timeouts(
            Some(Duration::from_secs(5)),
            Some(Duration::from_secs(15)),
            Some(Duration::from_secs(2)),
        )
        // The side controlling ICE (the server for subscriber connections)
        // nominates the first working pair through a reflexive address at once
        // instead of waiting up to a second for a better one: a client's check
        // usually outruns its trickled candidate, so its address is first seen
        // as peer-reflexive, and the stack's default wait cost most joins a second.
        .with_srflx_acceptance_min_wait(Some(Duration::ZERO))
        .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
        // Checks every 50 ms, as browsers pace theirs, rather than the stack's
        // 200 ms: each step of the handshake otherwise waits for the next tick.
        // Still 1.4 s of attempts per pair before it is given up.
        .with_ice_connection_attempts(Some(Duration::from_millis(50)), Some(28));
    let ice_servers = config
        .ice_servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone().unwrap_or_default(),
            credential: s.credential.clone().unwrap_or_default(),
        })
        .collect();
    Ok(Stack {
        media_engine: me,
        registry,
        settings,
        configuration: RTCConfigurationBuilder::new()
            .with_ice_servers(ice_servers)
            .build(),
        meter,
    })
}

/// The ports media sockets may bind (`--rtc-port-range FIRST-LAST`), one per peer connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// Lowest port.
    pub first: u16,
    /// Highest port, inclusive.
    pub last: u16,
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl std::str::FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a port range; write FIRST-LAST, e.g. 50000-60000");
        let (first, last) = s.split_once('-').ok_or_else(bad)?;
        let first: u16 = first.trim().parse().map_err(|_| bad())?;
        let last: u16 = last.trim().parse().map_err(|_| bad())?;
        if first == 0 || first > last {
            return Err(format!(
                "`{s}`: the first port must be above 0 and not above the last"
            ));
        }
        Ok(Self { first, last })
    }
}

impl PortRange {
    /// How many ports it holds.
    pub fn len(&self) -> u32 {
        u32::from(self.last) - u32::from(self.first) + 1
    }

    /// Always false: a range holds at least one port.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Every port once, starting at the `start`-th (modulo the length).
    pub fn ports_from(&self, start: u32) -> impl Iterator<Item = u16> {
        let (first, len) = (u32::from(self.first), self.len());
        (0..len).map(move |i| (first + start.wrapping_add(i) % len) as u16)
    }

    /// Whether `port` can be bound for UDP (and TCP with ICE-TCP) on `ip` now.
    pub fn is_free(&self, ip: IpAddr, port: u16, tcp: bool) -> bool {
        std::net::UdpSocket::bind((ip, port)).is_ok()
            && (!tcp || std::net::TcpListener::bind((ip, port)).is_ok())
    }
}

/// Interceptor that hands the application what the SFU relays or reads:
/// subscribers' keyframe requests (PLI, FIR), which go to the publisher,
/// publishers' sender reports, which go to the subscribers, and receiver
/// reports, whose loss the node keeps (`peer::reception`); other RTCP stays
/// inside the stack. Last on the read walk and first on the write walk, it
/// also keeps the connection's [`SendMeter`].
struct ToApplication {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
    meter: Arc<SendMeter>,
}

impl ToApplication {
    fn new(meter: Arc<SendMeter>) -> Self {
        Self {
            read: VecDeque::new(),
            write: VecDeque::new(),
            meter,
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for ToApplication {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        // The congestion controller, wire-most, attaches its new target to
        // the feedback that moved it.
        for attribute in &msg.message.attributes {
            if let Attribute::TargetBitrateChanged { bits_per_second } = attribute {
                self.meter
                    .target_bps
                    .store(*bits_per_second as u64, Ordering::Relaxed);
            }
        }
        // Everything passes through (NACK, reports and TWCC need it); compound
        // packets holding a keyframe request or a sender or receiver report
        // are also handed to the application.
        if let Packet::Rtcp(packets) = &msg.message.packet {
            let relayed = packets.iter().any(|p| {
                let any = p.as_any();
                any.is::<PictureLossIndication>()
                    || any.is::<FullIntraRequest>()
                    || any.is::<SenderReport>()
                    || any.is::<ReceiverReport>()
            });
            if relayed {
                msg.message.add(Attribute::DeliverToApplication);
            }
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<TaggedPacket> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(packet) = &msg.message.packet {
            // The connection's worker is the only writer: a plain load and
            // store, not a locked read-modify-write, on every packet sent.
            let sent = self.meter.payload_bytes.load(Ordering::Relaxed);
            self.meter
                .payload_bytes
                .store(sent + packet.payload.len() as u64, Ordering::Relaxed);
        }
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<TaggedPacket> {
        self.write.pop_front()
    }
}

impl Interceptor for ToApplication {
    fn bind_local_stream(&mut self, _: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &StreamInfo) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::interceptor::AttributedPacket;
    use rtc::shared::TransportContext;

    fn tagged(message: AttributedPacket) -> TaggedPacket {
        TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message,
        }
    }

    #[test]
    fn the_meter_keeps_the_latest_target_and_the_payload_sent() {
        let meter = Arc::new(SendMeter::default());
        let mut chain_end = ToApplication::new(meter.clone());
        assert_eq!(meter.target_bps(), 0);
        for bps in [900_000.0, 650_000.0] {
            let feedback = AttributedPacket::new(Packet::Rtcp(Vec::new())).with(
                Attribute::TargetBitrateChanged {
                    bits_per_second: bps,
                },
            );
            chain_end.handle_read(tagged(feedback)).unwrap();
            assert!(chain_end.poll_read().is_some(), "feedback passes on");
        }
        assert_eq!(meter.target_bps(), 650_000);
        for len in [1_000, 200] {
            let packet = rtc::rtp::packet::Packet {
                payload: vec![0u8; len].into(),
                ..Default::default()
            };
            chain_end
                .handle_write(tagged(AttributedPacket::new(Packet::Rtp(packet))))
                .unwrap();
            assert!(chain_end.poll_write().is_some(), "media passes on");
        }
        assert_eq!(meter.payload_bytes(), 1_200);
    }

    #[test]
    fn port_ranges_parse_and_cycle() {
        let r: PortRange = "50000-50002".parse().unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r.ports_from(0).collect::<Vec<_>>(), [50000, 50001, 50002]);
        assert_eq!(r.ports_from(4).collect::<Vec<_>>(), [50001, 50002, 50000]);
        let one: PortRange = "7000-7000".parse().unwrap();
        assert_eq!(one.ports_from(u32::MAX).collect::<Vec<_>>(), [7000]);
        for bad in ["", "5", "5-", "-5", "0-10", "10-5", "a-b", "1-70000"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad}");
        }
    }
}
