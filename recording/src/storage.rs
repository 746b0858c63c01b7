//! Where recordings' files are kept: a local directory, one folder per
//! project and recording (`ROOT/pr_.../rec_.../FILE`), where the media node
//! writes them; and, when configured, an S3-compatible bucket they are
//! uploaded to (multipart, through the `object_store` crate) under
//! `PREFIX/pr_.../rec_.../FILE`: track files while they are written
//! ([`crate::live`]), the rest once complete.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::signer::Signer;
use object_store::{ObjectStore, WriteMultipart};
use serde::Deserialize;
use switchboard_core::{ProjectId, RecordingId};
use tokio::io::AsyncReadExt;

/// Size of each part of a multipart upload (S3's smallest, but for the last).
pub const PART_BYTES: usize = 5 * 1024 * 1024;

/// An S3-compatible bucket for recordings (`[recordings.s3]` in the config file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// A key prefix, such as `switchboard/recordings`; none by default.
    #[serde(default)]
    pub prefix: String,
    /// The endpoint of a store that is not AWS, such as `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    /// The region (default `us-east-1`).
    pub region: Option<String>,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// Allow a plain-`http` endpoint (default false).
    #[serde(default)]
    pub allow_http: bool,
    /// How often track files are uploaded while they are written, in
    /// seconds: at most this much is lost with a node (default 5; 0 uploads
    /// them only once complete).
    #[serde(default = "default_live_upload_seconds")]
    pub live_upload_seconds: u64,
}

fn default_live_upload_seconds() -> u64 {
    5
}

#[derive(Debug, Clone)]
pub(crate) struct Remote {
    pub(crate) s3: Arc<AmazonS3>,
    pub(crate) bucket: String,
    prefix: String,
    live_every: Option<Duration>,
}

/// Longest file name accepted.
const MAX_NAME: usize = 128;

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The name cannot be a recording's file.
    #[error("`{0}` is not a recording file name: use 1 to 128 characters of A-Z, a-z, 0-9, `.`, `_` and `-`, not starting with `.`")]
    BadName(String),
    /// The file system refused.
    #[error("recording storage at {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The bucket refused or could not be reached.
    #[error("recording bucket `{bucket}`: {source}")]
    Remote {
        /// The bucket.
        bucket: String,
        /// The cause.
        source: object_store::Error,
    },
}

/// The recordings' file store.
#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
    remote: Option<Remote>,
}

/// Whether `name` may name a file of a recording (no separators, no `..`).
pub fn check_name(name: &str) -> Result<(), StorageError> {
    let ok = (1..=MAX_NAME).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(StorageError::BadName(name.chars().take(MAX_NAME).collect()))
    }
}

impl Storage {
    /// Files under the local directory `root` (made absolute, created when first written).
    pub fn local(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let root = std::path::absolute(&root).unwrap_or(root);
        Self { root, remote: None }
    }

    /// Files written under `root`, then uploaded to the bucket `config` names.
    pub fn with_s3(root: impl Into<PathBuf>, config: &S3Config) -> Result<Self, StorageError> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(config.region.as_deref().unwrap_or("us-east-1"))
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(&config.secret_access_key)
            .with_allow_http(config.allow_http);
        if let Some(endpoint) = &config.endpoint {
            // Stores other than AWS rarely have a DNS name per bucket.
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        let s3 = builder.build().map_err(|source| StorageError::Remote {
            bucket: config.bucket.clone(),
            source,
        })?;
        let mut storage = Self::local(root);
        storage.remote = Some(Remote {
            s3: Arc::new(s3),
            bucket: config.bucket.clone(),
            prefix: config.prefix.trim_matches('/').to_owned(),
            live_every: (config.live_upload_seconds > 0)
                .then(|| Duration::from_secs(config.live_upload_seconds)),
        });
        Ok(storage)
    }

    /// Whether finished files go to a bucket.
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// How often track files are uploaded while written; `None` if they are not.
    pub fn live_upload_every(&self) -> Option<Duration> {
        self.remote.as_ref()?.live_every
    }

    pub(crate) fn remote(&self) -> Option<&Remote> {
        self.remote.as_ref()
    }

    pub(crate) fn key(
        remote: &Remote,
        project: ProjectId,
        recording: RecordingId,
        name: &str,
    ) -> object_store::path::Path {
        let key = format!("{project}/{recording}/{name}");
        if remote.prefix.is_empty() {
            object_store::path::Path::from(key)
        } else {
            object_store::path::Path::from(format!("{}/{key}", remote.prefix))
        }
    }

