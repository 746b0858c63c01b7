//! Room placement over the node registry, on SQLite and PostgreSQL: region,
//! load, draining, dead nodes, and two API instances placing the same room.

use std::sync::Arc;

use chrono::Duration;
use switchboard_cluster::Router;
use switchboard_core::event::RoomFinishReason;
use switchboard_core::node::{Capacity, NodeLoad, NodeRole, Region, RoomRouter, RouteError};
use switchboard_core::{Clock, EventPayload, ManualClock, NodeId, ProjectId, RoomName, RoomSid};
use switchboard_store::events::EventFilter;
use switchboard_store::nodes::NodeRegistration;
use switchboard_store::rooms::NewRoom;
use switchboard_store::testing::TestDb;
use switchboard_store::{on_both_backends, Backend, Store};

struct Cluster {
    _db: TestDb,
    store: Store,
    clock: Arc<ManualClock>,
    router: Router,
    project: ProjectId,
}

impl Cluster {
    async fn new(backend: Backend) -> Self {
        let db = TestDb::new(backend).await.unwrap();
        let store = db.store().await.unwrap();
        let clock = Arc::new(ManualClock::new("2026-11-30T12:00:00Z".parse().unwrap()));
        let project = store.projects().create("p", clock.now()).await.unwrap().id;
        let router = Router::new(store.clone(), clock.clone());
        Self {
            _db: db,
            store,
            clock,
            router,
            project,
        }
    }

    /// Registers a node with `role` in `region`, carrying `participants` at `cpu`.
    async fn node(&self, role: NodeRole, region: &str, participants: u32, cpu: f32) -> NodeId {
        let id = NodeId::new();
        let registration = NodeRegistration {
            id,
            role,
            region: Region::new(region).unwrap(),
            url: format!("http://{id}.{region}.test"),
        };
        self.store
            .nodes()
            .register(&registration, self.clock.now())
            .await
            .unwrap();
        self.report(id, participants, cpu).await;
        id
    }

    async fn report(&self, id: NodeId, participants: u32, cpu: f32) {
        let load = NodeLoad {
            participants,
            cpu,
            ..NodeLoad::default()
        };
        assert!(self
            .store
            .nodes()
            .heartbeat(id, &load, self.clock.now())
            .await
            .unwrap());
    }

    async fn route(&self, room: &str, hint: Option<&str>) -> Result<NodeId, RouteError> {
        let hint = hint.map(|h| Region::new(h).unwrap());
        // As `POST /v1/tokens` does: the token names the node for a join.
        let node = self
            .router
            .route(self.project, &RoomName::new(room).unwrap(), hint.as_ref())
            .await?;
        self.router.join_named(&node);
        Ok(node.id)
    }
}

async fn a_new_room_goes_to_the_least_loaded_node_of_its_region(b: Backend) {
    let c = Cluster::new(b).await;
    let eu_busy = c.node(NodeRole::Media, "eu-west", 40, 0.3).await;
    let eu_idle = c.node(NodeRole::Media, "eu-west", 2, 0.05).await;
    let us = c.node(NodeRole::Media, "us-east", 0, 0.0).await;
    let _api = c.node(NodeRole::Api, "eu-west", 0, 0.0).await;

    assert_eq!(c.route("standup", Some("eu-west")).await.unwrap(), eu_idle);
    assert_eq!(c.route("town-hall", Some("us-east")).await.unwrap(), us);
    // Once placed, a room stays where it is for its region, whatever the load says.
    c.report(eu_idle, 500, 0.8).await;
    assert_eq!(c.route("standup", Some("eu-west")).await.unwrap(), eu_idle);
    assert_eq!(c.route("standup", None).await.unwrap(), eu_idle);
    // From another region it is joined through a node there: the room spans both.
    assert_eq!(c.route("standup", Some("us-east")).await.unwrap(), us);
    // Unless no node there can take one more.
    c.report(us, 5_000, 0.1).await;
    assert_eq!(c.route("standup", Some("us-east")).await.unwrap(), eu_idle);
    c.report(us, 0, 0.0).await;
    // The next new room in eu-west goes to the now less loaded node.
    assert_eq!(c.route("retro", Some("eu-west")).await.unwrap(), eu_busy);
    // A region without a node is a preference: the least-loaded node anywhere takes the room.
    assert_eq!(c.route("faraway", Some("ap-south")).await.unwrap(), us);
    // Without a hint, any region will do.
    assert!([eu_busy, eu_idle, us].contains(&c.route("anywhere", None).await.unwrap()));
}

