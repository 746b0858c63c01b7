//! A participant: one connected session with its two peer connections.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rtc::statistics::report::RTCStatsReportEntry;
use switchboard_core::event::{LeaveReason, ParticipantRef, TrackKind, TrackSource};
use switchboard_core::rate::TokenBucket;
use switchboard_core::room::{
    ConnectionStats, ParticipantInfo, ParticipantPermissions, ParticipantState, QualitySummary,
    TrackInfo,
};
use switchboard_core::token::Grants;
use switchboard_core::{Identity, ParticipantSid, TrackSid};

use super::mailbox::{Command, Mailbox};
use super::session_quality::SessionQuality;
use crate::sfu::rate_limit::{PublishBudget, TrackSlot};
use crate::worker::{DownTrack, Peer, TrackReceiver};
use switchboard_core::signal::ServerMessage;

/// A track the participant announced with `add_track` and has not offered yet.
#[derive(Debug, Clone)]
pub struct PendingTrack {
    /// Audio or video.
    pub kind: TrackKind,
    /// Where it comes from.
    pub source: TrackSource,
    /// Sent as simulcast.
    pub simulcast: bool,
}

/// A track this participant publishes.
pub struct Published {
    /// As shown to others.
    pub info: TrackInfo,
    /// The receiving end in the SFU.
    pub receiver: Arc<TrackReceiver>,
    /// Muted by the server (the API or a room admin): the publisher cannot unmute it.
    pub server_muted: bool,
    /// Its place in the participant's track limit, given back with it.
    pub slot: Option<TrackSlot>,
}

/// A track this participant receives.
pub struct Subscription {
    /// The outgoing copy.
    pub downtrack: Arc<DownTrack>,
}

struct Profile {
    name: String,
    metadata: String,
    permissions: ParticipantPermissions,
    state: ParticipantState,
}

/// One connected session.
pub struct Participant {
    /// This session.
    pub sid: ParticipantSid,
    /// The token's identity.
    pub identity: Identity,
    /// When it joined.
    pub joined_at: DateTime<Utc>,
    /// The token's grants.
    pub grants: Grants,
    /// The connection the client publishes on.
    pub publisher: Peer,
    /// The connection the SFU forwards others' media and data on (the same
    /// connection for WHIP and WHEP).
    pub subscriber: Peer,
    /// The unguessable part of its WHIP or WHEP resource URL: knowing the
    /// sid, which every participant sees, is not enough to end the session.
    pub resource_key: String,
    mailbox: Mailbox,
    profile: Mutex<Profile>,
    /// Announced, not yet offered tracks, by the client's id.
    pub pending: Mutex<HashMap<String, PendingTrack>>,
    /// Published tracks.
    pub published: Mutex<HashMap<TrackSid, Published>>,
    /// Received tracks.
    pub subscriptions: Mutex<HashMap<TrackSid, Subscription>>,
    /// What it may publish, shared by its tracks' receivers.
    pub budget: Arc<PublishBudget>,
    /// Its connection as last measured by the room's observer.
    connection: Mutex<Option<ConnectionStats>>,
    /// Its measures summed up over the session, for `participant.quality_summary`.
    session_quality: Mutex<SessionQuality>,
    /// Data messages it may still send now ([`DATA_PER_S`], [`DATA_BURST`]).
    pub data_rate: Mutex<TokenBucket>,
}

/// Data messages a participant may send per second, and in a burst: each
/// one goes to everyone in the room.
pub const DATA_PER_S: f64 = 100.0;
/// See [`DATA_PER_S`].
pub const DATA_BURST: f64 = 200.0;

