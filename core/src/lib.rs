//! Shared domain types of Switchboard.
//!
//! Every other crate meets on the types defined here and on nothing else:
//!
//! - [`id`]: prefixed, sortable identifiers (`pr_`, `rm_`, `pa_`, `tr_`, `ev_`).
//! - [`name`]: validated user-chosen names (room names, participant identities).
//! - [`event`]: the event catalogue. Every state change is an [`event::Event`],
//!   persisted in the event log before anyone acts on it.
//! - [`bus`]: the [`bus::Bus`] trait that carries persisted events to
//!   consumers, with an in-process implementation.
//! - [`token`]: access tokens (HS256 JWTs) with their grants.
//! - [`room`]: rooms, participants and tracks as the API shows them.
//! - [`recording`]: recordings, what they select and the files they produce.
//! - [`directory`]: the seam through which the control plane reaches live
//!   participants on media nodes.
//! - [`cascade`]: what the media nodes hosting one room say to each other.
//! - [`signal`]: the messages of the WebSocket signaling protocol, shared by
//!   the media node and every client written in Rust.
//! - [`webhook`]: what a webhook endpoint may subscribe to and where it may
//!   point (event type patterns, the address policy against SSRF).
//! - [`usage`] and [`billing`]: the meters, how usage is split into hours and
//!   rounded, and the plans and invoice arithmetic applied to it.
//! - [`node`]: the nodes of a deployment, their load, and the rule that
//!   places a new room on one of them.
//! - [`clock`]: wall-clock time behind a trait, so time-driven logic tests on
//!   a manual clock.
//! - [`rate`]: token buckets, for every limit on how often something may happen.
//!
//! This crate performs no I/O of its own.

pub mod admission;
pub mod billing;
pub mod bus;
pub mod cascade;
pub mod clock;
pub mod directory;
pub mod estimate;
pub mod event;
pub mod function;
pub mod id;
pub mod name;
pub mod node;
pub mod rate;
pub mod recording;
pub mod room;
pub mod signal;
pub mod token;
pub mod usage;
pub mod webhook;

pub use clock::{Clock, ManualClock, SystemClock};
pub use event::{Event, EventPayload};
pub use id::{
    AttemptId, DeliveryId, EventId, FunctionId, FunctionJobId, InvocationId, NodeId,
    ParticipantSid, ProjectId, RecordingId, RoomSid, TrackSid, UserId, WebhookId,
};
pub use name::{Identity, NameError, RoomName};
