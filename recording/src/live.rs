//! Track files uploaded to the bucket while they are written, so a node lost
//! mid-recording loses only the last few seconds of it.
//!
//! Each file is one S3 multipart upload cut at fixed boundaries: part *i*
//! holds bytes `i * PART_BYTES` up to the next boundary. Every
//! [`Storage::live_upload_every`] the node sends the parts that changed (the
//! last, growing one, and any earlier one the muxer went back to patch), each
//! replacing what the bucket held under its number, and saves the parts'
//! ETags with the recording. S3 wants every part but the last to be at least
//! 5 MiB, which the fixed layout gives at every moment, so the upload can be
//! completed at any moment: by the node once the file is done
//! ([`LiveUpload::complete`]), or, when the node was lost, by
//! [`complete_abandoned`] on whichever server finds the recording ended with
//! uploads pending.
//!
//! The price is sending the growing last part again each time: half a part
//! (2.5 MiB) per track per interval on average.

use std::collections::HashMap;
use std::io::SeekFrom;
use std::path::PathBuf;

use object_store::multipart::{MultipartStore, PartId};
use object_store::ObjectStore;
use switchboard_core::recording::{FileUpload, RecordingStatus, UploadedPart};
use switchboard_core::{ProjectId, RecordingId};
use switchboard_store::{Store, StoreError};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::storage::{Remote, Storage, StorageError, PART_BYTES};

const PART: u64 = PART_BYTES as u64;

/// One file's upload, in progress while the file is written.
#[derive(Debug)]
pub struct LiveUpload {
    remote: Remote,
    key: object_store::path::Path,
    path: PathBuf,
    state: FileUpload,
}

impl Storage {
    /// Starts uploading file `name` of a recording while it is written;
    /// `None` without a bucket or with live uploads turned off.
    pub async fn begin_live(
        &self,
        project: ProjectId,
        recording: RecordingId,
        name: &str,
    ) -> Result<Option<LiveUpload>, StorageError> {
        let Some(remote) = self.remote().filter(|_| self.live_upload_every().is_some()) else {
            return Ok(None);
        };
        let path = self.path(project, recording, name)?;
        let key = Self::key(remote, project, recording, name);
        let upload_id = remote
            .s3
            .create_multipart(&key)
            .await
            .map_err(Self::remote_error(remote))?;
        Ok(Some(LiveUpload {
            remote: remote.clone(),
            key,
            path,
            state: FileUpload {
                name: name.to_owned(),
                upload_id,
                parts: Vec::new(),
            },
        }))
    }

    /// Completes an upload a lost node left open, so what it sent becomes the
    /// file in the bucket; returns the file's size there (`None` if there is
    /// no file: the upload was gone). An upload the bucket no longer knows
    /// (completed before, or expired) counts as done.
    ///
    /// The node may have died after the bucket took a new copy of the last
    /// part but before it saved that copy's ETag: the bucket then refuses
    /// the parts as saved, and the upload is completed without its last part
    /// (losing at most one part's worth of the end, not the whole file).
    pub async fn complete_upload(
        &self,
        project: ProjectId,
        recording: RecordingId,
        upload: &FileUpload,
    ) -> Result<Option<u64>, StorageError> {
        let Some(remote) = self.remote() else {
            return Ok(None);
        };
        let key = Self::key(remote, project, recording, &upload.name);
        let gone = |e: &StorageError| {
            matches!(
                e,
                StorageError::Remote {
                    source: object_store::Error::NotFound { .. },
                    ..
                }
            )
        };
        let mut result = complete(remote, &key, upload).await;
        if let Err(e) = &result {
            if !gone(e) && upload.parts.len() > 1 {
                tracing::warn!(key = %key, error = %e, "the bucket refused the parts as saved; completing without the last one");
                let mut shorter = upload.clone();
                shorter.parts.pop();
                result = complete(remote, &key, &shorter).await;
            }
        }
        match result {
            Err(e) if gone(&e) => {}
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        // The size the bucket holds, which is what was listed as sent unless
        // a part's copy was cut off when the node died.
        match remote.s3.head(&key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(Storage::remote_error(remote)(source)),
        }
    }
}

async fn complete(
    remote: &Remote,
    key: &object_store::path::Path,
    upload: &FileUpload,
) -> Result<(), StorageError> {
    let parts = upload
        .parts
        .iter()
        .map(|p| PartId {
            content_id: p.etag.clone(),
        })
        .collect();
    remote
        .s3
        .complete_multipart(key, &upload.upload_id, parts)
        .await
        .map_err(Storage::remote_error(remote))?;
    Ok(())
}

impl LiveUpload {
    /// What has been sent, to save with the recording.
    pub fn state(&self) -> &FileUpload {
        &self.state
    }

