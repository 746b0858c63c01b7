//! A project's functions: each one's versions (activate one, which rolls
//! back to an older one), and its latest invocations with what they logged,
//! failures and error lines set apart.

use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::csrf_field;
use crate::error::PageError;
use crate::layout::{self, Nav, Section};
use crate::session::SignedIn;
use crate::Dashboard;

/// Invocations shown on a function's page.
const INVOCATIONS: u32 = 50;

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
            p { "No function yet. Deploy one with " code { "switchboard functions deploy" } " or "
                code { "POST /v1/functions/{name}/versions" } "." }
        } @else {
            div.table-wrap {
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
    };
    Ok(layout::page("Functions", &nav, body))
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
    let body = html! {
        h2 { "Versions" }
        div.table-wrap {
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
        h2 { "Latest invocations" }
        @if invocations.is_empty() { p { "It has not run yet." } }
        div.table-wrap {
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
