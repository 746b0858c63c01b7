//! A live room on this media node: its participants and the wiring between
//! publishers' receivers and subscribers' down-tracks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use switchboard_core::event::{LeaveReason, ParticipantRef, RoomRef, TrackRef};
use switchboard_core::room::{
    ConnectionStats, ParticipantInfo, ParticipantPermissions, RoomLimits, TrackInfo,
};
use switchboard_core::{
    Event, EventPayload, NodeId, ParticipantSid, ProjectId, RecordingId, RoomName, RoomSid,
    TrackSid,
};
use switchboard_store::Store;

use super::mailbox::Command;
use super::participant::{Participant, Published, Subscription};
use crate::peer::config::codec_for;
use crate::recording::Recorder;
use crate::sfu::rate_limit::TrackSlot;
use crate::worker::{DownTrack, Msid, Output, TrackReceiver};
use crate::MediaError;
use switchboard_core::signal::ServerMessage;

/// Why a join was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdmitError {
    /// `max_participants` reached.
    Full(u32),
    /// The room is closing.
    Closed,
    /// The join could not be recorded (the database is unreachable).
    Unavailable,
}

/// A live room.
pub struct Room {
    /// Its project.
    pub project: ProjectId,
    /// This incarnation.
    pub sid: RoomSid,
    /// Its name.
    pub name: RoomName,
    /// Its metadata.
    pub metadata: String,
    limits: RoomLimits,
    participants: Mutex<HashMap<ParticipantSid, Arc<Participant>>>,
    store: Store,
    /// The node hosting it.
    node: NodeId,
    closed: AtomicBool,
    /// Bumped on every join, so an empty-room timer knows whether anyone came back.
    generation: AtomicU64,
    /// Recordings running in this room.
    recorders: Mutex<Vec<Arc<Recorder>>>,
    /// Set while a write of connection quality is under way.
    quality_writing: Arc<AtomicBool>,
    /// The other hosts' participants, when the room spans nodes.
    pub(super) remote: super::remote::Remotes,
}

impl Room {
    /// A room with no one in it yet.
    pub fn new(
        project: ProjectId,
        sid: RoomSid,
        name: RoomName,
        metadata: String,
        limits: RoomLimits,
        store: Store,
        node: NodeId,
    ) -> Arc<Self> {
        Arc::new(Self {
            project,
            sid,
            name,
            metadata,
            limits,
            participants: Mutex::new(HashMap::new()),
            store,
            node,
            closed: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            recorders: Mutex::new(Vec::new()),
            quality_writing: Arc::new(AtomicBool::new(false)),
            remote: Default::default(),
        })
    }

    /// How events refer to this room.
    pub fn reference(&self) -> RoomRef {
        RoomRef {
            sid: self.sid,
            name: self.name.clone(),
        }
    }

    /// Keeps this interval's connection measures of `participants`, ended
    /// at `at`, for the call's page and the quality API. Written in the
    /// background, so a slow database never holds up the observer.
    pub fn record_quality(
        &self,
        at: chrono::DateTime<chrono::Utc>,
        participants: Vec<(ParticipantSid, ConnectionStats)>,
    ) {
        if participants.is_empty() {
            return;
        }
        // One write per room at a time: while the database is slow, the
        // intervals in between are dropped rather than queued up against
        // the writes that matter more (joins, leaves, the meter).
        if self.quality_writing.swap(true, Ordering::AcqRel) {
            tracing::debug!(room_sid = %self.sid, "connection quality interval dropped: the last one is still being written");
            return;
        }
        let writing = self.quality_writing.clone();
        let (store, project, room) = (self.store.clone(), self.project, self.sid);
        tokio::spawn(async move {
            let quality = store.quality();
            if let Err(e) = quality.record(project, room, at, &participants).await {
                tracing::warn!(project_id = %project, room_sid = %room, error = %e,
                    "cannot record connection quality; this interval is missing from the call's page");
            }
            writing.store(false, Ordering::Release);
        });
    }

