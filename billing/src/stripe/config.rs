//! The `[stripe]` configuration, read and checked even by a server built
//! without the Stripe client (which then refuses to start with it).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use switchboard_core::billing::PlanBook;
use switchboard_core::usage::Meter;

/// How usage reaches Stripe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reporting {
    /// One invoice item per meter when a period closes, priced by our plan;
    /// works on any Stripe account.
    #[default]
    InvoiceItems,
    /// Billing Meter events every hour, carrying billed units beyond the
    /// allowance; the subscription's metered prices set the amount.
    MeterEvents,
}

/// One item of the subscription each project gets: a price, or a legacy plan.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionItem {
    /// A Stripe price id (`price_...`).
    #[serde(default)]
    pub price: Option<String>,
    /// A Stripe plan id, for accounts (and servers) that still use plans.
    #[serde(default)]
    pub plan: Option<String>,
}

/// The `[stripe]` configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The secret API key (`sk_live_...`, `sk_test_...`).
    pub secret_key: String,
    /// Where the Stripe API is (a Stripe-compatible server in tests).
    #[serde(default)]
    pub api_base: Option<String>,
    /// The signing secret of the webhook endpoint (`whsec_...`); without it
    /// Stripe's webhooks are refused.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// Invoice items or Billing Meter events.
    #[serde(default)]
    pub report: Reporting,
    /// ISO currency of invoice items, lower case.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// What every project's subscription is made of.
    #[serde(default)]
    pub subscription_items: Vec<SubscriptionItem>,
    /// The Billing Meter event name of each priced meter (meter events only).
    #[serde(default)]
    pub meter_events: BTreeMap<Meter, String>,
    /// How often customers are linked and reports planned and sent.
    #[serde(default = "default_interval")]
    pub interval_seconds: u64,
    /// How long after a window ends its report waits, so sessions ended by a
    /// crashed node's last heartbeat are in it.
    #[serde(default = "default_close_delay")]
    pub close_delay_seconds: u64,
    /// The wait before a failed report's first retry; it doubles each time, up to an hour.
    #[serde(default = "default_retry")]
    pub retry_seconds: u64,
}

fn default_currency() -> String {
    "usd".into()
}
fn default_interval() -> u64 {
    60
}
fn default_close_delay() -> u64 {
    120
}
fn default_retry() -> u64 {
    30
}

/// The longest Billing Meter event name Stripe takes.
pub const MAX_EVENT_NAME: usize = 100;

impl Config {
    /// Checks the settings against each other and the plans; the error says what to change.
    pub fn validate(&self, plans: &PlanBook) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        if self.secret_key.trim().is_empty() {
            return bad(
                "`secret_key` is empty: set it to the account's secret API key (sk_...)".into(),
            );
        }
        if self
            .webhook_secret
            .as_ref()
            .is_some_and(|s| s.trim().is_empty())
        {
            // HMAC under an empty key is a signature anyone can make.
            return bad(
                "`webhook_secret` is empty: set it to the endpoint's signing secret (whsec_...), or leave it out to refuse Stripe's webhooks".into(),
            );
        }
        if let Some(base) = &self.api_base {
            if url::Url::parse(base).is_err() {
                return bad(format!("`api_base` = {base:?} is not a URL"));
            }
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_lowercase()) {
            return bad(format!(
                "`currency` = {:?} is not a three-letter ISO code in lower case (like \"usd\")",
                self.currency
            ));
        }
        for (i, item) in self.subscription_items.iter().enumerate() {
            if item.price.is_some() == item.plan.is_some() {
                return bad(format!(
                    "subscription_items[{i}] must name exactly one of `price` and `plan`"
                ));
            }
        }
        if self.interval_seconds == 0 || self.retry_seconds == 0 {
            return bad("`interval_seconds` and `retry_seconds` must be at least 1".into());
        }
        for (meter, name) in &self.meter_events {
            if name.is_empty() || name.len() > MAX_EVENT_NAME {
                return bad(format!(
                    "meter_events.{meter} must be 1 to {MAX_EVENT_NAME} characters",
                    meter = meter.as_str()
                ));
            }
        }
        if self.report == Reporting::MeterEvents {
            for list in &plans.plans {
                for (meter, price) in &list.prices {
                    if !price.unit_price_cents.is_zero() && !self.meter_events.contains_key(meter) {
                        return bad(format!(
                            "plan {:?} prices {m}, but [stripe.meter_events] has no event name for it: \
                             add `{m} = \"<the Stripe meter's event name>\"`",
                            list.name,
                            m = meter.as_str()
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// How often the worker runs.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_seconds)
    }
}

/// A `[stripe]` setting that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("[stripe]: {0}")]
pub struct ConfigError(String);
