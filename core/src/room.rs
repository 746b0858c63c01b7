//! Rooms, participants and tracks as the API and SDK show them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::event::{TrackKind, TrackSource};
use crate::id::{ParticipantSid, RoomSid, TrackSid};
use crate::name::{Identity, RoomName};

/// Largest room or participant metadata, in bytes.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;
/// How long an empty room stays open when none is asked for, in seconds.
pub const DEFAULT_EMPTY_TIMEOUT_S: u32 = 300;
/// The longest `empty_timeout_s` accepted (one day).
pub const MAX_EMPTY_TIMEOUT_S: u32 = 86_400;
/// The highest `max_participants` accepted; 0 means no limit.
pub const MAX_PARTICIPANTS_LIMIT: u32 = 100_000;

/// A room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Room {
    /// This incarnation of the room.
    pub sid: RoomSid,
    /// The room's name, unique within its project.
    pub name: RoomName,
    /// When the room was created.
    pub created_at: DateTime<Utc>,
    /// Seconds the room stays open after its last participant leaves.
    pub empty_timeout_s: u32,
    /// Most participants at once; 0 means no limit.
    pub max_participants: u32,
    /// Free-form data the app attaches, up to 64 KiB.
    pub metadata: String,
    /// Where the app would like the room hosted, such as `eu-west`.
    pub region: Option<String>,
    /// Whether every track is recorded (`tracks` mode) from the first one published.
    pub record: bool,
    /// Participants connected right now.
    pub num_participants: u32,
}

/// Whether a participant's media is flowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParticipantState {
    /// Signaling is up, media not yet.
    Joining,
    /// Media is connected.
    Active,
    /// The connection dropped; waiting for the client to come back.
    Reconnecting,
}

/// What a participant may do right now (initially from its token's grants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParticipantPermissions {
    /// May publish tracks.
    pub can_publish: bool,
    /// May subscribe to tracks.
    pub can_subscribe: bool,
    /// May send data messages.
    pub can_publish_data: bool,
}

/// A published track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrackInfo {
    /// The track id.
    pub sid: TrackSid,
    /// Audio or video.
    pub kind: TrackKind,
    /// Camera, microphone, screen, ...
    pub source: TrackSource,
    /// The negotiated codec, such as `video/VP8`.
    pub mime_type: Option<String>,
    /// Muted by the publisher or an admin.
    pub muted: bool,
    /// Published with simulcast layers.
    pub simulcast: bool,
}

/// A participant connected to a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ParticipantInfo {
    /// This session.
    pub sid: ParticipantSid,
    /// The identity from the token.
    pub identity: Identity,
    /// Display name.
    pub name: String,
    /// Free-form data, up to 64 KiB.
    pub metadata: String,
    /// Media state.
    pub state: ParticipantState,
    /// When this session joined.
    pub joined_at: DateTime<Utc>,
    /// Current permissions.
    pub permissions: ParticipantPermissions,
    /// Tracks it publishes.
    pub tracks: Vec<TrackInfo>,
    /// How its connection is doing, once measured (every few seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionStats>,
}

/// A participant's connection, measured over the last few seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ConnectionStats {
    /// Quality, scored from loss and round trip as the SDK reports it.
    pub quality: crate::signal::ConnectionQuality,
    /// Media it sends to the server, bits per second.
    pub publish_bps: u64,
    /// Media the server sends it, bits per second.
    pub subscribe_bps: u64,
    /// Packets lost per thousand, the worse of what it sends and what it receives.
    pub loss_per_mille: u32,
    /// Round trip to it in milliseconds, once measured.
    pub rtt_ms: Option<u32>,
}

/// How a session's connection went, summed up when it ends
/// (`participant.quality_summary`), from the measures taken every few seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct QualitySummary {
    /// Seconds of the session the measures cover.
    pub measured_s: u32,
    /// Media it sent to the server on average, bits per second.
    pub publish_bps: u64,
    /// Media the server sent it on average, bits per second.
    pub subscribe_bps: u64,
    /// Packets lost per thousand on average.
    pub loss_per_mille: u32,
    /// Round trip on average in milliseconds, if it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<u32>,
    /// Seconds its quality was `poor` or `lost`.
    pub poor_s: u32,
    /// Its worst minute: the most loss, then the longest round trip (the
    /// whole session when it was measured for less than a minute).
    pub worst_minute: WorstMinute,
}

/// A session's worst minute of connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorstMinute {
    /// When the minute began.
    pub started_at: DateTime<Utc>,
    /// Packets lost per thousand over it.
    pub loss_per_mille: u32,
    /// Round trip over it in milliseconds, if it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<u32>,
}

/// A room as the media tier needs it to run: identity plus limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomLimits {
    /// Seconds to stay open once empty.
    pub empty_timeout_s: u32,
    /// Most participants at once; 0 means no limit.
    pub max_participants: u32,
}

/// The name a room is known by in a project, for log fields and errors.
pub fn room_label(name: &RoomName, sid: &RoomSid) -> String {
    format!("{name} ({sid})")
}
