//! A project's webhook endpoints: create one (its signing secret shown
//! once), edit one, turn one on or off, and each one's recent deliveries
//! with every attempt's status and response, with retry and replay.

use std::collections::HashMap;

use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use maud::{html, Markup};
use serde::Deserialize;
use switchboard_core::webhook::EventTypes;
use switchboard_core::{DeliveryId, WebhookId};
use switchboard_store::projects::Project;
use switchboard_store::webhooks::{NewWebhook, Webhook, WebhookPatch};

use super::{csrf_field, CsrfOnly};
use crate::error::PageError;
use crate::layout::{self, Nav, Section};
use crate::session::SignedIn;
use crate::Dashboard;

/// Deliveries shown on an endpoint's page.
const DELIVERIES: u32 = 50;
/// Events one replay queues at most.
const MAX_REPLAY: u32 = 10_000;
/// Longest response body shown.
const MAX_BODY_SHOWN: usize = 300;

/// The create form's fields.
#[derive(Debug, Deserialize)]
pub struct NewEndpoint {
    csrf: String,
    url: String,
    #[serde(default)]
    events: String,
    #[serde(default)]
    description: String,
}

impl NewEndpoint {
    /// The URL, event types and description, or why they cannot be.
    fn check(&self, d: &Dashboard) -> Result<(String, EventTypes, String), String> {
        let url = self.url.trim();
        d.webhook_policy.check_url(url).map_err(|e| e.to_string())?;
        let patterns: Vec<String> = self
            .events
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        let events = EventTypes::new(patterns).map_err(|e| e.to_string())?;
        let description = self.description.trim();
        if description.chars().count() > 512 || description.chars().any(char::is_control) {
            return Err(
                "A description is at most 512 characters, without control characters.".into(),
            );
        }
        Ok((url.to_owned(), events, description.to_owned()))
    }
}

enum Flash {
    None,
    Created { id: WebhookId, secret: String },
    Error(String),
}

fn endpoints_path(project: &Project) -> String {
    format!("{}/webhooks", layout::project_path(project))
}

