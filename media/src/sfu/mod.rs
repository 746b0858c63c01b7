//! The packet path: receive from a publisher, decide per subscriber, rewrite, send.
//! It knows nothing of rooms; [`crate::room`] drives it.
pub mod allocation;
pub mod audio_level;
pub mod downtrack;
pub mod fanout;
pub mod forwarder;
pub mod keyframe;
pub mod layers;
pub mod rate_limit;
pub mod receiver;
