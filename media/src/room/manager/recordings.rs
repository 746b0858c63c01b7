//! Recordings of this node's rooms: started when a room goes live, claimed
//! for this node, and the [`RecordingDirectory`] the REST API asks.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use switchboard_core::directory::{DirectoryError, RecordingDirectory};
use switchboard_core::recording::{Recording, RecordingSpec, RecordingStatus};
use switchboard_core::{ProjectId, RecordingId, RoomName};
use switchboard_recording::Storage;
use switchboard_store::StoreError;

use super::RoomManager;
use crate::recording::Recorder;
use crate::room::live::Room;

impl RoomManager {
    /// Waits up to `limit` for the recordings started here to end (after the
    /// rooms closed, on shutdown); returns how many are still going.
    pub async fn wait_for_recordings(&self, limit: Duration) -> usize {
        let pending: Vec<_> = self.recordings_done.lock().drain(..).collect();
        let all = futures::future::join_all(
            pending
                .into_iter()
                .map(|mut done| async move { done.wait_for(|d| *d).await.is_ok() }),
        );
        match tokio::time::timeout(limit, all).await {
            Ok(ended) => ended.iter().filter(|ok| !**ok).count(),
            Err(_) => self.recordings_done.lock().len().max(1),
        }
    }

    /// Writes recordings to `storage` from now on (set once at start).
    pub fn set_recording_storage(&self, storage: Storage) {
        *self.recordings.write() = Some(storage);
    }

    /// Starts the recordings waiting for `room` (and, for a room created with
    /// `record: true`, its automatic one), claiming each for this node.
    pub(super) async fn start_recordings(
        &self,
        room: &Arc<Room>,
        record: bool,
    ) -> Result<(), StoreError> {
        let recordings = self.store.recordings();
        let reference = room.reference();
        if record && !recordings.any_for_room(room.project, &reference).await? {
            recordings
                .create(
                    room.project,
                    reference.clone(),
                    RecordingSpec::all_tracks(),
                    chrono::Utc::now(),
                )
                .await?;
        }
        for recording in recordings.unclaimed(room.project, &reference).await? {
            self.start_recording(room, &recording).await?;
        }
        Ok(())
    }

    /// Claims `recording` for this node and attaches its recorder to `room`.
    async fn start_recording(
        &self,
        room: &Arc<Room>,
        recording: &Recording,
    ) -> Result<(), StoreError> {
        if !self
            .store
            .recordings()
            .claim(recording.id, self.node)
            .await?
        {
            return Ok(()); // Another node (or an earlier call) has it.
        }
        // Stopped while this node was claiming it: nothing to record.
        let current = self
            .store
            .recordings()
            .get(room.project, recording.id)
            .await?;
        if current.is_none_or(|r| r.status != RecordingStatus::Starting) {
            self.store
                .recordings()
                .fail(
                    recording.id,
                    "stopped before any track was recorded".into(),
                    None,
                    None,
                    chrono::Utc::now(),
                )
                .await?;
            return Ok(());
        }
        let storage = self.recordings.read().clone();
        let started = match storage {
            None => Err("this media node has no recording storage configured".to_string()),
            Some(storage) => Recorder::start(self.store.clone(), storage, room.project, recording),
        };
        match started {
            Ok(recorder) => {
                {
                    let mut done = self.recordings_done.lock();
                    done.retain(|d| !*d.borrow());
                    done.push(recorder.done());
                }
                if room.attach_recorder(recorder.clone()) {
                    tracing::info!(room = %room.name, recording = %recording.id, "recording");
                } else {
                    // The room closed meanwhile: the recorder ends with nothing recorded.
                    recorder.stop();
                }
            }
            Err(e) => {
                tracing::error!(room = %room.name, recording = %recording.id, error = %e, "recording failed to start");
                self.store
                    .recordings()
                    .fail(recording.id, e, None, None, chrono::Utc::now())
                    .await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl RecordingDirectory for RoomManager {
    async fn start(
        &self,
        project: ProjectId,
        room: &RoomName,
        recording: RecordingId,
    ) -> Result<(), DirectoryError> {
        let Some(live) = self.live(project, room) else {
            return Ok(()); // Started when the room goes live.
        };
        let unavailable = |e: StoreError| DirectoryError::Unavailable(e.to_string());
        let found = self
            .store
            .recordings()
            .get(project, recording)
            .await
            .map_err(unavailable)?;
        if let Some(rec) = found.filter(|r| r.room.sid == live.sid) {
            self.start_recording(&live, &rec)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn stop(
        &self,
        project: ProjectId,
        recording: RecordingId,
    ) -> Result<bool, DirectoryError> {
        Ok(self
            .rooms()
            .iter()
            .filter(|r| r.project == project)
            .any(|r| r.stop_recorder(recording)))
    }
}
