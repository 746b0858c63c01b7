//! The rooms live on this node: found or made live for a join, closed when
//! empty, and their joins gated.
//!
//! - [`placement`]: the registry's claim that this node hosts a room;
//! - [`cascade`]: this node as one of the hosts of a room live on several nodes;
//! - [`recordings`]: a live room's recordings, and the REST API's
//!   [`RecordingDirectory`](switchboard_core::directory::RecordingDirectory);
//! - [`directory`]: the REST API's
//!   [`ParticipantDirectory`](switchboard_core::directory::ParticipantDirectory);
//! - [`change`]: a REST change applied to a participant connected here.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use switchboard_core::admission::{Admission, JoinGate, JoinRequest, OpenGate};
use switchboard_core::event::{LeaveReason, RoomFinishReason};
use switchboard_core::node::NodeLoad;
use switchboard_core::room::RoomLimits;
use switchboard_core::token::{Claims, Grants};
use switchboard_core::{NodeId, ProjectId, RoomName};
use switchboard_recording::Storage;
use switchboard_store::rooms::NewRoom;
use switchboard_store::{Store, StoreError};

use crate::peer::config::RtcConfig;
use crate::room::live::Room;
use crate::room::participant::Participant;
use crate::worker::{Worker, Workers};

mod cascade;
mod change;
mod directory;
mod placement;
mod recordings;

/// How long the first joiner of a room on this node waits for the tracks
/// its other hosts publish to arrive over their links.
const FIRST_TRACKS_WAIT: Duration = Duration::from_secs(2);

/// Why a join could not find its room.
#[derive(Debug)]
pub enum RoomLookupError {
    /// No such room, and the token may not create it.
    NotFound,
    /// Storage failed.
    Store(StoreError),
    /// The room is live on another node, reached at this URL.
    Elsewhere(String),
    /// The project is pinned to regions (data residency) this node is not in.
    OutsideRegions(String),
}

/// Owns the live rooms of this node.
pub struct RoomManager {
    rooms: Mutex<HashMap<(ProjectId, RoomName), Arc<Room>>>,
    /// Serializes finding-or-creating rooms, so two first joins make one room.
    creating: tokio::sync::Mutex<()>,
    /// The database.
    pub store: Store,
    /// Network settings for peer connections.
    pub rtc: Arc<RtcConfig>,
    /// The media workers: every connection of a room lives on one of them.
    workers: Workers,
    /// This process's node id, stamped on the sessions it hosts.
    pub node: NodeId,
    /// The URL clients reach this node at.
    pub url: String,
    /// This node is the whole deployment (no NATS to reach others): a room
    /// placed on another node is a leftover of an earlier process.
    standalone: std::sync::atomic::AtomicBool,
    /// Decides who may join (the project's `participant.joining` hooks).
    gate: parking_lot::RwLock<Arc<dyn JoinGate>>,
    /// Where recordings are written; none until set.
    recordings: parking_lot::RwLock<Option<Storage>>,
    /// One flag per recording started here, raised when it has ended.
    recordings_done: Mutex<Vec<tokio::sync::watch::Receiver<bool>>>,
    /// Reaches the other nodes hosting a room; none on a single node.
    interconnect: parking_lot::RwLock<Option<Arc<dyn switchboard_core::cascade::Interconnect>>>,
    /// The links of the rooms live here that span nodes.
    hosting: Mutex<HashMap<switchboard_core::RoomSid, Arc<cascade::Hosts>>>,
    /// Past this, a node of the deployment takes no more participants: a
    /// room on a full node of this region is hosted here too.
    capacity: parking_lot::RwLock<switchboard_core::node::Capacity>,
    /// The newest time (ms) the API named this node for a join that reached
    /// it, 0 before any: placement counts those named later as on their way.
    named_until: std::sync::atomic::AtomicI64,
    /// This manager, for the tasks it starts.
    me: std::sync::Weak<RoomManager>,
}

