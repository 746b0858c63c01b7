//! Signaling: how clients set up media with the SFU.
//!
//! - [`session`]: the SDK's WebSocket protocol (`docs/signaling.md`; its messages
//!   are [`switchboard_core::signal`]); [`resume`] lets a session outlive a dropped socket.
//! - [`whip`] and [`whep`]: WHIP ingest (RFC 9725) and WHEP playback over plain HTTP,
//!   one peer connection per session, driven by [`single`].
pub mod candidate;
pub mod resume;
pub mod session;
pub(crate) mod single;
pub mod whep;
pub mod whip;
