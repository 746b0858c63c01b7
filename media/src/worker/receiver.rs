//! A published track as the room holds it: a handle on the track's fan-out
//! in the worker that owns the publisher's connection.

use std::sync::Arc;

use switchboard_core::{ParticipantSid, TrackSid};
use tokio::sync::oneshot;

use super::{Command, Query, TrackChange, TrackRef, Worker};
use crate::sfu::keyframe::Codec;

/// One published track, forwarded by its worker to every subscriber.
pub struct TrackReceiver {
    /// The published track.
    pub track_sid: TrackSid,
    /// Its codec, for keyframe detection.
    pub codec: Codec,
    /// RTP clock rate.
    pub clock_rate: u32,
    track: TrackRef,
    worker: Worker,
}

impl TrackReceiver {
    /// A handle on `track`, which `worker` receives.
    pub fn new(
        track_sid: TrackSid,
        track: TrackRef,
        worker: Worker,
        codec: Codec,
        clock_rate: u32,
    ) -> Arc<Self> {
        Arc::new(Self {
            track_sid,
            codec,
            clock_rate,
            track,
            worker,
        })
    }

    /// How the worker names the track.
    pub fn track(&self) -> &TrackRef {
        &self.track
    }

    /// The worker that forwards it.
    pub fn worker(&self) -> &Worker {
        &self.worker
    }

    /// The highest layer arriving now (`None` once the track has ended).
    pub async fn best_layer(&self) -> Option<u8> {
        let (reply, rx) = oneshot::channel();
        self.worker
            .send(Command::Query(Query::BestLayer(self.track.clone(), reply)));
        rx.await.ok().flatten()
    }

    /// Stops forwarding to `subscriber`.
    pub fn detach(&self, subscriber: ParticipantSid) {
        self.worker.send(Command::Unsubscribe {
            track: self.track.clone(),
            participant: subscriber,
        });
    }

    /// Reads audio levels from the header extension negotiated as `id`.
    pub fn set_audio_level_extension(&self, id: u8) {
        self.change(TrackChange::AudioLevelExtension(id));
    }

    /// Stops or resumes forwarding altogether (muted by the publisher or an admin).
    pub fn set_muted(&self, muted: bool) {
        self.change(TrackChange::Muted(muted));
    }

    fn change(&self, change: TrackChange) {
        self.worker.send(Command::Track {
            track: self.track.clone(),
            change,
        });
    }
}
