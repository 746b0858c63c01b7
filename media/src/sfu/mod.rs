//! The packet path's decisions: per track and per subscriber, what to
//! forward and how to rewrite it. It knows nothing of rooms, sockets or
//! threads; [`crate::worker`] runs it.
pub mod allocation;
pub mod audio_level;
pub mod estimate;
pub mod fanout;
pub mod forwarder;
pub mod keyframe;
pub mod layers;
pub mod rate_limit;