    /// Sends what changed in the file: the parts from the one holding byte
    /// `changed_from` (the lowest offset written since the last call) up to
    /// `len`, the file's size now.
    pub async fn sync(&mut self, changed_from: u64, len: u64) -> Result<(), StorageError> {
        // Bytes past what was sent are new, whatever was rewritten.
        let from = changed_from.min(self.state.bytes());
        if from >= len {
            return Ok(());
        }
        let io = |source| StorageError::Io {
            path: self.path.clone(),
            source,
        };
        let mut file = tokio::fs::File::open(&self.path).await.map_err(io)?;
        let (first, last) = ((from / PART) as usize, ((len - 1) / PART) as usize);
        for idx in first..=last {
            let start = idx as u64 * PART;
            let end = (start + PART).min(len);
            file.seek(SeekFrom::Start(start)).await.map_err(io)?;
            let mut buf = vec![0; (end - start) as usize];
            file.read_exact(&mut buf).await.map_err(io)?;
            let part = self
                .remote
                .s3
                .put_part(&self.key, &self.state.upload_id, idx, buf.into())
                .await
                .map_err(Storage::remote_error(&self.remote))?;
            let sent = UploadedPart {
                etag: part.content_id,
                bytes: end - start,
            };
            match self.state.parts.get_mut(idx) {
                Some(p) => *p = sent,
                None => self.state.parts.push(sent),
            }
        }
        Ok(())
    }

    /// Completes the upload (the bucket now holds the file as last sent) and
    /// removes the local copy.
    pub async fn complete(self) -> Result<(), StorageError> {
        complete(&self.remote, &self.key, &self.state).await?;
        tokio::fs::remove_file(&self.path)
            .await
            .map_err(|source| StorageError::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// Gives the upload up: the bucket drops its parts.
    pub async fn abort(self) {
        if let Err(e) = self
            .remote
            .s3
            .abort_multipart(&self.key, &self.state.upload_id)
            .await
        {
            tracing::warn!(key = %self.key, error = %e, "cannot abort a live upload; the bucket keeps its parts until it expires them");
        }
    }
}

/// Times the janitor tries a recording's uploads before giving up on them
/// (a part's ETag the lost node never saved makes its upload impossible to complete).
pub const MAX_ATTEMPTS: u32 = 10;

/// Completes the uploads of ended recordings whose node was lost before it
/// could (see the module docs), and lists each file at the size the bucket
/// holds. Returns how many recordings were settled. One the bucket refuses
/// is tried again on the next call, counted in `attempts`; after
/// [`MAX_ATTEMPTS`] its files that did not complete are listed with the
/// reason and its uploads are forgotten.
pub async fn complete_abandoned(
    store: &Store,
    storage: &Storage,
    attempts: &mut HashMap<RecordingId, u32>,
) -> Result<usize, StoreError> {
    if !storage.is_remote() {
        return Ok(0);
    }
    let mut settled = 0;
    for (project, mut rec, uploads) in store.recordings().abandoned_uploads(50).await? {
        if rec.status == RecordingStatus::Finished {
            // Its node completed them and then failed to say so: nothing to do.
            store.recordings().clear_uploads(rec.id).await?;
            continue;
        }
        let tries = attempts.entry(rec.id).or_insert(0);
        *tries += 1;
        let last_try = *tries >= MAX_ATTEMPTS;
        let mut done = true;
        for upload in &uploads {
            let listed = rec.files.iter_mut().find(|f| f.name == upload.name);
            match storage.complete_upload(project, rec.id, upload).await {
                Ok(size) => {
                    if let Some(f) = listed {
                        match size {
                            Some(size) => f.size_bytes = size,
                            None => {
                                f.error = Some(
                                    "its node was lost and the bucket no longer has its upload"
                                        .into(),
                                );
                            }
                        }
                    }
                }
                Err(e) if last_try => {
                    tracing::error!(recording = %rec.id, file = %upload.name, error = %e, "giving up on a lost node's upload");
                    if let Some(f) = listed {
                        f.error = Some(format!(
                            "its node was lost and the bucket would not complete its upload: {e}"
                        ));
                    }
                }
                Err(e) => {
                    tracing::warn!(recording = %rec.id, file = %upload.name, error = %e, "cannot complete a lost node's upload; will try again");
                    done = false;
                }
            }
        }
        if done {
            store
                .recordings()
                .uploads_completed(rec.id, &rec.files)
                .await?;
            attempts.remove(&rec.id);
            tracing::info!(recording = %rec.id, files = uploads.len(), "settled a lost node's uploads");
            settled += 1;
        }
    }
    Ok(settled)
}

/// Runs [`complete_abandoned`] every `every` for as long as the server runs.
pub fn start_janitor(
    store: Store,
    storage: Storage,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut attempts = HashMap::new();
        loop {
            if let Err(e) = complete_abandoned(&store, &storage, &mut attempts).await {
                tracing::warn!(error = %e, "cannot look for a lost node's uploads; will try again");
            }
            tokio::time::sleep(every).await;
        }
    })
}
