//! A project, a room, a manual clock and the meter, on a fresh database,
//! with helpers that record joins, leaves and video and read the results.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use switchboard_billing::meter::{Config, Worker};
use switchboard_core::event::{
    LeaveReason, ParticipantRef, RoomRef, TrackKind, TrackRef, TrackSource,
};
use switchboard_core::node::NodeLoad;
use switchboard_core::usage::{Meter, Period};
use switchboard_core::{
    Clock, Event, EventPayload, Identity, ManualClock, NodeId, ParticipantSid, ProjectId, RoomName,
    RoomSid, TrackSid,
};
use switchboard_store::testing::TestDb;
use switchboard_store::usage::{Session, SessionFilter};
use switchboard_store::{Backend, Store};

pub fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

pub struct Fixture {
    pub _db: TestDb,
    pub store: Store,
    pub clock: Arc<ManualClock>,
    pub worker: Worker,
    pub project: ProjectId,
    pub room: RoomRef,
}

pub async fn fixture(backend: Backend) -> Fixture {
    let db = TestDb::new(backend).await.unwrap();
    let store = db.store().await.unwrap();
    let clock = Arc::new(ManualClock::new(t("2026-11-30T23:00:00Z")));
    let project = store
        .projects()
        .create("metered", clock.now())
        .await
        .unwrap()
        .id;
    let worker = Worker::new(
        store.clone(),
        clock.clone(),
        Config {
            poll_interval: Duration::from_secs(5),
            dead_after: Duration::from_secs(15),
        },
    );
    Fixture {
        _db: db,
        store,
        clock,
        worker,
        project,
        room: RoomRef {
            sid: RoomSid::new(),
            name: RoomName::new("standup").unwrap(),
        },
    }
}

impl Fixture {
    pub fn who(&self, identity: &str) -> ParticipantRef {
        ParticipantRef {
            sid: ParticipantSid::new(),
            identity: Identity::new(identity).unwrap(),
        }
    }

    pub async fn record(&self, at: &str, payload: EventPayload) {
        self.store
            .events()
            .record(Event::new(self.project, t(at), payload))
            .await
            .unwrap();
    }

    pub async fn join(&self, at: &str, p: &ParticipantRef, node: Option<NodeId>) {
        self.record(
            at,
            EventPayload::ParticipantJoined {
                room: self.room.clone(),
                participant: p.clone(),
                node,
            },
        )
        .await;
    }

    pub async fn leave(&self, at: &str, p: &ParticipantRef) {
        self.record(
            at,
            EventPayload::ParticipantLeft {
                room: self.room.clone(),
                participant: p.clone(),
                reason: LeaveReason::ClientLeft,
            },
        )
        .await;
    }

    pub async fn publish_video(&self, at: &str, p: &ParticipantRef) -> TrackRef {
        let track = TrackRef {
            sid: TrackSid::new(),
            kind: TrackKind::Video,
            source: TrackSource::Camera,
            mime_type: None,
        };
        self.record(
            at,
            EventPayload::TrackPublished {
                room: self.room.clone(),
                participant: p.clone(),
                track: track.clone(),
            },
        )
        .await;
        track
    }

    /// Records a heartbeat of each of `nodes` at the clock's time.
    pub async fn beat(&self, nodes: &[NodeId]) {
        for n in nodes {
            self.store
                .nodes()
                .heartbeat(*n, &NodeLoad::default(), self.clock.now())
                .await
                .unwrap();
        }
    }

    /// Every session of the project, newest first.
    pub async fn sessions(&self) -> Vec<Session> {
        self.store
            .usage()
            .sessions(self.project, &SessionFilter::default(), None, 10)
            .await
            .unwrap()
    }

    pub async fn totals(&self, from: &str, to: &str) -> BTreeMap<Meter, i64> {
        self.store
            .usage()
            .totals(self.project, t(from), t(to))
            .await
            .unwrap()
    }

    pub async fn period(&self, period: &str) -> BTreeMap<Meter, i64> {
        let p: Period = period.parse().unwrap();
        self.store
            .usage()
            .totals(self.project, p.start(), p.end())
            .await
            .unwrap()
    }
}

/// A second, in the ledger's microseconds.
pub const S: i64 = 1_000_000;
