//! A project's functions: upload a version (a new function or a new
//! version of one), each one's versions (activate one, which rolls back to
//! an older one), and its latest invocations with what they logged,
//! failures and error lines set apart.

use axum::extract::{Form, Multipart, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;
use switchboard_core::function::{check_name, RunnerError, Triggers};
use switchboard_store::functions::NewVersion;
use switchboard_store::projects::Project;

use super::csrf_field;
use crate::error::PageError;
use crate::layout::{self, Nav, Section};
use crate::session::SignedIn;
use crate::Dashboard;

/// Invocations shown on a function's page.
const INVOCATIONS: u32 = 50;
/// The largest component uploaded (the API's limit).
pub const MAX_COMPONENT: usize = switchboard_core::function::MAX_COMPONENT_BYTES;
/// The largest upload form: the component, the other fields and the boundaries.
pub const MAX_FORM: usize = MAX_COMPONENT + 64 * 1024;

/// The upload form; `name` is fixed (hidden) on a function's own page.
fn upload_form(who: &SignedIn, project: &Project, name: Option<&str>, events: &str) -> Markup {
    html! {
        form #upload method="post" enctype="multipart/form-data"
            action={ (layout::project_path(project)) "/functions" } {
            (csrf_field(who))
            @match name {
                Some(n) => { input type="hidden" name="name" value=(n); },
                None => {
                    label for="function-name" { "Name (lower case letters, digits, - and _)" }
                    input id="function-name" type="text" name="name" required maxlength="64";
                },
            }
            label for="function-events" { "Runs on (comma-separated: participant.joining, room.*, ...)" }
            input id="function-events" type="text" name="events" required value=(events);
            label for="function-component" { "WebAssembly component (.wasm, up to 32 MiB)" }
            input id="function-component" type="file" name="component" accept=".wasm,application/wasm" required;
            p {
                input id="function-activate" type="checkbox" name="activate" value="true" checked;
                " "
                label.inline for="function-activate" { "Make it the active version" }
            }
            p { button type="submit" { "Upload" } }
        }
    }
}

/// `GET /dashboard/projects/{project}/functions`.
pub async fn list(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path(project): Path<String>,
) -> Result<Markup, PageError> {
    let project = d.member(&who, &project).await?;
    let functions = d.store.functions().list(project.id, None, 500).await?;
    let base = layout::project_path(&project);
    let nav = Nav::new(&who, &project, Section::Functions);
    let body = html! {
        @if functions.is_empty() {
            p { "No function yet. Upload one below, or deploy one with "
                code { "POST /v1/functions/{name}/versions" } "." }
        } @else {
            div.table-wrap tabindex="0" {
                table {
                    thead { tr {
                        th scope="col" { "Function" } th scope="col" { "Active version" }
                        th scope="col" { "Latest version" } th scope="col" { "Updated" }
                    } }
                    tbody {
                        @for f in &functions {
                            tr {
                                td { a href={ (base) "/functions/" (layout::segment(&f.name)) } { (f.name) } }
                                td { @match f.active_version { Some(v) => { (v) }, None => { "none" } } }
                                td { (f.latest_version) }
                                td { (f.updated_at.format("%Y-%m-%d %H:%M UTC")) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Upload a function" }
        (upload_form(&who, &project, None, "room.*"))
    };
    Ok(layout::page("Functions", &nav, body))
}

/// An error message as a sentence: capitalised, with a full stop.
fn sentence(e: &dyn std::fmt::Display) -> String {
    let text = e.to_string();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => format!("{}{}.", first.to_uppercase(), chars.as_str()),
        None => String::new(),
    }
}

/// What the upload form sent.
#[derive(Debug, Default)]
struct Upload {
    name: String,
    events: String,
    activate: bool,
    component: Vec<u8>,
}

/// Reads the upload form of `who`'s session: its CSRF token must come first
/// (browsers send fields in the form's order), before a byte of the
/// component is read; a component over [`MAX_COMPONENT`] is refused.
async fn read_upload(who: &SignedIn, mut form: Multipart) -> Result<Upload, PageError> {
    let garbled = |e: axum::extract::multipart::MultipartError| {
        PageError::Refused(format!(
            "The upload could not be read ({}); choose the file again and resend the form.",
            e.body_text()
        ))
    };
    let mut upload = Upload::default();
    let mut csrf_checked = false;
    while let Some(mut field) = form.next_field().await.map_err(garbled)? {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "csrf" {
            let text = field.text().await.map_err(garbled)?;
            who.check_csrf(&text)?;
            csrf_checked = true;
            continue;
        }
        if !csrf_checked {
            return Err(PageError::Csrf);
        }
        match name.as_str() {
            "component" => {
                while let Some(chunk) = field.chunk().await.map_err(garbled)? {
                    if upload.component.len() + chunk.len() > MAX_COMPONENT {
                        return Err(PageError::Refused(
                            "A component is at most 32 MiB; build it in release mode and strip it."
                                .into(),
                        ));
                    }
                    upload.component.extend_from_slice(&chunk);
                }
            }
            "name" => upload.name = field.text().await.map_err(garbled)?.trim().to_owned(),
            "events" => upload.events = field.text().await.map_err(garbled)?,
            "activate" => upload.activate = field.text().await.map_err(garbled)? == "true",
            // Another field: skipped unread, so it cannot be made to fill memory.
            _ => {}
        }
    }
    if !csrf_checked {
        return Err(PageError::Csrf);
    }
    Ok(upload)
}

/// `POST /dashboard/projects/{project}/functions`: a new version from the upload form.
pub async fn upload(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path(project): Path<String>,
    form: Multipart,
) -> Result<Response, PageError> {
    let project = d.member(&who, &project).await?;
    let upload = read_upload(&who, form).await?;
    let runner = d.functions.as_ref().ok_or_else(|| {
        PageError::Refused(
            "This server runs no function host, so it takes no functions; deploy to a server that runs them."
                .into(),
        )
    })?;
    check_name(&upload.name).map_err(|e| PageError::Refused(sentence(&e)))?;
    let events: Vec<String> = upload
        .events
        .split(',')
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
        .collect();
    let triggers = Triggers::parse(events).map_err(|e| PageError::Refused(sentence(&e)))?;
    if upload.component.is_empty() {
        return Err(PageError::Refused(
            "Choose the component's .wasm file to upload.".into(),
        ));
    }
    let digest = runner.check(&upload.component).await.map_err(|e| match e {
        RunnerError::Rejected(m) | RunnerError::BadEvent(m) => {
            PageError::Refused(format!("The component was refused: {m}"))
        }
        RunnerError::Busy(m) => PageError::Refused(sentence(&m)),
        RunnerError::Internal(m) => {
            tracing::error!(project = %project.id, error = %m, "function check failed");
            PageError::Refused("The function host failed to check the component; try again.".into())
        }
    })?;
    let (function, version) = d
        .store
        .functions()
        .deploy(
            project.id,
            &upload.name,
            NewVersion {
                digest,
                triggers,
                component: upload.component,
                activate: upload.activate,
            },
            d.clock.now(),
        )
        .await?;
    tracing::info!(project = %project.id, function = %function.name, version = version.version, user = %who.user.id, "function version uploaded from the dashboard");
    Ok(Redirect::to(&format!(
        "{}/functions/{}",
        layout::project_path(&project),
        layout::segment(&function.name)
    ))
    .into_response())
}

/// `GET /dashboard/projects/{project}/functions/{name}`.
pub async fn page(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path((project, name)): Path<(String, String)>,
) -> Result<Markup, PageError> {
    let project = d.member(&who, &project).await?;
    let f = d
        .store
        .functions()
        .get(project.id, &name)
        .await?
        .ok_or(PageError::NotFound)?;
    let versions = d.store.functions().versions(f.id).await?;
    let invocations = d
        .store
        .functions()
        .invocations(f.id, None, INVOCATIONS)
        .await?;
    let base = format!(
        "{}/functions/{}",
        layout::project_path(&project),
        layout::segment(&f.name)
    );
    let nav = Nav::new(&who, &project, Section::Functions);
    let latest_events = versions
        .iter()
        .max_by_key(|v| v.version)
        .map(|v| v.triggers.to_list().join(", "))
        .unwrap_or_default();
    let body = html! {
        h2 { "Versions" }
        div.table-wrap tabindex="0" {
            table {
                thead { tr {
                    th scope="col" { "Version" } th scope="col" { "Runs on" } th scope="col" { "Size" }
                    th scope="col" { "Uploaded" } th scope="col" { span.muted { "Actions" } }
                } }
                tbody {
                    @for v in &versions {
                        tr {
                            td { (v.version) @if f.active_version == Some(v.version) { " (active)" } }
                            td { (v.triggers.to_list().join(", ")) }
                            td { (v.size_bytes) " bytes" }
                            td { (v.created_at.format("%Y-%m-%d %H:%M UTC")) }
                            td {
                                @if f.active_version != Some(v.version) {
                                    form.inline method="post" action={ (base) "/activate" } {
                                        (csrf_field(&who))
                                        input type="hidden" name="version" value=(v.version);
                                        button.quiet type="submit" aria-label={ "Activate version " (v.version) } {
                                            @if f.active_version.is_some_and(|a| a > v.version) { "Roll back" } @else { "Activate" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Upload a new version" }
        (upload_form(&who, &project, Some(&f.name), &latest_events))
        h2 { "Latest invocations" }
        @if invocations.is_empty() { p { "It has not run yet." } }
        div.table-wrap tabindex="0" {
            table {
                thead { tr {
                    th scope="col" { "When" } th scope="col" { "Version" } th scope="col" { "Trigger" }
                    th scope="col" { "Outcome" } th scope="col" { "Took" } th scope="col" { "Logs" }
                } }
                tbody {
                    @for i in &invocations {
                        @let failed = i.outcome != "ok";
                        tr.invocation.failed[failed] {
                            td { (i.created_at.format("%Y-%m-%d %H:%M:%S UTC")) }
                            td { (i.version) }
                            td { (i.trigger) br; span.muted { (i.event_type) } }
                            td {
                                @if failed { strong.error-text { (i.outcome) } } @else { (i.outcome) }
                                @if let Some(decision) = &i.decision { br; (decision) }
                                @if let Some(e) = &i.error { br; span.error-text { (e) } }
                            }
                            td { (format!("{:.1}", i.duration_us as f64 / 1000.0)) " ms" }
                            td {
                                @if i.logs.is_empty() { span.muted { "nothing" } }
                                ul.logs {
                                    @for l in &i.logs {
                                        li.error-text[l.level == "error"] { code { (l.level) } " " (l.message) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&format!("Function {}", f.name), &nav, body))
}

/// The activate form's fields.
#[derive(Debug, Deserialize)]
pub struct Activate {
    csrf: String,
    version: u32,
}

/// `POST /dashboard/projects/{project}/functions/{name}/activate`.
pub async fn activate(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path((project, name)): Path<(String, String)>,
    Form(form): Form<Activate>,
) -> Result<Response, PageError> {
    let project = d.member(&who, &project).await?;
    who.check_csrf(&form.csrf)?;
    d.store
        .functions()
        .set_active(project.id, &name, Some(form.version), d.clock.now())
        .await?
        .ok_or(PageError::NotFound)?;
    tracing::info!(project = %project.id, function = %name, version = form.version, user = %who.user.id, "function version activated from the dashboard");
    Ok(Redirect::to(&format!(
        "{}/functions/{}",
        layout::project_path(&project),
        layout::segment(&name)
    ))
    .into_response())
}
