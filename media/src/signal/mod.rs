//! Signaling: the WebSocket protocol clients join rooms with.
pub mod protocol;
pub mod session;
