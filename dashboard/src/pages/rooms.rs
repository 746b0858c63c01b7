//! A project's rooms: the live list (refreshed within a second through a
//! server-sent event stream), each live room's participants with their
//! tracks and connection, the actions an owner takes on them (mute a track,
//! remove a participant, end the room), and the history of finished rooms
//! with their sessions and minutes.

use std::convert::Infallible;

use axum::extract::{Form, Path, State};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use futures::Stream;
use maud::{html, Markup};
use serde::Deserialize;
use switchboard_core::directory::DirectoryError;
use switchboard_core::event::RoomFinishReason;
use switchboard_core::room::{ParticipantInfo, Room};
use switchboard_core::signal::ConnectionQuality;
use switchboard_core::usage::Meter;
use switchboard_core::{Identity, RoomName, RoomSid, TrackSid};
use switchboard_store::projects::Project;
use switchboard_store::usage::{FinishedRoom, SessionFilter};

use super::live::{updates, Frame, REFRESH};
use super::timeline::timeline;
use super::usage::{by_node_table, quantity};
use super::{csrf_field, human_duration, CsrfOnly};
use crate::error::PageError;
use crate::layout::{self, Nav, Section};
use crate::session::SignedIn;
use crate::Dashboard;

/// Most rooms listed.
const MAX_ROOMS: u32 = 500;
/// Finished rooms are listed from sessions joined this many days back.
const HISTORY_DAYS: i64 = 30;
/// Most finished rooms listed.
const MAX_FINISHED: u32 = 50;
/// Most sessions listed on a finished room's page.
const MAX_SESSIONS: u32 = 100;

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
    let now = d.clock.now();
    let finished: Vec<FinishedRoom> = d
        .store
        .usage()
        .finished_rooms(
            project.id,
            now - chrono::Duration::days(HISTORY_DAYS),
            MAX_FINISHED + rooms.len() as u32,
        )
        .await?
        .into_iter()
        // A live room emptied of everyone is waiting out its empty timeout, not finished.
        .filter(|f| !rooms.iter().any(|r| r.sid.to_string() == f.room_sid))
        .take(MAX_FINISHED as usize)
        .collect();
    let base = layout::project_path(&project);
    let nav = Nav::new(&who, &project, Section::Rooms);
    let body = html! {
        p.muted { "Updates live." }
        div.table-wrap tabindex="0" {
            table {
                thead { tr {
                    th scope="col" { "Room" } th scope="col" { "Participants" }
                    th scope="col" { "Live for" } th scope="col" { "Region" }
                } }
                tbody id="live-rooms" data-live={ (base) "/rooms/live" } {
                    (rows(&project, &rooms, now))
                }
            }
        }
        h2 { "Finished rooms, last " (HISTORY_DAYS) " days" }
        @if finished.is_empty() { p { "No room has finished yet." } }
        @else {
            div.table-wrap tabindex="0" {
                table #finished-rooms {
                    thead { tr {
                        th scope="col" { "Room" } th scope="col" { "Ended" } th scope="col" { "Lasted" }
                        th scope="col" { "Sessions" } th scope="col" { "Participants" } th scope="col" { "Participant-minutes" }
                    } }
                    tbody {
                        @for f in &finished {
                            tr {
                                td { a href={ (base) "/finished-rooms/" (layout::segment(&f.room_sid)) } { (f.room_name) } }
                                td { (f.last_left_at.format("%Y-%m-%d %H:%M")) }
                                td { (human_duration((f.last_left_at - f.first_joined_at).num_seconds())) }
                                td { (f.sessions) }
                                td { (f.identities) }
                                td { (quantity(Meter::ParticipantMinutesAudio, f.billed_us)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page("Rooms", &nav, body))
}

/// `GET /dashboard/projects/{project}/finished-rooms/{room_sid}`: a finished room's sessions.
pub async fn finished(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path((project, sid)): Path<(String, String)>,
) -> Result<Markup, PageError> {
    let project = d.member(&who, &project).await?;
    let sid: RoomSid = sid.parse().map_err(|_| PageError::NotFound)?;
    let filter = SessionFilter {
        room_sid: Some(sid.to_string()),
        ..SessionFilter::default()
    };
    let sessions = d
        .store
        .usage()
        .sessions(project.id, &filter, None, MAX_SESSIONS)
        .await?;
    let Some(name) = sessions.first().map(|s| s.room_name.clone()) else {
        return Err(PageError::NotFound);
    };
    let billed: i64 = sessions.iter().filter_map(|s| s.billed_us).sum();
    let now = d.clock.now();
    let room_sid = sid.to_string();
    let by_node = d
        .store
        .usage()
        .by_node(
            project.id,
            chrono::DateTime::UNIX_EPOCH,
            now + chrono::Duration::days(1),
            Some(&room_sid),
        )
        .await?;
    let nav = Nav::new(&who, &project, Section::Rooms);
    let body = html! {
        p { "Room incarnation " code { (sid) } ": " (sessions.len()) " sessions"
            @if sessions.len() as u32 == MAX_SESSIONS { " (the latest " (MAX_SESSIONS) ")" }
            ", " (quantity(Meter::ParticipantMinutesAudio, billed)) " billed over these sessions." }
        h2 { "Who was there when" }
        (timeline(&sessions, now))
        h2 { "Sessions" }
        div.table-wrap tabindex="0" {
            table #sessions {
                thead { tr {
                    th scope="col" { "Identity" } th scope="col" { "Joined" } th scope="col" { "Left" }
                    th scope="col" { "Stayed" } th scope="col" { "Billed" } th scope="col" { "Meter" } th scope="col" { "Why it left" }
                } }
                tbody {
                    @for s in &sessions {
                        @let meter = if s.video { Meter::ParticipantMinutesVideo } else { Meter::ParticipantMinutesAudio };
                        tr.session {
                            td { a href=(format!("{}/sessions/{}", layout::project_path(&project), s.id)) { (s.identity) } }
                            td { (s.joined_at.format("%Y-%m-%d %H:%M:%S")) }
                            td { @match s.left_at { Some(t) => (t.format("%H:%M:%S")), None => "still in" } }
                            td { (human_duration((s.left_at.unwrap_or(now) - s.joined_at).num_seconds())) }
                            td { @match s.billed_us { Some(us) => (quantity(meter, us)), None => "open" } }
                            td { (meter.as_str()) }
                            td { (s.leave_reason.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        h2 { "Where they connected from" }
        (by_node_table(&by_node))
    };
    Ok(layout::page(
        &format!("Sessions of room {name}"),
        &nav,
        body,
    ))
}

/// `GET /dashboard/projects/{project}/rooms/live`: the table's rows whenever they change.
pub async fn live(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path(project): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    let project = d.member(&who, &project).await?;
    Ok(updates(
        d,
        who,
        project,
        REFRESH,
        |d, _, project| async move {
            let rooms = live_rooms(&d, &project).await?;
            Ok(Frame::whole(
                rows(&project, &rooms, d.clock.now()).into_string(),
            ))
        },
    ))
}

/// `GET .../rooms/{room}/participants/live`: the room's participant rows when
/// someone joins, leaves or changes tracks, and only the connection cells when
/// just the measures change (so buttons are not replaced under the pointer).
/// Ends when the room does.
pub async fn live_participants(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path((project, room)): Path<(String, String)>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    let project = d.member(&who, &project).await?;
    let name = room_name(&room)?;
    Ok(updates(d, who, project, REFRESH, move |d, who, project| {
        let name = name.clone();
        async move {
            let participants = d
                .directory
                .list(project.id, &name)
                .await
                .map_err(directory_error)?;
            let base = room_path(&project, &name);
            let unmeasured: Vec<ParticipantInfo> = participants
                .iter()
                .cloned()
                .map(|p| ParticipantInfo {
                    connection: None,
                    ..p
                })
                .collect();
            Ok(Frame {
                key: participant_rows(&who, &base, &unmeasured).into_string(),
                whole: participant_rows(&who, &base, &participants).into_string(),
                parts: participants
                    .iter()
                    .map(|p| connection_cell(p).into_string())
                    .collect(),
            })
        }
    }))
}

/// The `/dashboard/projects/{id}/rooms/{name}` path of a room.
fn room_path(project: &Project, room: &RoomName) -> String {
    format!(
        "{}/rooms/{}",
        layout::project_path(project),
        layout::segment(room.as_str())
    )
}

/// Bits per second for people: `840 kbps`, `2.1 Mbps`.
fn bitrate(bps: u64) -> String {
    match bps {
        0..=999 => format!("{bps} bps"),
        1_000..=999_999 => format!("{} kbps", bps / 1000),
        _ => format!("{:.1} Mbps", bps as f64 / 1e6),
    }
}

/// A participant's connection measures, as a cell the live stream replaces by its id.
fn connection_cell(p: &ParticipantInfo) -> Markup {
    html! {
        td.connection id={ "connection-" (p.sid) } {
            @match &p.connection {
                None => span.muted { "measuring" },
                Some(c) => {
                    @let quality = format!("{:?}", c.quality).to_lowercase();
                    @if matches!(c.quality, ConnectionQuality::Poor | ConnectionQuality::Lost) {
                        strong.error-text.quality { (quality) }
                    } @else { span.quality { (quality) } }
                    br;
                    span.bitrate { "sends " (bitrate(c.publish_bps)) ", receives " (bitrate(c.subscribe_bps)) }
                    br;
                    span.loss { (format!("{:.1}", f64::from(c.loss_per_mille) / 10.0)) "% loss" }
                    @if let Some(rtt) = c.rtt_ms { ", " (rtt) " ms round trip" }
                },
            }
        }
    }
}

/// The rows of a live room's participants table.
fn participant_rows(who: &SignedIn, base: &str, participants: &[ParticipantInfo]) -> Markup {
    html! {
        @if participants.is_empty() { tr { td colspan="6" { "Nobody is connected." } } }
        @for p in participants {
            tr data-identity=(p.identity) {
                td { (p.identity) @if !p.name.is_empty() { br; span.muted { (p.name) } } }
                td { (format!("{:?}", p.state).to_lowercase()) }
                td { (p.joined_at.format("%H:%M:%S UTC")) }
                (connection_cell(p))
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
                                    (csrf_field(who))
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
                        (csrf_field(who))
                        button.danger type="submit" aria-label={ "Remove " (p.identity) } { "Remove" }
                    }
                }
            }
        }
    }
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
    let base = room_path(&project, &room.name);
    let nav = Nav::new(&who, &project, Section::Rooms);
    let body = html! {
        p { "Live for " (human_duration((now - room.created_at).num_seconds()))
            ", region " (room.region.as_deref().unwrap_or("any"))
            @if room.record { ", recorded" } "." }
        h2 { "Participants" }
        p.muted { "Updates live; connections are measured every 3 seconds." }
        div.table-wrap tabindex="0" {
            table {
                thead { tr {
                    th scope="col" { "Identity" } th scope="col" { "State" } th scope="col" { "Joined" }
                    th scope="col" { "Connection" } th scope="col" { "Tracks" } th scope="col" { span.muted { "Actions" } }
                } }
                tbody #participants data-live={ (base) "/participants/live" } {
                    (participant_rows(&who, &base, &participants))
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
    Ok(Redirect::to(&room_path(&project, &room)).into_response())
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
    Ok(Redirect::to(&room_path(&project, &room)).into_response())
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
