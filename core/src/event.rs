//! The event catalogue.
//!
//! Every state change in Switchboard is an [`Event`]: a unique id, the project
//! it belongs to, a per-project sequence number, a timestamp with microsecond
//! precision and a typed [`EventPayload`]. Events are appended to the event
//! log before anyone acts on them; webhooks, functions and billing consume
//! them by id, so a consumer that sees an event twice can tell.
//!
//! The serialized form is the one webhook receivers get:
//! `{"id", "type", "project_id", "seq", "created_at", "data": {...}}`.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::id::{EventId, NodeId, ParticipantSid, ProjectId, RecordingId, RoomSid, TrackSid};
use crate::name::{Identity, RoomName};
use crate::recording::{RecordingFile, RecordingMode};

/// One state change, as stored in the event log and delivered to consumers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Event {
    /// Unique id; consumers deduplicate on it.
    pub id: EventId,
    /// The project the event belongs to.
    pub project_id: ProjectId,
    /// Position in the project's log, assigned when the event is appended (0 before).
    pub seq: i64,
    /// When the change happened, to the microsecond.
    pub created_at: DateTime<Utc>,
    /// What happened.
    #[serde(flatten)]
    pub payload: EventPayload,
}

impl Event {
    /// A new, not yet persisted event that happened at `at`.
    pub fn new(project_id: ProjectId, at: DateTime<Utc>, payload: EventPayload) -> Self {
        Self {
            id: EventId::new(),
            project_id,
            seq: 0,
            created_at: at.trunc_subsecs(6),
            payload,
        }
    }

    /// The event's type name, such as `participant.joined`.
    pub fn event_type(&self) -> &'static str {
        self.payload.event_type()
    }

    /// The room the event concerns, if any.
    pub fn room(&self) -> Option<&RoomRef> {
        self.payload.room()
    }
}

/// A room as events refer to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RoomRef {
    /// The room incarnation.
    pub sid: RoomSid,
    /// The room's name within its project.
    pub name: RoomName,
}

/// A participant as events refer to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ParticipantRef {
    /// This session of the participant.
    pub sid: ParticipantSid,
    /// The identity from the access token.
    pub identity: Identity,
}

/// A track as events refer to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrackRef {
    /// The track id.
    pub sid: TrackSid,
    /// `audio` or `video`.
    pub kind: TrackKind,
    /// Where the track comes from.
    pub source: TrackSource,
    /// Codec MIME type such as `video/VP8`, once negotiated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
}

/// The kind of media a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

/// Where a track's media comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TrackSource {
    /// A camera.
    Camera,
    /// A microphone.
    Microphone,
    /// A shared screen's video.
    ScreenShare,
    /// A shared screen's audio.
    ScreenShareAudio,
    /// Anything else (WHIP ingest, a bot, ...).
    Unknown,
}

/// Why a participant left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// The client said goodbye.
    ClientLeft,
    /// The connection was lost and did not come back in time.
    ConnectionLost,
    /// Removed through the API.
    Removed,
    /// The room was closed.
    RoomClosed,
    /// The same identity joined again elsewhere.
    DuplicateIdentity,
    /// The media node hosting the session went away.
    NodeLost,
}

/// Why a room finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoomFinishReason {
    /// Deleted through the API.
    Deleted,
    /// Empty for longer than its `empty_timeout_s`.
    EmptyTimeout,
    /// The media node hosting it went away.
    NodeLost,
}

