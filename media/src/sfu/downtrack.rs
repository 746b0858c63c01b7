//! One subscriber's copy of a published track, as the rest of the node holds it.
//!
//! The subscriber is a participant's peer connection or a recording
//! ([`Output`]); either way the track's [`Fanout`](super::fanout::Fanout)
//! decides the same, so a recording gets simulcast layer switches at
//! keyframes and continuous numbering.
//!
//! Lifecycle: created when a participant subscribes, added to the
//! subscriber's peer connection as a send-only transceiver, attached to the
//! publisher's [`TrackReceiver`], and closed on unsubscribe, unpublish or
//! leave. A [`DownTrack`] is a handle: its settings (layer cap, bandwidth
//! share, pause, payload type) live in the fan-out's [`Subscriber`], which
//! is what the packet path reads.

use std::sync::Arc;

use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp::Packet;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters;
use switchboard_core::{ParticipantSid, TrackSid};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};

use super::fanout::Subscriber;
use super::receiver::TrackReceiver;

/// Where a down-track's packets go.
pub enum Output {
    /// A participant's peer connection.
    Peer(Arc<TrackLocalStaticRTP>),
    /// A recording's writer.
    Recorder(crate::recording::TrackSink),
}

impl Output {
    /// Sends one rewritten packet of `track`.
    pub async fn send(&self, track: TrackSid, packet: Packet) {
        match self {
            Self::Peer(out) => {
                if let Err(e) = out.write_rtp(packet).await {
                    tracing::debug!(track = %track, error = %e, "down-track write failed");
                }
            }
            Self::Recorder(sink) => sink.send(packet),
        }
    }

    /// Sends a translated sender report of `track` (a recording needs none).
    pub async fn send_report(&self, track: TrackSid, report: SenderReport) {
        if let Self::Peer(out) = self {
            if let Err(e) = out.write_rtcp(vec![Box::new(report)]).await {
                tracing::debug!(track = %track, error = %e, "sender report not sent");
            }
        }
    }
}

/// A subscriber's outgoing copy of one track.
pub struct DownTrack {
    /// Who receives it.
    pub subscriber: ParticipantSid,
    /// The track it copies.
    pub track_sid: TrackSid,
    /// The codec's MIME type.
    pub mime: String,
    receiver: Arc<TrackReceiver>,
    out: Arc<Output>,
    ssrc: u32,
    payload_type: u8,
    clock_rate: u32,
}

impl DownTrack {
    /// A down-track of `receiver`'s track sending `codec` to `out` as `ssrc`; it forwards once attached.
    pub fn new(
        receiver: Arc<TrackReceiver>,
        subscriber: ParticipantSid,
        codec: &RTCRtpCodecParameters,
        out: Output,
        ssrc: u32,
    ) -> Arc<Self> {
        Arc::new(Self {
            subscriber,
            track_sid: receiver.track_sid,
            mime: codec.rtp_codec.mime_type.clone(),
            receiver,
            out: Arc::new(out),
            ssrc,
            payload_type: codec.payload_type,
            clock_rate: codec.rtp_codec.clock_rate,
        })
    }

    /// Starts forwarding, on the best layer arriving now.
    pub fn attach(&self) {
        self.receiver.attach(Subscriber::new(
            self.subscriber,
            self.out.clone(),
            self.ssrc,
            self.payload_type,
            self.clock_rate,
        ));
    }

    /// Stops forwarding for good.
    pub fn close(&self) {
        self.receiver.detach(self.subscriber);
    }

    fn update(&self, change: impl FnOnce(&mut Subscriber<Arc<Output>>)) {
        if let Some(s) = self.receiver.fanout().subscriber_mut(self.subscriber) {
            change(s);
        }
    }

    /// Uses the payload type the subscriber's connection negotiated.
    pub fn set_payload_type(&self, payload_type: u8) {
        self.update(|s| s.set_payload_type(payload_type));
    }

    /// Caps the layer forwarded to this subscriber.
    pub fn set_max_layer(&self, layer: u8) {
        self.update(|s| s.set_max_layer(layer));
    }

    /// Sets this track's share of the subscriber's bandwidth estimate (0: unknown, no limit).
    pub fn set_bandwidth_share(&self, bps: u64) {
        self.update(|s| s.set_bandwidth_share(bps));
    }

    /// Pauses or resumes forwarding (selective unsubscribe keeps the transceiver).
    pub fn set_paused(&self, paused: bool) {
        self.update(|s| s.set_paused(paused));
    }

    /// Asks for a keyframe on this subscriber's behalf at the next layer check.
    pub fn request_keyframe(&self) {
        self.update(Subscriber::request_keyframe);
    }

    /// Reads the subscriber's RTCP for keyframe requests until the track closes.
    pub async fn read_feedback(self: Arc<Self>) {
        let Output::Peer(out) = &*self.out else {
            return;
        };
        while let Some(event) = out.poll().await {
            if let TrackLocalEvent::OnRtcpPacket(packets) = event {
                let wants = packets.iter().any(|p| {
                    let any = p.as_any();
                    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
                });
                if wants {
                    self.request_keyframe();
                }
            }
        }
    }
}
