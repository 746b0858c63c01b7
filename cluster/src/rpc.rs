//! REST calls on a room, from any API instance to the media node hosting it,
//! over NATS request/reply.
//!
//! Each media node answers on `switchboard.node.<NODE_ID>.media` ([`serve`]).
//! [`ClusterDirectory`] is the [`ParticipantDirectory`] and
//! [`RecordingDirectory`] the API and the dashboard use: it finds the room's
//! node in the registry, calls this process's own media tier directly when
//! the room is here, and sends a request otherwise.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use switchboard_core::cascade::{LinkError, LinkReply, LinkRequest, RoomHosting};
use switchboard_core::directory::{
    DirectoryError, ParticipantDirectory, ParticipantUpdate, RecordingDirectory,
};
use switchboard_core::node::dead_after;
use switchboard_core::room::ParticipantInfo;
use switchboard_core::{Identity, NodeId, ProjectId, RecordingId, RoomName, TrackSid};
use switchboard_store::Store;
use tokio::task::JoinHandle;

/// How long an API instance waits for a media node's answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A node's media tier, as the directories and the room's other hosts see it.
pub trait MediaTier: ParticipantDirectory + RecordingDirectory + RoomHosting {}
impl<T: ParticipantDirectory + RecordingDirectory + RoomHosting> MediaTier for T {}

/// The subject media node `node` answers on.
pub fn subject(node: NodeId) -> String {
    format!("switchboard.node.{node}.media")
}

/// A call on a room, as sent to its node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// [`ParticipantDirectory::list`].
    List { project: ProjectId, room: RoomName },
    /// [`ParticipantDirectory::get`].
    Get {
        project: ProjectId,
        room: RoomName,
        identity: Identity,
    },
    /// [`ParticipantDirectory::remove`].
    Remove {
        project: ProjectId,
        room: RoomName,
        identity: Identity,
    },
    /// [`ParticipantDirectory::mute_track`].
    MuteTrack {
        project: ProjectId,
        room: RoomName,
        identity: Identity,
        track: TrackSid,
        muted: bool,
    },
    /// [`ParticipantDirectory::update`].
    Update {
        project: ProjectId,
        room: RoomName,
        identity: Identity,
        update: ParticipantUpdate,
    },
    /// [`ParticipantDirectory::send_data`].
    SendData {
        project: ProjectId,
        room: RoomName,
        topic: Option<String>,
        payload: String,
    },
    /// [`ParticipantDirectory::close_room`].
    CloseRoom { project: ProjectId, room: RoomName },
    /// [`RecordingDirectory::start`].
    StartRecording {
        project: ProjectId,
        room: RoomName,
        recording: RecordingId,
    },
    /// [`RecordingDirectory::stop`].
    StopRecording {
        project: ProjectId,
        recording: RecordingId,
    },
    /// [`RoomHosting::link`]: another host of a room speaking.
    Link(LinkRequest),
}

/// A media node's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Reply {
    /// The room's participants.
    Participants { participants: Vec<ParticipantInfo> },
    /// One participant, or nobody by that identity.
    Participant {
        participant: Option<ParticipantInfo>,
    },
    /// Done.
    Done,
    /// Whether a recording was being written and was stopped.
    Stopped { stopped: bool },
    /// [`DirectoryError::NotFound`].
    NotFound { message: String },
    /// [`DirectoryError::Unavailable`], or a request the node could not read.
    Failed { message: String },
    /// What a host answered another.
    Link(LinkReply),
}

impl Reply {
    fn from_error(e: DirectoryError) -> Self {
        match e {
            DirectoryError::NotFound(message) => Self::NotFound { message },
            DirectoryError::Unavailable(message) => Self::Failed { message },
        }
    }
}