/// What happened, with the data each event type carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", content = "data")]
pub enum EventPayload {
    /// A room was created (by the API or by its first participant).
    #[serde(rename = "room.started")]
    RoomStarted {
        /// The room.
        room: RoomRef,
    },
    /// A room closed.
    #[serde(rename = "room.finished")]
    RoomFinished {
        /// The room.
        room: RoomRef,
        /// Why it closed.
        reason: RoomFinishReason,
    },
    /// A participant's session started.
    #[serde(rename = "participant.joined")]
    ParticipantJoined {
        /// The room.
        room: RoomRef,
        /// Who joined.
        participant: ParticipantRef,
        /// The node hosting the session; if it dies, the session is closed at its last heartbeat.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<NodeId>,
    },
    /// A participant's session ended.
    #[serde(rename = "participant.left")]
    ParticipantLeft {
        /// The room.
        room: RoomRef,
        /// Who left.
        participant: ParticipantRef,
        /// Why.
        reason: LeaveReason,
    },
    /// How a participant's connection went over its session, sent when the
    /// session ends (after `participant.left`) if it was measured at all.
    #[serde(rename = "participant.quality_summary")]
    ParticipantQualitySummary {
        /// The room.
        room: RoomRef,
        /// Whose session.
        participant: ParticipantRef,
        /// Averages, time spent poor and the worst minute.
        quality: crate::room::QualitySummary,
    },
    /// A participant started publishing a track.
    #[serde(rename = "track.published")]
    TrackPublished {
        /// The room.
        room: RoomRef,
        /// The publisher.
        participant: ParticipantRef,
        /// The track.
        track: TrackRef,
    },
    /// A track stopped being published.
    #[serde(rename = "track.unpublished")]
    TrackUnpublished {
        /// The room.
        room: RoomRef,
        /// The publisher.
        participant: ParticipantRef,
        /// The track.
        track: TrackRef,
    },
    /// A recording started writing its first track.
    #[serde(rename = "recording.started")]
    RecordingStarted {
        /// The room.
        room: RoomRef,
        /// The recording id.
        recording_id: RecordingId,
        /// `tracks` or `composite`.
        mode: RecordingMode,
    },
    /// A recording finished and its files are complete.
    #[serde(rename = "recording.finished")]
    RecordingFinished {
        /// The room.
        room: RoomRef,
        /// The recording id.
        recording_id: RecordingId,
        /// `tracks` or `composite`.
        mode: RecordingMode,
        /// Where its files are stored, such as `file:///data/recordings/pr_.../rec_.../`.
        location: String,
        /// Length of the recording in milliseconds (what is metered).
        duration_ms: u64,
        /// Its files, with sizes and durations.
        files: Vec<RecordingFile>,
    },
    /// A recording failed; the files it got to are listed.
    #[serde(rename = "recording.failed")]
    RecordingFailed {
        /// The room.
        room: RoomRef,
        /// The recording id.
        recording_id: RecordingId,
        /// What went wrong.
        error: String,
        /// What was written before it failed, if anything.
        files: Vec<RecordingFile>,
    },
    /// A new version of a function was deployed.
    #[serde(rename = "function.deployed")]
    FunctionDeployed {
        /// The function id.
        function_id: String,
        /// The deployed version.
        version: u32,
    },
    /// A function emitted an event of its own.
    #[serde(rename = "function.event")]
    FunctionEvent {
        /// The emitting function's name.
        function: String,
        /// The name the function gave the event.
        name: String,
        /// The JSON data the function gave.
        #[schema(value_type = Object)]
        data: serde_json::Value,
        /// How many `function.event`s came before this one, each emitted by
        /// a handler of the one before (0, left out: emitted on any other
        /// event). Handlers of the last one a chain allows may not emit.
        #[serde(default, skip_serializing_if = "is_zero")]
        chain: u32,
    },
    /// A webhook endpoint was disabled after failing for too long.
    #[serde(rename = "webhook.disabled")]
    WebhookDisabled {
        /// The endpoint id.
        webhook_id: String,
    },
    /// A test event sent on request to one endpoint.
    #[serde(rename = "webhook.test")]
    WebhookTest {
        /// The endpoint id.
        webhook_id: String,
    },
}

