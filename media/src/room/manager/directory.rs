//! The [`ParticipantDirectory`] the REST API asks: live participants of this node's rooms.

use async_trait::async_trait;
use switchboard_core::cascade::ParticipantChange;
use switchboard_core::directory::{DirectoryError, ParticipantDirectory, ParticipantUpdate};
use switchboard_core::event::LeaveReason;
use switchboard_core::room::ParticipantInfo;
use switchboard_core::{Identity, ProjectId, RoomName, TrackSid};

use super::{change, RoomManager};

impl RoomManager {
    /// Applies `change` to `identity`, here or on the room's host it is
    /// connected to.
    async fn change(
        &self,
        project: ProjectId,
        room: &RoomName,
        identity: &Identity,
        change: ParticipantChange,
    ) -> Result<ParticipantInfo, DirectoryError> {
        let live = self
            .live(project, room)
            .ok_or_else(|| DirectoryError::not_connected(identity, room))?;
        if let Some(p) = live.find(identity.as_str()) {
            return change::apply(&live, &p, change).await;
        }
        let (node, _) = live
            .remote
            .host_of(identity.as_str())
            .ok_or_else(|| DirectoryError::not_connected(identity, room))?;
        self.change_elsewhere(&live, node, identity, change).await
    }
}

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
        let Some(live) = self.live(project, room) else {
            return Ok(None);
        };
        let here = live
            .find(identity.as_str())
            .filter(|p| !p.grants.recorder)
            .map(|p| p.info_with_connection());
        Ok(here.or_else(|| live.remote.host_of(identity.as_str()).map(|(_, p)| p)))
    }

    async fn remove(
        &self,
        project: ProjectId,
        room: &RoomName,
        identity: &Identity,
    ) -> Result<(), DirectoryError> {
        self.change(project, room, identity, ParticipantChange::Remove)
            .await
            .map(drop)
    }

    async fn mute_track(
        &self,
        project: ProjectId,
        room: &RoomName,
        identity: &Identity,
        track: TrackSid,
        muted: bool,
    ) -> Result<ParticipantInfo, DirectoryError> {
        let change = ParticipantChange::MuteTrack { track, muted };
        self.change(project, room, identity, change).await
    }

    async fn update(
        &self,
        project: ProjectId,
        room: &RoomName,
        identity: &Identity,
        update: ParticipantUpdate,
    ) -> Result<ParticipantInfo, DirectoryError> {
        let change = ParticipantChange::Update { update };
        self.change(project, room, identity, change).await
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
            self.forget(&r, true).await;
            r.close(LeaveReason::RoomClosed).await;
        }
        Ok(())
    }
}