async fn render_list(
    d: &Dashboard,
    who: &SignedIn,
    project: &Project,
    flash: Flash,
) -> Result<Markup, PageError> {
    let hooks = d.store.webhooks().list(project.id, None, 500).await?;
    let base = endpoints_path(project);
    let nav = Nav::new(who, project, Section::Webhooks);
    let body = html! {
        @match &flash {
            Flash::Created { id, secret } => {
                div.notice role="status" {
                    p { "Endpoint " code { (id) } " created. Its signing secret is shown only now:" }
                    p.secret id="new-secret" { (secret) }
                }
            }
            Flash::Error(e) => { p.error role="alert" { (e) } }
            Flash::None => {}
        }
        h2 { "Add an endpoint" }
        form method="post" action=(base) {
            (csrf_field(who))
            label for="url" { "URL" }
            input id="url" type="text" name="url" required placeholder="https://example.com/hooks";
            label for="events" { "Events (comma-separated, `*` for all)" }
            input id="events" type="text" name="events" value="*";
            label for="hook-description" { "Description" }
            input id="hook-description" type="text" name="description" maxlength="512";
            p { button type="submit" { "Add endpoint" } }
        }
        h2 { "Endpoints" }
        @if hooks.is_empty() { p { "No endpoint yet." } }
        div.table-wrap tabindex="0" {
            table {
                thead { tr {
                    th scope="col" { "URL" } th scope="col" { "Events" } th scope="col" { "State" }
                } }
                tbody {
                    @for h in &hooks {
                        tr {
                            td { a href={ (base) "/" (h.id) } { (h.url) } @if !h.description.is_empty() { br; span.muted { (h.description) } } }
                            td { (h.events.patterns().join(", ")) }
                            td {
                                @if h.enabled { "enabled" } @else { strong.error-text { "disabled" } }
                                @if let Some(why) = &h.disabled_reason { br; span.muted { (why) } }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page("Webhooks", &nav, body))
}

/// `GET /dashboard/projects/{project}/webhooks`.
pub async fn list(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path(project): Path<String>,
) -> Result<Markup, PageError> {
    let project = d.member(&who, &project).await?;
    render_list(&d, &who, &project, Flash::None).await
}

/// `POST /dashboard/projects/{project}/webhooks`: answers with the page showing the secret.
pub async fn create(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path(project): Path<String>,
    Form(form): Form<NewEndpoint>,
) -> Result<Markup, PageError> {
    let project = d.member(&who, &project).await?;
    who.check_csrf(&form.csrf)?;
    let (url, events, description) = match form.check(&d) {
        Ok(fields) => fields,
        Err(why) => return render_list(&d, &who, &project, Flash::Error(why)).await,
    };
    let (hook, secret) = d
        .store
        .webhooks()
        .create(
            project.id,
            NewWebhook {
                url,
                description,
                events,
                enabled: true,
            },
            d.clock.now(),
        )
        .await?;
    tracing::info!(project = %project.id, webhook = %hook.id, user = %who.user.id, "webhook created from the dashboard");
    render_list(
        &d,
        &who,
        &project,
        Flash::Created {
            id: hook.id,
            secret,
        },
    )
    .await
}

fn webhook_id(id: &str) -> Result<WebhookId, PageError> {
    id.parse().map_err(|_| PageError::NotFound)
}

/// `GET /dashboard/projects/{project}/webhooks/{id}`.
pub async fn page(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path((project, id)): Path<(String, String)>,
) -> Result<Markup, PageError> {
    let project = d.member(&who, &project).await?;
    let hook = d
        .store
        .webhooks()
        .get(project.id, webhook_id(&id)?)
        .await?
        .ok_or(PageError::NotFound)?;
    render_page(&d, &who, &project, &hook, None).await
}

/// `POST /dashboard/projects/{project}/webhooks/{id}`: the edit form.
pub async fn edit(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path((project, id)): Path<(String, String)>,
    Form(form): Form<NewEndpoint>,
) -> Result<Response, PageError> {
    let project = d.member(&who, &project).await?;
    who.check_csrf(&form.csrf)?;
    let id = webhook_id(&id)?;
    let hook = d
        .store
        .webhooks()
        .get(project.id, id)
        .await?
        .ok_or(PageError::NotFound)?;
    let (url, events, description) = match form.check(&d) {
        Ok(fields) => fields,
        Err(why) => {
            // Shown with what was typed, so nothing is lost.
            let typed = Webhook {
                url: form.url.clone(),
                description: form.description.clone(),
                ..hook
            };
            let page = render_page(&d, &who, &project, &typed, Some((why, form.events))).await?;
            return Ok((axum::http::StatusCode::BAD_REQUEST, page).into_response());
        }
    };
    let patch = WebhookPatch {
        url: Some(url),
        description: Some(description),
        events: Some(events),
        enabled: None,
    };
    d.store
        .webhooks()
        .update(project.id, id, patch, d.clock.now())
        .await?
        .ok_or(PageError::NotFound)?;
    tracing::info!(project = %project.id, webhook = %id, user = %who.user.id, "webhook edited from the dashboard");
    Ok(Redirect::to(&format!("{}/{id}", endpoints_path(&project))).into_response())
}

/// An endpoint's page; `refused` is an edit refused and the events as typed.
async fn render_page(
    d: &Dashboard,
    who: &SignedIn,
    project: &Project,
    hook: &Webhook,
    refused: Option<(String, String)>,
) -> Result<Markup, PageError> {
    let deliveries = d
        .store
        .deliveries()
        .list_for_webhook(project.id, hook.id, None, DELIVERIES)
        .await?;
    let ids: Vec<DeliveryId> = deliveries.iter().map(|x| x.id).collect();
    let attempts: HashMap<DeliveryId, Vec<_>> = d.store.deliveries().attempts(&ids).await?;
    let base = format!("{}/{}", endpoints_path(project), hook.id);
    let nav = Nav::new(who, project, Section::Webhooks);
    let events = match &refused {
        Some((_, typed)) => typed.clone(),
        None => hook.events.patterns().join(", "),
    };
    let body = html! {
        @if let Some((why, _)) = &refused { p.error role="alert" { (why) } }
        p { "Events: " (hook.events.patterns().join(", ")) ". "
            @if hook.enabled { "Enabled." } @else { strong.error-text { "Disabled" } @if let Some(why) = &hook.disabled_reason { ": " (why) } "." } }
        form method="post" action={ (base) "/enabled" } {
            (csrf_field(who))
            input type="hidden" name="enabled" value=(if hook.enabled { "false" } else { "true" });
            button.quiet type="submit" { (if hook.enabled { "Disable" } else { "Enable" }) }
        }
        h2 { "Edit" }
        form #edit method="post" action=(base) {
            (csrf_field(who))
            label for="url" { "URL" }
            input id="url" type="text" name="url" required value=(hook.url);
            label for="events" { "Events (comma-separated, `*` for all)" }
            input id="events" type="text" name="events" value=(events);
            label for="hook-description" { "Description" }
            input id="hook-description" type="text" name="description" maxlength="512" value=(hook.description);
            p { button type="submit" { "Save" } }
        }
        h2 { "Replay" }
        form method="post" action={ (base) "/replay" } {
            (csrf_field(who))
            label for="since" { "Send again every event since (UTC, YYYY-MM-DD HH:MM)" }
            input id="since" type="text" name="since" required placeholder="2026-11-30 09:00";
            p { button type="submit" { "Replay" } }
        }
        h2 { "Recent deliveries" }
        @if deliveries.is_empty() { p { "Nothing was delivered yet." } }
        div.table-wrap tabindex="0" {
            table {
                thead { tr {
                    th scope="col" { "Event" } th scope="col" { "Status" } th scope="col" { "Attempts" }
                    th scope="col" { "Last response" } th scope="col" { span.muted { "Actions" } }
                } }
                tbody {
                    @for x in &deliveries {
                        @let tries = attempts.get(&x.id).map(Vec::as_slice).unwrap_or_default();
                        @let failed = x.status.as_str() == "failed";
                        tr.delivery.failed[failed] {
                            td { (x.event_type) br; span.muted { (x.created_at.format("%Y-%m-%d %H:%M:%S UTC")) } }
                            td { @if failed { strong.error-text { (x.status.as_str()) } } @else { (x.status.as_str()) } }
                            td { (x.attempts) }
                            td {
                                @if let Some(a) = tries.last() {
                                    @match a.status_code { Some(c) => { "HTTP " (c) }, None => { "no answer" } }
                                    " in " (a.latency_ms) " ms"
                                    @if let Some(e) = &a.error { br; span.error-text { (e) } }
                                    @if !a.response_body.is_empty() {
                                        br; code { (a.response_body.chars().take(MAX_BODY_SHOWN).collect::<String>()) }
                                    }
                                }
                            }
                            td {
                                form.inline method="post" action={ (base) "/deliveries/" (x.id) "/retry" } {
                                    (csrf_field(who))
                                    button.quiet type="submit" aria-label={ "Retry delivery " (x.id) } { "Retry" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page(&format!("Webhook {}", hook.url), &nav, body))
}

/// The enable form's fields.
#[derive(Debug, Deserialize)]
pub struct Enabled {
    csrf: String,
    enabled: bool,
}

/// `POST .../webhooks/{id}/enabled`.
pub async fn set_enabled(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path((project, id)): Path<(String, String)>,
    Form(form): Form<Enabled>,
) -> Result<Response, PageError> {
    let project = d.member(&who, &project).await?;
    who.check_csrf(&form.csrf)?;
    let patch = WebhookPatch {
        enabled: Some(form.enabled),
        ..WebhookPatch::default()
    };
    let hook = d
        .store
        .webhooks()
        .update(project.id, webhook_id(&id)?, patch, d.clock.now())
        .await?
        .ok_or(PageError::NotFound)?;
    Ok(Redirect::to(&format!("{}/{}", endpoints_path(&project), hook.id)).into_response())
}

/// The replay form's fields.
#[derive(Debug, Deserialize)]
pub struct Replay {
    csrf: String,
    since: String,
}

fn parse_since(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M")
        .ok()
        .map(|t| t.and_utc())
}

/// `POST .../webhooks/{id}/replay`.
pub async fn replay(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path((project, id)): Path<(String, String)>,
    Form(form): Form<Replay>,
) -> Result<Response, PageError> {
    let project = d.member(&who, &project).await?;
    who.check_csrf(&form.csrf)?;
    let hook = d
        .store
        .webhooks()
        .get(project.id, webhook_id(&id)?)
        .await?
        .ok_or(PageError::NotFound)?;
    let now = d.clock.now();
    let since = parse_since(&form.since).ok_or_else(|| {
        PageError::Refused(
            "Give the time as YYYY-MM-DD HH:MM (UTC), such as 2026-11-30 09:00.".into(),
        )
    })?;
    if since > now {
        return Err(PageError::Refused("That time is in the future.".into()));
    }
    let queued = d
        .store
        .deliveries()
        .replay(project.id, &hook, since, MAX_REPLAY, now)
        .await?;
    tracing::info!(project = %project.id, webhook = %hook.id, queued, user = %who.user.id, "webhook replay from the dashboard");
    Ok(Redirect::to(&format!("{}/{}", endpoints_path(&project), hook.id)).into_response())
}

/// `POST .../webhooks/{id}/deliveries/{delivery}/retry`.
pub async fn retry(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path((project, id, delivery)): Path<(String, String, String)>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    let project = d.member(&who, &project).await?;
    who.check_csrf(&form.csrf)?;
    let hook = webhook_id(&id)?;
    let delivery: DeliveryId = delivery.parse().map_err(|_| PageError::NotFound)?;
    let found = d.store.deliveries().get(project.id, delivery).await?;
    if found.is_none_or(|x| x.webhook_id != hook) {
        return Err(PageError::NotFound);
    }
    d.store
        .deliveries()
        .retry(project.id, delivery, d.clock.now())
        .await?
        .ok_or(PageError::NotFound)?;
    Ok(Redirect::to(&format!("{}/{hook}", endpoints_path(&project))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_times_are_read_as_people_write_them() {
        assert_eq!(
            parse_since("2026-11-30 09:00").map(|t| t.to_rfc3339()),
            Some("2026-11-30T09:00:00+00:00".into())
        );
        assert!(parse_since("2026-11-30T09:00:00Z").is_some());
        for bad in ["", "yesterday", "2026-13-01 00:00", "2026-11-30"] {
            assert_eq!(parse_since(bad), None, "{bad}");
        }
    }
}