async fn a_rooms_own_region_beats_the_tokens_hint(b: Backend) {
    let c = Cluster::new(b).await;
    let eu = c.node(NodeRole::Media, "eu-west", 0, 0.0).await;
    let _us = c.node(NodeRole::Media, "us-east", 0, 0.0).await;
    let mut room = NewRoom::named(RoomName::new("board").unwrap());
    room.region = Some("eu-west".into());
    c.store
        .rooms()
        .create(c.project, room, c.clock.now())
        .await
        .unwrap();
    assert_eq!(c.route("board", Some("us-east")).await.unwrap(), eu);
    // Live there, it stays there: it does not span into the token's region.
    assert_eq!(c.route("board", Some("us-east")).await.unwrap(), eu);
}

async fn draining_and_overloaded_nodes_take_no_new_rooms_but_keep_theirs(b: Backend) {
    let c = Cluster::new(b).await;
    let first = c.node(NodeRole::Media, "eu-west", 0, 0.0).await;
    let second = c.node(NodeRole::Media, "eu-west", 10, 0.1).await;
    assert_eq!(c.route("kept", Some("eu-west")).await.unwrap(), first);
    let drained = c.store.nodes().drain(first, c.clock.now()).await.unwrap();
    assert!(drained.unwrap().draining_since.is_some());
    assert_eq!(c.route("kept", Some("eu-west")).await.unwrap(), first);
    assert_eq!(c.route("new", Some("eu-west")).await.unwrap(), second);
    c.report(second, 10, 0.95).await;
    let elsewhere = c.node(NodeRole::Media, "us-east", 0, 0.0).await;
    assert_eq!(c.route("newer", Some("eu-west")).await.unwrap(), elsewhere);
    c.report(elsewhere, 2_000, 0.1).await;
    // With every node draining or full, the refusal says so.
    let err = c.route("newest", Some("eu-west")).await.unwrap_err();
    assert!(matches!(err, RouteError::NoNode(_)), "{err}");
    assert!(err.to_string().contains("draining or full"), "{err}");
    // Draining an unknown node says so.
    assert!(c
        .store
        .nodes()
        .drain(NodeId::new(), c.clock.now())
        .await
        .unwrap()
        .is_none());
}

async fn a_full_nodes_room_spans_another_node_of_its_region(b: Backend) {
    let c = Cluster::new(b).await;
    let origin = c.node(NodeRole::Media, "eu-west", 0, 0.0).await;
    assert_eq!(c.route("show", Some("eu-west")).await.unwrap(), origin);
    let edge = c.node(NodeRole::Media, "eu-west", 5, 0.1).await;
    let _far = c.node(NodeRole::Media, "us-east", 0, 0.0).await;
    // Under capacity, the room's node takes its next participant.
    // (Each heartbeat comes after the joins named before it arrived.)
    c.clock.advance(Duration::seconds(2));
    c.report(origin, 1_999, 0.2).await;
    assert_eq!(c.route("show", Some("eu-west")).await.unwrap(), origin);
    // Full of participants, the next one goes to another node of its
    // region (which hosts the room too), not to the idle node elsewhere.
    c.clock.advance(Duration::seconds(2));
    c.report(origin, 2_000, 0.2).await;
    assert_eq!(c.route("show", Some("eu-west")).await.unwrap(), edge);
    assert_eq!(c.route("show", None).await.unwrap(), edge);
    // A busy CPU alone does not split a room: its share over half a second is noisy.
    c.clock.advance(Duration::seconds(2));
    c.report(origin, 10, 0.9).await;
    assert_eq!(c.route("show", None).await.unwrap(), origin);
    // The room stays placed on its first node.
    let show = RoomName::new("show").unwrap();
    let placed = c.store.nodes().placement(c.project, &show).await.unwrap();
    assert_eq!(placed.map(|n| n.id), Some(origin));
    // With the region's other nodes full too, the room's node takes them.
    c.clock.advance(Duration::seconds(2));
    c.report(origin, 2_000, 0.2).await;
    c.report(edge, 2_000, 0.1).await;
    assert_eq!(c.route("show", Some("eu-west")).await.unwrap(), origin);
}