impl RoomManager {
    /// A manager with no rooms, for node `node` reached at `url`, whose
    /// rooms' media run on `workers`.
    pub fn new(
        store: Store,
        rtc: RtcConfig,
        workers: Workers,
        node: NodeId,
        url: String,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            rooms: Mutex::new(HashMap::new()),
            creating: tokio::sync::Mutex::new(()),
            store,
            rtc: Arc::new(rtc),
            workers,
            node,
            url,
            standalone: std::sync::atomic::AtomicBool::new(false),
            gate: parking_lot::RwLock::new(Arc::new(OpenGate)),
            recordings: parking_lot::RwLock::new(None),
            recordings_done: Mutex::new(Vec::new()),
            interconnect: parking_lot::RwLock::new(None),
            hosting: Mutex::new(HashMap::new()),
            capacity: parking_lot::RwLock::new(Default::default()),
            named_until: std::sync::atomic::AtomicI64::new(0),
            me: me.clone(),
        })
    }

    /// The worker that owns `room`'s connections: a packet never leaves the
    /// thread it arrived on.
    pub fn worker_for(&self, room: &crate::room::live::Room) -> Worker {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        room.sid.hash(&mut hasher);
        self.workers.for_key(hasher.finish()).clone()
    }

    /// The UDP port every connection of this node shares (ICE-TCP listens
    /// on the same number).
    pub fn media_port(&self) -> u16 {
        self.workers.local_addr().port()
    }

    /// Puts `gate` in front of every join from now on (set once at start; the
    /// function host needs this manager, so it cannot be passed to `new`).
    pub fn set_join_gate(&self, gate: Arc<dyn JoinGate>) {
        *self.gate.write() = gate;
    }

    /// Refuses joins to a suspended project, then asks the join gate about
    /// `claims` joining `room`: the claims to admit with (name, metadata and
    /// permissions possibly changed), or the reason the client is refused.
    pub async fn gate_join(&self, room: &Room, mut claims: Claims) -> Result<Claims, String> {
        match self.store.projects().suspension(room.project).await {
            // Short enough for a WebSocket close reason (123 bytes).
            Ok(Some(s)) => {
                return Err(format!(
                    "project suspended ({}): no one can join until its billing is settled",
                    s.reason
                ))
            }
            Ok(None) => {}
            // Billing must not take calls down with the database: a join the
            // store cannot check is let through (and the error logged).
            Err(e) => tracing::error!(error = %e, "cannot check whether the project is suspended"),
        }
        let gate = self.gate.read().clone();
        let req = JoinRequest {
            project: room.project,
            room: room.name.clone(),
            identity: claims.sub.clone(),
            name: claims.name.clone().unwrap_or_default(),
            metadata: claims.metadata.clone().unwrap_or_default(),
            permissions: claims.grants.permissions(),
        };
        match gate.check(req).await {
            Admission::Deny { reason } => Err(reason),
            Admission::Admit {
                name,
                metadata,
                permissions,
            } => {
                claims.name = Some(name);
                claims.metadata = Some(metadata);
                claims.grants.can_publish = permissions.can_publish;
                claims.grants.can_subscribe = permissions.can_subscribe;
                claims.grants.can_publish_data = permissions.can_publish_data;
                Ok(claims)
            }
        }
    }

    fn live(&self, project: ProjectId, name: &RoomName) -> Option<Arc<Room>> {
        self.rooms
            .lock()
            .get(&(project, name.clone()))
            .cloned()
            .filter(|r| !r.is_closed())
    }

    /// The live room for a join, loading it from the database or creating it
    /// (with `room_create`); `named_here` when the API sent the joiner to
    /// this node (its token says so).
    pub async fn room_for_join(
        &self,
        project: ProjectId,
        name: &RoomName,
        grants: &Grants,
        named_here: bool,
    ) -> Result<Arc<Room>, RoomLookupError> {
        if let Some(room) = self.live(project, name) {
            room.remote.settled().await;
            return Ok(room);
        }
        let _guard = self.creating.lock().await;
        if let Some(room) = self.live(project, name) {
            room.remote.settled().await;
            return Ok(room);
        }
        let hosted_on = self.claim_placement(project, name, named_here).await?;
        let stored = match self
            .store
            .rooms()
            .get(project, name)
            .await
            .map_err(RoomLookupError::Store)?
        {
            Some(r) => r,
            None if grants.room_create => {
                let new = NewRoom::named(name.clone());
                match self
                    .store
                    .rooms()
                    .create(project, new, chrono::Utc::now())
                    .await
                {
                    Ok((r, _)) => r,
                    Err(StoreError::Conflict(_)) => self
                        .store
                        .rooms()
                        .get(project, name)
                        .await
                        .map_err(RoomLookupError::Store)?
                        .ok_or(RoomLookupError::NotFound)?,
                    Err(e) => return Err(RoomLookupError::Store(e)),
                }
            }
            None => return Err(RoomLookupError::NotFound),
        };
        let limits = RoomLimits {
            empty_timeout_s: stored.empty_timeout_s,
            max_participants: stored.max_participants,
        };
        let room = Room::new(
            project,
            stored.sid,
            stored.name,
            stored.metadata,
            limits,
            self.store.clone(),
            self.node,
        );
        if hosted_on.is_some() {
            room.remote.set_settling(true);
        }
        self.rooms
            .lock()
            .insert((project, name.clone()), room.clone());
        tokio::spawn(crate::room::observer::run(Arc::downgrade(&room)));
        if let (Some(node), Some(me)) = (hosted_on, self.me.upgrade()) {
            // The first joiner here sees the room as it is on its other
            // hosts: their roster, and their tracks if they arrive soon.
            me.pull_from(&room, node).await;
            room.relayed_tracks_ready(FIRST_TRACKS_WAIT).await;
            room.remote.set_settling(false);
        }
        if let Err(e) = self.start_recordings(&room, stored.record).await {
            // The call goes on without them; they stay waiting for the next time the room goes live.
            tracing::error!(room = %room.name, error = %e, "cannot start the room's recordings");
        }
        Ok(room)
    }

    /// Called when a participant left: closes the room `empty_timeout_s` later if nobody came back.
    pub fn schedule_empty_close(self: &Arc<Self>, room: &Arc<Room>) {
        if !room.is_empty() || room.is_closed() {
            return;
        }
        let generation = room.generation();
        let (manager, room) = (self.clone(), room.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(u64::from(room.empty_timeout_s()))).await;
            if !room.is_empty() || room.generation() != generation || room.is_closed() {
                return;
            }
            manager.forget(&room, false).await;
            room.close(LeaveReason::RoomClosed).await;
            // Delete only this incarnation: the name may have been reused since.
            match manager.store.rooms().get(room.project, &room.name).await {
                Ok(Some(r)) if r.sid == room.sid => {
                    if let Err(e) = manager
                        .store
                        .rooms()
                        .delete(
                            room.project,
                            &room.name,
                            RoomFinishReason::EmptyTimeout,
                            chrono::Utc::now(),
                        )
                        .await
                    {
                        tracing::error!(room = %room.name, error = %e, "could not close the empty room");
                    } else {
                        tracing::info!(room = %room.name, room_sid = %room.sid, "empty room closed");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(room = %room.name, error = %e, "could not look up the empty room")
                }
            }
        });
    }

    /// Drops `room` from the live rooms and frees its placement on this node,
    /// so its name may be placed anywhere next time; with `closed` (the room
    /// was deleted), its other hosts close it too.
    async fn forget(&self, room: &Arc<Room>, closed: bool) {
        {
            let mut rooms = self.rooms.lock();
            if rooms
                .get(&(room.project, room.name.clone()))
                .is_some_and(|r| Arc::ptr_eq(r, room))
            {
                rooms.remove(&(room.project, room.name.clone()));
            }
        }
        self.leave_hosts(room, closed).await;
        if let Err(e) = self
            .store
            .nodes()
            .unplace(room.project, &room.name, self.node)
            .await
        {
            // The placement stays on this live node: harmless, the room comes back here.
            tracing::warn!(room = %room.name, error = %e, "could not free the room's placement");
        }
    }

    /// The live session `sid` of `project`, with its room.
    pub fn find_session(
        &self,
        project: ProjectId,
        sid: switchboard_core::ParticipantSid,
    ) -> Option<(Arc<Room>, Arc<Participant>)> {
        self.rooms()
            .into_iter()
            .filter(|r| r.project == project)
            .find_map(|r| {
                r.participants()
                    .into_iter()
                    .find(|p| p.sid == sid)
                    .map(|p| (r, p))
            })
    }

    /// What this node carries now, without the CPU share (the caller's to
    /// measure): live rooms, their participants, the tracks published, and
    /// the bitrate sent to subscribers as the observers last measured it.
    pub fn load(&self) -> NodeLoad {
        let named_until = self.named_until.load(std::sync::atomic::Ordering::Relaxed);
        let mut load = NodeLoad {
            named_until: (named_until > 0).then_some(named_until),
            ..NodeLoad::default()
        };
        for room in self.rooms().iter().filter(|r| !r.is_closed()) {
            load.rooms += 1;
            for p in room.participants() {
                load.participants += 1;
                load.tracks += u32::try_from(p.published.lock().len()).unwrap_or(u32::MAX);
                load.forwarded_bps += p.connection().map_or(0, |c| c.subscribe_bps);
            }
        }
        load
    }

    /// Notes a join the API named this node for at `named_at` (ms), now here.
    pub fn named_join_arrived(&self, named_at: i64) {
        self.named_until
            .fetch_max(named_at, std::sync::atomic::Ordering::Relaxed);
    }

    /// The participants connected here, in every live room.
    pub fn participant_count(&self) -> u32 {
        let count: usize = self
            .rooms()
            .iter()
            .filter(|r| !r.is_closed())
            .map(|r| r.participant_count())
            .sum();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// Every live room (for metrics and shutdown).
    pub fn rooms(&self) -> Vec<Arc<Room>> {
        self.rooms.lock().values().cloned().collect()
    }
}
