//! A project's live rooms: the list (refreshed within a second through a
//! server-sent event stream), each room's participants and tracks, and the
//! actions an owner takes on them: mute a track, remove a participant, end
//! the room.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Form, Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use futures::Stream;
use maud::{html, Markup};
use serde::Deserialize;
use switchboard_core::directory::DirectoryError;
use switchboard_core::event::RoomFinishReason;
use switchboard_core::room::Room;
use switchboard_core::{Identity, RoomName, TrackSid};
use switchboard_store::projects::Project;

use super::{csrf_field, human_duration, CsrfOnly};
use crate::error::PageError;
use crate::layout::{self, Nav, Section};
use crate::session::SignedIn;
use crate::Dashboard;

/// How often the live list looks for changes.
const REFRESH: Duration = Duration::from_secs(1);
/// Most rooms listed.
const MAX_ROOMS: u32 = 500;

/// The rows of the live rooms table.
fn rows(project: &Project, rooms: &[Room], now: chrono::DateTime<chrono::Utc>) -> Markup {
    let base = layout::project_path(project);
    html! {
        @if rooms.is_empty() {
            tr { td colspan="4" { "No room is live." } }
        }
        @for r in rooms {
            tr {
                td { a href={ (base) "/rooms/" (layout::segment(r.name.as_str())) } { (r.name) } }
                td { (r.num_participants) }
                td { (human_duration((now - r.created_at).num_seconds())) }
                td { (r.region.as_deref().unwrap_or("any")) }
            }
        }
    }
}

/// The project's live rooms, each with its participants counted on the media tier.
pub async fn live_rooms(d: &Dashboard, project: &Project) -> Result<Vec<Room>, PageError> {
    let mut rooms = d.store.rooms().list(project.id, None, MAX_ROOMS).await?;
    for room in &mut rooms {
        // A node that does not answer leaves its rooms at the count stored (none).
        if let Ok(p) = d.directory.list(project.id, &room.name).await {
            room.num_participants = p.len() as u32;
        }
    }
    Ok(rooms)
}

/// `GET /dashboard/projects/{project}/rooms`.
pub async fn list(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path(project): Path<String>,
) -> Result<Markup, PageError> {
    let project = d.member(&who, &project).await?;
    let rooms = live_rooms(&d, &project).await?;
    let base = layout::project_path(&project);
    let nav = Nav::new(&who, &project, Section::Rooms);
    let body = html! {
        p.muted { "Updates live." }
        div.table-wrap {
            table {
                thead { tr {
                    th scope="col" { "Room" } th scope="col" { "Participants" }
                    th scope="col" { "Live for" } th scope="col" { "Region" }
                } }
                tbody id="live-rooms" data-live={ (base) "/rooms/live" } {
                    (rows(&project, &rooms, d.clock.now()))
                }
            }
        }
    };
    Ok(layout::page("Rooms", &nav, body))
}