async fn joins_on_their_way_count_before_the_node_reports_them(b: Backend) {
    let mut c = Cluster::new(b).await;
    c.router = c.router.clone().with_capacity(Capacity {
        max_cpu: 0.85,
        max_participants: 3,
    });
    let origin = c.node(NodeRole::Media, "eu-west", 0, 0.0).await;
    let edge = c.node(NodeRole::Media, "eu-west", 1, 0.0).await;
    // Tokens fetched and never used count too, so while the origin reports
    // less than half its capacity (as the node named would check), the room
    // stays whole.
    for _ in 0..4 {
        assert_eq!(c.route("live", None).await.unwrap(), origin);
    }
    // Once it reports two, the four on their way fill it before it says so.
    c.report(origin, 2, 0.1).await;
    assert_eq!(c.route("live", None).await.unwrap(), edge);
    // Once it reports them, they are counted once.
    c.clock.advance(Duration::seconds(5));
    c.report(origin, 3, 0.1).await;
    c.report(edge, 2, 0.1).await;
    assert_eq!(c.route("live", None).await.unwrap(), edge);
    // And once some leave, it takes more again.
    c.report(origin, 1, 0.1).await;
    c.report(edge, 3, 0.1).await;
    assert_eq!(c.route("live", None).await.unwrap(), origin);
    // A node that says up to when its named joins arrived (`named_until`)
    // has the joins named since counted, whenever its heartbeat was.
    c.clock.advance(Duration::seconds(5));
    let load = |participants, named_until: Option<chrono::DateTime<chrono::Utc>>| NodeLoad {
        participants,
        named_until: named_until.map(|t| t.timestamp_millis()),
        ..NodeLoad::default()
    };
    let heartbeat = |node, load: NodeLoad| {
        let (store, now) = (c.store.clone(), c.clock.now());
        async move { store.nodes().heartbeat(node, &load, now).await.unwrap() }
    };
    heartbeat(edge, load(3, None)).await;
    heartbeat(origin, load(1, Some(c.clock.now()))).await;
    assert_eq!(c.route("live", None).await.unwrap(), origin);
    assert_eq!(c.route("live", None).await.unwrap(), origin);
    // Two on their way and two there: full.
    c.clock.advance(Duration::seconds(5));
    heartbeat(edge, load(3, None)).await;
    heartbeat(origin, load(2, Some(c.clock.now() - Duration::seconds(6)))).await;
    assert_eq!(
        c.route("live", None).await.unwrap(),
        origin,
        "all full: the room's node"
    );
    heartbeat(edge, load(2, None)).await;
    assert_eq!(c.route("live", None).await.unwrap(), edge);
}

async fn a_dead_nodes_rooms_move_to_a_healthy_node_in_the_same_region(b: Backend) {
    let c = Cluster::new(b).await;
    let doomed = c.node(NodeRole::Media, "eu-west", 0, 0.0).await;
    assert_eq!(c.route("call", Some("eu-west")).await.unwrap(), doomed);
    let healthy = c.node(NodeRole::Media, "eu-west", 30, 0.2).await;
    let _elsewhere = c.node(NodeRole::Media, "us-east", 0, 0.0).await;
    // `doomed` stops beating; the others go on.
    c.clock.advance(Duration::seconds(20));
    c.report(healthy, 30, 0.2).await;
    c.report(_elsewhere, 0, 0.0).await;
    // The room was placed in eu-west by hint only; a reconnect without one
    // still lands on the region of the node it was on.
    assert_eq!(c.route("call", Some("eu-west")).await.unwrap(), healthy);
    assert_eq!(c.route("call", None).await.unwrap(), healthy);
}

