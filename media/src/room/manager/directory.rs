//! The [`ParticipantDirectory`] the REST API asks: live participants of this node's rooms.

use async_trait::async_trait;
use switchboard_core::directory::{DirectoryError, ParticipantDirectory, ParticipantUpdate};
use switchboard_core::event::LeaveReason;
use switchboard_core::room::ParticipantInfo;
use switchboard_core::{Identity, ProjectId, RoomName, TrackSid};

use super::RoomManager;
use crate::room::live::MutedBy;

#[async_trait]
impl ParticipantDirectory for RoomManager {
    async fn list(
        &self,
        project: ProjectId,
        room: &RoomName,
    ) -> Result<Vec<ParticipantInfo>, DirectoryError> {
        let mut list: Vec<ParticipantInfo> = self
            .live(project, room)
            .map(|r| {
                let mut here: Vec<ParticipantInfo> = r
                    .participants()
                    .iter()
                    .filter(|p| !p.grants.recorder)
                    .map(|p| p.info_with_connection())
                    .collect();
                // Those connected to the room's other hosts, as they last said.
                here.extend(r.remote.infos());
                here
            })
            .unwrap_or_default();
        list.sort_by(|a, b| a.joined_at.cmp(&b.joined_at).then(a.sid.cmp(&b.sid)));
        Ok(list)
    }

    async fn get(
        &self,
        project: ProjectId,
        room: &RoomName,
        identity: &Identity,
    ) -> Result<Option<ParticipantInfo>, DirectoryError> {
        Ok(self
            .live(project, room)
            .and_then(|r| r.find(identity.as_str()))
            .filter(|p| !p.grants.recorder)
            .map(|p| p.info_with_connection()))
    }

    async fn remove(
        &self,
        project: ProjectId,
        room: &RoomName,
        identity: &Identity,
    ) -> Result<(), DirectoryError> {
        let (room, p) = self.participant(project, room, identity)?;
        room.end(&p, LeaveReason::Removed).await;
        Ok(())
    }

    async fn mute_track(
        &self,
        project: ProjectId,
        room: &RoomName,
        identity: &Identity,
        track: TrackSid,
        muted: bool,
    ) -> Result<ParticipantInfo, DirectoryError> {
        let (room, p) = self.participant(project, room, identity)?;
        if room
            .set_track_muted(&p, track, muted, MutedBy::Server)
            .is_err()
        {
            return Err(DirectoryError::NotFound(format!(
                "participant `{identity}` publishes no track {track}"
            )));
        }
        Ok(p.info())
    }

    async fn update(
        &self,
        project: ProjectId,
        room: &RoomName,
        identity: &Identity,
        update: ParticipantUpdate,
    ) -> Result<ParticipantInfo, DirectoryError> {
        let (room, p) = self.participant(project, room, identity)?;
        room.update_participant(&p, update.name, update.metadata, update.permissions)
            .await;
        Ok(p.info())
    }

    async fn send_data(
        &self,
        project: ProjectId,
        room: &RoomName,
        topic: Option<&str>,
        payload: &str,
    ) -> Result<(), DirectoryError> {
        let live = self.live(project, room).ok_or_else(|| {
            DirectoryError::NotFound(format!("nobody is connected to room `{room}`"))
        })?;
        live.send_server_data(topic, payload)
            .await
            .map_err(DirectoryError::NotFound)
    }

    async fn close_room(&self, project: ProjectId, room: &RoomName) -> Result<(), DirectoryError> {
        if let Some(r) = self.live(project, room) {
            self.forget(&r).await;
            r.close(LeaveReason::RoomClosed).await;
        }
        Ok(())
    }
}
