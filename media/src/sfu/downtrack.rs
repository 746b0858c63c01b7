//! One subscriber's copy of a published track.
//!
//! The subscriber is a participant's peer connection or a recording
//! ([`Output`]); either way the forwarder decides the same, so a recording
//! gets simulcast layer switches at keyframes and continuous numbering.
//!
//! Lifecycle: created when a participant subscribes, added to the
//! subscriber's peer connection as a send-only transceiver, attached to the
//! publisher's [`TrackReceiver`](super::receiver::TrackReceiver), and detached
//! and closed on unsubscribe, unpublish or leave. Each packet the receiver
//! hands it is decided by the [`Forwarder`] and rewritten (SSRC, payload
//! type, sequence number, timestamp; header extensions dropped, since their
//! ids were negotiated with the publisher, not this subscriber). The
//! publisher's sender reports are rewritten the same way, so the subscriber
//! lines audio and video up on the publisher's clock.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp::header::Header;
use rtc::rtp::Packet;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters;
use switchboard_core::{ParticipantSid, TrackSid};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};

use super::allocation::fit_layer;
use super::forwarder::{Forwarder, Incoming, Verdict};
use super::receiver::MAX_LAYERS;

/// Where a down-track's packets go.
pub enum Output {
    /// A participant's peer connection.
    Peer(Arc<TrackLocalStaticRTP>),
    /// A recording's writer.
    Recorder(crate::recording::TrackSink),
}

/// A subscriber's outgoing copy of one track.
pub struct DownTrack {
    /// Who receives it.
    pub subscriber: ParticipantSid,
    /// The track it copies.
    pub track_sid: TrackSid,
    /// The codec's MIME type.
    pub mime: String,
    out: Output,
    ssrc: u32,
    payload_type: AtomicU8,
    forwarder: Mutex<Forwarder>,
    /// Highest layer the subscriber asked for (`set_layer`).
    max_layer: AtomicU8,
    /// This track's share of the subscriber's bandwidth estimate, bit/s; 0 while unknown.
    bandwidth_share: std::sync::atomic::AtomicU64,
    keyframe_requested: AtomicBool,
    closed: AtomicBool,
    forwarded: std::sync::atomic::AtomicU64,
    /// Payload bytes forwarded, for sender reports.
    octets: std::sync::atomic::AtomicU64,
    dropped: std::sync::atomic::AtomicU64,
}

impl DownTrack {
    /// A down-track sending `codec` to `out` as `ssrc`.
    pub fn new(
        subscriber: ParticipantSid,
        track_sid: TrackSid,
        codec: &RTCRtpCodecParameters,
        out: Output,
        ssrc: u32,
        initial_layer: u8,
    ) -> Arc<Self> {
        Arc::new(Self {
            subscriber,
            track_sid,
            mime: codec.rtp_codec.mime_type.clone(),
            out,
            ssrc,
            payload_type: AtomicU8::new(codec.payload_type),
            forwarder: Mutex::new(Forwarder::new(codec.rtp_codec.clock_rate, initial_layer)),
            max_layer: AtomicU8::new(u8::MAX),
            bandwidth_share: Default::default(),
            keyframe_requested: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            forwarded: Default::default(),
            octets: Default::default(),
            dropped: Default::default(),
        })
    }

    fn forwarder(&self) -> std::sync::MutexGuard<'_, Forwarder> {
        self.forwarder.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Uses the payload type the subscriber's connection negotiated.
    pub fn set_payload_type(&self, payload_type: u8) {
        self.payload_type.store(payload_type, Ordering::Relaxed);
    }

    /// Caps the layer forwarded to this subscriber.
    pub fn set_max_layer(&self, layer: u8) {
        self.max_layer.store(layer, Ordering::Relaxed);
    }

    /// Sets this track's share of the subscriber's bandwidth estimate (0: unknown, no limit).
    pub fn set_bandwidth_share(&self, bps: u64) {
        self.bandwidth_share.store(bps, Ordering::Relaxed);
    }

    /// Points the forwarder at the best layer that arrives, is not above the
    /// subscriber's cap and fits its bandwidth share, given each layer's bitrate.
    pub fn choose_layer(&self, best_available: u8, rates: &[u64; MAX_LAYERS]) {
        let mut f = self.forwarder();
        let layer = fit_layer(
            best_available,
            self.max_layer.load(Ordering::Relaxed),
            f.target_layer(),
            self.bandwidth_share.load(Ordering::Relaxed),
            rates,
        );
        if f.target_layer() != layer {
            f.set_target_layer(layer);
        }
    }

