//! Switchboard's storage: one [`Store`] over SQLite (the embedded default) or
//! PostgreSQL (for a fleet), with migrations embedded in the binary.
//!
//! # Layout
//!
//! One module per table or aggregate: [`projects`], [`api_keys`], [`rooms`],
//! [`events`] (the append-only event log), [`idempotency`], [`webhooks`]
//! (endpoints), [`deliveries`] (the webhook outbox and its attempts) and [`functions`]
//! (versions, jobs, invocations and the key-value store), [`usage`] (node
//! heartbeats, participant sessions, the usage ledger and its rollup), [`recordings`], and
//! [`stripe`] (customer links, usage reports to Stripe, Stripe events), and
//! [`retention`] (the janitor's deletes). Each hands out
//! a small repository borrowed from the [`Store`] (`store.rooms().create(..)`).
//!
//! # Invariants
//!
//! - An event is appended to the log in the same transaction as the state
//!   change it describes, and published on the bus only after that
//!   transaction commits: nothing acts on an event that could still vanish.
//! - Times are stored as microseconds since the Unix epoch on both backends.
//! - API key secrets are stored as a SHA-256 hash (for authentication) and
//!   sealed with the server's master key (HS256 token verification needs the
//!   secret itself); they are never stored in the clear.

mod db;
mod error;
mod group;
mod sql;
mod time;
mod turns;

pub mod api_keys;
mod cursors;
pub mod deliveries;
pub mod events;
pub mod functions;
pub mod idempotency;
pub mod nodes;
pub mod projects;
pub mod quality;
pub mod recordings;
pub mod retention;
pub mod rooms;
pub mod sealing;
pub mod stripe;
pub mod testing;
pub mod usage;
pub mod users;
pub mod webhooks;

pub use db::{Backend, Store};
pub use error::StoreError;
pub use sealing::MasterKey;
