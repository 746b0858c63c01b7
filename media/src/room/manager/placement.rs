//! Which node hosts a room: this node claims a room in the registry before it goes live.

use switchboard_core::node::{dead_after, Capacity, PlacementError, PlacementRules};
use switchboard_core::{NodeId, ProjectId, RoomName};
use switchboard_store::StoreError;

use super::{RoomLookupError, RoomManager};

impl RoomManager {
    /// Marks this node as the whole deployment: it takes over any room placed elsewhere.
    pub fn set_standalone(&self) {
        self.standalone
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sets the capacity of the deployment's nodes (`[placement]`): a room
    /// whose node is past it is hosted here too.
    pub fn set_capacity(&self, capacity: Capacity) {
        *self.capacity.write() = capacity;
    }

    /// Makes this node the room's host in the registry, unless another live
    /// node hosts it: in another region, or full, or when the API sent the
    /// joiner here (`named_here`: it counts joins its node has not reported
    /// yet), this node hosts it too (with other nodes reachable), and that
    /// node is returned; else the joiner was sent to the wrong node.
    pub(super) async fn claim_placement(
        &self,
        project: ProjectId,
        name: &RoomName,
        named_here: bool,
    ) -> Result<Option<NodeId>, RoomLookupError> {
        let nodes = self.store.nodes();
        let now = chrono::Utc::now();
        let placed = nodes
            .placement(project, name)
            .await
            .map_err(RoomLookupError::Store)?;
        let replacing = match placed {
            Some(n) if n.id == self.node => return Ok(None),
            // The same URL is this node's previous process, restarted before its silence was noticed.
            Some(n)
                if n.is_alive(now, dead_after())
                    && n.url != self.url
                    && !self.standalone.load(std::sync::atomic::Ordering::Relaxed) =>
            {
                let here = nodes
                    .get(self.node)
                    .await
                    .map_err(RoomLookupError::Store)?
                    .map(|me| me.region);
                let rules = PlacementRules {
                    dead_after: dead_after(),
                    capacity: *self.capacity.read(),
                };
                // A token naming this node (the API counted the room's node
                // full with the joins on their way) is taken only when that
                // node is at least half full by its own count too (it lags
                // the joins of a burst): a token signed offline cannot spread
                // a room over every node.
                let named = named_here && rules.is_half_full_of_participants(&n.load);
                let spans = named
                    || here.is_some_and(|r| r != n.region)
                    || rules.is_full_of_participants(&n.load);
                if self.interconnect().is_some() && spans {
                    return Ok(Some(n.id));
                }
                return Err(RoomLookupError::Elsewhere(n.url));
            }
            Some(n) => Some(n.id),
            None => None,
        };
        // Placing the room here ourselves (a token signed offline, or its
        // node died): only in the regions the project is pinned to.
        if let Some(allowed) = self
            .store
            .projects()
            .regions(project)
            .await
            .map_err(RoomLookupError::Store)?
        {
            let here = nodes
                .get(self.node)
                .await
                .map_err(RoomLookupError::Store)?
                .map(|n| n.region);
            if !here.is_some_and(|r| allowed.contains(&r)) {
                return Err(RoomLookupError::OutsideRegions(
                    PlacementError::outside(&allowed).to_string(),
                ));
            }
        }
        let winner = nodes
            .place(project, name, self.node, replacing, now)
            .await
            .map_err(RoomLookupError::Store)?;
        if winner == self.node {
            return Ok(None);
        }
        match nodes.get(winner).await.map_err(RoomLookupError::Store)? {
            Some(n) => Err(RoomLookupError::Elsewhere(n.url)),
            None => Err(RoomLookupError::Store(StoreError::Conflict(format!(
                "room `{name}` was placed on unknown node {winner}"
            )))),
        }
    }
}
