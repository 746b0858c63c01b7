//! The seam through which the control plane reaches live participants.
//!
//! Participants exist only while connected to a media node. The REST API asks
//! a [`ParticipantDirectory`] for them; the media tier implements it (locally
//! in the single binary, over the bus across nodes). With no media tier
//! running, [`NoMediaTier`] answers truthfully that nobody is connected.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::id::{ProjectId, RecordingId, TrackSid};
use crate::name::{Identity, RoomName};
use crate::room::{ParticipantInfo, ParticipantPermissions};

/// Why a directory call failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// No such participant (or track) is connected.
    #[error("{0}")]
    NotFound(String),
    /// The media node hosting the room did not answer.
    #[error("the media node hosting this room is unavailable: {0}")]
    Unavailable(String),
}

/// A change to a live participant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ParticipantUpdate {
    /// New metadata, up to 64 KiB.
    pub metadata: Option<String>,
    /// New display name.
    pub name: Option<String>,
    /// New permissions.
    pub permissions: Option<ParticipantPermissions>,
}

/// Live participants of a project's rooms.
#[async_trait]
pub trait ParticipantDirectory: Send + Sync + 'static {
    /// Everyone connected to `room`.
    async fn list(
        &self,
        project: ProjectId,
        room: &RoomName,
    ) -> Result<Vec<ParticipantInfo>, DirectoryError>;

    /// The participant `identity` in `room`, if connected.
    async fn get(
        &self,
        project: ProjectId,
        room: &RoomName,
        identity: &Identity,
    ) -> Result<Option<ParticipantInfo>, DirectoryError>;

    /// Disconnects `identity` from `room`.
    async fn remove(
        &self,
        project: ProjectId,
        room: &RoomName,
        identity: &Identity,
    ) -> Result<(), DirectoryError>;

    /// Mutes or unmutes one of the participant's tracks.
    async fn mute_track(
        &self,
        project: ProjectId,
        room: &RoomName,
        identity: &Identity,
        track: TrackSid,
        muted: bool,
    ) -> Result<ParticipantInfo, DirectoryError>;

    /// Changes the participant's metadata, name or permissions.
    async fn update(
        &self,
        project: ProjectId,
        room: &RoomName,
        identity: &Identity,
        update: ParticipantUpdate,
    ) -> Result<ParticipantInfo, DirectoryError>;

    /// Sends a data message from the server to everyone in `room`.
    async fn send_data(
        &self,
        project: ProjectId,
        room: &RoomName,
        topic: Option<&str>,
        payload: &str,
    ) -> Result<(), DirectoryError>;

    /// Disconnects everyone from `room` (it is being deleted).
    async fn close_room(&self, project: ProjectId, room: &RoomName) -> Result<(), DirectoryError>;
}

/// Recordings running on media nodes.
#[async_trait]
pub trait RecordingDirectory: Send + Sync + 'static {
    /// Hands stored recording `recording` of `room` to the node hosting the
    /// room if it is live; a room not live yet picks it up when it goes live.
    async fn start(
        &self,
        project: ProjectId,
        room: &RoomName,
        recording: RecordingId,
    ) -> Result<(), DirectoryError>;

    /// Asks the node writing `recording` to stop it and close its files;
    /// false if no node is writing it.
    async fn stop(
        &self,
        project: ProjectId,
        recording: RecordingId,
    ) -> Result<bool, DirectoryError>;
}

/// The directory when this deployment runs no media tier: nobody is connected.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMediaTier;

impl DirectoryError {
    /// Participant `identity` is not connected to `room`.
    pub fn not_connected(identity: &Identity, room: &RoomName) -> Self {
        Self::NotFound(format!(
            "participant `{identity}` is not connected to room `{room}`"
        ))
    }
}

#[async_trait]
impl ParticipantDirectory for NoMediaTier {
    async fn list(
        &self,
        _: ProjectId,
        _: &RoomName,
    ) -> Result<Vec<ParticipantInfo>, DirectoryError> {
        Ok(Vec::new())
    }

    async fn get(
        &self,
        _: ProjectId,
        _: &RoomName,
        _: &Identity,
    ) -> Result<Option<ParticipantInfo>, DirectoryError> {
        Ok(None)
    }

    async fn remove(
        &self,
        _: ProjectId,
        room: &RoomName,
        identity: &Identity,
    ) -> Result<(), DirectoryError> {
        Err(DirectoryError::not_connected(identity, room))
    }

    async fn mute_track(
        &self,
        _: ProjectId,
        room: &RoomName,
        identity: &Identity,
        _: TrackSid,
        _: bool,
    ) -> Result<ParticipantInfo, DirectoryError> {
        Err(DirectoryError::not_connected(identity, room))
    }

    async fn update(
        &self,
        _: ProjectId,
        room: &RoomName,
        identity: &Identity,
        _: ParticipantUpdate,
    ) -> Result<ParticipantInfo, DirectoryError> {
        Err(DirectoryError::not_connected(identity, room))
    }

    async fn send_data(
        &self,
        _: ProjectId,
        room: &RoomName,
        _: Option<&str>,
        _: &str,
    ) -> Result<(), DirectoryError> {
        Err(DirectoryError::NotFound(format!(
            "nobody is connected to room `{room}`"
        )))
    }

    async fn close_room(&self, _: ProjectId, _: &RoomName) -> Result<(), DirectoryError> {
        Ok(())
    }
}

#[async_trait]
impl RecordingDirectory for NoMediaTier {
    async fn start(
        &self,
        _: ProjectId,
        _: &RoomName,
        _: RecordingId,
    ) -> Result<(), DirectoryError> {
        Ok(())
    }

    async fn stop(&self, _: ProjectId, _: RecordingId) -> Result<bool, DirectoryError> {
        Ok(false)
    }
}
