//! A recording's file read back over HTTP, for the REST API and the
//! dashboard alike: from the media node's disk (with range requests) while
//! it is there, else a redirect to the bucket with a presigned URL (the
//! bucket honours ranges itself).

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request};
use axum::response::{IntoResponse, Redirect, Response};
use switchboard_core::recording::{Recording, RecordingStatus};
use switchboard_core::ProjectId;
use tower::ServiceExt;

use crate::{Storage, StorageError};

/// Why a file cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The recording lists no file of that name.
    #[error("recording `{recording}` has no file `{name}`; its files are listed in its `files`")]
    NotListed {
        /// The recording.
        recording: String,
        /// The name asked for.
        name: String,
    },
    /// The name cannot be a file of a recording.
    #[error(transparent)]
    BadName(StorageError),
    /// The file is neither on this node nor in a bucket.
    #[error("file `{name}` of recording `{recording}` is no longer stored")]
    Gone {
        /// The recording.
        recording: String,
        /// The file.
        name: String,
    },
    /// The bucket could not presign a URL.
    #[error(transparent)]
    Storage(StorageError),
    /// The local file could not be read.
    #[error("cannot read the file: {0}")]
    Io(String),
}

/// Serves file `name` of `rec` (of `project`) for `request`; a bucket's URL lives `ttl`.
pub async fn file(
    storage: &Storage,
    project: ProjectId,
    rec: &Recording,
    name: &str,
    ttl: Duration,
    request: Request<Body>,
) -> Result<Response, ServeError> {
    let listed =
        rec.files
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| ServeError::NotListed {
                recording: rec.id.to_string(),
                name: name.to_owned(),
            })?;
    let path = storage
        .path(project, rec.id, name)
        .map_err(ServeError::BadName)?;
    if !path.exists() {
        return match storage
            .presigned_url(project, rec.id, name, ttl)
            .await
            .map_err(ServeError::Storage)?
        {
            Some(url) => Ok(Redirect::temporary(&url).into_response()),
            None => Err(ServeError::Gone {
                recording: rec.id.to_string(),
                name: name.to_owned(),
            }),
        };
    }
    let mut response = tower_http::services::ServeFile::new(&path)
        .oneshot(request)
        .await
        .map_err(|e| ServeError::Io(e.to_string()))?
        .into_response();
    // Audio-only WebM is `audio/webm`, which no extension tells.
    if response.status().is_success() {
        if let Ok(v) = HeaderValue::from_str(&listed.content_type) {
            response.headers_mut().insert(header::CONTENT_TYPE, v);
        }
    }
    if rec.status == RecordingStatus::Active {
        // Still growing: clients must not cache it.
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}
