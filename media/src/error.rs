//! The media tier's error type.

/// Why a media operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The WebRTC stack refused or failed.
    #[error("webrtc: {0}")]
    Webrtc(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] switchboard_store::StoreError),
    /// The peer did something the protocol does not allow.
    #[error("{0}")]
    Protocol(String),
    /// A socket could not be opened or polled.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

impl MediaError {
    /// Wraps any WebRTC stack error.
    pub fn webrtc(e: impl std::fmt::Display) -> Self {
        Self::Webrtc(e.to_string())
    }
}