/// The room's `room.finished` (reason `node_lost`) and `room.started` events in the log.
async fn restarts(c: &Cluster) -> Vec<(String, RoomSid)> {
    c.store
        .events()
        .list(c.project, &EventFilter::default(), 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| match e.payload {
            EventPayload::RoomFinished {
                room,
                reason: RoomFinishReason::NodeLost,
            } => Some(("finished".to_owned(), room.sid)),
            EventPayload::RoomStarted { room } => Some(("started".to_owned(), room.sid)),
            _ => None,
        })
        .collect()
}

async fn a_lost_nodes_rooms_restart_once_with_their_settings(b: Backend) {
    let c = Cluster::new(b).await;
    let doomed = c.node(NodeRole::Media, "eu-west", 0, 0.0).await;
    let mut new = NewRoom::named(RoomName::new("board").unwrap());
    new.max_participants = 7;
    let (created, _) = c
        .store
        .rooms()
        .create(c.project, new, c.clock.now())
        .await
        .unwrap();
    let other = NewRoom::named(RoomName::new("other").unwrap());
    let (other, _) = c
        .store
        .rooms()
        .create(c.project, other, c.clock.now())
        .await
        .unwrap();
    assert_eq!(c.route("board", None).await.unwrap(), doomed);
    assert_eq!(c.route("other", None).await.unwrap(), doomed);
    c.clock.advance(Duration::seconds(1));
    c.report(doomed, 2, 0.1).await;
    let last_heartbeat = c.clock.now();
    c.clock.advance(Duration::seconds(20));
    let healthy = c.node(NodeRole::Media, "eu-west", 0, 0.0).await;

    // A client asking for the room first: it moves, restarted under a new sid.
    assert_eq!(c.route("board", None).await.unwrap(), healthy);
    let board = c
        .store
        .rooms()
        .get(c.project, &created.name)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(board.sid, created.sid);
    assert_eq!(board.max_participants, 7);
    assert_eq!(board.created_at, last_heartbeat);
    // Then the meter declares the node lost: only the room still on it restarts.
    let closed = c
        .store
        .usage()
        .close_node(doomed, last_heartbeat)
        .await
        .unwrap();
    assert_eq!(closed.len(), 2, "{closed:?}");
    let other_now = c
        .store
        .rooms()
        .get(c.project, &other.name)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(other_now.sid, other.sid);
    assert_eq!(
        restarts(&c).await,
        [
            ("started".to_owned(), created.sid),
            ("started".to_owned(), other.sid),
            ("finished".to_owned(), created.sid),
            ("started".to_owned(), board.sid),
            ("finished".to_owned(), other.sid),
            ("started".to_owned(), other_now.sid),
        ]
    );
    // Placing the restarted room again restarts nothing.
    assert_eq!(c.route("other", None).await.unwrap(), healthy);
    assert_eq!(restarts(&c).await.len(), 6);
}

