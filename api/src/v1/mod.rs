//! The `/v1` resources, one module each.

use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::AppState;

pub mod api_keys;
pub mod billing;
pub mod events;
pub mod functions;
pub mod kv;
pub mod participants;
pub mod project;
pub mod quality;
pub mod recordings;
pub mod rooms;
pub mod route;
pub mod tokens;
pub mod usage;
pub mod webhooks;

/// Every documented `/v1` route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(project::router())
        .merge(api_keys::router())
        .merge(rooms::router())
        .merge(recordings::router())
        .merge(participants::router())
        .merge(tokens::router())
        .merge(webhooks::router())
        .merge(events::router())
        .merge(functions::router())
        .merge(kv::router())
        .merge(usage::router())
        .merge(quality::router())
        .merge(billing::router())
}

/// Query of list endpoints.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// Page size, 1 to 100 (default 20).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Default page size of list endpoints.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Largest page size of list endpoints.
pub const MAX_PAGE_SIZE: u32 = 100;

/// Checks a `limit` query parameter.
pub(crate) fn page_size(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit.unwrap_or(DEFAULT_PAGE_SIZE) {
        n @ 1..=MAX_PAGE_SIZE => Ok(n),
        n => Err(ApiError::invalid(format!(
            "limit must be between 1 and {MAX_PAGE_SIZE}, got {n}"
        ))),
    }
}

/// Checks metadata against the 64 KiB limit.
pub(crate) fn check_metadata(metadata: &str) -> Result<(), ApiError> {
    let max = switchboard_core::room::MAX_METADATA_BYTES;
    if metadata.len() > max {
        return Err(ApiError::bad_request(
            "metadata_too_large",
            format!(
                "metadata is {} bytes; the limit is {max} bytes",
                metadata.len()
            ),
        ));
    }
    Ok(())
}

/// Checks free text a person reads (a display name, a description): at most
/// `max` bytes and no control characters.
pub(crate) fn check_text(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.len() > max || value.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "{field} must be at most {max} bytes without control characters ({} bytes given)",
            value.len()
        )));
    }
    Ok(())
}
