//! Switchboard's web dashboard for account owners.
//!
//! Server-rendered HTML (maud) at `/dashboard`: sign in with email and
//! password ([`session`], [`password`], [`limiter`]), then, for each project
//! the user belongs to, its live numbers ([`pages::overview`]), live rooms
//! and their participants ([`pages::rooms`]), recordings
//! ([`pages::recordings`]), webhook endpoints and deliveries
//! ([`pages::webhooks`]), functions with their versions and invocation logs
//! ([`pages::functions`]), API keys ([`pages::keys`]), and usage with the
//! invoice so far and the Stripe link ([`pages::usage`]). Every form is a
//! plain HTML form carrying a CSRF token;
//! the one script ([`assets/live.js`]) only refreshes live parts from a
//! server-sent event stream. A project a user does not belong to answers
//! 404 on every URL, the same as one that does not exist.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use switchboard_core::billing::PlanBook;
use switchboard_core::directory::ParticipantDirectory;
use switchboard_core::{Clock, ProjectId};
use switchboard_store::projects::Project;
use switchboard_store::Store;

pub mod error;
pub mod layout;
pub mod limiter;
pub mod pages;
pub mod password;
pub mod session;

use error::PageError;
use session::SignedIn;

/// What the dashboard's pages need.
#[derive(Clone)]
pub struct Dashboard {
    store: Store,
    directory: Arc<dyn ParticipantDirectory>,
    clock: Arc<dyn Clock>,
    plans: Arc<PlanBook>,
    limiter: Arc<limiter::Limiter>,
    /// Password checks running at once (argon2 is slow and memory-hungry on purpose).
    password_checks: Arc<tokio::sync::Semaphore>,
    secure_cookies: bool,
    recording_storage: Option<switchboard_recording::Storage>,
    webhook_policy: switchboard_core::webhook::AddressPolicy,
    /// The currency Stripe bills in, when this server bills through Stripe.
    stripe_currency: Option<String>,
    /// Checks new function versions; none when the server runs no function host.
    functions: Option<Arc<dyn switchboard_core::function::FunctionRunner>>,
    /// The trusted proxy's client-IP header, if any.
    client_ip_header: Option<axum::http::HeaderName>,
}

impl Dashboard {
    /// A dashboard over `store`, acting on live rooms through `directory`;
    /// its cookies are `Secure` when `secure_cookies` (the server is reached over HTTPS).
    pub fn new(
        store: Store,
        directory: Arc<dyn ParticipantDirectory>,
        clock: Arc<dyn Clock>,
        plans: PlanBook,
        secure_cookies: bool,
    ) -> Self {
        Self {
            store,
            directory,
            clock,
            plans: Arc::new(plans),
            limiter: Arc::default(),
            password_checks: Arc::new(tokio::sync::Semaphore::new(2)),
            secure_cookies,
            recording_storage: None,
            webhook_policy: switchboard_core::webhook::AddressPolicy::STRICT,
            stripe_currency: None,
            functions: None,
            client_ip_header: None,
        }
    }

    /// The header a trusted proxy puts the client's IP in (its last entry
    /// counts), so sign-ins back off per client rather than per proxy.
    pub fn with_client_ip_header(mut self, header: Option<axum::http::HeaderName>) -> Self {
        self.client_ip_header = header;
        self
    }

    /// Which webhook URLs new endpoints may have (the API's policy).
    pub fn with_webhook_policy(mut self, policy: switchboard_core::webhook::AddressPolicy) -> Self {
        self.webhook_policy = policy;
        self
    }

    /// Where recordings' files are, so their pages can serve them.
    pub fn with_recording_storage(mut self, storage: switchboard_recording::Storage) -> Self {
        self.recording_storage = Some(storage);
        self
    }

    /// Usage is billed through Stripe in `currency` (ISO code).
    pub fn with_stripe(mut self, currency: &str) -> Self {
        self.stripe_currency = Some(currency.to_owned());
        self
    }

    /// Function versions uploaded from the dashboard are checked by `runner`.
    pub fn with_functions(
        mut self,
        runner: Arc<dyn switchboard_core::function::FunctionRunner>,
    ) -> Self {
        self.functions = Some(runner);
        self
    }

