//! Room placement over the node registry: the first token for a room places
//! it on a media node; later ones find it there until that node dies.
//!
//! A room goes to its preferred region: the region it was created with, else
//! the region of the dead node it was on, else the token's hint. A token
//! for a room already live names a node of the token's own region when
//! there is one, and the room spans both nodes; so does a token for a room
//! whose node is full, naming another node of that region. Only when no
//! node there can take it does it go to the least-loaded node elsewhere;
//! for a project pinned to regions, only in those.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use switchboard_core::node::{
    choose, dead_after, superseded, Capacity, NodeInfo, PlacementError, PlacementRules, Region,
    RoomRouter, RouteError,
};
use switchboard_core::{Clock, NodeId, ProjectId, RoomName};
use switchboard_store::{Store, StoreError};

/// Places rooms on the media nodes of the shared registry.
#[derive(Clone)]
pub struct Router {
    store: Store,
    clock: Arc<dyn Clock>,
    rules: PlacementRules,
    /// When this instance named each node lately: joins on their way, which
    /// its heartbeat does not count yet.
    named: Arc<std::sync::Mutex<HashMap<NodeId, VecDeque<DateTime<Utc>>>>>,
}

/// For a node that reports no `named_until`, a join is counted as on its
/// way for this long before its last heartbeat too: it may have been named
/// before the heartbeat and connect after.
const JOIN_UNDER_WAY: chrono::Duration = chrono::Duration::milliseconds(500);

/// How long a join named but never made (a token not used) counts.
const NAMED_FOR: chrono::Duration = chrono::Duration::seconds(10);

impl Router {
    /// `nodes` with the joins this instance sent each since its last
    /// heartbeat counted in its load: a broadcast's viewers arrive faster
    /// than heartbeats, and a node fills up before it says so.
    fn with_joins_under_way(&self, mut nodes: Vec<NodeInfo>, now: DateTime<Utc>) -> Vec<NodeInfo> {
        let mut named = self.named.lock().unwrap_or_else(|p| p.into_inner());
        named.retain(|_, at| {
            while at.front().is_some_and(|t| now - *t > NAMED_FOR) {
                at.pop_front();
            }
            !at.is_empty()
        });
        for node in &mut nodes {
            // The joins named after the newest one that reached the node
            // (its tokens carry when they were named) are still on their way.
            // (In whole milliseconds, as tokens say it: a join is named
            // here a moment before its token is signed.)
            let since = node
                .load
                .named_until
                .unwrap_or((node.heartbeat_at - JOIN_UNDER_WAY).timestamp_millis());
            let under_way = named.get(&node.id).map_or(0, |at| {
                at.iter().filter(|t| t.timestamp_millis() > since).count()
            });
            node.load.participants = node
                .load
                .participants
                .saturating_add(u32::try_from(under_way).unwrap_or(u32::MAX));
        }
        nodes
    }
}

impl Router {
    /// A router with the default capacity and [`switchboard_core::node::DEAD_AFTER`].
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            rules: PlacementRules {
                dead_after: dead_after(),
                capacity: Capacity::default(),
            },
            named: Default::default(),
        }
    }

    /// The same router with another capacity per node.
    pub fn with_capacity(mut self, capacity: Capacity) -> Self {
        self.rules.capacity = capacity;
        self
    }
}

/// The regions `project` is pinned to, if it is.
async fn pinned_regions(
    store: &Store,
    project: ProjectId,
) -> Result<Option<Vec<Region>>, RouteError> {
    store.projects().regions(project).await.map_err(unavailable)
}

fn unavailable(e: StoreError) -> RouteError {
    RouteError::Unavailable(e.to_string())
}

#[async_trait]
impl RoomRouter for Router {
    /// Only tokens count: `GET /v1/rtc/route` answers anyone holding a
    /// token, as often as they ask, and must not fill nodes.
    fn join_named(&self, node: &NodeInfo) {
        self.named
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(node.id)
            .or_default()
            .push_back(self.clock.now());
    }

