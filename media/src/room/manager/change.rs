//! A REST change to a live participant, applied where it is connected: the
//! API reaches the room's first node, which applies it to its own
//! participants and sends it on ([`LinkRequest::Change`]) for those of the
//! room's other hosts.
//!
//! [`LinkRequest::Change`]: switchboard_core::cascade::LinkRequest::Change

use std::sync::Arc;

use switchboard_core::cascade::ParticipantChange;
use switchboard_core::directory::DirectoryError;
use switchboard_core::event::LeaveReason;
use switchboard_core::room::ParticipantInfo;

use crate::room::live::{MutedBy, Room};
use crate::room::participant::Participant;

/// Applies `change` to `participant`, connected to this node's `room`; the
/// participant as it is after.
pub(super) async fn apply(
    room: &Room,
    participant: &Arc<Participant>,
    change: ParticipantChange,
) -> Result<ParticipantInfo, DirectoryError> {
    match change {
        ParticipantChange::Remove => room.end(participant, LeaveReason::Removed).await,
        ParticipantChange::MuteTrack { track, muted } => {
            if room
                .set_track_muted(participant, track, muted, MutedBy::Server)
                .is_err()
            {
                return Err(DirectoryError::NotFound(format!(
                    "participant `{}` publishes no track {track}",
                    participant.identity
                )));
            }
        }
        ParticipantChange::Update { update } => {
            room.update_participant(
                participant,
                update.name,
                update.metadata,
                update.permissions,
            )
            .await
        }
    }
    Ok(participant.info())
}
