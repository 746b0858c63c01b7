//! Billing through Stripe: each project linked to a Stripe customer and
//! subscription ([`link`]), its usage reported as invoice items or Billing
//! Meter events ([`report`]), and Stripe's webhooks suspending and resuming
//! projects ([`webhook`]). [`Worker`] runs the first two on a timer.
//!
//! Without a `[stripe]` section none of this runs; metering and the usage API
//! work the same.

//!
//! The client and its work need the `stripe` feature (on by default); the
//! configuration is read without it, so such a build can refuse it clearly.

mod config;

#[cfg(feature = "stripe")]
mod client;
#[cfg(feature = "stripe")]
pub mod link;
#[cfg(feature = "stripe")]
pub mod report;
#[cfg(feature = "stripe")]
pub mod webhook;
#[cfg(feature = "stripe")]
mod worker;

#[cfg(feature = "stripe")]
pub(crate) use client::id_of;
#[cfg(feature = "stripe")]
pub use client::{Api, StripeError};
pub use config::{Config, ConfigError, Reporting, SubscriptionItem, MAX_EVENT_NAME};
#[cfg(feature = "stripe")]
pub use worker::Worker;
