//! Switchboard's recording storage.
//!
//! The media node writes each recording's files under one directory per
//! recording; the REST API reads them back and removes them. Both go through
//! [`storage::Storage`], so neither knows where the bytes live. [`control`]
//! starts and stops recordings for the REST API and functions alike;
//! [`composite`] mixes a recording's track files into one MP4 with ffmpeg.
//! [`serve`] reads a file back over HTTP. [`live`] uploads track files to the bucket while they grow, and completes
//! the uploads of a node that was lost.

pub mod composite;
pub mod control;
pub mod live;
pub mod serve;
pub mod storage;
#[cfg(feature = "testing")]
pub mod testing;

pub use control::ControlError;
pub use storage::{S3Config, Storage, StorageError};