    /// The routes, all under `/dashboard`.
    pub fn router(self) -> Router {
        use pages::{
            call, estimate, export, functions, keys, login, overview, recordings, rooms, usage,
            webhooks,
        };
        let project = "/dashboard/projects/{project}";
        Router::new()
            .route("/dashboard", get(home))
            .route("/dashboard/", get(home))
            .route("/dashboard/assets/dashboard.css", get(css))
            .route("/dashboard/assets/live.js", get(script))
            .route("/dashboard/login", get(login::form).post(login::submit))
            .route("/dashboard/logout", post(login::logout))
            .route(project, get(overview::page))
            .route(
                &format!("{project}/keys"),
                get(keys::page).post(keys::create),
            )
            .route(
                &format!("{project}/keys/{{key}}/revoke"),
                post(keys::revoke),
            )
            .route(&format!("{project}/rooms"), get(rooms::list))
            .route(&format!("{project}/rooms/live"), get(rooms::live))
            .route(&format!("{project}/rooms/{{room}}"), get(rooms::page))
            .route(&format!("{project}/rooms/{{room}}/end"), post(rooms::end))
            .route(
                &format!("{project}/rooms/{{room}}/participants/live"),
                get(rooms::live_participants),
            )
            .route(
                &format!("{project}/finished-rooms/{{sid}}"),
                get(rooms::finished),
            )
            .route(
                &format!("{project}/rooms/{{room}}/participants/{{identity}}/remove"),
                post(rooms::remove),
            )
            .route(
                &format!(
                    "{project}/rooms/{{room}}/participants/{{identity}}/tracks/{{track}}/mute"
                ),
                post(rooms::mute),
            )
            .route(&format!("{project}/recordings"), get(recordings::list))
            .route(
                &format!("{project}/recordings/{{id}}"),
                get(recordings::page),
            )
            .route(
                &format!("{project}/recordings/{{id}}/files/{{name}}"),
                get(recordings::file),
            )
            .route(
                &format!("{project}/recordings/{{id}}/delete"),
                post(recordings::delete),
            )
            .route(
                &format!("{project}/functions"),
                get(functions::list)
                    .post(functions::upload)
                    .layer(axum::extract::DefaultBodyLimit::max(functions::MAX_FORM)),
            )
            .route(
                &format!("{project}/functions/{{name}}"),
                get(functions::page),
            )
            .route(
                &format!("{project}/functions/{{name}}/activate"),
                post(functions::activate),
            )
            .route(
                &format!("{project}/webhooks"),
                get(webhooks::list).post(webhooks::create),
            )
            .route(
                &format!("{project}/webhooks/{{id}}"),
                get(webhooks::page).post(webhooks::edit),
            )
            .route(
                &format!("{project}/webhooks/{{id}}/enabled"),
                post(webhooks::set_enabled),
            )
            .route(
                &format!("{project}/webhooks/{{id}}/replay"),
                post(webhooks::replay),
            )
            .route(
                &format!("{project}/webhooks/{{id}}/deliveries/{{delivery}}/retry"),
                post(webhooks::retry),
            )
            .route(&format!("{project}/usage"), get(usage::page))
            .route(&format!("{project}/usage/estimate"), get(estimate::page))
            .route(&format!("{project}/sessions/{{sid}}"), get(call::page))
            .route(&format!("{project}/sessions/{{sid}}/live"), get(call::live))
            .route(&format!("{project}/usage/days.csv"), get(export::days))
            .route(
                &format!("{project}/usage/sessions.csv"),
                get(export::sessions),
            )
            .layer(axum::middleware::map_response(security_headers))
            .with_state(self)
    }

    /// The project `id` if `user` belongs to it; [`PageError::NotFound`] otherwise.
    async fn member(&self, who: &SignedIn, id: &str) -> Result<Project, PageError> {
        let id: ProjectId = id.parse().map_err(|_| PageError::NotFound)?;
        if !self.store.users().is_member(who.user.id, id).await? {
            return Err(PageError::NotFound);
        }
        self.store
            .projects()
            .get(id)
            .await?
            .ok_or(PageError::NotFound)
    }
}

/// `/dashboard`: the user's project, or a list when there are several.
async fn home(State(d): State<Dashboard>, who: SignedIn) -> Result<Response, PageError> {
    let projects = d.store.users().projects(who.user.id).await?;
    if let [only] = projects.as_slice() {
        return Ok(Redirect::to(&layout::project_path(only)).into_response());
    }
    Ok(pages::project_list(&who, &projects).into_response())
}

async fn css() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("../assets/dashboard.css"),
    )
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("../assets/live.js"),
    )
}

/// No inline code, no framing, nothing cached: pages hold secrets (a new key's) and live data.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; \
             img-src 'self' data:; media-src 'self' http: https:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
