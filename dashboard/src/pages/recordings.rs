//! A project's recordings: the newest ones with their status, each one's
//! files to play or download, and deleting one that has ended.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Form, Path, Request, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use switchboard_core::recording::Recording;
use switchboard_core::RecordingId;
use switchboard_recording::serve::ServeError;
use switchboard_store::projects::Project;
use switchboard_store::StoreError;

use super::{csrf_field, human_duration, CsrfOnly};
use crate::error::PageError;
use crate::layout::{self, Nav, Section};
use crate::session::SignedIn;
use crate::Dashboard;

/// Recordings listed.
const RECENT: u32 = 100;
/// How long a bucket's presigned URL behind a dashboard download lives.
const BUCKET_URL_TTL: Duration = Duration::from_secs(300);

fn recording_path(project: &Project, id: RecordingId) -> String {
    format!("{}/recordings/{id}", layout::project_path(project))
}

/// `GET /dashboard/projects/{project}/recordings`.
pub async fn list(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path(project): Path<String>,
) -> Result<Markup, PageError> {
    let project = d.member(&who, &project).await?;
    let recordings = d.store.recordings().recent(project.id, RECENT).await?;
    let nav = Nav::new(&who, &project, Section::Recordings);
    let body = html! {
        @if recordings.is_empty() { p { "No recording yet." } }
        div.table-wrap tabindex="0" {
            table {
                thead { tr {
                    th scope="col" { "Recording" } th scope="col" { "Room" } th scope="col" { "Mode" }
                    th scope="col" { "Status" } th scope="col" { "Length" } th scope="col" { "Started" }
                } }
                tbody {
                    @for r in &recordings {
                        tr {
                            td { a href=(recording_path(&project, r.id)) { (r.id) } }
                            td { (r.room.name) }
                            td { (r.spec.mode.as_str()) }
                            td { (status(r)) }
                            td { (human_duration((r.duration_ms / 1000) as i64)) }
                            td { (r.created_at.format("%Y-%m-%d %H:%M UTC")) }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page("Recordings", &nav, body))
}

fn status(r: &Recording) -> Markup {
    html! {
        @if r.status.as_str() == "failed" { strong.error-text { "failed" } } @else { (r.status.as_str()) }
        @if let Some(p) = r.progress { " (" (format!("{:.0}", p * 100.0)) "%)" }
    }
}

async fn find(d: &Dashboard, project: &Project, id: &str) -> Result<Recording, PageError> {
    let id: RecordingId = id.parse().map_err(|_| PageError::NotFound)?;
    d.store
        .recordings()
        .get(project.id, id)
        .await?
        .ok_or(PageError::NotFound)
}

/// `GET /dashboard/projects/{project}/recordings/{id}`.
pub async fn page(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path((project, id)): Path<(String, String)>,
) -> Result<Markup, PageError> {
    let project = d.member(&who, &project).await?;
    let rec = find(&d, &project, &id).await?;
    let base = recording_path(&project, rec.id);
    let nav = Nav::new(&who, &project, Section::Recordings);
    let body = html! {
        p { "Room " strong { (rec.room.name) } ", " (rec.spec.mode.as_str()) " mode, " (status(&rec)) ", "
            (human_duration((rec.duration_ms / 1000) as i64)) "." }
        @if let Some(e) = &rec.error { p.error role="alert" { (e) } }
        h2 { "Files" }
        @if rec.files.is_empty() { p { "No file yet." } }
        div.table-wrap tabindex="0" {
            table {
                thead { tr {
                    th scope="col" { "File" } th scope="col" { "Whose" } th scope="col" { "Starts at" }
                    th scope="col" { "Length" } th scope="col" { "Size" } th scope="col" { "Play" }
                } }
                tbody {
                    @for f in &rec.files {
                        @let url = format!("{base}/files/{}", layout::segment(&f.name));
                        tr {
                            td { a href=(url) download=(f.name) { (f.name) } }
                            td { @if let Some(p) = &f.participant { (p.identity) } }
                            td { (format!("{:.1}", f.start_offset_ms as f64 / 1000.0)) " s" }
                            td { (format!("{:.1}", f.duration_ms as f64 / 1000.0)) " s" }
                            td { (f.size_bytes) " bytes" }
                            td {
                                @if f.content_type.starts_with("video/") {
                                    video controls preload="none" src=(url) aria-label={ "Play " (f.name) } {}
                                } @else if f.content_type.starts_with("audio/") {
                                    audio controls preload="none" src=(url) aria-label={ "Play " (f.name) } {}
                                }
                            }
                        }
                    }
                }
            }
        }
        @if rec.status.is_final() {
            h2 { "Delete" }
            p { "Removes the recording and its files." }
            form method="post" action={ (base) "/delete" } {
                (csrf_field(&who))
                button.danger type="submit" { "Delete recording" }
            }
        }
    };
    Ok(layout::page(&format!("Recording {}", rec.id), &nav, body))
}

/// `GET /dashboard/projects/{project}/recordings/{id}/files/{name}`.
pub async fn file(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path((project, id, name)): Path<(String, String, String)>,
    request: Request,
) -> Result<Response, PageError> {
    let project = d.member(&who, &project).await?;
    let rec = find(&d, &project, &id).await?;
    let storage = d.recording_storage.as_ref().ok_or(PageError::NotFound)?;
    let (parts, _) = request.into_parts();
    let request = axum::http::Request::from_parts(parts, Body::empty());
    switchboard_recording::serve::file(storage, project.id, &rec, &name, BUCKET_URL_TTL, request)
        .await
        .map_err(|e| match e {
            ServeError::NotListed { .. } | ServeError::BadName(_) | ServeError::Gone { .. } => {
                PageError::NotFound
            }
            ServeError::Storage(e) => {
                tracing::error!(error = %e, "cannot presign a recording file's URL");
                PageError::Refused("The recordings' bucket is not answering; try again.".into())
            }
            ServeError::Io(e) => PageError::Refused(format!("The file cannot be read: {e}")),
        })
}

/// `POST /dashboard/projects/{project}/recordings/{id}/delete`.
pub async fn delete(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path((project, id)): Path<(String, String)>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    let project = d.member(&who, &project).await?;
    who.check_csrf(&form.csrf)?;
    let rec = find(&d, &project, &id).await?;
    if !rec.status.is_final() {
        return Err(PageError::Refused(
            "This recording is still running: stop it and wait for it to finish before deleting it.".into(),
        ));
    }
    if let Some(why) = d.store.recordings().uploads_pending(rec.id).await? {
        return Err(PageError::Refused(why));
    }
    // Files first: if that fails, the recording is still there to delete again.
    if let Some(storage) = &d.recording_storage {
        storage.remove(project.id, rec.id).await.map_err(|e| {
            PageError::Refused(format!("The files could not be removed ({e}); try again."))
        })?;
    }
    match d.store.recordings().delete(project.id, rec.id).await {
        Ok(_) => {}
        Err(StoreError::Conflict(why)) => return Err(PageError::Refused(why)),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(project = %project.id, recording = %rec.id, user = %who.user.id, "recording deleted from the dashboard");
    Ok(Redirect::to(&format!("{}/recordings", layout::project_path(&project))).into_response())
}
