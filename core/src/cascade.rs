//! Rooms on several media nodes: what the nodes hosting one room say to
//! each other, and the seams that carry it.
//!
//! A participant connects to a node of its own region, so one room may be
//! live on several nodes (its hosts). Each host keeps its own participants
//! and shows the others' as remote ones, and each pair of hosts has a relay
//! link each way carrying the sending host's published tracks once. The
//! sending host offers and the receiving host answers; with every change
//! of its roster the sender sends the whole of it again (participants with
//! their tracks), so a message lost or repeated leaves nothing wrong for
//! long.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::directory::ParticipantUpdate;
use crate::room::ParticipantInfo;
use crate::signal::{QualityUpdate, SpeakerLevel};
use crate::{Identity, NodeId, ProjectId, RoomName, RoomSid, TrackSid};

/// A message from one host of a room to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "link", rename_all = "snake_case")]
pub enum LinkRequest {
    /// Node `from` hosts the room too and asks for a link carrying this
    /// node's tracks; the answer is [`LinkReply::Offer`].
    Open {
        /// The room's project.
        project: ProjectId,
        /// The room.
        room: RoomName,
        /// Its incarnation: a link never joins two incarnations of a name.
        room_sid: RoomSid,
        /// The asking host.
        from: NodeId,
    },
    /// Node `from`'s answer to the offer of its link from this node.
    Answer {
        /// The room's incarnation.
        room_sid: RoomSid,
        /// The answering host.
        from: NodeId,
        /// The SDP answer.
        sdp: String,
    },
    /// Node `from`'s participants as they are now, and, when the tracks it
    /// sends changed, its link's new offer; the answer is
    /// [`LinkReply::Answer`] to an offer, else [`LinkReply::Done`].
    Update {
        /// The room's incarnation.
        room_sid: RoomSid,
        /// The sending host.
        from: NodeId,
        /// Everyone connected there, with their tracks.
        roster: Vec<ParticipantInfo>,
        /// The link's new offer.
        sdp: Option<String>,
    },
    /// Who speaks on node `from` now, loudest first (sent when that
    /// changes, and every second while anyone speaks).
    Levels {
        /// The room's incarnation.
        room_sid: RoomSid,
        /// The sending host.
        from: NodeId,
        /// Its speakers and their levels.
        levels: Vec<SpeakerLevel>,
    },
    /// The connection quality of everyone connected to node `from` (sent
    /// every few seconds while the room spans nodes).
    Quality {
        /// The room's incarnation.
        room_sid: RoomSid,
        /// The sending host.
        from: NodeId,
        /// Each of its participants' quality.
        updates: Vec<QualityUpdate>,
    },
    /// A change the REST API asks of a participant connected to this node
    /// (the API reached another host of the room); the answer is
    /// [`LinkReply::Participant`], or [`LinkReply::Refused`] when it is not
    /// connected here or has no such track.
    Change {
        /// The room's incarnation.
        room_sid: RoomSid,
        /// Who.
        identity: Identity,
        /// What to change.
        change: ParticipantChange,
    },
    /// Node `from` no longer hosts the room: its participants have left,
    /// or, with `closed`, the room was closed (deleted through the API) and
    /// every host ends its sessions too.
    Close {
        /// The room's incarnation.
        room_sid: RoomSid,
        /// The leaving host.
        from: NodeId,
        /// The room is closed everywhere.
        #[serde(default)]
        closed: bool,
    },
}

/// What the REST API changes of a live participant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum ParticipantChange {
    /// Ends its session (`participant.left` with reason `removed`).
    Remove,
    /// Mutes or unmutes one of its tracks.
    MuteTrack {
        /// The track.
        track: TrackSid,
        /// Muted or not.
        muted: bool,
    },
    /// Changes its name, metadata or permissions.
    Update {
        /// The new values.
        update: ParticipantUpdate,
    },
}

/// A host's answer to a [`LinkRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "link_reply", rename_all = "snake_case")]
pub enum LinkReply {
    /// The link's first offer, with the roster of the offering host and the
    /// other hosts it knows (which the asking host links to as well).
    Offer {
        /// The SDP offer.
        sdp: String,
        /// Everyone connected to the offering host.
        roster: Vec<ParticipantInfo>,
        /// The room's other hosts.
        hosts: Vec<NodeId>,
    },
    /// The SDP answer to an update's offer.
    Answer {
        /// The SDP answer.
        sdp: String,
    },
    /// The participant after a [`LinkRequest::Change`].
    Participant {
        /// As it is now.
        info: ParticipantInfo,
    },
    /// Taken.
    Done,
    /// Refused, and why (the room is not live here, or is another incarnation).
    Refused {
        /// What went wrong.
        message: String,
    },
}

/// Why a link message did not get through.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    /// The node could not be reached, or did not answer in time.
    #[error("node {node} cannot be reached: {message}")]
    Unreachable {
        /// The node.
        node: NodeId,
        /// What happened.
        message: String,
    },
}

/// Sends a room's hosts' messages to other nodes (over NATS in a cluster).
#[async_trait]
pub trait Interconnect: Send + Sync + 'static {
    /// Sends `request` to `node` and waits for its reply.
    async fn send(&self, node: NodeId, request: LinkRequest) -> Result<LinkReply, LinkError>;
}

/// A media node's side of [`LinkRequest`]s: what it does when another host asks.
#[async_trait]
pub trait RoomHosting: Send + Sync + 'static {
    /// Handles `request` from another host.
    async fn link(&self, request: LinkRequest) -> LinkReply;
}