impl Participant {
    /// A participant joining now.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        identity: Identity,
        name: String,
        metadata: String,
        grants: Grants,
        publisher: Peer,
        subscriber: Peer,
        mailbox: Mailbox,
        budget: Arc<PublishBudget>,
    ) -> Arc<Self> {
        let permissions = grants.permissions();
        Arc::new(Self {
            sid: ParticipantSid::new(),
            identity,
            joined_at: Utc::now(),
            grants,
            publisher,
            subscriber,
            resource_key: random_key(),
            mailbox,
            profile: Mutex::new(Profile {
                name,
                metadata,
                permissions,
                state: ParticipantState::Joining,
            }),
            pending: Mutex::new(HashMap::new()),
            published: Mutex::new(HashMap::new()),
            subscriptions: Mutex::new(HashMap::new()),
            budget,
            connection: Mutex::new(None),
            session_quality: Mutex::new(SessionQuality::default()),
            data_rate: Mutex::new(TokenBucket::new(DATA_PER_S, DATA_BURST)),
        })
    }

    /// How events refer to this participant.
    pub fn reference(&self) -> ParticipantRef {
        ParticipantRef {
            sid: self.sid,
            identity: self.identity.clone(),
        }
    }

    /// The participant as other participants see it.
    pub fn info(&self) -> ParticipantInfo {
        let profile = self.profile.lock();
        let mut tracks: Vec<TrackInfo> = self
            .published
            .lock()
            .values()
            .map(|p| p.info.clone())
            .collect();
        tracks.sort_by_key(|t| t.sid);
        ParticipantInfo {
            sid: self.sid,
            identity: self.identity.clone(),
            name: profile.name.clone(),
            metadata: profile.metadata.clone(),
            state: profile.state,
            joined_at: self.joined_at,
            permissions: profile.permissions,
            tracks,
            connection: None,
        }
    }

    /// [`Self::info`] with the connection's latest measures, for the owner's
    /// API and dashboard (other participants get the quality alone, in
    /// `connection_quality` messages).
    pub fn info_with_connection(&self) -> ParticipantInfo {
        ParticipantInfo {
            connection: *self.connection.lock(),
            ..self.info()
        }
    }

    /// The connection's latest measures, once measured.
    pub fn connection(&self) -> Option<ConnectionStats> {
        *self.connection.lock()
    }

    /// Keeps the connection's latest measures.
    pub fn set_connection(&self, stats: ConnectionStats) {
        *self.connection.lock() = Some(stats);
    }

    /// Adds an interval of `secs` seconds, ended at `at`, to the session's
    /// summed-up measures.
    pub fn note_quality(&self, at: DateTime<Utc>, secs: f64, stats: ConnectionStats) {
        self.session_quality.lock().add(at, secs, stats);
    }

    /// The session's connection summed up so far, if it was measured.
    pub fn quality_summary(&self) -> Option<QualitySummary> {
        self.session_quality.lock().summary()
    }

    /// Current permissions.
    pub fn permissions(&self) -> ParticipantPermissions {
        self.profile.lock().permissions
    }

    /// Marks media as connected.
    pub fn set_active(&self) {
        self.profile.lock().state = ParticipantState::Active;
    }

    /// Changes name, metadata or permissions.
    pub fn update(
        &self,
        name: Option<String>,
        metadata: Option<String>,
        permissions: Option<ParticipantPermissions>,
    ) {
        let mut profile = self.profile.lock();
        if let Some(n) = name {
            profile.name = n;
        }
        if let Some(m) = metadata {
            profile.metadata = m;
        }
        if let Some(p) = permissions {
            profile.permissions = p;
        }
    }

    /// Sends a command to the session; false if the session is gone.
    pub fn command(&self, c: Command) -> bool {
        self.mailbox.send(c)
    }

    /// Asks the session to end (it tells its client why), ahead of any queued command.
    pub fn close(&self, reason: LeaveReason) {
        self.mailbox.close(reason);
    }

    /// Sends a signaling message.
    pub fn signal(&self, m: ServerMessage) {
        self.command(Command::Signal(Box::new(m)));
    }

    /// When the last packet from the client arrived on either of its
    /// connections (media, RTCP or DTLS), if any did: a client that vanished
    /// left then, not when its connection timed out.
    pub async fn last_heard(&self) -> Option<DateTime<Utc>> {
        let mut last: Option<Instant> = None;
        for pc in [&self.publisher, &self.subscriber] {
            let Some(stats) = pc.stats().await else {
                continue;
            };
            for entry in stats.report.iter() {
                if let RTCStatsReportEntry::IceCandidatePair(pair) = entry {
                    if pair.packets_received > 0 {
                        let at = pair.last_packet_received_timestamp;
                        // The stack pairs the packet's instant with the wall clock of the snapshot.
                        last = last.max(Some(at.instant(at.duration_since_unix_epoch())));
                    }
                }
            }
        }
        let ago = Instant::now().saturating_duration_since(last?);
        let at = Utc::now() - chrono::Duration::from_std(ago).ok()?;
        Some(at.max(self.joined_at))
    }
}

/// 128 random bits as hex.
fn random_key() -> String {
    rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
