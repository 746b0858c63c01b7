//! Peer connections: how the WebRTC stack is set up (codecs, feedback, ICE
//! and DTLS settings), and one [`connection::Connection`] as a worker of
//! [`crate::worker`] drives it over the node's one UDP port.
pub mod config;
pub mod connection;
pub mod nack;
pub mod reception;
