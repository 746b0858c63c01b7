//! One recording's track files uploaded to the bucket while they are written
//! (see `switchboard_recording::live`), driven by the recording's supervisor:
//! a file joins when the writer thread creates it, what changed is sent every
//! interval and the uploads' state saved with the recording, and everything
//! is completed once the files are closed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_core::{ProjectId, RecordingId};
use switchboard_recording::live::LiveUpload;
use switchboard_recording::{Storage, StorageError};
use switchboard_store::Store;

use super::container::Written;

/// The live uploads of one recording.
pub struct LiveUploads {
    every: Option<Duration>,
    files: Vec<Live>,
    last_sync: Instant,
}

/// One file's upload and what its writer has written.
struct Live {
    upload: LiveUpload,
    written: Arc<Written>,
    /// Syncs that failed in a row (only the first is logged as a warning).
    failures: u32,
}

impl Live {
    async fn sync(&mut self) -> Result<(), StorageError> {
        let from = self.written.take_changed_from();
        let result = self.upload.sync(from, self.written.size()).await;
        if result.is_err() {
            self.written.restore_changed_from(from);
        }
        result
    }
}

impl LiveUploads {
    /// None yet; `storage` says whether and how often files are uploaded live.
    pub fn new(storage: &Storage) -> Self {
        Self {
            every: storage.live_upload_every(),
            files: Vec::new(),
            last_sync: Instant::now(),
        }
    }

    /// Starts uploading file `name` as it is written; one that cannot start
    /// is uploaded once complete instead.
    pub async fn open(
        &mut self,
        storage: &Storage,
        project: ProjectId,
        id: RecordingId,
        name: &str,
        written: Arc<Written>,
    ) {
        if self.every.is_none() {
            return;
        }
        match storage.begin_live(project, id, name).await {
            Ok(Some(upload)) => self.files.push(Live {
                upload,
                written,
                failures: 0,
            }),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(recording = %id, file = name, error = %e, "cannot start a live upload; the file is uploaded once complete");
            }
        }
    }

    /// Sends what changed if an interval has passed, and saves where the uploads stand.
    pub async fn tick(&mut self, store: &Store, id: RecordingId) {
        let Some(every) = self.every else { return };
        if self.files.is_empty() || self.last_sync.elapsed() < every {
            return;
        }
        self.last_sync = Instant::now();
        for i in 0..self.files.len() {
            let result = self.files[i].sync().await;
            // Saved after each file, so a node lost mid-tick leaves the ETags of what it sent.
            self.save(store, id).await;
            let live = &mut self.files[i];
            match result {
                Ok(()) => live.failures = 0,
                Err(e) => {
                    // The next interval sends it again; the bucket keeps what it had.
                    live.failures += 1;
                    let file = &live.upload.state().name;
                    if live.failures == 1 {
                        tracing::warn!(recording = %id, file, error = %e, "live upload failed; will retry");
                    } else {
                        tracing::debug!(recording = %id, file, failures = live.failures, error = %e, "live upload failed again");
                    }
                }
            }
        }
    }

    async fn save(&self, store: &Store, id: RecordingId) {
        let states: Vec<_> = self
            .files
            .iter()
            .map(|l| l.upload.state().clone())
            .collect();
        if let Err(e) = store.recordings().save_uploads(id, &states).await {
            tracing::warn!(recording = %id, error = %e, "cannot save the live uploads' state");
        }
    }

    /// Sends the rest of every (closed) file and completes the uploads,
    /// removing the local copies; returns the names of the files uploaded.
    /// A file whose upload fails here (a store that cannot take a part twice,
    /// say) has its upload given up, and is left to be uploaded whole.
    pub async fn complete(self, store: &Store, id: RecordingId) -> Vec<String> {
        if self.files.is_empty() {
            return Vec::new();
        }
        let mut names = Vec::new();
        for mut live in self.files {
            let name = live.upload.state().name.clone();
            let done = match live.sync().await {
                Ok(()) => live.upload.complete().await,
                Err(e) => {
                    live.upload.abort().await;
                    Err(e)
                }
            };
            match done {
                Ok(()) => names.push(name),
                Err(e) => {
                    tracing::warn!(recording = %id, file = name, error = %e, "live upload failed; uploading the file whole");
                }
            }
        }
        if let Err(e) = store.recordings().clear_uploads(id).await {
            // Left set, the uploads are completed again by the janitor, which the bucket shrugs off.
            tracing::warn!(recording = %id, error = %e, "cannot clear the live uploads' state");
        }
        names
    }
}
