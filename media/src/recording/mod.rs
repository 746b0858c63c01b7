//! Recording rooms on the media node (`tracks` mode): each selected track,
//! as received, to its own file (WebM, or Matroska for H.264), with a
//! manifest to line them up.
//!
//! A [`Recorder`] is attached to a live room. For each track it selects it
//! adds a down-track whose output is a [`TrackSink`] instead of a peer
//! connection, so the forwarder's decisions (simulcast layer, keyframe
//! starts) apply unchanged. The sink hands packets to the recording's
//! writer thread ([`writer`]) through a bounded queue without waiting: a
//! writer that falls behind fails the recording, never the call. The thread
//! puts packets back in order and into frames ([`assembler`]) and appends
//! them to the track's file ([`container`]); a task saves its progress and
//! ends the recording in the store with `recording.finished` or
//! `recording.failed`. With a bucket, track files are uploaded while they
//! grow ([`live`]).

pub mod assembler;
pub mod container;
pub mod h264;
mod live;
pub mod matroska;
mod recorder;
pub mod writer;

pub use recorder::{Manifest, Recorder, TrackSink};