async fn a_pinned_projects_rooms_stay_in_its_regions(b: Backend) {
    let c = Cluster::new(b).await;
    let us = c.node(NodeRole::Media, "us-east", 0, 0.0).await;
    let eu = c.node(NodeRole::Media, "eu-west", 10, 0.2).await;
    let regions = [
        Region::new("eu-west").unwrap(),
        Region::new("eu-central").unwrap(),
    ];
    assert!(c
        .store
        .projects()
        .set_regions(c.project, &regions)
        .await
        .unwrap());
    assert_eq!(
        c.store.projects().regions(c.project).await.unwrap(),
        Some(regions.to_vec())
    );
    // A hint outside the project's regions is ignored, not obeyed.
    assert_eq!(c.route("a", Some("us-east")).await.unwrap(), eu);
    assert_eq!(c.route("b", None).await.unwrap(), eu);
    // With no node free in them, the room is refused rather than placed outside.
    c.report(eu, 10, 0.99).await;
    let err = c.route("c", Some("eu-west")).await.unwrap_err();
    assert!(err.to_string().contains("eu-west, eu-central"), "{err}");
    // Its second region takes rooms once it has a node.
    let central = c.node(NodeRole::Media, "eu-central", 0, 0.0).await;
    assert_eq!(c.route("c", Some("us-east")).await.unwrap(), central);
    // A single-node deployment outside the regions refuses too.
    let single = switchboard_cluster::router::SingleNode::new(c.store.clone(), c.clock.clone(), us);
    let room = RoomName::new("d").unwrap();
    let err = single.route(c.project, &room, None).await.unwrap_err();
    assert!(err.to_string().contains("data residency"), "{err}");
    // Lifting the restriction lets the next room go anywhere again.
    assert!(c
        .store
        .projects()
        .set_regions(c.project, &[])
        .await
        .unwrap());
    assert_eq!(c.store.projects().regions(c.project).await.unwrap(), None);
    assert_eq!(c.route("e", Some("us-east")).await.unwrap(), us);
    assert_eq!(single.route(c.project, &room, None).await.unwrap().id, us);
}

async fn two_api_instances_placing_one_room_agree(b: Backend) {
    let c = Cluster::new(b).await;
    let nodes = [
        c.node(NodeRole::Media, "eu-west", 0, 0.0).await,
        c.node(NodeRole::Media, "eu-west", 0, 0.0).await,
    ];
    let other = Router::new(c.store.clone(), c.clock.clone());
    let room = RoomName::new("race").unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let router = if i % 2 == 0 {
            c.router.clone()
        } else {
            other.clone()
        };
        let (room, project) = (room.clone(), c.project);
        tasks.push(tokio::spawn(async move {
            router.route(project, &room, None).await.map(|n| n.id)
        }));
        // Make the second node look less loaded half way, so a naive router would split.
        if i == 3 {
            c.report(nodes[0], 50, 0.5).await;
        }
    }
    let mut placed = Vec::new();
    for t in tasks {
        placed.push(t.await.unwrap().unwrap());
    }
    assert!(placed.iter().all(|n| *n == placed[0]), "{placed:?}");
}

async fn a_room_that_finished_is_placed_afresh(b: Backend) {
    let c = Cluster::new(b).await;
    let busy = c.node(NodeRole::Media, "eu-west", 0, 0.0).await;
    let room = RoomName::new("weekly").unwrap();
    assert_eq!(c.route("weekly", None).await.unwrap(), busy);
    let idle = c.node(NodeRole::Media, "eu-west", 0, 0.0).await;
    c.report(busy, 100, 0.5).await;
    // Another node's unplace leaves the placement alone.
    c.store
        .nodes()
        .unplace(c.project, &room, idle)
        .await
        .unwrap();
    assert_eq!(c.route("weekly", None).await.unwrap(), busy);
    c.store
        .nodes()
        .unplace(c.project, &room, busy)
        .await
        .unwrap();
    assert_eq!(c.route("weekly", None).await.unwrap(), idle);
}

on_both_backends!(
    a_new_room_goes_to_the_least_loaded_node_of_its_region,
    a_rooms_own_region_beats_the_tokens_hint,
    draining_and_overloaded_nodes_take_no_new_rooms_but_keep_theirs,
    a_full_nodes_room_spans_another_node_of_its_region,
    joins_on_their_way_count_before_the_node_reports_them,
    a_dead_nodes_rooms_move_to_a_healthy_node_in_the_same_region,
    a_lost_nodes_rooms_restart_once_with_their_settings,
    a_pinned_projects_rooms_stay_in_its_regions,
    two_api_instances_placing_one_room_agree,
    a_room_that_finished_is_placed_afresh,
);
