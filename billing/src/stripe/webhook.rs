//! Stripe's webhooks: `POST /stripe/webhook`, verified with the endpoint's
//! signing secret, recorded, then acted on once per event id.
//!
//! - `invoice.payment_failed` suspends the customer's project
//!   (`payment_failed`);
//! - `invoice.paid` (and the older `invoice.payment_succeeded`) lifts a
//!   `payment_failed` suspension;
//! - `customer.subscription.deleted` of the project's subscription suspends
//!   it (`subscription_canceled`) until an operator resumes it.
//!
//! Suspension refuses new joins with the reason; calls in progress go on.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use stripe_webhook::{Webhook, WebhookError};
use switchboard_core::Clock;
use switchboard_store::stripe::{EventAction, EventOutcome, ReceivedEvent};
use switchboard_store::Store;

/// The path Stripe posts to.
pub const PATH: &str = "/stripe/webhook";

/// Why a webhook request was refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// No `Stripe-Signature` header.
    #[error("the request has no Stripe-Signature header")]
    MissingSignature,
    /// The signature does not match the body and secret.
    #[error("the Stripe-Signature does not match this endpoint's signing secret")]
    BadSignature,
    /// The signature is older (or newer) than five minutes.
    #[error("the Stripe-Signature timestamp is more than five minutes from now; replayed requests are refused")]
    Stale,
    /// The body is not a Stripe event.
    #[error("the body is not a Stripe event: {0}")]
    NotAnEvent(String),
}

impl Refusal {
    fn code(&self) -> &'static str {
        match self {
            Self::MissingSignature => "missing_signature",
            Self::BadSignature => "invalid_signature",
            Self::Stale => "stale_signature",
            Self::NotAnEvent(_) => "invalid_event",
        }
    }
}

/// What this endpoint reads of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeEvent {
    /// `evt_...`.
    pub id: String,
    /// `invoice.paid`, ...
    pub kind: String,
    /// Seconds since the epoch.
    pub created: i64,
    /// `data.object.customer`.
    pub customer: Option<String>,
    /// `data.object.id`.
    pub object_id: Option<String>,
}

/// Checks `payload` against `signature` and `secret` at `now` (seconds)
/// and reads the event.
pub fn verify(
    payload: &str,
    signature: &str,
    secret: &str,
    now: i64,
) -> Result<StripeEvent, Refusal> {
    match Webhook::construct_event_with_timestamp(payload, signature, secret, now) {
        // The signature is checked before the body is parsed, so a body the
        // generated types cannot read (another API version, a field they
        // lack) was still signed by Stripe; it is read below.
        Ok(_) | Err(WebhookError::BadParse(_)) => {}
        Err(WebhookError::BadTimestamp(_)) => return Err(Refusal::Stale),
        Err(WebhookError::BadSignature | WebhookError::BadHeader(_) | WebhookError::BadKey) => {
            return Err(Refusal::BadSignature)
        }
    }
    let v: Value = serde_json::from_str(payload).map_err(|e| Refusal::NotAnEvent(e.to_string()))?;
    let text = |path: &str| v.pointer(path).and_then(Value::as_str).map(str::to_owned);
    Ok(StripeEvent {
        id: text("/id").ok_or_else(|| Refusal::NotAnEvent("no `id`".into()))?,
        kind: text("/type").ok_or_else(|| Refusal::NotAnEvent("no `type`".into()))?,
        created: v
            .get("created")
            .and_then(Value::as_i64)
            .ok_or_else(|| Refusal::NotAnEvent("no `created`".into()))?,
        customer: text("/data/object/customer"),
        object_id: text("/data/object/id"),
    })
}

/// What `event` does to the project of its customer, whose subscription is `subscription`.
pub fn action(event: &StripeEvent, subscription: Option<&str>) -> EventAction {
    match event.kind.as_str() {
        "invoice.payment_failed" => EventAction::Suspend("payment_failed".into()),
        "invoice.paid" | "invoice.payment_succeeded" => {
            EventAction::Resume("payment_failed".into())
        }
        "customer.subscription.deleted" => match (subscription, event.object_id.as_deref()) {
            (Some(ours), Some(deleted)) if ours != deleted => EventAction::Ignore,
            _ => EventAction::Suspend("subscription_canceled".into()),
        },
        _ => EventAction::Ignore,
    }
}

/// The endpoint's state.
#[derive(Clone)]
pub struct Receiver {
    store: Store,
    clock: Arc<dyn Clock>,
    secret: Arc<str>,
}

impl Receiver {
    /// A receiver checking signatures with `secret`.
    pub fn new(store: Store, clock: Arc<dyn Clock>, secret: &str) -> Self {
        Self {
            store,
            clock,
            secret: secret.into(),
        }
    }

    /// The route, to serve beside the API.
    pub fn routes(self) -> Router {
        Router::new().route(PATH, post(receive)).with_state(self)
    }
}

fn refuse(e: &Refusal) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": {"code": e.code(), "message": e.to_string()}})),
    )
        .into_response()
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(signature) = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return refuse(&Refusal::MissingSignature);
    };
    let Ok(payload) = std::str::from_utf8(&body) else {
        return refuse(&Refusal::NotAnEvent("the body is not UTF-8".into()));
    };
    let now = r.clock.now();
    let event = match verify(payload, signature, &r.secret, now.timestamp()) {
        Ok(event) => event,
        Err(e) => {
            tracing::warn!(error = %e, "Stripe webhook refused");
            return refuse(&e);
        }
    };
    match apply(&r.store, &event, payload, now).await {
        Ok(outcome) => {
            tracing::info!(event_id = %event.id, event_type = %event.kind, outcome = outcome.as_str(),
                "Stripe webhook received");
            Json(json!({"received": true, "outcome": outcome.as_str()})).into_response()
        }
        Err(e) => {
            // Stripe retries a webhook that did not get a 2xx.
            tracing::error!(event_id = %event.id, error = %e, "cannot record a Stripe webhook");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": {"code": "internal_error", "message": "the event could not be recorded; Stripe will retry it"}})),
            )
                .into_response()
        }
    }
}

/// Records `event` and applies what it does.
pub async fn apply(
    store: &Store,
    event: &StripeEvent,
    payload: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<EventOutcome, switchboard_store::StoreError> {
    let subscription = match &event.customer {
        Some(c) => store
            .stripe()
            .link_of_customer(c)
            .await?
            .and_then(|l| l.subscription_id),
        None => None,
    };
    let received = ReceivedEvent {
        id: &event.id,
        kind: &event.kind,
        customer: event.customer.as_deref(),
        created: event.created,
        payload,
    };
    store
        .stripe()
        .apply_event(&received, action(event, subscription.as_deref()), now)
        .await
}