    async fn route(
        &self,
        project: ProjectId,
        room: &RoomName,
        hint: Option<&Region>,
    ) -> Result<NodeInfo, RouteError> {
        let now = self.clock.now();
        let nodes = self.store.nodes();
        let running = nodes.running().await.map_err(unavailable)?;
        let running = self.with_joins_under_way(running, now);
        let placed = nodes.placement(project, room).await.map_err(unavailable)?;
        // What its node reports: the node named next checks the same figure.
        let reported_half_full = placed
            .as_ref()
            .is_some_and(|p| self.rules.is_half_full_of_participants(&p.load));
        // Its load as this instance counts it.
        let placed = placed.map(|p| running.iter().find(|n| n.id == p.id).cloned().unwrap_or(p));
        if let Some(node) = &placed {
            // A draining node keeps the rooms it has until they finish.
            if node.is_alive(now, self.rules.dead_after) && !superseded(node, &running) {
                // Someone from another region joins through a node of their
                // own, which hosts the room too (its nodes relay each other's
                // tracks), if one can take them; a room created in a region
                // stays there.
                let spans = hint.filter(|r| **r != node.region);
                let pinned = match spans {
                    Some(_) => self
                        .store
                        .rooms()
                        .get(project, room)
                        .await
                        .map_err(unavailable)?
                        .is_some_and(|r| r.region.is_some()),
                    None => true,
                };
                if let Some(region) = spans.filter(|_| !pinned) {
                    let allowed = pinned_regions(&self.store, project).await?;
                    if allowed.as_ref().is_none_or(|a| a.contains(region)) {
                        if let Ok(near) =
                            choose(&running, std::slice::from_ref(region), now, &self.rules)
                        {
                            return Ok(near.clone());
                        }
                    }
                }
                // A node at capacity takes no more of the room: another
                // node of its region hosts it too, fed over a relay link, so
                // a broadcast's audience spreads over the region's nodes.
                // (A draining node that is not full keeps its rooms whole.)
                // Joins on their way count only once the node itself reports
                // half its capacity: tokens fetched and never used must not
                // send a join to a node that would refuse it.
                if self.rules.is_full_of_participants(&node.load) && reported_half_full {
                    if let Ok(other) = choose(
                        &running,
                        std::slice::from_ref(&node.region),
                        now,
                        &self.rules,
                    ) {
                        tracing::debug!(%project, room = %room, full = %node.id, node_id = %other.id, "the room's node is full: it spans another");
                        return Ok(other.clone());
                    }
                }
                return Ok(node.clone());
            }
        }
        // The room's own region, set when it was created, comes first; then
        // the region of the dead node it was on, so a reconnect stays near;
        // then the hint.
        let stored_region = self
            .store
            .rooms()
            .get(project, room)
            .await
            .map_err(unavailable)?
            .and_then(|r| r.region)
            .and_then(|r| Region::new(r).ok());
        // A project pinned to regions (data residency) is placed only there;
        // a preference outside them is ignored.
        let allowed = pinned_regions(&self.store, project).await?;
        let permitted = |r: &Region| allowed.as_ref().is_none_or(|a| a.contains(r));
        let preferred = [stored_region, placed.as_ref().map(|n| n.region.clone())]
            .into_iter()
            .chain([hint.cloned()])
            .flatten()
            .find(permitted);
        let chosen = match (&allowed, preferred) {
            // The preferred region, then the project's others in the order it
            // listed them, and nowhere else.
            (Some(allowed), preferred) => {
                let others = allowed.iter().filter(|r| preferred.as_ref() != Some(*r));
                let order: Vec<Region> = preferred.iter().chain(others).cloned().collect();
                choose(&running, &order, now, &self.rules)
                    .map_err(|_| PlacementError::outside(allowed))?
            }
            // Regions are preferences: with no node free there, the room goes
            // to the least-loaded node anywhere rather than nowhere.
            (None, Some(region)) => match choose(&running, &[region], now, &self.rules) {
                Ok(node) => node,
                Err(e) => {
                    tracing::info!(%project, room = %room, reason = %e, "placing the room outside its preferred region");
                    choose(&running, &[], now, &self.rules)?
                }
            },
            (None, None) => choose(&running, &[], now, &self.rules)?,
        };
        let winner = nodes
            .place(project, room, chosen.id, placed.map(|n| n.id), now)
            .await
            .map_err(unavailable)?;
        if winner == chosen.id {
            tracing::info!(%project, room = %room, node_id = %winner, region = %chosen.region, "room placed");
            return Ok(chosen.clone());
        }
        // Another API instance placed it first: go where it went.
        match running.iter().find(|n| n.id == winner) {
            Some(n) => Ok(n.clone()),
            None => nodes
                .get(winner)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| RouteError::Unavailable(format!("node {winner} vanished"))),
        }
    }
}

/// The router of a deployment that is one node (no NATS to reach others):
/// every room is on this node.
#[derive(Clone)]
pub struct SingleNode {
    store: Store,
    clock: Arc<dyn Clock>,
    node: NodeId,
}

impl SingleNode {
    /// Routes every room to `node`.
    pub fn new(store: Store, clock: Arc<dyn Clock>, node: NodeId) -> Self {
        Self { store, clock, node }
    }
}

#[async_trait]
impl RoomRouter for SingleNode {
    async fn route(
        &self,
        project: ProjectId,
        room: &RoomName,
        _: Option<&Region>,
    ) -> Result<NodeInfo, RouteError> {
        let nodes = self.store.nodes();
        let this = nodes
            .get(self.node)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| {
                RouteError::Unavailable(format!("this node {} is not registered", self.node))
            })?;
        let allowed = pinned_regions(&self.store, project).await?;
        if let Some(allowed) = allowed.filter(|a| !a.contains(&this.region)) {
            return Err(PlacementError::outside(&allowed).into());
        }
        // Take over what an earlier process of this deployment left placed.
        let previous = nodes
            .placement(project, room)
            .await
            .map_err(unavailable)?
            .map(|n| n.id)
            .filter(|id| *id != self.node);
        nodes
            .place(project, room, self.node, previous, self.clock.now())
            .await
            .map_err(unavailable)?;
        Ok(this)
    }
}
