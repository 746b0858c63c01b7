//! Switchboard's SFU media node.
//!
//! # Layout
//!
//! - [`signal`]: the WebSocket signaling protocol (`docs/signaling.md`) and
//!   the per-participant session loop that owns a client's socket and its two
//!   peer connections.
//! - [`room`]: room logic. [`room::live::Room`] knows who is in a room and what
//!   they publish, and wires publishers' receivers to subscribers'
//!   down-tracks; [`room::manager::RoomManager`] owns the live rooms and is the
//!   [`ParticipantDirectory`](switchboard_core::directory::ParticipantDirectory)
//!   the REST API asks.
//! - [`sfu`]: the packet path, which knows nothing of rooms: a
//!   [`sfu::receiver::TrackReceiver`] reads a publisher's track and hands each
//!   packet to every [`sfu::downtrack::DownTrack`], whose
//!   [`sfu::forwarder::Forwarder`] decides and rewrites it for one subscriber.
//! - [`recording`]: recording tracks to files: a recorder subscribes to
//!   tracks like a participant and writes each to its own WebM file.
//! - [`load`]: what the node carries, reported with its heartbeats.
//! - [`http`]: `/rtc`, `/sdk/switchboard.js` and the dev `/demo` page.
//! - [`turn`]: the STUN/TURN servers handed to clients, with time-limited
//!   TURN REST credentials.
//! - [`transport`], [`peer`], [`worker`]: the single-port engine (issue 21,
//!   not yet under the server): sockets on one UDP port (and ICE-TCP on the
//!   same number) with RFC 7983 demultiplexing; the WebRTC stack's set-up and
//!   one sans-I/O connection; worker threads that own connections and drive
//!   the packet path, talked to through commands. `docs/media-engine.md`.
//!
//! # Invariants
//!
//! - A participant's signaling is handled by one task, in order.
//! - Per-packet work (route, decide, rewrite) allocates nothing once warm: the
//!   receiver reuses one batch buffer and payloads are shared, not copied.
//! - Every join, leave, publish and unpublish is appended to the event log.

mod error;

pub mod http;
pub mod load;
pub mod peer;
pub mod recording;
pub mod room;
pub mod sdp;
pub mod sfu;
pub mod signal;
pub mod transport;
pub mod turn;
pub mod worker;

pub use error::MediaError;
