//! Starting and stopping recordings, as the REST API and functions' actions
//! both do: the store holds the recording, the media tier writes it.

use chrono::{DateTime, Utc};
use switchboard_core::directory::{DirectoryError, RecordingDirectory};
use switchboard_core::event::RoomRef;
use switchboard_core::recording::{Recording, RecordingSpec};
use switchboard_core::{ProjectId, RecordingId};
use switchboard_store::{Store, StoreError};

/// Why a recording could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The media tier did not answer.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
}

/// Records `spec` of `room` and hands it to the media node hosting the room
/// (or to the room when it goes live). Returns the recording as it stands.
pub async fn start(
    store: &Store,
    recorders: &dyn RecordingDirectory,
    project: ProjectId,
    room: RoomRef,
    spec: RecordingSpec,
    now: DateTime<Utc>,
) -> Result<Recording, ControlError> {
    let name = room.name.clone();
    let rec = store.recordings().create(project, room, spec, now).await?;
    recorders.start(project, &name, rec.id).await?;
    Ok(store
        .recordings()
        .get(project, rec.id)
        .await?
        .unwrap_or(rec))
}

/// Stops recording `id`: the node writing it closes its files and ends it;
/// one no node has taken up (its room never went live) fails at once. A
/// node that took it up but is not reachable here (its room just closed and
/// it is finishing the files) ends it itself. An ended recording is left as it is.
pub async fn stop(
    store: &Store,
    recorders: &dyn RecordingDirectory,
    project: ProjectId,
    id: RecordingId,
    now: DateTime<Utc>,
) -> Result<(), ControlError> {
    if !store.recordings().stopping(project, id).await? {
        return Ok(());
    }
    if !recorders.stop(project, id).await? {
        store
            .recordings()
            .fail_unclaimed(id, "stopped before any track was recorded".into(), now)
            .await?;
    }
    Ok(())
}
