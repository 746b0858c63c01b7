//! Recordings as the API shows them: what is recorded, how far it got, and
//! the files it produced.
//!
//! A recording belongs to one room incarnation. In `tracks` mode each selected
//! track is written, as received, to its own file; a `manifest.json` lists the
//! files with their start offsets so they can be lined up. Its life:
//!
//! ```text
//! starting --(first track written)--> active --(stop, room ends)--> stopping --> finished
//!     \                                  \                             \    ^
//!      \                                  \                             `--> processing (composite: ffmpeg)
//!       `---------------------------------`-----------------------------`---------`--> failed (with the reason)
//! ```
//!
//! In `composite` mode the tracks are recorded the same way; when the
//! recording ends, a job mixes them into one MP4 (`processing`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::event::{ParticipantRef, RoomRef, TrackKind, TrackRef};
use crate::id::{RecordingId, TrackSid};
use crate::name::Identity;

/// Most tracks or identities a recording request may name.
pub const MAX_SELECTORS: usize = 100;

/// How a room is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordingMode {
    /// Each track to its own file, as received, without transcoding.
    Tracks,
    /// One MP4 of the room in a grid with mixed audio, made after it ends.
    Composite,
}

impl RecordingMode {
    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tracks => "tracks",
            Self::Composite => "composite",
        }
    }
}

impl std::str::FromStr for RecordingMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tracks" => Ok(Self::Tracks),
            "composite" => Ok(Self::Composite),
            other => Err(format!(
                "`{other}` is not a recording mode: use `tracks` or `composite`"
            )),
        }
    }
}

/// Where a recording is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordingStatus {
    /// Waiting for its room to go live or for a first track.
    Starting,
    /// Writing tracks.
    Active,
    /// Stopped; its files are being closed.
    Stopping,
    /// Composite only: the track files are being mixed into one MP4.
    Processing,
    /// Done: its files are complete.
    Finished,
    /// It ended with an error; the files it got to are listed.
    Failed,
}

impl RecordingStatus {
    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Active => "active",
            Self::Stopping => "stopping",
            Self::Processing => "processing",
            Self::Finished => "finished",
            Self::Failed => "failed",
        }
    }

    /// Whether the recording can change no more.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Finished | Self::Failed)
    }
}

impl std::str::FromStr for RecordingStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "starting" => Self::Starting,
            "active" => Self::Active,
            "stopping" => Self::Stopping,
            "processing" => Self::Processing,
            "finished" => Self::Finished,
            "failed" => Self::Failed,
            other => return Err(format!("`{other}` is not a recording status")),
        })
    }
}

/// What to record, as a request gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordingSpec {
    /// `tracks` (each track to its own file) or `composite` (one MP4).
    pub mode: RecordingMode,
    /// Record audio tracks only.
    #[serde(default)]
    pub audio_only: bool,
    /// Record only these tracks (all when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracks: Option<Vec<TrackSid>>,
    /// Record only these participants' tracks (everyone's when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identities: Option<Vec<Identity>>,
}

impl RecordingSpec {
    /// Every track of the room, audio and video, in `tracks` mode.
    pub fn all_tracks() -> Self {
        Self {
            mode: RecordingMode::Tracks,
            audio_only: false,
            tracks: None,
            identities: None,
        }
    }