impl EventPayload {
    /// Every event type name, in catalogue order.
    pub const TYPES: &'static [&'static str] = &[
        "room.started",
        "room.finished",
        "participant.joined",
        "participant.left",
        "participant.quality_summary",
        "track.published",
        "track.unpublished",
        "recording.started",
        "recording.finished",
        "recording.failed",
        "function.deployed",
        "function.event",
        "webhook.disabled",
        "webhook.test",
    ];

    /// The type name, such as `room.started`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::RoomStarted { .. } => "room.started",
            Self::RoomFinished { .. } => "room.finished",
            Self::ParticipantJoined { .. } => "participant.joined",
            Self::ParticipantLeft { .. } => "participant.left",
            Self::ParticipantQualitySummary { .. } => "participant.quality_summary",
            Self::TrackPublished { .. } => "track.published",
            Self::TrackUnpublished { .. } => "track.unpublished",
            Self::RecordingStarted { .. } => "recording.started",
            Self::RecordingFinished { .. } => "recording.finished",
            Self::RecordingFailed { .. } => "recording.failed",
            Self::FunctionDeployed { .. } => "function.deployed",
            Self::FunctionEvent { .. } => "function.event",
            Self::WebhookDisabled { .. } => "webhook.disabled",
            Self::WebhookTest { .. } => "webhook.test",
        }
    }

    /// The participant the event is about, if any.
    pub fn participant(&self) -> Option<&ParticipantRef> {
        match self {
            Self::ParticipantJoined { participant, .. }
            | Self::ParticipantLeft { participant, .. }
            | Self::ParticipantQualitySummary { participant, .. }
            | Self::TrackPublished { participant, .. }
            | Self::TrackUnpublished { participant, .. } => Some(participant),
            _ => None,
        }
    }

    /// The room the event concerns, if any.
    pub fn room(&self) -> Option<&RoomRef> {
        match self {
            Self::RoomStarted { room }
            | Self::RoomFinished { room, .. }
            | Self::ParticipantJoined { room, .. }
            | Self::ParticipantLeft { room, .. }
            | Self::ParticipantQualitySummary { room, .. }
            | Self::TrackPublished { room, .. }
            | Self::TrackUnpublished { room, .. }
            | Self::RecordingStarted { room, .. }
            | Self::RecordingFinished { room, .. }
            | Self::RecordingFailed { room, .. } => Some(room),
            Self::FunctionDeployed { .. }
            | Self::FunctionEvent { .. }
            | Self::WebhookDisabled { .. }
            | Self::WebhookTest { .. } => None,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> RoomRef {
        RoomRef {
            sid: RoomSid::new(),
            name: RoomName::new("standup").unwrap(),
        }
    }

    #[test]
    fn serializes_as_type_and_data() {
        let ev = Event::new(
            ProjectId::new(),
            Utc::now(),
            EventPayload::RoomStarted { room: room() },
        );
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["type"], "room.started");
        assert_eq!(v["data"]["room"]["name"], "standup");
        assert!(v["id"].as_str().unwrap().starts_with("ev_"));
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn type_names_match_the_catalogue() {
        let r = room();
        let p = ParticipantRef {
            sid: ParticipantSid::new(),
            identity: Identity::new("ann").unwrap(),
        };
        let t = TrackRef {
            sid: TrackSid::new(),
            kind: TrackKind::Video,
            source: TrackSource::Camera,
            mime_type: None,
        };
        let all = [
            EventPayload::RoomStarted { room: r.clone() },
            EventPayload::RoomFinished {
                room: r.clone(),
                reason: RoomFinishReason::Deleted,
            },
            EventPayload::ParticipantJoined {
                room: r.clone(),
                participant: p.clone(),
                node: Some(NodeId::new()),
            },
            EventPayload::ParticipantLeft {
                room: r.clone(),
                participant: p.clone(),
                reason: LeaveReason::ClientLeft,
            },
            EventPayload::ParticipantQualitySummary {
                room: r.clone(),
                participant: p.clone(),
                quality: crate::room::QualitySummary {
                    measured_s: 60,
                    publish_bps: 1_000_000,
                    subscribe_bps: 2_000_000,
                    loss_per_mille: 3,
                    rtt_ms: Some(40),
                    poor_s: 0,
                    worst_minute: crate::room::WorstMinute {
                        started_at: chrono::Utc::now(),
                        loss_per_mille: 3,
                        rtt_ms: None,
                    },
                },
            },
            EventPayload::TrackPublished {
                room: r.clone(),
                participant: p.clone(),
                track: t.clone(),
            },
            EventPayload::TrackUnpublished {
                room: r.clone(),
                participant: p,
                track: t,
            },
            EventPayload::RecordingStarted {
                room: r.clone(),
                recording_id: RecordingId::new(),
                mode: RecordingMode::Tracks,
            },
            EventPayload::RecordingFinished {
                room: r.clone(),
                recording_id: RecordingId::new(),
                mode: RecordingMode::Tracks,
                location: "x".into(),
                duration_ms: 1,
                files: Vec::new(),
            },
            EventPayload::RecordingFailed {
                room: r,
                recording_id: RecordingId::new(),
                error: "disk full".into(),
                files: Vec::new(),
            },
            EventPayload::FunctionDeployed {
                function_id: "fn".into(),
                version: 1,
            },
            EventPayload::FunctionEvent {
                function: "gate".into(),
                name: "vip".into(),
                data: serde_json::json!({"n": 1}),
                chain: 0,
            },
            EventPayload::WebhookDisabled {
                webhook_id: "wh".into(),
            },
            EventPayload::WebhookTest {
                webhook_id: "wh".into(),
            },
        ];
        let names: Vec<_> = all.iter().map(EventPayload::event_type).collect();
        assert_eq!(names, EventPayload::TYPES);
        for p in &all {
            let v = serde_json::to_value(p).unwrap();
            assert_eq!(v["type"], p.event_type());
        }
    }

    #[test]
    fn timestamps_keep_microseconds_only() {
        let ev = Event::new(
            ProjectId::new(),
            Utc::now(),
            EventPayload::WebhookTest {
                webhook_id: "w".into(),
            },
        );
        assert_eq!(ev.created_at.timestamp_subsec_nanos() % 1000, 0);
    }
}
