//! Metering and billing.
//!
//! - [`meter`]: the consumer of the event log that turns `participant.joined`
//!   and `participant.left` (and recordings) into sessions and rows of the
//!   usage ledger, and closes the sessions of nodes that fell silent at their
//!   last heartbeat.
//! - [`stripe`]: customers, subscriptions, usage reports and webhooks of
//!   Stripe, when configured.
//!
//! The arithmetic (splitting into hours, rounding once per period, plans and
//! invoices) lives in `switchboard_core::usage` and `switchboard_core::billing`
//! so the API can show it without depending on this crate.

pub mod meter;
pub mod stripe;