    /// Refuses selectors that could never match or are too many.
    pub fn validate(&self) -> Result<(), String> {
        for (what, len) in [
            ("tracks", self.tracks.as_ref().map(Vec::len)),
            ("identities", self.identities.as_ref().map(Vec::len)),
        ] {
            match len {
                Some(0) => {
                    return Err(format!(
                        "`{what}` is empty, so nothing would be recorded: leave it out to record everyone"
                    ))
                }
                Some(n) if n > MAX_SELECTORS => {
                    return Err(format!(
                        "`{what}` names {n}; at most {MAX_SELECTORS} are allowed"
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether `identity`'s track `track` is to be recorded.
    pub fn selects(&self, identity: &Identity, track: &TrackRef) -> bool {
        (!self.audio_only || track.kind == TrackKind::Audio)
            && self.tracks.as_ref().is_none_or(|t| t.contains(&track.sid))
            && self
                .identities
                .as_ref()
                .is_none_or(|ids| ids.contains(identity))
    }
}

/// One file of a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RecordingFile {
    /// The file's name within the recording, such as `tr_01J...webm`.
    pub name: String,
    /// The container's MIME type, such as `video/webm`.
    pub content_type: String,
    /// Whose track it holds (none for the manifest and composite files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<ParticipantRef>,
    /// The track it holds (none for the manifest and composite files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<TrackRef>,
    /// When its first frame was received, in ms after the recording started.
    pub start_offset_ms: u64,
    /// From its first frame's timestamp to its last one's end, in ms.
    pub duration_ms: u64,
    /// Bytes written.
    pub size_bytes: u64,
    /// Why this track was not (fully) recorded, if it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A track file being uploaded to the bucket while it is written: what it
/// takes to complete the upload if the node writing it is lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileUpload {
    /// The file's name within the recording.
    pub name: String,
    /// The bucket's id for the multipart upload.
    pub upload_id: String,
    /// The parts uploaded so far, in order.
    pub parts: Vec<UploadedPart>,
}

impl FileUpload {
    /// Bytes of the file the parts hold.
    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.bytes).sum()
    }
}

/// One part of a [`FileUpload`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadedPart {
    /// The bucket's ETag for it.
    pub etag: String,
    /// Its size.
    pub bytes: u64,
}

/// A recording resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Recording {
    /// Its id.
    pub id: RecordingId,
    /// The room incarnation it records.
    pub room: RoomRef,
    /// What it records.
    #[serde(flatten)]
    #[schema(schema_with = spec_among_other_fields)]
    pub spec: RecordingSpec,
    /// Where it is in its life.
    pub status: RecordingStatus,
    /// Why it failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// While `processing`: how far the composite job is, from 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f64>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When its first track started writing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<DateTime<Utc>>,
    /// From start to end (so far, while active), in ms: what is metered.
    pub duration_ms: u64,
    /// Its files, the manifest included once written.
    pub files: Vec<RecordingFile>,
}

/// [`RecordingSpec`]'s schema as part of a [`Recording`]: its fields, with
/// the recording's own beside them. A request's spec allows no other field,
/// and a flattened reference to that schema would forbid the recording's.
fn spec_among_other_fields() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::{schema::Schema, RefOr};
    let mut schema = <RecordingSpec as utoipa::PartialSchema>::schema();
    if let RefOr::T(Schema::Object(object)) = &mut schema {
        object.additional_properties = None;
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::TrackSource;

    fn track(kind: TrackKind) -> TrackRef {
        TrackRef {
            sid: TrackSid::new(),
            kind,
            source: TrackSource::Unknown,
            mime_type: None,
        }
    }

    #[test]
    fn selection_follows_kind_tracks_and_identities() {
        let ann = Identity::new("ann").unwrap();
        let bob = Identity::new("bob").unwrap();
        let (audio, video) = (track(TrackKind::Audio), track(TrackKind::Video));
        let all = RecordingSpec::all_tracks();
        assert!(all.selects(&ann, &audio) && all.selects(&bob, &video));
        let audio_only = RecordingSpec {
            audio_only: true,
            ..all.clone()
        };
        assert!(audio_only.selects(&ann, &audio) && !audio_only.selects(&ann, &video));
        let only_video = RecordingSpec {
            tracks: Some(vec![video.sid]),
            ..all.clone()
        };
        assert!(!only_video.selects(&ann, &audio) && only_video.selects(&bob, &video));
        let only_bob = RecordingSpec {
            identities: Some(vec![bob.clone()]),
            ..all
        };
        assert!(!only_bob.selects(&ann, &audio) && only_bob.selects(&bob, &audio));
    }

    #[test]
    fn empty_or_huge_selectors_are_refused() {
        let mut spec = RecordingSpec::all_tracks();
        assert!(spec.validate().is_ok());
        spec.tracks = Some(Vec::new());
        assert!(spec.validate().unwrap_err().contains("`tracks` is empty"));
        spec.tracks = None;
        spec.identities = Some(vec![Identity::new("x").unwrap(); MAX_SELECTORS + 1]);
        assert!(spec.validate().unwrap_err().contains("at most 100"));
    }

    #[test]
    fn modes_and_statuses_round_trip_through_their_names() {
        for m in [RecordingMode::Tracks, RecordingMode::Composite] {
            assert_eq!(m.as_str().parse::<RecordingMode>(), Ok(m));
        }
        for s in [
            RecordingStatus::Starting,
            RecordingStatus::Active,
            RecordingStatus::Stopping,
            RecordingStatus::Processing,
            RecordingStatus::Finished,
            RecordingStatus::Failed,
        ] {
            assert_eq!(s.as_str().parse::<RecordingStatus>(), Ok(s));
        }
        assert!("paused".parse::<RecordingMode>().is_err());
    }

    #[test]
    fn a_recordings_schema_allows_its_own_fields_beside_its_spec() {
        let json = |s| serde_json::to_value(s).expect("a schema");
        let spec = json(<RecordingSpec as utoipa::PartialSchema>::schema());
        assert_eq!(spec["additionalProperties"], false, "{spec}");
        let recording = json(<Recording as utoipa::PartialSchema>::schema());
        let parts = recording["allOf"].as_array().expect("a flattened spec");
        assert!(
            parts
                .iter()
                .all(|p| p.get("additionalProperties").is_none()),
            "{recording}"
        );
        assert!(parts.iter().any(|p| p["properties"].get("mode").is_some()));
    }
}
