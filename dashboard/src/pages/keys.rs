//! A project's API keys: the list, a form to create one (its secret shown
//! on the page that answers, once, and never again), and revoking.

use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;
use switchboard_store::projects::Project;
use switchboard_store::StoreError;

use super::{csrf_field, CsrfOnly};
use crate::error::PageError;
use crate::layout::{self, Nav, Section};
use crate::session::SignedIn;
use crate::Dashboard;

/// Longest description accepted.
const MAX_DESCRIPTION: usize = 200;

/// The create form's fields.
#[derive(Debug, Deserialize)]
pub struct NewKey {
    csrf: String,
    #[serde(default)]
    description: String,
}

/// What the page says above the list.
enum Flash {
    None,
    Created { id: String, secret: String },
    Error(String),
}

async fn render(
    d: &Dashboard,
    who: &SignedIn,
    project: &Project,
    flash: Flash,
) -> Result<Markup, PageError> {
    let keys = d.store.api_keys().list(project.id).await?;
    let base = layout::project_path(project);
    let nav = Nav::new(who, project, Section::Keys);
    let body = html! {
        @match &flash {
            Flash::Created { id, secret } => {
                div.notice role="status" {
                    p { "Key " code { (id) } " created. Copy its secret now: it is not shown again." }
                    p.secret id="new-secret" { (secret) }
                }
            }
            Flash::Error(e) => { p.error role="alert" { (e) } }
            Flash::None => {}
        }
        h2 { "Create a key" }
        form method="post" action={ (base) "/keys" } {
            (csrf_field(who))
            label for="description" { "Description" }
            input id="description" type="text" name="description" maxlength=(MAX_DESCRIPTION) placeholder="backend, staging";
            p { button type="submit" { "Create key" } }
        }
        h2 { "Keys" }
        div.table-wrap tabindex="0" {
            table {
                thead { tr {
                    th scope="col" { "Key id" } th scope="col" { "Description" }
                    th scope="col" { "Created" } th scope="col" { "State" } th scope="col" { span.muted { "Actions" } }
                } }
                tbody {
                    @for k in &keys {
                        tr {
                            td { code { (k.id) } }
                            td { (k.description) }
                            td { (k.created_at.format("%Y-%m-%d %H:%M UTC")) }
                            td { @match k.revoked_at { Some(t) => { "revoked " (t.format("%Y-%m-%d")) }, None => { "active" } } }
                            td {
                                @if k.revoked_at.is_none() {
                                    form.inline method="post" action={ (base) "/keys/" (k.id) "/revoke" } {
                                        (csrf_field(who))
                                        button.danger type="submit" aria-label={ "Revoke key " (k.id) } { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout::page("API keys", &nav, body))
}

/// `GET /dashboard/projects/{project}/keys`.
pub async fn page(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path(project): Path<String>,
) -> Result<Markup, PageError> {
    let project = d.member(&who, &project).await?;
    render(&d, &who, &project, Flash::None).await
}

/// `POST /dashboard/projects/{project}/keys`: answers with the page showing the secret.
pub async fn create(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path(project): Path<String>,
    Form(form): Form<NewKey>,
) -> Result<Markup, PageError> {
    let project = d.member(&who, &project).await?;
    who.check_csrf(&form.csrf)?;
    let description = form.description.trim();
    if description.chars().count() > MAX_DESCRIPTION {
        let e = format!("A description is at most {MAX_DESCRIPTION} characters.");
        return render(&d, &who, &project, Flash::Error(e)).await;
    }
    let (key, secret) = d
        .store
        .api_keys()
        .create(project.id, description, d.clock.now())
        .await?;
    tracing::info!(project = %project.id, key = %key.id, user = %who.user.id, "API key created from the dashboard");
    render(&d, &who, &project, Flash::Created { id: key.id, secret }).await
}

/// `POST /dashboard/projects/{project}/keys/{key}/revoke`.
pub async fn revoke(
    State(d): State<Dashboard>,
    who: SignedIn,
    Path((project, key)): Path<(String, String)>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    let project = d.member(&who, &project).await?;
    who.check_csrf(&form.csrf)?;
    match d
        .store
        .api_keys()
        .revoke(project.id, &key, d.clock.now())
        .await
    {
        Ok(true) => {
            tracing::info!(project = %project.id, key = %key, user = %who.user.id, "API key revoked from the dashboard");
            Ok(Redirect::to(&format!("{}/keys", layout::project_path(&project))).into_response())
        }
        Ok(false) => Err(PageError::NotFound),
        Err(StoreError::Conflict(why)) => Ok(render(&d, &who, &project, Flash::Error(why))
            .await?
            .into_response()),
        Err(e) => Err(e.into()),
    }
}