/// `GET /dashboard/projects/{project}/rooms/live`: the table's rows whenever they change.
pub async fn live(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path(project): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    let project = d.member(&who, &project).await?;
    let stream = futures::stream::unfold(
        (d, who, project, String::new()),
        |(d, who, project, last)| async move {
            loop {
                tokio::time::sleep(REFRESH).await;
                // Signing out, the session expiring or leaving the project ends the stream.
                let now = d.clock.now();
                let session = d.store.users().session(&who.token_hash, now).await;
                let member = d.store.users().is_member(who.user.id, project.id).await;
                if !matches!(session, Ok(Some(_))) || !member.unwrap_or(false) {
                    return None;
                }
                let Ok(rooms) = live_rooms(&d, &project).await else {
                    continue;
                };
                let html = rows(&project, &rooms, d.clock.now()).into_string();
                if html != last {
                    let event = Event::default().data(html.clone());
                    return Some((Ok(event), (d, who, project, html)));
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

fn room_name(name: &str) -> Result<RoomName, PageError> {
    RoomName::new(name).map_err(|_| PageError::NotFound)
}

fn identity(name: &str) -> Result<Identity, PageError> {
    Identity::new(name).map_err(|_| PageError::NotFound)
}

fn directory_error(e: DirectoryError) -> PageError {
    match e {
        DirectoryError::NotFound(_) => PageError::NotFound,
        DirectoryError::Unavailable(why) => PageError::Refused(format!(
            "The media node hosting this room is not answering ({why}); try again."
        )),
    }
}

/// `GET /dashboard/projects/{project}/rooms/{room}`.
pub async fn page(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path((project, room)): Path<(String, String)>,
) -> Result<Markup, PageError> {
    let project = d.member(&who, &project).await?;
    let name = room_name(&room)?;
    let room = d
        .store
        .rooms()
        .get(project.id, &name)
        .await?
        .ok_or(PageError::NotFound)?;
    let participants = d
        .directory
        .list(project.id, &name)
        .await
        .map_err(directory_error)?;
    let now = d.clock.now();
    let base = format!(
        "{}/rooms/{}",
        layout::project_path(&project),
        layout::segment(room.name.as_str())
    );
    let nav = Nav::new(&who, &project, Section::Rooms);
    let body = html! {
        p { "Live for " (human_duration((now - room.created_at).num_seconds()))
            ", region " (room.region.as_deref().unwrap_or("any"))
            @if room.record { ", recorded" } "." }
        h2 { "Participants (" (participants.len()) ")" }
        @if participants.is_empty() { p { "Nobody is connected." } }
        div.table-wrap {
            table {
                thead { tr {
                    th scope="col" { "Identity" } th scope="col" { "State" } th scope="col" { "Joined" }
                    th scope="col" { "Tracks" } th scope="col" { span.muted { "Actions" } }
                } }
                tbody {
                    @for p in &participants {
                        tr data-identity=(p.identity) {
                            td { (p.identity) @if !p.name.is_empty() { br; span.muted { (p.name) } } }
                            td { (format!("{:?}", p.state).to_lowercase()) }
                            td { (human_duration((now - p.joined_at).num_seconds())) " ago" }
                            td {
                                @if p.tracks.is_empty() { span.muted { "none" } }
                                ul {
                                    @for t in &p.tracks {
                                        li {
                                            (format!("{:?}", t.kind).to_lowercase()) " "
                                            (t.mime_type.as_deref().unwrap_or(""))
                                            @if t.muted { " (muted)" }
                                            " "
                                            form.inline method="post" action={ (base) "/participants/" (layout::segment(p.identity.as_str())) "/tracks/" (t.sid) "/mute" } {
                                                (csrf_field(&who))
                                                input type="hidden" name="muted" value=(if t.muted { "false" } else { "true" });
                                                button.quiet type="submit" aria-label={ (if t.muted { "Unmute " } else { "Mute " }) (p.identity) "'s " (format!("{:?}", t.kind).to_lowercase()) } {
                                                    (if t.muted { "Unmute" } else { "Mute" })
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                            td {
                                form.inline method="post" action={ (base) "/participants/" (layout::segment(p.identity.as_str())) "/remove" } {
                                    (csrf_field(&who))
                                    button.danger type="submit" aria-label={ "Remove " (p.identity) } { "Remove" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "End the room" }
        p { "Everyone is disconnected and the room closes." }
        form method="post" action={ (base) "/end" } {
            (csrf_field(&who))
            button.danger type="submit" { "End room" }
        }
    };
    Ok(layout::page(&format!("Room {}", room.name), &nav, body))
}

/// `POST .../rooms/{room}/participants/{identity}/remove`.
pub async fn remove(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path((project, room, who_id)): Path<(String, String, String)>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    let project = d.member(&who, &project).await?;
    who.check_csrf(&form.csrf)?;
    let (room, identity) = (room_name(&room)?, identity(&who_id)?);
    d.directory
        .remove(project.id, &room, &identity)
        .await
        .map_err(directory_error)?;
    tracing::info!(project = %project.id, room = %room, participant = %identity, user = %who.user.id, "participant removed from the dashboard");
    Ok(Redirect::to(&format!(
        "{}/rooms/{}",
        layout::project_path(&project),
        layout::segment(room.as_str())
    ))
    .into_response())
}

/// The mute form's fields.
#[derive(Debug, Deserialize)]
pub struct Mute {
    csrf: String,
    muted: bool,
}

/// `POST .../rooms/{room}/participants/{identity}/tracks/{track}/mute`.
pub async fn mute(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path((project, room, who_id, track)): Path<(String, String, String, String)>,
    Form(form): Form<Mute>,
) -> Result<Response, PageError> {
    let project = d.member(&who, &project).await?;
    who.check_csrf(&form.csrf)?;
    let (room, identity) = (room_name(&room)?, identity(&who_id)?);
    let track: TrackSid = track.parse().map_err(|_| PageError::NotFound)?;
    d.directory
        .mute_track(project.id, &room, &identity, track, form.muted)
        .await
        .map_err(directory_error)?;
    Ok(Redirect::to(&format!(
        "{}/rooms/{}",
        layout::project_path(&project),
        layout::segment(room.as_str())
    ))
    .into_response())
}

/// `POST .../rooms/{room}/end`.
pub async fn end(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path((project, room)): Path<(String, String)>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    let project = d.member(&who, &project).await?;
    who.check_csrf(&form.csrf)?;
    let room = room_name(&room)?;
    let ended = d
        .store
        .rooms()
        .delete(project.id, &room, RoomFinishReason::Deleted, d.clock.now())
        .await?;
    if ended.is_none() {
        return Err(PageError::NotFound);
    }
    d.directory
        .close_room(project.id, &room)
        .await
        .map_err(directory_error)?;
    tracing::info!(project = %project.id, room = %room, user = %who.user.id, "room ended from the dashboard");
    Ok(Redirect::to(&format!("{}/rooms", layout::project_path(&project))).into_response())
}
