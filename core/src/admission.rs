//! The seam through which functions decide who joins a room.
//!
//! The media tier asks its [`JoinGate`] before admitting a participant; the
//! function host implements it with the project's `participant.joining`
//! hooks. [`OpenGate`] admits everyone as their token says.

use async_trait::async_trait;

use crate::id::ProjectId;
use crate::name::{Identity, RoomName};
use crate::room::ParticipantPermissions;

/// A participant asking to join, with what their access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    /// The project.
    pub project: ProjectId,
    /// The room.
    pub room: RoomName,
    /// The identity from the token.
    pub identity: Identity,
    /// The display name (may be empty).
    pub name: String,
    /// The metadata (may be empty).
    pub metadata: String,
    /// The permissions the token grants.
    pub permissions: ParticipantPermissions,
}

/// The answer to a [`JoinRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Admit with these (possibly changed) name, metadata and permissions.
    Admit {
        /// Display name.
        name: String,
        /// Metadata.
        metadata: String,
        /// Permissions.
        permissions: ParticipantPermissions,
    },
    /// Refuse; the client sees the reason.
    Deny {
        /// Why.
        reason: String,
    },
}

impl Admission {
    /// Admits the request unchanged.
    pub fn unchanged(req: &JoinRequest) -> Self {
        Self::Admit {
            name: req.name.clone(),
            metadata: req.metadata.clone(),
            permissions: req.permissions,
        }
    }
}

/// Decides whether participants may join.
#[async_trait]
pub trait JoinGate: Send + Sync + 'static {
    /// Decides on `req`; must answer within a bounded time.
    async fn check(&self, req: JoinRequest) -> Admission;
}

/// The gate with no hooks: admits everyone unchanged.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenGate;

#[async_trait]
impl JoinGate for OpenGate {
    async fn check(&self, req: JoinRequest) -> Admission {
        Admission::unchanged(&req)
    }
}