    pub(crate) fn remote_error(
        remote: &Remote,
    ) -> impl Fn(object_store::Error) -> StorageError + '_ {
        move |source| StorageError::Remote {
            bucket: remote.bucket.clone(),
            source,
        }
    }

    /// Uploads the named files of a recording to the bucket (multipart, in
    /// [`PART_BYTES`] parts), removing each local copy once its upload is
    /// complete. Does nothing without a bucket.
    pub async fn upload(
        &self,
        project: ProjectId,
        recording: RecordingId,
        names: &[&str],
    ) -> Result<(), StorageError> {
        let Some(remote) = &self.remote else {
            return Ok(());
        };
        for name in names {
            let path = self.path(project, recording, name)?;
            let io = |source| StorageError::Io {
                path: path.clone(),
                source,
            };
            let mut file = tokio::fs::File::open(&path).await.map_err(io)?;
            let upload = remote
                .s3
                .put_multipart(&Self::key(remote, project, recording, name))
                .await
                .map_err(Self::remote_error(remote))?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = match file.read(&mut buf).await {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = writer.abort().await;
                        return Err(io(e));
                    }
                };
                if n == 0 {
                    break;
                }
                if let Err(e) = writer.wait_for_capacity(4).await {
                    // Parts left behind would be kept (and billed) by the bucket.
                    let _ = writer.abort().await;
                    return Err(Self::remote_error(remote)(e));
                }
                writer.write(&buf[..n]);
            }
            // A failed completion aborts the upload itself.
            writer.finish().await.map_err(Self::remote_error(remote))?;
            tokio::fs::remove_file(&path).await.map_err(io)?;
        }
        Ok(())
    }

    /// A URL that downloads a file from the bucket for `ttl` without
    /// credentials; `None` without a bucket.
    pub async fn presigned_url(
        &self,
        project: ProjectId,
        recording: RecordingId,
        name: &str,
        ttl: Duration,
    ) -> Result<Option<String>, StorageError> {
        let Some(remote) = &self.remote else {
            return Ok(None);
        };
        check_name(name)?;
        let url = remote
            .s3
            .signed_url(
                http::Method::GET,
                &Self::key(remote, project, recording, name),
                ttl,
            )
            .await
            .map_err(Self::remote_error(remote))?;
        Ok(Some(url.to_string()))
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of one recording.
    pub fn dir(&self, project: ProjectId, recording: RecordingId) -> PathBuf {
        self.root
            .join(project.to_string())
            .join(recording.to_string())
    }

    /// Creates the directory of one recording and returns it.
    pub fn create_dir(
        &self,
        project: ProjectId,
        recording: RecordingId,
    ) -> Result<PathBuf, StorageError> {
        let dir = self.dir(project, recording);
        std::fs::create_dir_all(&dir).map_err(|source| StorageError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(dir)
    }

    /// The path of file `name` of a recording.
    pub fn path(
        &self,
        project: ProjectId,
        recording: RecordingId,
        name: &str,
    ) -> Result<PathBuf, StorageError> {
        check_name(name)?;
        Ok(self.dir(project, recording).join(name))
    }

    /// Where a recording's files are, as a URL for events and the API.
    pub fn location(&self, project: ProjectId, recording: RecordingId) -> String {
        match &self.remote {
            Some(remote) => {
                let key = Self::key(remote, project, recording, "x");
                let dir = key.as_ref().trim_end_matches('x');
                format!("s3://{}/{dir}", remote.bucket)
            }
            None => format!("file://{}/", self.dir(project, recording).display()),
        }
    }

    /// Removes a recording's files, here and in the bucket; a recording with none is fine.
    pub async fn remove(
        &self,
        project: ProjectId,
        recording: RecordingId,
    ) -> Result<(), StorageError> {
        if let Some(remote) = &self.remote {
            let key = Self::key(remote, project, recording, "x");
            let dir = object_store::path::Path::from(key.as_ref().trim_end_matches("/x"));
            let objects: Vec<_> = remote
                .s3
                .list(Some(&dir))
                .try_collect()
                .await
                .map_err(Self::remote_error(remote))?;
            for object in objects {
                match remote.s3.delete(&object.location).await {
                    Err(object_store::Error::NotFound { .. }) | Ok(()) => {}
                    Err(e) => return Err(Self::remote_error(remote)(e)),
                }
            }
        }
        let dir = self.dir(project, recording);
        match tokio::fs::remove_dir_all(&dir).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StorageError::Io {
                path: dir,
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_cannot_leave_their_recording() {
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            ".hidden",
            "a\\b",
            "é.webm",
            &"x".repeat(129),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in [
            "manifest.json",
            "tr_01JD0000000000000000000000.webm",
            "room-1_a.mp4",
        ] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }

    #[tokio::test]
    async fn recordings_live_in_their_own_directories_and_are_removed_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let s = Storage::local(tmp.path());
        let (p, r) = (ProjectId::new(), RecordingId::new());
        let dir = s.create_dir(p, r).unwrap();
        std::fs::write(s.path(p, r, "a.webm").unwrap(), b"x").unwrap();
        assert!(dir.starts_with(tmp.path()) && dir.ends_with(r.to_string()));
        assert!(s.location(p, r).starts_with("file:///"));
        s.remove(p, r).await.unwrap();
        assert!(!dir.exists());
        s.remove(p, r).await.unwrap();
    }
}
