//! Signaling: how clients set up media with the SFU.
//!
//! - [`session`]: the SDK's WebSocket protocol (`docs/signaling.md`; its messages
//!   are [`switchboard_core::signal`]); [`resume`] lets a session outlive a dropped socket.
//! - [`whip`] and [`whep`]: WHIP ingest (RFC 9725) and WHEP playback over plain HTTP,
//!   one peer connection per session, driven by [`single`].
//! - Shared by both: [`tracks`] (what a participant's connections report:
//!   tracks starting and ending, data channel messages) and
//!   [`candidate`] (ICE candidates between signaling and the stack) and
//!   [`description`] (a client's SDP applied, and the answer to it).
pub mod candidate;
pub(crate) mod description;
pub(crate) mod patch;
pub mod resume;
pub mod sdpfrag;
pub mod session;
pub(crate) mod single;
pub(crate) mod tracks;
pub mod whep;
pub mod whip;
