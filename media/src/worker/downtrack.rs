//! One subscriber's copy of a published track, as the rest of the node holds
//! it: a handle whose settings (layer cap, bandwidth share, pause, payload
//! type) the worker applies to the subscriber in the track's fan-out.
//!
//! The subscriber is a participant's peer connection or a recording
//! ([`Output`]); either way the fan-out decides the same, so a recording gets
//! simulcast layer switches at keyframes and continuous numbering.

use std::sync::Arc;

use switchboard_core::{ParticipantSid, TrackSid};
use tokio::sync::oneshot;

use super::receiver::TrackReceiver;
use super::{Command, Output, SubscriptionChange};
use crate::MediaError;

/// A subscriber's outgoing copy of one track.
pub struct DownTrack {
    /// Who receives it.
    pub subscriber: ParticipantSid,
    /// The track it copies.
    pub track_sid: TrackSid,
    /// The codec's MIME type.
    pub mime: String,
    receiver: Arc<TrackReceiver>,
}

impl DownTrack {
    /// `subscriber`'s copy of `receiver`'s track, in `mime`; it forwards once attached.
    pub fn new(receiver: Arc<TrackReceiver>, subscriber: ParticipantSid, mime: &str) -> Arc<Self> {
        Arc::new(Self {
            subscriber,
            track_sid: receiver.track_sid,
            mime: mime.to_owned(),
            receiver,
        })
    }

    /// Starts forwarding to `output`, on the best layer arriving now; a
    /// subscriber connection gets a new outgoing track (the caller
    /// renegotiates).
    pub async fn attach(&self, output: Output) -> Result<(), MediaError> {
        let (reply, rx) = oneshot::channel();
        self.send_subscribe(output, reply);
        rx.await
            .map_err(|_| MediaError::Protocol("the media worker has stopped".into()))?
    }

    /// [`Self::attach`] without waiting to hear how it went (a recording:
    /// the worker logs a refusal).
    pub fn attach_now(&self, output: Output) {
        let (reply, _) = oneshot::channel();
        self.send_subscribe(output, reply);
    }

    fn send_subscribe(&self, output: Output, reply: oneshot::Sender<Result<(), MediaError>>) {
        self.receiver.worker().send(Command::Subscribe {
            track: self.receiver.track().clone(),
            participant: self.subscriber,
            output,
            reply,
        });
    }

    /// Stops forwarding for good.
    pub fn close(&self) {
        self.receiver.detach(self.subscriber);
    }

    fn change(&self, change: SubscriptionChange) {
        self.receiver.worker().send(Command::Subscription {
            track: self.receiver.track().clone(),
            participant: self.subscriber,
            change,
        });
    }

    /// Uses the payload type the subscriber's connection negotiated.
    pub fn set_payload_type(&self, payload_type: u8) {
        self.change(SubscriptionChange::PayloadType(payload_type));
    }

    /// Caps the layer forwarded to this subscriber.
    pub fn set_max_layer(&self, layer: u8) {
        self.change(SubscriptionChange::MaxLayer(layer));
    }

    /// Sets this track's share of the subscriber's bandwidth estimate (0: unknown, no limit).
    pub fn set_bandwidth_share(&self, bps: u64) {
        self.change(SubscriptionChange::BandwidthShare(bps));
    }

    /// Pauses or resumes forwarding (selective unsubscribe keeps the transceiver).
    pub fn set_paused(&self, paused: bool) {
        self.change(SubscriptionChange::Paused(paused));
    }

    /// Asks the publisher for a keyframe on this subscriber's behalf.
    pub fn request_keyframe(&self) {
        self.change(SubscriptionChange::Keyframe);
    }
}
