//! What a page answers when it cannot do what was asked: a page of its own,
//! with the status and a sentence saying what to do.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use switchboard_store::StoreError;

use crate::layout;

/// Why a page failed.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    /// No such thing in a project the user belongs to (the same for things
    /// of other projects, so their existence does not leak).
    #[error("There is nothing here, or it is not in a project you belong to.")]
    NotFound,
    /// The form did not carry this session's CSRF token.
    #[error("This form has expired or did not come from this dashboard. Go back, reload the page and try again.")]
    Csrf,
    /// The request asked for something that cannot be done, and why.
    #[error("{0}")]
    Refused(String),
    /// The database failed.
    #[error("The dashboard cannot reach its database right now; try again in a moment.")]
    Store(#[from] StoreError),
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = match &self {
            PageError::NotFound => StatusCode::NOT_FOUND,
            PageError::Csrf => StatusCode::FORBIDDEN,
            PageError::Refused(_) => StatusCode::BAD_REQUEST,
            PageError::Store(e) => {
                tracing::error!(error = %e, "dashboard page failed");
                StatusCode::SERVICE_UNAVAILABLE
            }
        };
        let title = status.canonical_reason().unwrap_or("Error");
        (status, layout::bare(title, &self.to_string())).into_response()
    }
}
