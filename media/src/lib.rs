//! Switchboard's SFU media node.
//!
//! # Layout
//!
//! - [`signal`]: the WebSocket signaling protocol (`docs/signaling.md`) and
//!   the per-participant session loop that owns a client's socket and its two
//!   peer connections; WHIP and WHEP.
//! - [`room`]: room logic. [`room::live::Room`] knows who is in a room and what
//!   they publish, and wires publishers' tracks to subscribers' down-tracks;
//!   [`room::manager::RoomManager`] owns the live rooms and the media workers
//!   and is the
//!   [`ParticipantDirectory`](switchboard_core::directory::ParticipantDirectory)
//!   the REST API asks.
//! - [`worker`]: the media engine: worker threads, one per core, each owning
//!   whole rooms' peer connections on the node's one UDP port and running their
//!   packet path; the rest of the node holds handles
//!   ([`worker::Peer`], [`worker::TrackReceiver`], [`worker::DownTrack`]) that
//!   send the workers commands. `docs/media-engine.md`.
//! - [`sfu`]: the packet path's decisions, which know nothing of rooms or
//!   threads: a track's [`sfu::fanout::Fanout`] decides and rewrites each
//!   packet for every subscriber through its [`sfu::forwarder::Forwarder`].
//! - [`transport`], [`peer`]: the shared port's sockets (UDP and ICE-TCP) and
//!   RFC 7983 demultiplexing; the WebRTC stack's set-up and one sans-I/O
//!   connection.
//! - [`relay`]: relay links, which carry a room's tracks between two nodes
//!   once each: an upstream end that subscribes like a participant, a
//!   downstream end that receives like a publisher's connection.
//! - [`recording`]: recording tracks to files: a recorder subscribes to
//!   tracks like a participant and writes each to its own WebM file.
//! - [`load`]: what the node carries, reported with its heartbeats.
//! - [`http`]: `/rtc`, `/sdk/switchboard.js` and the dev `/demo` page.
//! - [`turn`]: the STUN/TURN servers handed to clients, with time-limited
//!   TURN REST credentials.
//!
//! # Invariants
//!
//! - A participant's signaling is handled by one task, in order.
//! - A packet is received, routed, rewritten and sent on one worker thread,
//!   with no lock and no await; per-packet work allocates nothing once warm.
//! - Every join, leave, publish and unpublish is appended to the event log.

mod error;

pub mod http;
pub mod load;
pub mod peer;
pub mod recording;
pub mod relay;
pub mod room;
pub mod sdp;
pub mod sfu;
pub mod signal;
pub mod transport;
pub mod turn;
pub mod worker;

pub use error::MediaError;