/// Runs `request` against this node's media tier.
pub async fn handle(media: &dyn MediaTier, request: Request) -> Reply {
    let done = |r: Result<(), DirectoryError>| r.map_or_else(Reply::from_error, |()| Reply::Done);
    match request {
        Request::List { project, room } => match media.list(project, &room).await {
            Ok(participants) => Reply::Participants { participants },
            Err(e) => Reply::from_error(e),
        },
        Request::Get {
            project,
            room,
            identity,
        } => match media.get(project, &room, &identity).await {
            Ok(participant) => Reply::Participant { participant },
            Err(e) => Reply::from_error(e),
        },
        Request::Remove {
            project,
            room,
            identity,
        } => done(media.remove(project, &room, &identity).await),
        Request::MuteTrack {
            project,
            room,
            identity,
            track,
            muted,
        } => match media
            .mute_track(project, &room, &identity, track, muted)
            .await
        {
            Ok(p) => Reply::Participant {
                participant: Some(p),
            },
            Err(e) => Reply::from_error(e),
        },
        Request::Update {
            project,
            room,
            identity,
            update,
        } => match media.update(project, &room, &identity, update).await {
            Ok(p) => Reply::Participant {
                participant: Some(p),
            },
            Err(e) => Reply::from_error(e),
        },
        Request::SendData {
            project,
            room,
            topic,
            payload,
        } => done(
            media
                .send_data(project, &room, topic.as_deref(), &payload)
                .await,
        ),
        Request::CloseRoom { project, room } => done(media.close_room(project, &room).await),
        Request::StartRecording {
            project,
            room,
            recording,
        } => done(media.start(project, &room, recording).await),
        Request::Link(request) => Reply::Link(media.link(request).await),
        Request::StopRecording { project, recording } => {
            match media.stop(project, recording).await {
                Ok(stopped) => Reply::Stopped { stopped },
                Err(e) => Reply::from_error(e),
            }
        }
    }
}

/// Answers requests for node `node` with its media tier until the task is aborted.
pub async fn serve(
    client: async_nats::Client,
    node: NodeId,
    media: Arc<dyn MediaTier>,
) -> Result<JoinHandle<()>, async_nats::SubscribeError> {
    let mut requests = client.subscribe(subject(node)).await?;
    Ok(tokio::spawn(async move {
        while let Some(message) = requests.next().await {
            let Some(reply_to) = message.reply.clone() else {
                continue;
            };
            let (client, media) = (client.clone(), media.clone());
            // One task per call: a slow call (closing a big room) holds up no other.
            tokio::spawn(async move {
                let reply = match serde_json::from_slice::<Request>(&message.payload) {
                    Ok(request) => handle(media.as_ref(), request).await,
                    Err(e) => Reply::Failed {
                        message: format!("the media node could not read the request: {e}"),
                    },
                };
                let body = serde_json::to_vec(&reply).unwrap_or_default();
                if let Err(e) = client.publish(reply_to, body.into()).await {
                    tracing::warn!(error = %e, "could not answer a media request");
                }
            });
        }
    }))
}

/// The directory of a deployment's live rooms, wherever they are.
#[derive(Clone)]
pub struct ClusterDirectory {
    store: Store,
    client: Option<async_nats::Client>,
    node: NodeId,
    url: String,
    local: Option<Arc<dyn MediaTier>>,
}

impl ClusterDirectory {
    /// A directory for the process that is node `node` at `url`, with its
    /// own media tier (`local`, on nodes that host rooms) and a NATS client
    /// to reach the others (`None` in a single-node deployment).
    pub fn new(
        store: Store,
        client: Option<async_nats::Client>,
        node: NodeId,
        url: String,
        local: Option<Arc<dyn MediaTier>>,
    ) -> Self {
        Self {
            store,
            client,
            node,
            url,
            local,
        }
    }

