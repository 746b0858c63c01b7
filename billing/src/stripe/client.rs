//! The Stripe API client and its errors.

use stripe::{IdempotencyKey, RequestStrategy, StripeRequest};
use switchboard_store::StoreError;

use super::Config;

/// Why a call to Stripe failed.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe refused the request.
    #[error("Stripe answered {status}: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// Stripe's message (or code).
        message: String,
    },
    /// Stripe could not be reached, or answered something unreadable.
    #[error("cannot talk to Stripe: {0}")]
    Transport(String),
    /// Stripe's answer lacked a field this code needs.
    #[error("Stripe's answer has no `{0}`")]
    Missing(&'static str),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<stripe::StripeError> for StripeError {
    fn from(e: stripe::StripeError) -> Self {
        match e {
            stripe::StripeError::Stripe(err, status) => Self::Refused {
                status,
                message: err
                    .message
                    .clone()
                    .or_else(|| err.code.as_ref().map(|c| format!("{c:?}")))
                    .unwrap_or_else(|| "no message".into()),
            },
            other => Self::Transport(other.to_string()),
        }
    }
}

/// A Stripe API client that reads answers as plain JSON, so fields newer or
/// older than the generated types (and Stripe-compatible servers) do not
/// fail a call that Stripe carried out.
#[derive(Clone)]
pub struct Api {
    client: stripe::Client,
}

impl Api {
    /// A client for `config`'s account and API base.
    pub fn new(config: &Config) -> Result<Self, StripeError> {
        let mut builder = stripe::ClientBuilder::new(config.secret_key.clone());
        if let Some(base) = &config.api_base {
            builder = builder.url(base.clone());
        }
        Ok(Self {
            client: builder.build()?,
        })
    }

    /// Sends `req` once under idempotency key `key` and returns the answer.
    pub async fn call<R: StripeRequest>(
        &self,
        req: &R,
        key: &str,
    ) -> Result<serde_json::Value, StripeError> {
        let key = IdempotencyKey::new(key).map_err(|e| StripeError::Transport(e.to_string()))?;
        self.read(
            req.build()
                .customize::<miniserde::json::Value>()
                .request_strategy(RequestStrategy::Idempotent(key))
                .send(&self.client)
                .await?,
        )
    }

    /// Sends a read-only `req` once and returns the answer.
    pub async fn get<R: StripeRequest>(&self, req: &R) -> Result<serde_json::Value, StripeError> {
        self.read(
            req.build()
                .customize::<miniserde::json::Value>()
                .request_strategy(RequestStrategy::Once)
                .send(&self.client)
                .await?,
        )
    }

    fn read(&self, answer: miniserde::json::Value) -> Result<serde_json::Value, StripeError> {
        serde_json::from_str(&miniserde::json::to_string(&answer))
            .map_err(|e| StripeError::Transport(e.to_string()))
    }
}

/// The `id` of a Stripe object.
pub(crate) fn id_of(object: &serde_json::Value) -> Result<String, StripeError> {
    object
        .get("id")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .ok_or(StripeError::Missing("id"))
}
