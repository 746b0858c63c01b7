//! The OpenAPI 3.1 document, generated from the `/v1` handlers themselves.

use axum::Router;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::error::ErrorBody;
use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard API",
        description = "Rooms, participants and access tokens of a Switchboard project. \
                       Authenticate with `Authorization: Bearer <api key secret>` or HTTP Basic `key_id:secret`. \
                       Errors are `{\"error\": {\"code\", \"message\"}}`; `POST`s honour `Idempotency-Key`."
    ),
    modifiers(&Security),
    security(("bearer" = []), ("basic" = [])),
    components(schemas(ErrorBody, switchboard_core::Event, switchboard_core::EventPayload))
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The API key's secret."))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("`key_id:secret`."))
                    .build(),
            ),
        );
    }
}

/// Splits the documented routes into a plain router and the document describing them.
pub fn split(routes: OpenApiRouter<AppState>) -> (Router<AppState>, Document) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes)
        .split_for_parts();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    (router, doc)
}
