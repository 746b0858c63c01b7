//! The network edge of the single-port engine (issue 21, in progress): what
//! arrives on the node's one UDP port and which peer connection it is for.
//! [`demux`] is its first piece; the sockets, batching and ICE-TCP framing
//! come with the engine that drives it (`docs/media-engine.md`).
pub mod demux;
