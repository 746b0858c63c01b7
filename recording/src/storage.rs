//! Where recordings' files are kept: a local directory, one folder per
//! project and recording (`ROOT/pr_.../rec_.../FILE`).

use std::path::{Path, PathBuf};

use switchboard_core::{ProjectId, RecordingId};

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
}

/// The recordings' file store.
#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
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
        Self { root }
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
        format!("file://{}/", self.dir(project, recording).display())
    }

    /// Removes a recording's files; a recording with none is fine.
    pub async fn remove(
        &self,
        project: ProjectId,
        recording: RecordingId,
    ) -> Result<(), StorageError> {
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
