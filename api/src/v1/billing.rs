//! `/v1/billing/stripe`: the project's Stripe customer and subscription,
//! whether it is suspended, and every usage report sent (or still being
//! retried) to Stripe.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use switchboard_store::stripe::Report;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::page_size;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiQuery;
use crate::AppState;

/// The billing routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_stripe))
}

/// Query of `GET /v1/billing/stripe`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StripeQuery {
    /// Reports to list, newest window first (1 to 100, default 20).
    pub limit: Option<u32>,
}

/// Why the project is suspended.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuspensionView {
    /// `payment_failed`, `subscription_canceled`, or what an operator gave.
    pub reason: String,
    /// Since when.
    pub since: DateTime<Utc>,
}

/// One usage report to Stripe.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportView {
    /// The meter, or `minimum` for the top-up to the plan's minimum.
    pub meter: String,
    /// The billing period, `YYYY-MM`.
    pub period: String,
    /// The report carries the period's usage up to here, less earlier reports.
    pub window_end: DateTime<Utc>,
    /// `invoice_item` or `meter_event`.
    pub kind: String,
    /// Billed units beyond the allowance it adds.
    pub quantity: i64,
    /// Cents it adds.
    pub amount_cents: i64,
    /// `pending` (being sent or retried), `sent`, or `empty` (nothing to add).
    pub status: String,
    /// Calls made.
    pub attempts: i64,
    /// Why the last call failed.
    pub last_error: Option<String>,
    /// When a pending report is tried next.
    pub next_attempt_at: DateTime<Utc>,
    /// The idempotency key every call for it carries.
    pub idempotency_key: String,
    /// The invoice item (or meter event identifier) Stripe holds.
    pub stripe_id: Option<String>,
    /// When Stripe acknowledged it.
    pub sent_at: Option<DateTime<Utc>>,
}

impl From<Report> for ReportView {
    fn from(r: Report) -> Self {
        Self {
            idempotency_key: r.idempotency_key(),
            meter: r.meter,
            period: r.period,
            window_end: r.window_end,
            kind: r.kind.as_str().into(),
            quantity: r.quantity,
            amount_cents: r.amount_cents,
            status: r.status.as_str().into(),
            attempts: r.attempts,
            last_error: r.last_error,
            next_attempt_at: r.next_attempt_at,
            stripe_id: r.stripe_id,
            sent_at: r.sent_at,
        }
    }
}

/// The project's standing with Stripe.
#[derive(Debug, Serialize, ToSchema)]
pub struct StripeAccount {
    /// The Stripe customer, once linked.
    pub customer_id: Option<String>,
    /// The subscription, once created.
    pub subscription_id: Option<String>,
    /// Set while new joins are refused.
    pub suspension: Option<SuspensionView>,
    /// Usage reports, newest window first.
    pub reports: Vec<ReportView>,
}

/// The project's Stripe customer, suspension and usage reports.
#[utoipa::path(get, path = "/v1/billing/stripe", tag = "usage", params(StripeQuery),
    responses((status = 200, body = StripeAccount), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn get_stripe(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<StripeQuery>,
) -> Result<Json<StripeAccount>, ApiError> {
    let limit = page_size(q.limit)?;
    let project = caller.project_id;
    let link = state.store.stripe().link_of(project).await?;
    let suspension = state.store.projects().suspension(project).await?;
    let reports = state.store.stripe().reports(project, limit).await?;
    Ok(Json(StripeAccount {
        customer_id: link.as_ref().map(|l| l.customer_id.clone()),
        subscription_id: link.and_then(|l| l.subscription_id),
        suspension: suspension.map(|s| SuspensionView {
            reason: s.reason,
            since: s.since,
        }),
        reports: reports.into_iter().map(ReportView::from).collect(),
    }))
}