    /// Where `room` is live: `None` when no node hosts it.
    async fn call(
        &self,
        project: ProjectId,
        room: &RoomName,
        request: Request,
    ) -> Result<Option<Reply>, DirectoryError> {
        let placed = self
            .store
            .nodes()
            .placement(project, room)
            .await
            .map_err(|e| DirectoryError::Unavailable(e.to_string()))?;
        let Some(node) = placed else {
            return Ok(None);
        };
        // The same URL is this node, or its previous process (restarted
        // after a crash): what is live there is live here or nowhere. Without
        // NATS this node is the whole deployment.
        if node.id == self.node || node.url == self.url || self.client.is_none() {
            return match &self.local {
                Some(media) => Ok(Some(handle(media.as_ref(), request).await)),
                None => Ok(None),
            };
        }
        if !node.is_alive(chrono::Utc::now(), dead_after()) {
            // Its rooms ended with it.
            return Ok(None);
        }
        let Some(client) = &self.client else {
            return Err(DirectoryError::Unavailable(format!(
                "room `{room}` is on node {} and this server has no NATS connection to reach it \
                 (start it with --nats-url)",
                node.id
            )));
        };
        let body = serde_json::to_vec(&request)
            .map_err(|e| DirectoryError::Unavailable(format!("cannot encode the request: {e}")))?;
        let answer = tokio::time::timeout(
            REQUEST_TIMEOUT,
            client.request(subject(node.id), body.into()),
        )
        .await
        .map_err(|_| {
            DirectoryError::Unavailable(format!(
                "node {} ({}) did not answer within {} s",
                node.id,
                node.url,
                REQUEST_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|e| {
            DirectoryError::Unavailable(format!("node {} ({}): {e}", node.id, node.url))
        })?;
        serde_json::from_slice(&answer.payload)
            .map(Some)
            .map_err(|e| {
                DirectoryError::Unavailable(format!(
                    "node {} answered something unreadable: {e}",
                    node.id
                ))
            })
    }
}

impl ClusterDirectory {
    /// Sends a change to a participant; the answer is the participant after it.
    async fn change(
        &self,
        project: ProjectId,
        room: &RoomName,
        identity: &Identity,
        request: Request,
    ) -> Result<ParticipantInfo, DirectoryError> {
        match self.call(project, room, request).await? {
            None => Err(DirectoryError::not_connected(identity, room)),
            Some(Reply::Participant {
                participant: Some(p),
            }) => Ok(p),
            Some(other) => Err(unexpected(other)),
        }
    }
}

fn unexpected(reply: Reply) -> DirectoryError {
    match reply {
        Reply::NotFound { message } => DirectoryError::NotFound(message),
        Reply::Failed { message } => DirectoryError::Unavailable(message),
        other => DirectoryError::Unavailable(format!("unexpected answer {other:?}")),
    }
}

#[async_trait]
impl ParticipantDirectory for ClusterDirectory {
    async fn list(
        &self,
        project: ProjectId,
        room: &RoomName,
    ) -> Result<Vec<ParticipantInfo>, DirectoryError> {
        let request = Request::List {
            project,
            room: room.clone(),
        };
        match self.call(project, room, request).await? {
            None => Ok(Vec::new()),
            Some(Reply::Participants { participants }) => Ok(participants),
            Some(other) => Err(unexpected(other)),
        }
    }

    async fn get(
        &self,
        project: ProjectId,
        room: &RoomName,
        identity: &Identity,
    ) -> Result<Option<ParticipantInfo>, DirectoryError> {
        let request = Request::Get {
            project,
            room: room.clone(),
            identity: identity.clone(),
        };
        match self.call(project, room, request).await? {
            None => Ok(None),
            Some(Reply::Participant { participant }) => Ok(participant),
            Some(other) => Err(unexpected(other)),
        }
    }

    async fn remove(
        &self,
        project: ProjectId,
        room: &RoomName,
        identity: &Identity,
    ) -> Result<(), DirectoryError> {
        let request = Request::Remove {
            project,
            room: room.clone(),
            identity: identity.clone(),
        };
        match self.call(project, room, request).await? {
            None => Err(DirectoryError::not_connected(identity, room)),
            Some(Reply::Done) => Ok(()),
            Some(other) => Err(unexpected(other)),
        }
    }

    async fn mute_track(
        &self,
        project: ProjectId,
        room: &RoomName,
        identity: &Identity,
        track: TrackSid,
        muted: bool,
    ) -> Result<ParticipantInfo, DirectoryError> {
        let request = Request::MuteTrack {
            project,
            room: room.clone(),
            identity: identity.clone(),
            track,
            muted,
        };
        self.change(project, room, identity, request).await
    }

    async fn update(
        &self,
        project: ProjectId,
        room: &RoomName,
        identity: &Identity,
        update: ParticipantUpdate,
    ) -> Result<ParticipantInfo, DirectoryError> {
        let request = Request::Update {
            project,
            room: room.clone(),
            identity: identity.clone(),
            update,
        };
        self.change(project, room, identity, request).await
    }

    async fn send_data(
        &self,
        project: ProjectId,
        room: &RoomName,
        topic: Option<&str>,
        payload: &str,
    ) -> Result<(), DirectoryError> {
        let request = Request::SendData {
            project,
            room: room.clone(),
            topic: topic.map(str::to_owned),
            payload: payload.to_owned(),
        };
        match self.call(project, room, request).await? {
            None => Err(DirectoryError::NotFound(format!(
                "nobody is connected to room `{room}`"
            ))),
            Some(Reply::Done) => Ok(()),
            Some(other) => Err(unexpected(other)),
        }
    }

    async fn close_room(&self, project: ProjectId, room: &RoomName) -> Result<(), DirectoryError> {
        let request = Request::CloseRoom {
            project,
            room: room.clone(),
        };
        match self.call(project, room, request).await? {
            None | Some(Reply::Done) => Ok(()),
            Some(other) => Err(unexpected(other)),
        }
    }
}

#[async_trait]
impl RecordingDirectory for ClusterDirectory {
    async fn start(
        &self,
        project: ProjectId,
        room: &RoomName,
        recording: RecordingId,
    ) -> Result<(), DirectoryError> {
        let request = Request::StartRecording {
            project,
            room: room.clone(),
            recording,
        };
        // A room not live anywhere picks the stored recording up when it goes live.
        match self.call(project, room, request).await? {
            None | Some(Reply::Done) => Ok(()),
            Some(other) => Err(unexpected(other)),
        }
    }

    async fn stop(
        &self,
        project: ProjectId,
        recording: RecordingId,
    ) -> Result<bool, DirectoryError> {
        let found = self
            .store
            .recordings()
            .get(project, recording)
            .await
            .map_err(|e| DirectoryError::Unavailable(e.to_string()))?;
        let Some(found) = found else {
            return Ok(false);
        };
        let request = Request::StopRecording { project, recording };
        match self.call(project, &found.room.name, request).await? {
            None => Ok(false),
            Some(Reply::Stopped { stopped }) => Ok(stopped),
            Some(other) => Err(unexpected(other)),
        }
    }
}

/// Carries room hosts' messages to other media nodes over NATS, on the
/// subject each node answers REST calls on.
pub struct NatsInterconnect {
    client: async_nats::Client,
}

impl NatsInterconnect {
    /// Sends through `client`.
    pub fn new(client: async_nats::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl switchboard_core::cascade::Interconnect for NatsInterconnect {
    async fn send(&self, node: NodeId, request: LinkRequest) -> Result<LinkReply, LinkError> {
        let unreachable = |message: String| LinkError::Unreachable { node, message };
        let body = serde_json::to_vec(&Request::Link(request))
            .map_err(|e| unreachable(format!("cannot encode the message: {e}")))?;
        let answer = tokio::time::timeout(
            REQUEST_TIMEOUT,
            self.client.request(subject(node), body.into()),
        )
        .await
        .map_err(|_| unreachable(format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())))?
        .map_err(|e| unreachable(e.to_string()))?;
        match serde_json::from_slice(&answer.payload) {
            Ok(Reply::Link(reply)) => Ok(reply),
            Ok(Reply::Failed { message }) => Err(unreachable(message)),
            Ok(other) => Err(unreachable(format!("answered {other:?}"))),
            Err(e) => Err(unreachable(format!("answered something unreadable: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip_and_garbage_is_refused() {
        let request = Request::MuteTrack {
            project: ProjectId::new(),
            room: RoomName::new("standup").unwrap(),
            identity: Identity::new("ann").unwrap(),
            track: TrackSid::new(),
            muted: true,
        };
        let text = serde_json::to_string(&request).unwrap();
        assert!(text.contains("\"op\":\"mute_track\""), "{text}");
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), request);
        for garbage in [
            "",
            "{}",
            "{\"op\":\"format_disk\"}",
            "{\"op\":\"list\",\"project\":\"nope\",\"room\":\"r\"}",
            "{\"op\":\"list\",\"project\":\"pr_01\",\"room\":\"\"}",
        ] {
            assert!(
                serde_json::from_str::<Request>(garbage).is_err(),
                "{garbage}"
            );
        }
        let reply = Reply::NotFound {
            message: "gone".into(),
        };
        let text = serde_json::to_string(&reply).unwrap();
        assert_eq!(serde_json::from_str::<Reply>(&text).unwrap(), reply);
    }
}
