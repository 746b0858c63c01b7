//! Webhook delivery: every event of a project's log reaches each endpoint
//! that subscribes to it, signed, retried and logged.
//!
//! # Layout
//!
//! - [`worker`]: the fan-out loop (log to outbox, by durable cursor) and the
//!   delivery loop (outbox to HTTP, with leases and per-endpoint limits).
//! - [`sender`]: one attempt: the request, the address check after DNS, the
//!   first 2 KiB of the answer.
//! - [`signature`]: Standard Webhooks signing (`webhook-id`,
//!   `webhook-timestamp`, `webhook-signature`).
//! - [`schedule`]: when a failed delivery is tried again.
//! - [`pace`]: how many deliveries are claimed ahead of a fast endpoint.
//! - [`testing`]: a real HTTP receiver on loopback that tests deliver to.
//!
//! Endpoints, deliveries and attempts are stored by `switchboard-store`
//! ([`switchboard_store::webhooks`], [`switchboard_store::deliveries`]); the
//! REST API manages them and this crate only sends.
//!
//! # Guarantees
//!
//! - At least once: a delivery is in the database before it is sent, and one
//!   whose sender died is sent again when its lease lapses. The `webhook-id`
//!   header is the event id, so receivers drop repeats.
//! - In order per participant for a healthy endpoint: a delivery waits while
//!   an earlier event of the same participant (or, for an event about no
//!   participant, of the same room) for the same endpoint has not had its
//!   first attempt.

pub mod pace;
pub mod schedule;
pub mod sender;
pub mod signature;
pub mod testing;
pub mod worker;

pub use schedule::RetrySchedule;
pub use worker::{WebhookConfig, Worker};