    /// Seconds the room stays open once empty.
    pub fn empty_timeout_s(&self) -> u32 {
        self.limits.empty_timeout_s
    }

    /// Everyone in the room now.
    pub fn participants(&self) -> Vec<Arc<Participant>> {
        self.participants.lock().values().cloned().collect()
    }

    /// The participant with `identity`, if connected.
    pub fn find(&self, identity: &str) -> Option<Arc<Participant>> {
        self.participants
            .lock()
            .values()
            .find(|p| p.identity.as_str() == identity)
            .cloned()
    }

    /// How many participants are connected here (not counting other hosts').
    pub fn participant_count(&self) -> usize {
        self.participants.lock().len()
    }

    /// Whether nobody is in the room, here or on its other hosts.
    pub fn is_empty(&self) -> bool {
        self.participants.lock().is_empty() && self.remote.is_empty()
    }

    /// The join counter (see [`Room::generation`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Whether the room has been closed.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    async fn record(&self, payload: EventPayload) {
        self.record_at(payload, chrono::Utc::now()).await;
    }

    /// Records an event that happened at `at` rather than now.
    async fn record_at(&self, payload: EventPayload, at: chrono::DateTime<chrono::Utc>) {
        if let Err(e) = self.try_record(payload, at).await {
            tracing::error!(room = %self.name, error = %e, "could not record event");
        }
    }

    async fn try_record(
        &self,
        payload: EventPayload,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), switchboard_store::StoreError> {
        let event = Event::new(self.project, at, payload);
        self.store.events().record(event).await.map(|_| ())
    }

    pub(super) fn others(&self, sid: ParticipantSid) -> Vec<Arc<Participant>> {
        self.participants
            .lock()
            .values()
            .filter(|p| p.sid != sid)
            .cloned()
            .collect()
    }

    /// Everyone but `sid` that participants see: recorders are hidden.
    pub fn visible_others(&self, sid: ParticipantSid) -> Vec<Arc<Participant>> {
        self.participants
            .lock()
            .values()
            .filter(|p| p.sid != sid && !p.grants.recorder)
            .cloned()
            .collect()
    }

    /// Whether a new session for `identity` would find the room full
    /// (a session replacing the same identity takes its place).
    pub fn is_full_for(&self, identity: &str) -> bool {
        let map = self.participants.lock();
        let replaces = map.values().any(|p| p.identity.as_str() == identity);
        let count = map.len() - usize::from(replaces);
        self.limits.max_participants > 0 && count >= self.limits.max_participants as usize
    }

    /// Adds a participant; returns everyone else as they are now. An earlier
    /// session with the same identity is ended.
    pub async fn admit(&self, p: &Arc<Participant>) -> Result<Vec<ParticipantInfo>, AdmitError> {
        if self.is_closed() {
            return Err(AdmitError::Closed);
        }
        let (others, replaced) = {
            let mut map = self.participants.lock();
            let replaced = map.values().find(|o| o.identity == p.identity).cloned();
            let count = map.len() - usize::from(replaced.is_some());
            if self.limits.max_participants > 0 && count >= self.limits.max_participants as usize {
                return Err(AdmitError::Full(self.limits.max_participants));
            }
            map.insert(p.sid, p.clone());
            self.generation.fetch_add(1, Ordering::SeqCst);
            let mut others: Vec<ParticipantInfo> = map
                .values()
                .filter(|o| o.sid != p.sid && o.identity != p.identity && !o.grants.recorder)
                .map(|o| o.info())
                .collect();
            others.extend(self.remote.infos());
            (others, replaced)
        };
        // The replaced session leaves through `remove`, so its departure is recorded like any other.
        if let Some(old) = replaced {
            self.end(&old, LeaveReason::DuplicateIdentity).await;
        }
        // A recorder is hidden from the room and not billed as a participant:
        // no event, no announcement.
        if p.grants.recorder {
            return Ok(others);
        }
        // The join is what billing counts: one that cannot be recorded is refused, not admitted free.
        let joined = EventPayload::ParticipantJoined {
            room: self.reference(),
            participant: p.reference(),
            node: Some(self.node),
        };
        if let Err(e) = self.try_record(joined, chrono::Utc::now()).await {
            tracing::error!(room = %self.name, error = %e, "could not record a join; refusing it");
            self.participants.lock().remove(&p.sid);
            p.publisher.close();
            p.subscriber.close();
            return Err(AdmitError::Unavailable);
        }
        let info = p.info();
        for other in self.visible_others(p.sid) {
            other.signal(ServerMessage::ParticipantJoined {
                participant: info.clone(),
            });
        }
        self.remote.tell_hosts();
        Ok(others)
    }

    /// Subscribes `p` to every track already published, if its grants allow.
    pub async fn subscribe_to_existing(&self, p: &Arc<Participant>) {
        if !p.permissions().can_subscribe {
            return;
        }
        let mut added = false;
        for publisher in self.others(p.sid) {
            let tracks: Vec<(TrackInfo, Arc<TrackReceiver>)> = publisher
                .published
                .lock()
                .values()
                .map(|t| (t.info.clone(), t.receiver.clone()))
                .collect();
            for (info, receiver) in tracks {
                added |= self.subscribe(p, publisher.sid, &info, &receiver).await;
            }
        }
        for (publisher, info, receiver) in self.remote.tracks() {
            added |= self.subscribe(p, publisher.sid, &info, &receiver).await;
        }
        if added {
            p.command(Command::Renegotiate);
        }
    }

    /// Removes a participant: its tracks are unpublished, its subscriptions dropped.
    /// Returns false if it was not (or no longer) in the room.
    pub async fn remove(&self, p: &Arc<Participant>, reason: LeaveReason) -> bool {
        let was_here = {
            let mut map = self.participants.lock();
            match map.get(&p.sid) {
                Some(current) if Arc::ptr_eq(current, p) => map.remove(&p.sid).is_some(),
                _ => false,
            }
        };
        // A client that vanished is billed up to its last packet, not up to the timeout.
        let left_at = match reason {
            LeaveReason::ConnectionLost if was_here => p.last_heard().await,
            _ => None,
        };
        let track_sids: Vec<TrackSid> = p.published.lock().keys().copied().collect();
        for sid in track_sids {
            self.unpublish(p, sid).await;
        }
        let subscriptions: Vec<Subscription> =
            p.subscriptions.lock().drain().map(|(_, s)| s).collect();
        for sub in subscriptions {
            sub.downtrack.close();
        }
        if was_here && !p.grants.recorder {
            let left_at = left_at.unwrap_or_else(chrono::Utc::now);
            self.record_at(
                EventPayload::ParticipantLeft {
                    room: self.reference(),
                    participant: p.reference(),
                    reason,
                },
                left_at,
            )
            .await;
            if let Some(quality) = p.quality_summary() {
                self.record_at(
                    EventPayload::ParticipantQualitySummary {
                        room: self.reference(),
                        participant: p.reference(),
                        quality,
                    },
                    left_at,
                )
                .await;
            }
            for other in self.participants() {
                other.signal(ServerMessage::ParticipantLeft {
                    sid: p.sid,
                    identity: p.identity.to_string(),
                    reason,
                });
            }
            self.remote.tell_hosts();
        }
        p.publisher.close();
        p.subscriber.close();
        was_here
    }

    /// Removes a participant from outside its session ([`Self::remove`]), then
    /// ends the session, which tells its client `reason` once.
    pub async fn end(&self, p: &Arc<Participant>, reason: LeaveReason) {
        self.remove(p, reason).await;
        p.close(reason);
    }

    /// Publishes a track `p` started sending (holding `slot` of its track
    /// limit), and subscribes everyone else to it.
    pub async fn publish(
        &self,
        p: &Arc<Participant>,
        cid: Option<String>,
        info: TrackInfo,
        receiver: Arc<TrackReceiver>,
        slot: Option<TrackSlot>,
    ) {
        p.published.lock().insert(
            info.sid,
            Published {
                info: info.clone(),
                receiver: receiver.clone(),
                server_muted: false,
                slot,
            },
        );
        self.record(EventPayload::TrackPublished {
            room: self.reference(),
            participant: p.reference(),
            track: track_ref(&info),
        })
        .await;
        p.signal(ServerMessage::TrackPublished {
            participant_sid: p.sid,
            cid,
            track: info.clone(),
        });
        for other in self.others(p.sid) {
            other.signal(ServerMessage::TrackPublished {
                participant_sid: p.sid,
                cid: None,
                track: info.clone(),
            });
            if other.permissions().can_subscribe
                && self.subscribe(&other, p.sid, &info, &receiver).await
            {
                other.command(Command::Renegotiate);
            }
        }
        self.remote.tell_hosts();
        self.record_track(&p.reference(), &info, &receiver);
    }

    /// Hands a track published here or on another host to the recordings that select it.
    pub(super) fn record_track(
        &self,
        publisher: &ParticipantRef,
        info: &TrackInfo,
        receiver: &Arc<TrackReceiver>,
    ) {
        let track = track_ref(info);
        for recorder in self.recorders.lock().iter() {
            if recorder.selects(&publisher.identity, &track) {
                recorder.add_track(publisher.clone(), info, receiver);
            }
        }
    }

    /// Starts `recorder` on every track it selects, now and as they are
    /// published; false (and nothing attached) if the room has closed.
    pub fn attach_recorder(&self, recorder: Arc<Recorder>) -> bool {
        {
            // Under the lock `close` takes the recorders with: either it sees
            // this one, or this sees the room closed.
            let mut recorders = self.recorders.lock();
            if self.is_closed() {
                return false;
            }
            recorders.push(recorder.clone());
        }
        // Tracks published from here on reach it through `publish` too; it takes each once.
        for p in self.participants() {
            let tracks: Vec<(TrackInfo, Arc<TrackReceiver>)> = p
                .published
                .lock()
                .values()
                .map(|t| (t.info.clone(), t.receiver.clone()))
                .collect();
            for (info, receiver) in tracks {
                if recorder.selects(&p.identity, &track_ref(&info)) {
                    recorder.add_track(p.reference(), &info, &receiver);
                }
            }
        }
        // And those of the room's other hosts that arrived here.
        for (publisher, info, receiver) in self.remote.tracks() {
            if recorder.selects(&publisher.identity, &track_ref(&info)) {
                recorder.add_track(publisher, &info, &receiver);
            }
        }
        true
    }

    /// Stops the recording `id` if it runs in this room; whether it did.
    pub fn stop_recorder(&self, id: RecordingId) -> bool {
        let recorder = {
            let mut recorders = self.recorders.lock();
            let i = recorders.iter().position(|r| r.id == id);
            i.map(|i| recorders.swap_remove(i))
        };
        recorder.map(|r| r.stop()).is_some()
    }

    /// Ends a published track for everyone.
    pub async fn unpublish(&self, p: &Arc<Participant>, track_sid: TrackSid) {
        let Some(published) = p.published.lock().remove(&track_sid) else {
            return;
        };
        for recorder in self.recorders.lock().iter() {
            recorder.end_track(track_sid);
        }
        self.record(EventPayload::TrackUnpublished {
            room: self.reference(),
            participant: p.reference(),
            track: track_ref(&published.info),
        })
        .await;
        for other in self.others(p.sid) {
            let sub = other.subscriptions.lock().remove(&track_sid);
            if let Some(sub) = sub {
                // The worker removes the outgoing track with the subscription.
                sub.downtrack.close();
                other.command(Command::Renegotiate);
            }
            other.signal(ServerMessage::TrackUnpublished {
                participant_sid: p.sid,
                track_sid,
            });
        }
        // The publisher hears it too: the track may have been ended by the server.
        p.signal(ServerMessage::TrackUnpublished {
            participant_sid: p.sid,
            track_sid,
        });
        self.remote.tell_hosts();
    }

    /// Creates `subscriber`'s copy of a track; returns whether a transceiver was added.
    pub(super) async fn subscribe(
        &self,
        subscriber: &Arc<Participant>,
        publisher: ParticipantSid,
        info: &TrackInfo,
        receiver: &Arc<TrackReceiver>,
    ) -> bool {
        if subscriber.subscriptions.lock().contains_key(&info.sid) {
            return false;
        }
        match self
            .add_downtrack(subscriber, publisher, info, receiver)
            .await
        {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(room = %self.name, track = %info.sid, subscriber = %subscriber.sid, error = %e, "subscription failed");
                false
            }
        }
    }

    /// Adds an outgoing copy of the track to `subscriber`'s connection (a
    /// new transceiver, or, while a WHEP offer is being answered, one the
    /// client offered to receive on) and starts forwarding.
    async fn add_downtrack(
        &self,
        subscriber: &Arc<Participant>,
        publisher: ParticipantSid,
        info: &TrackInfo,
        receiver: &Arc<TrackReceiver>,
    ) -> Result<(), MediaError> {
        let mime = info.mime_type.as_deref().unwrap_or_default();
        codec_for(mime)
            .ok_or_else(|| MediaError::Protocol(format!("codec {mime} is not forwarded")))?;
        let downtrack = DownTrack::new(receiver.clone(), subscriber.sid, mime);
        // The SDK reads who publishes the track, and which track it is, from its msid.
        let msid = Msid::of(publisher, info.sid);
        downtrack
            .attach(Output::Peer(subscriber.subscriber.id(), Some(msid)))
            .await?;
        subscriber
            .subscriptions
            .lock()
            .insert(info.sid, Subscription { downtrack });
        Ok(())
    }

    /// Subscribes a WHEP viewer to everything `publisher` sends now, on the
    /// transceivers of the viewer's offer; returns how many tracks it got.
    pub async fn subscribe_to_participant(
        &self,
        viewer: &Arc<Participant>,
        publisher: &Participant,
    ) -> usize {
        let tracks: Vec<(TrackInfo, Arc<TrackReceiver>)> = publisher
            .published
            .lock()
            .values()
            .map(|t| (t.info.clone(), t.receiver.clone()))
            .collect();
        let mut added = 0;
        for (info, receiver) in tracks {
            match self
                .add_downtrack(viewer, publisher.sid, &info, &receiver)
                .await
            {
                Ok(()) => added += 1,
                Err(e) => tracing::warn!(track = %info.sid, error = %e, "WHEP subscription failed"),
            }
        }
        added
    }

    /// Points each down-track at the payload type the client's `offer` gave its
    /// codec (when the client, not the SFU, offers, as in WHEP, its numbers rule).
    pub fn adopt_offered_payload_types(&self, subscriber: &Participant, offer: &str) {
        for sub in subscriber.subscriptions.lock().values() {
            if let Some(pt) = crate::sdp::offered_payload_type(offer, &sub.downtrack.mime) {
                sub.downtrack.set_payload_type(pt);
            }
        }
    }

    /// Pauses or resumes `subscriber`'s copies of `tracks` (selective subscription).
    pub async fn set_subscribed(
        &self,
        subscriber: &Arc<Participant>,
        tracks: &[TrackSid],
        subscribed: bool,
    ) {
        let mut added = false;
        for track_sid in tracks {
            let existing = subscriber
                .subscriptions
                .lock()
                .get(track_sid)
                .map(|s| s.downtrack.clone());
            match existing {
                Some(dt) if subscribed && !subscriber.permissions().can_subscribe => {
                    dt.set_paused(true)
                }
                Some(dt) => dt.set_paused(!subscribed),
                None if subscribed && subscriber.permissions().can_subscribe => {
                    for publisher in self.others(subscriber.sid) {
                        let found = publisher
                            .published
                            .lock()
                            .get(track_sid)
                            .map(|t| (t.info.clone(), t.receiver.clone()));
                        if let Some((info, receiver)) = found {
                            added |= self
                                .subscribe(subscriber, publisher.sid, &info, &receiver)
                                .await;
                        }
                    }
                }
                None => {}
            }
        }
        if added {
            subscriber.command(Command::Renegotiate);
        }
    }

    /// Mutes or unmutes a published track and tells everyone. A mute by the
    /// server holds until the server lifts it: the publisher may mute, but
    /// not unmute, a track the server muted.
    pub fn set_track_muted(
        &self,
        publisher: &Arc<Participant>,
        track_sid: TrackSid,
        muted: bool,
        by: MutedBy,
    ) -> Result<(), MuteError> {
        {
            let mut published = publisher.published.lock();
            let track = published.get_mut(&track_sid).ok_or(MuteError::NotFound)?;
            match by {
                MutedBy::Server => track.server_muted = muted,
                MutedBy::Publisher if !muted && track.server_muted => {
                    return Err(MuteError::MutedByServer)
                }
                MutedBy::Publisher => {}
            }
            track.info.muted = muted;
            track.receiver.set_muted(muted);
        }
        for p in self.participants() {
            p.signal(ServerMessage::TrackMuted {
                participant_sid: publisher.sid,
                track_sid,
                muted,
            });
        }
        Ok(())
    }

    /// Makes new permissions hold on live media at once: a participant that
    /// may no longer publish has its tracks unpublished, one that may no
    /// longer subscribe loses its subscriptions, and one that now may
    /// subscribe receives what is published.
    pub async fn apply_permissions(&self, p: &Arc<Participant>, before: ParticipantPermissions) {
        let now = p.permissions();
        if before.can_publish && !now.can_publish {
            p.pending.lock().clear();
            let tracks: Vec<TrackSid> = p.published.lock().keys().copied().collect();
            for sid in tracks {
                self.unpublish(p, sid).await;
            }
        }
        if before.can_subscribe && !now.can_subscribe {
            let subscriptions: Vec<Subscription> =
                p.subscriptions.lock().drain().map(|(_, s)| s).collect();
            let any = !subscriptions.is_empty();
            for sub in subscriptions {
                sub.downtrack.close();
            }
            if any {
                p.command(Command::Renegotiate);
            }
        }
        if !before.can_subscribe && now.can_subscribe {
            self.subscribe_to_existing(p).await;
        }
    }

    /// Changes a participant's name, metadata or permissions (by the API or
    /// a room admin): permissions hold on live media at once, and everyone is told.
    pub async fn update_participant(
        &self,
        p: &Arc<Participant>,
        name: Option<String>,
        metadata: Option<String>,
        permissions: Option<ParticipantPermissions>,
    ) {
        let before = p.permissions();
        p.update(name, metadata, permissions);
        self.apply_permissions(p, before).await;
        self.announce_update(p);
    }

    /// Tells everyone a participant's profile changed.
    pub fn announce_update(&self, p: &Participant) {
        if p.grants.recorder {
            return;
        }
        let info = p.info();
        for other in self.participants() {
            other.signal(ServerMessage::ParticipantUpdated {
                participant: info.clone(),
            });
        }
        self.remote.tell_hosts();
    }

    /// Ends every session (the room was deleted or timed out).
    pub async fn close(&self, reason: LeaveReason) {
        self.closed.store(true, Ordering::SeqCst);
        for p in self.participants() {
            self.end(&p, reason).await;
        }
        for recorder in std::mem::take(&mut *self.recorders.lock()) {
            recorder.stop();
        }
    }
}

fn track_ref(info: &TrackInfo) -> TrackRef {
    TrackRef {
        sid: info.sid,
        kind: info.kind,
        source: info.source,
        mime_type: info.mime_type.clone(),
    }
}

/// Who mutes a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutedBy {
    /// The publisher itself, over signaling.
    Publisher,
    /// The API or a room admin.
    Server,
}

/// Why a track's mute did not change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MuteError {
    /// The participant publishes no such track.
    #[error("no such track")]
    NotFound,
    /// The publisher tried to unmute what the server muted.
    #[error("the track was muted by the server; only the server can unmute it")]
    MutedByServer,
}