    /// Pauses or resumes forwarding (selective unsubscribe keeps the transceiver).
    pub fn set_paused(&self, paused: bool) {
        self.forwarder().set_paused(paused);
    }

    /// Decides on one packet and returns it rewritten for this subscriber, or `None` to drop it.
    pub fn prepare(
        &self,
        now: Instant,
        layer: u8,
        keyframe: bool,
        packet: &Packet,
    ) -> Option<Packet> {
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        let incoming = Incoming {
            layer,
            sequence_number: packet.header.sequence_number,
            timestamp: packet.header.timestamp,
            keyframe,
        };
        match self.forwarder().on_packet(now, incoming) {
            Verdict::Drop => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                None
            }
            Verdict::Forward {
                sequence_number,
                timestamp,
            } => Some(Packet {
                header: Header {
                    version: 2,
                    padding: packet.header.padding,
                    marker: packet.header.marker,
                    payload_type: self.payload_type.load(Ordering::Relaxed),
                    sequence_number,
                    timestamp,
                    ssrc: self.ssrc,
                    ..Default::default()
                },
                payload: packet.payload.clone(),
            }),
        }
    }

    /// Queues a prepared packet for sending.
    pub async fn send(&self, packet: Packet) {
        self.forwarded.fetch_add(1, Ordering::Relaxed);
        self.octets
            .fetch_add(packet.payload.len() as u64, Ordering::Relaxed);
        match &self.out {
            Output::Peer(out) => {
                if let Err(e) = out.write_rtp(packet).await {
                    tracing::debug!(track = %self.track_sid, subscriber = %self.subscriber, error = %e, "down-track write failed");
                }
            }
            Output::Recorder(sink) => sink.send(packet),
        }
    }

    /// Relays the publisher's sender report of `layer` to this subscriber, translated
    /// to its stream (SSRC, RTP timestamp, counts), if that layer is what it gets.
    pub async fn relay_sender_report(&self, layer: u8, report: &SenderReport) {
        let Some((ntp_time, rtp_time)) =
            self.forwarder()
                .sender_report_time(layer, report.ntp_time, report.rtp_time)
        else {
            return;
        };
        let Output::Peer(out) = &self.out else {
            return;
        };
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        let translated = SenderReport {
            ssrc: self.ssrc,
            ntp_time,
            rtp_time,
            // RFC 3550 counts wrap at 32 bits.
            packet_count: self.forwarded.load(Ordering::Relaxed) as u32,
            octet_count: self.octets.load(Ordering::Relaxed) as u32,
            ..Default::default()
        };
        if let Err(e) = out.write_rtcp(vec![Box::new(translated)]).await {
            tracing::debug!(track = %self.track_sid, subscriber = %self.subscriber, error = %e, "sender report not sent");
        }
    }

    /// Whether the publisher should be asked for a keyframe on this subscriber's behalf,
    /// and on which layer: the forwarder waits for one, or the subscriber sent a PLI/FIR.
    pub fn keyframe_wanted(&self, now: Instant) -> Option<u8> {
        let mut f = self.forwarder();
        let asked = self.keyframe_requested.swap(false, Ordering::Relaxed);
        if f.wants_keyframe(now) {
            return Some(f.target_layer());
        }
        asked.then(|| f.current_layer().unwrap_or(f.target_layer()))
    }

    /// Asks for a keyframe on this subscriber's behalf at the next layer check.
    pub fn request_keyframe(&self) {
        self.keyframe_requested.store(true, Ordering::Relaxed);
    }

    /// Reads the subscriber's RTCP for keyframe requests until the track closes.
    pub async fn read_feedback(self: Arc<Self>) {
        let Output::Peer(out) = &self.out else {
            return;
        };
        while let Some(event) = out.poll().await {
            if let TrackLocalEvent::OnRtcpPacket(packets) = event {
                let wants = packets.iter().any(|p| {
                    let any = p.as_any();
                    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                });
                if wants {
                    self.keyframe_requested.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    /// Stops forwarding for good.
    pub fn close(&self) {
        if !self.closed.swap(true, Ordering::Relaxed) {
            tracing::debug!(
                track = %self.track_sid,
                subscriber = %self.subscriber,
                mime = %self.mime,
                forwarded = self.forwarded.load(Ordering::Relaxed),
                dropped = self.dropped.load(Ordering::Relaxed),
                "down-track closed"
            );
        }
    }
}
