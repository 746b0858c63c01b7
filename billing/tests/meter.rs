//! The meter against a real database on both backends: sessions from events,
//! video and audio, period boundaries, one identity's overlapping sessions,
//! skewed clocks, replays, and the sessions of a node that died.

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
use switchboard_store::nodes::NodeRegistration;
use switchboard_store::testing::TestDb;
use switchboard_store::usage::{Session, SessionFilter};
use switchboard_store::{on_both_backends, Backend, Store};

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

struct Fixture {
    _db: TestDb,
    store: Store,
    clock: Arc<ManualClock>,
    worker: Worker,
    project: ProjectId,
    room: RoomRef,
}

async fn fixture(backend: Backend) -> Fixture {
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
    fn who(&self, identity: &str) -> ParticipantRef {
        ParticipantRef {
            sid: ParticipantSid::new(),
            identity: Identity::new(identity).unwrap(),
        }
    }

    async fn record(&self, at: &str, payload: EventPayload) {
        self.store
            .events()
            .record(Event::new(self.project, t(at), payload))
            .await
            .unwrap();
    }

    async fn join(&self, at: &str, p: &ParticipantRef, node: Option<NodeId>) {
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

    async fn leave(&self, at: &str, p: &ParticipantRef) {
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

    async fn publish_video(&self, at: &str, p: &ParticipantRef) -> TrackRef {
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
    async fn beat(&self, nodes: &[NodeId]) {
        for n in nodes {
            self.store
                .nodes()
                .heartbeat(*n, &NodeLoad::default(), self.clock.now())
                .await
                .unwrap();
        }
    }

    /// Every session of the project, newest first.
    async fn sessions(&self) -> Vec<Session> {
        self.store
            .usage()
            .sessions(self.project, &SessionFilter::default(), None, 10)
            .await
            .unwrap()
    }

    async fn totals(&self, from: &str, to: &str) -> BTreeMap<Meter, i64> {
        self.store
            .usage()
            .totals(self.project, t(from), t(to))
            .await
            .unwrap()
    }

    async fn period(&self, period: &str) -> BTreeMap<Meter, i64> {
        let p: Period = period.parse().unwrap();
        self.store
            .usage()
            .totals(self.project, p.start(), p.end())
            .await
            .unwrap()
    }
}

const S: i64 = 1_000_000;

async fn sessions_are_metered_to_the_microsecond_as_audio_or_video(backend: Backend) {
    let f = fixture(backend).await;
    let (ann, bob, cat) = (f.who("ann"), f.who("bob"), f.who("cat"));
    f.join("2026-11-10T10:00:00Z", &ann, None).await;
    f.join("2026-11-10T10:00:10Z", &bob, None).await;
    // Ann left before any video: audio. Bob was there when video came: video.
    f.leave("2026-11-10T10:00:15.250001Z", &ann).await;
    let track = f.publish_video("2026-11-10T10:00:20Z", &bob).await;
    f.record(
        "2026-11-10T10:01:00Z",
        EventPayload::TrackUnpublished {
            room: f.room.clone(),
            participant: bob.clone(),
            track,
        },
    )
    .await;
    // Cat joined after the video stopped: audio.
    f.join("2026-11-10T10:01:30Z", &cat, None).await;
    f.leave("2026-11-10T10:02:10Z", &bob).await;
    f.leave("2026-11-10T10:03:30Z", &cat).await;
    f.worker.catch_up().await.unwrap();

    let want: BTreeMap<Meter, i64> = [
        (Meter::ParticipantMinutesAudio, 15 * S + 250_001 + 120 * S),
        (Meter::ParticipantMinutesVideo, 120 * S),
    ]
    .into();
    assert_eq!(f.period("2026-11").await, want);

    // A replayed leave (a node retrying) and another meter pass add nothing.
    f.leave("2026-11-10T10:09:00Z", &bob).await;
    f.worker.catch_up().await.unwrap();
    f.worker.catch_up().await.unwrap();
    assert_eq!(f.period("2026-11").await, want);

    let sessions = f.sessions().await;
    assert_eq!(sessions.len(), 3);
    let bob_row = sessions.iter().find(|s| s.identity == "bob").unwrap();
    assert!(bob_row.video);
    assert_eq!(bob_row.billed_us, Some(120 * S));
    assert_eq!(bob_row.left_at, Some(t("2026-11-10T10:02:10Z")));
}

async fn a_session_across_a_period_boundary_is_split_where_it_crosses(backend: Backend) {
    let f = fixture(backend).await;
    let ann = f.who("ann");
    f.join("2026-11-30T23:59:00Z", &ann, None).await;
    f.leave("2026-12-01T01:00:30Z", &ann).await;
    f.worker.catch_up().await.unwrap();
    let nov = f.period("2026-11").await;
    let dec = f.period("2026-12").await;
    assert_eq!(nov[&Meter::ParticipantMinutesAudio], 60 * S);
    assert_eq!(dec[&Meter::ParticipantMinutesAudio], 3600 * S + 30 * S);
    // Hours inside the period add up to the same.
    let hour = f
        .totals("2026-12-01T01:00:00Z", "2026-12-01T02:00:00Z")
        .await;
    assert_eq!(hour[&Meter::ParticipantMinutesAudio], 30 * S);
    // Rounding is for invoices: 60 s is 1 minute, 3630 s is 61 minutes.
    assert_eq!(
        Meter::ParticipantMinutesAudio.billable(nov[&Meter::ParticipantMinutesAudio]),
        1
    );
    assert_eq!(
        Meter::ParticipantMinutesAudio.billable(dec[&Meter::ParticipantMinutesAudio]),
        61
    );
}

async fn one_identitys_overlapping_sessions_are_billed_once(backend: Backend) {
    let f = fixture(backend).await;
    let (tab1, tab2, tab3) = (f.who("ann"), f.who("ann"), f.who("ann"));
    let other = f.who("bob");
    f.join("2026-11-10T10:00:00Z", &tab1, None).await;
    f.join("2026-11-10T10:00:50Z", &tab2, None).await;
    f.join("2026-11-10T10:00:55Z", &other, None).await;
    f.join("2026-11-10T10:01:00Z", &tab3, None).await;
    // Closed out of order: the later tab first.
    f.leave("2026-11-10T10:02:30Z", &tab2).await;
    f.leave("2026-11-10T10:01:40Z", &tab1).await;
    f.leave("2026-11-10T10:01:20Z", &tab3).await;
    f.leave("2026-11-10T10:01:55Z", &other).await;
    f.worker.catch_up().await.unwrap();
    // Ann: the union 10:00:00 to 10:02:30 = 150 s; Bob 60 s on his own.
    assert_eq!(
        f.period("2026-11").await[&Meter::ParticipantMinutesAudio],
        210 * S
    );
}

async fn a_leave_stamped_before_its_join_bills_nothing(backend: Backend) {
    let f = fixture(backend).await;
    let ann = f.who("ann");
    // The leave came from a node whose clock is 3 s behind.
    f.join("2026-11-10T10:00:05Z", &ann, None).await;
    f.leave("2026-11-10T10:00:02Z", &ann).await;
    f.worker.catch_up().await.unwrap();
    assert_eq!(
        f.period("2026-11")
            .await
            .get(&Meter::ParticipantMinutesAudio),
        None
    );
    let s = f.sessions().await;
    assert_eq!(s[0].billed_us, Some(0));
    assert_eq!(s[0].left_at, Some(t("2026-11-10T10:00:05Z")));
}

async fn a_dead_nodes_sessions_end_at_its_last_heartbeat(backend: Backend) {
    let f = fixture(backend).await;
    let (dead, alive, stopped) = (NodeId::new(), NodeId::new(), NodeId::new());
    let start = f.clock.now();
    for n in [dead, alive, stopped] {
        f.store
            .nodes()
            .register(&NodeRegistration::local(n), start)
            .await
            .unwrap();
    }
    let (ann, bob, cat) = (f.who("ann"), f.who("bob"), f.who("cat"));
    f.join("2026-11-30T23:00:01Z", &ann, Some(dead)).await;
    f.join("2026-11-30T23:00:02Z", &bob, Some(alive)).await;
    f.join("2026-11-30T23:00:03Z", &cat, Some(stopped)).await;
    f.leave("2026-11-30T23:00:04Z", &cat).await;
    f.store
        .usage()
        .stop_node(stopped, t("2026-11-30T23:00:05Z"))
        .await
        .unwrap();
    f.clock.advance(chrono::Duration::seconds(10));
    f.beat(&[dead, alive]).await;
    // Ten seconds of silence is not death yet.
    f.clock.advance(chrono::Duration::seconds(10));
    f.beat(&[alive]).await;
    assert_eq!(f.worker.close_dead_nodes().await.unwrap(), 0);
    // Twenty is.
    f.clock.advance(chrono::Duration::seconds(10));
    f.beat(&[alive]).await;
    assert_eq!(f.worker.close_dead_nodes().await.unwrap(), 1);
    assert_eq!(f.worker.close_dead_nodes().await.unwrap(), 0);

    let sessions = f.sessions().await;
    let ann_row = sessions.iter().find(|s| s.identity == "ann").unwrap();
    assert_eq!(ann_row.left_at, Some(t("2026-11-30T23:00:10Z")));
    assert_eq!(ann_row.leave_reason.as_deref(), Some("node_lost"));
    assert_eq!(ann_row.billed_us, Some(9 * S));
    assert!(sessions
        .iter()
        .find(|s| s.identity == "bob")
        .unwrap()
        .left_at
        .is_none());
    // The close is an event like any other, so webhooks and functions see it too.
    let events = f
        .store
        .events()
        .list(f.project, &Default::default(), 0, 100)
        .await
        .unwrap();
    let left = events.last().unwrap();
    assert_eq!(left.created_at, t("2026-11-30T23:00:10Z"));
    assert!(matches!(
        &left.payload,
        EventPayload::ParticipantLeft { participant, reason: LeaveReason::NodeLost, .. } if participant.sid == ann.sid
    ));
    assert_eq!(
        f.period("2026-11").await[&Meter::ParticipantMinutesAudio],
        9 * S + S
    );
}

/// The breakdown by room reads whole days from the daily rollup and the
/// hours around them from the hourly one; every range adds up.
async fn rooms_add_up_over_whole_days_and_the_hours_around_them(backend: Backend) {
    let f = fixture(backend).await;
    let room = |name: &str| RoomRef {
        sid: RoomSid::new(),
        name: RoomName::new(name).unwrap(),
    };
    let (a, b) = (room("a"), room("b"));
    let sessions = [
        (&a, "ann", "2026-11-10T22:30:00Z", "2026-11-12T01:15:00Z"),
        (&b, "bob", "2026-11-11T05:00:00Z", "2026-11-11T06:30:00Z"),
        (&b, "cat", "2026-11-11T23:00:00Z", "2026-11-12T00:30:00Z"),
    ];
    for (room, who, from, to) in sessions {
        let p = f.who(who);
        let joined = EventPayload::ParticipantJoined {
            room: room.clone(),
            participant: p.clone(),
            node: None,
        };
        f.record(from, joined).await;
        let left = EventPayload::ParticipantLeft {
            room: room.clone(),
            participant: p,
            reason: LeaveReason::ClientLeft,
        };
        f.record(to, left).await;
    }
    f.worker.catch_up().await.unwrap();
    const H: i64 = 3600 * S;
    let cases = [
        (
            "2026-11-10T00:00:00Z",
            "2026-11-13T00:00:00Z",
            26 * H + 3 * H / 4,
            3 * H,
        ),
        (
            "2026-11-10T23:00:00Z",
            "2026-11-12T01:00:00Z",
            26 * H,
            3 * H,
        ),
        ("2026-11-11T05:00:00Z", "2026-11-11T06:00:00Z", H, H),
        ("2026-11-12T00:00:00Z", "2026-11-12T01:00:00Z", H, H / 2),
        (
            "2026-11-01T00:00:00Z",
            "2026-12-01T00:00:00Z",
            26 * H + 3 * H / 4,
            3 * H,
        ),
    ];
    for (from, to, want_a, want_b) in cases {
        let report = f
            .store
            .usage()
            .report(f.project, t(from), t(to), None, 10)
            .await
            .unwrap();
        let room_total = |name: &str| {
            report
                .rooms
                .iter()
                .filter(|r| r.room_name == name)
                .map(|r| r.quantity)
                .sum::<i64>()
        };
        assert_eq!(
            (room_total("a"), room_total("b")),
            (want_a, want_b),
            "{from} to {to}"
        );
        let series: i64 = report.hourly.iter().map(|h| h.quantity).sum();
        assert_eq!(series, want_a + want_b, "{from} to {to}");
    }
}

async fn finished_rooms_list_their_sessions_and_open_ones_count_up_to_now(backend: Backend) {
    let f = fixture(backend).await;
    let (ann, bob) = (f.who("ann"), f.who("bob"));
    f.join("2026-11-10T10:00:00Z", &ann, None).await;
    f.join("2026-11-10T10:00:30Z", &bob, None).await;
    f.leave("2026-11-10T10:01:00Z", &ann).await;
    f.leave("2026-11-10T10:02:00Z", &bob).await;
    // A second incarnation of the room, with Ann still in it.
    let first = f.room.clone();
    let mut g = f;
    g.room = RoomRef {
        sid: RoomSid::new(),
        name: first.name.clone(),
    };
    let (again, visitor) = (g.who("ann"), g.who("vic"));
    g.join("2026-11-10T11:00:00Z", &again, None).await;
    g.join("2026-11-10T11:10:00Z", &visitor, None).await;
    g.leave("2026-11-10T11:20:00Z", &visitor).await;
    g.worker.catch_up().await.unwrap();
    // Ann's open session, joined before `since`, still keeps her room off the list.
    let after_ann = t("2026-11-10T11:05:00Z");
    let live = g
        .store
        .usage()
        .finished_rooms(g.project, after_ann, 10)
        .await;
    assert_eq!(live.unwrap().len(), 0);

    let since = t("2026-11-01T00:00:00Z");
    let finished = g
        .store
        .usage()
        .finished_rooms(g.project, since, 10)
        .await
        .unwrap();
    assert_eq!(finished.len(), 1, "{finished:?}");
    let room = &finished[0];
    assert_eq!(room.room_sid, first.sid.to_string());
    assert_eq!(room.room_name, "standup");
    assert_eq!(room.first_joined_at, t("2026-11-10T10:00:00Z"));
    assert_eq!(room.last_left_at, t("2026-11-10T10:02:00Z"));
    assert_eq!((room.sessions, room.identities), (2, 2));
    assert_eq!(room.billed_us, 150 * S);
    // Sessions joined before `since` are not looked at: only Bob's is counted.
    let later = t("2026-11-10T10:00:10Z");
    let partial = g
        .store
        .usage()
        .finished_rooms(g.project, later, 10)
        .await
        .unwrap();
    assert_eq!(partial.len(), 1);
    assert_eq!((partial[0].sessions, partial[0].billed_us), (1, 90 * S));

    let filter = SessionFilter {
        room_sid: Some(first.sid.to_string()),
        ..SessionFilter::default()
    };
    let sessions = g
        .store
        .usage()
        .sessions(g.project, &filter, None, 10)
        .await
        .unwrap();
    assert_eq!(sessions.len(), 2);
    assert!(sessions.iter().all(|s| s.room_sid == first.sid.to_string()));

    // Ann's open session counts up to now, in the hours it spans.
    let (from, to) = (t("2026-11-10T00:00:00Z"), t("2026-11-11T00:00:00Z"));
    let now = t("2026-11-10T12:30:00Z");
    let report = g
        .store
        .usage()
        .report(g.project, from, to, None, 0)
        .await
        .unwrap();
    let open = report.open_usage(from, to, now);
    let hours: Vec<(DateTime<Utc>, i64)> = open.iter().map(|o| (o.hour, o.quantity)).collect();
    assert_eq!(
        hours,
        vec![
            (t("2026-11-10T11:00:00Z"), 3600 * S),
            (t("2026-11-10T12:00:00Z"), 1800 * S)
        ]
    );
    assert_eq!(
        report.totals_with_open(from, to, now)[&Meter::ParticipantMinutesAudio],
        150 * S + 600 * S + 5400 * S
    );
}

async fn old_rows_are_purged_and_the_invoice_stays(backend: Backend) {
    let f = fixture(backend).await;
    let (ann, bob, cat) = (f.who("ann"), f.who("bob"), f.who("cat"));
    f.join("2026-11-10T10:00:00Z", &ann, None).await;
    f.leave("2026-11-10T10:10:00Z", &ann).await;
    f.join("2026-11-10T10:00:00Z", &bob, None).await;
    f.worker.catch_up().await.unwrap();
    let invoice = f.period("2026-11").await;
    assert_eq!(invoice[&Meter::ParticipantMinutesAudio], 600 * S);
    // Old, but no consumer has read it yet.
    f.join("2026-11-10T11:00:00Z", &cat, None).await;

    let keep = chrono::Duration::days(90);
    let now = t("2027-03-01T00:00:00Z");
    let purged = f.store.retention().purge(keep, now).await.unwrap();
    assert_eq!((purged.events, purged.sessions), (3, 1), "{purged:?}");
    assert_eq!(f.period("2026-11").await, invoice, "usage totals are kept");
    let sessions = f.sessions().await;
    assert_eq!(
        sessions
            .iter()
            .map(|s| s.identity.as_str())
            .collect::<Vec<_>>(),
        ["bob"],
        "an open session is kept however old"
    );
    let log = f
        .store
        .events()
        .list(f.project, &Default::default(), 0, 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 1, "the unread event is kept");
    assert!(
        matches!(&log[0].payload, EventPayload::ParticipantJoined { participant, .. } if participant.sid == cat.sid)
    );
    assert_eq!(
        f.store.retention().purge(keep, now).await.unwrap().total(),
        0
    );

    // Once read, it goes too; and within the period nothing does.
    f.worker.catch_up().await.unwrap();
    let within = f
        .store
        .retention()
        .purge(keep, t("2027-01-01T00:00:00Z"))
        .await
        .unwrap();
    assert_eq!(within.total(), 0);
    assert_eq!(
        f.store.retention().purge(keep, now).await.unwrap().events,
        1
    );
    assert_eq!(f.period("2026-11").await, invoice);
}

/// One step of a made-up log: (room, identity, what) with times in seconds.
#[derive(Clone, Copy)]
enum Step {
    Join(usize, usize, i64),
    Leave(usize, LeaveReason, i64),
    Video(usize, i64),
    Unvideo(usize, i64),
}

/// A log mixing the cases the meter's rules distinguish, over hour
/// boundaries: one identity's overlapping sessions, leaves stamped before
/// their joins, leaves of unknown and already closed sessions, video
/// published and withdrawn mid-session, and a node lost.
fn script() -> Vec<Step> {
    let mut seed = 7u64;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let mut steps = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let mut joined = 0;
    let mut at = 0i64;
    for _ in 0..400 {
        at += next(90) as i64;
        // Track events end a run of joins and leaves, so they are rare: long
        // runs are what put overlapping sessions of one identity in one run.
        match next(40) {
            0..=16 => {
                steps.push(Step::Join(next(3) as usize, next(4) as usize, at));
                open.push(joined);
                joined += 1;
            }
            17..=33 if !open.is_empty() => {
                let who = open.swap_remove(next(open.len() as u64) as usize);
                let skew = if next(8) == 0 { -(next(600) as i64) } else { 0 };
                let reason = if next(20) == 0 {
                    LeaveReason::NodeLost
                } else {
                    LeaveReason::ClientLeft
                };
                steps.push(Step::Leave(who, reason, at + skew));
            }
            34..=36 if joined > 0 => steps.push(Step::Leave(
                next(joined as u64 + 3) as usize,
                LeaveReason::ClientLeft,
                at,
            )),
            37 | 38 => steps.push(Step::Video(next(3) as usize, at)),
            _ => steps.push(Step::Unvideo(next(3) as usize, at)),
        }
    }
    steps
}

/// Records `steps` as a fresh project's log with ids of its own.
async fn record_script(f: &Fixture, project: ProjectId, steps: &[Step]) {
    let start = t("2026-11-10T09:30:00Z");
    let rooms: Vec<RoomRef> = (0..3)
        .map(|i| RoomRef {
            sid: RoomSid::new(),
            name: RoomName::new(format!("room-{i}")).unwrap(),
        })
        .collect();
    let mut people: Vec<(usize, ParticipantRef)> = Vec::new();
    let mut tracks: Vec<Vec<TrackRef>> = vec![Vec::new(); 3];
    for step in steps {
        let (at, payload) = match *step {
            Step::Join(room, identity, at) => {
                let p = f.who(&format!("user-{identity}"));
                people.push((room, p.clone()));
                (
                    at,
                    EventPayload::ParticipantJoined {
                        room: rooms[room].clone(),
                        participant: p,
                        node: None,
                    },
                )
            }
            Step::Leave(who, reason, at) => {
                let (room, p) = people
                    .get(who)
                    .cloned()
                    .unwrap_or_else(|| (0, f.who("nobody")));
                (
                    at,
                    EventPayload::ParticipantLeft {
                        room: rooms[room].clone(),
                        participant: p,
                        reason,
                    },
                )
            }
            Step::Video(room, at) => {
                let track = TrackRef {
                    sid: TrackSid::new(),
                    kind: TrackKind::Video,
                    source: TrackSource::Camera,
                    mime_type: None,
                };
                tracks[room].push(track.clone());
                (
                    at,
                    EventPayload::TrackPublished {
                        room: rooms[room].clone(),
                        participant: f.who("cam"),
                        track,
                    },
                )
            }
            Step::Unvideo(room, at) => match tracks[room].pop() {
                Some(track) => (
                    at,
                    EventPayload::TrackUnpublished {
                        room: rooms[room].clone(),
                        participant: f.who("cam"),
                        track,
                    },
                ),
                None => continue,
            },
        };
        let event = Event::new(project, start + chrono::Duration::seconds(at), payload);
        f.store.events().record(event).await.unwrap();
    }
}

/// What a project's metering came to, without its ids.
async fn outcome(f: &Fixture, project: ProjectId) -> (Vec<String>, String) {
    let mut sessions: Vec<String> = f
        .store
        .usage()
        .sessions(project, &SessionFilter::default(), None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            format!(
                "{} {} {} {:?} {:?} {} {:?}",
                s.room_name,
                s.identity,
                s.joined_at,
                s.left_at,
                s.leave_reason,
                s.video,
                s.billed_us
            )
        })
        .collect();
    sessions.sort();
    let report = f
        .store
        .usage()
        .report(
            project,
            t("2026-11-01T00:00:00Z"),
            t("2026-12-01T00:00:00Z"),
            None,
            100,
        )
        .await
        .unwrap();
    (sessions, format!("{:?} {:?}", report.hourly, report.rooms))
}

async fn a_log_meters_the_same_in_one_batch_or_an_event_at_a_time(backend: Backend) {
    let f = fixture(backend).await;
    let steps = script();
    let other = f
        .store
        .projects()
        .create("one at a time", f.clock.now())
        .await
        .unwrap()
        .id;
    record_script(&f, f.project, &steps).await;
    record_script(&f, other, &steps).await;
    let usage = f.store.usage();
    let together = usage.meter(f.project, 10_000, f.clock.now()).await.unwrap();
    let mut alone = 0;
    while usage.meter(other, 1, f.clock.now()).await.unwrap() == 1 {
        alone += 1;
    }
    assert_eq!(together, alone);
    let (sessions, report) = outcome(&f, f.project).await;
    assert!(
        sessions.len() > 100,
        "the script opens many sessions: {}",
        sessions.len()
    );
    assert!(
        sessions.iter().any(|s| s.contains("Some(\"node_lost\")")),
        "a node is lost"
    );
    assert!(
        sessions.iter().any(|s| s.contains(" true ")),
        "some sessions are video"
    );
    assert_eq!(outcome(&f, other).await, (sessions, report));
}

on_both_backends!(
    a_log_meters_the_same_in_one_batch_or_an_event_at_a_time,
    old_rows_are_purged_and_the_invoice_stays,
    finished_rooms_list_their_sessions_and_open_ones_count_up_to_now,
    rooms_add_up_over_whole_days_and_the_hours_around_them,
    sessions_are_metered_to_the_microsecond_as_audio_or_video,
    a_session_across_a_period_boundary_is_split_where_it_crosses,
    one_identitys_overlapping_sessions_are_billed_once,
    a_leave_stamped_before_its_join_bills_nothing,
    a_dead_nodes_sessions_end_at_its_last_heartbeat,
    sessions_are_counted_per_node_and_region,
);

/// Issue 26: where a project's people connected from, per media node and
/// its region, over a window and for one room incarnation.
async fn sessions_are_counted_per_node_and_region(b: Backend) {
    use switchboard_core::node::Region;
    use switchboard_store::usage::NodeShare;

    let f = fixture(b).await;
    let (eu, us) = (NodeId::new(), NodeId::new());
    for (n, region) in [(eu, "eu-west"), (us, "us-east")] {
        let mut node = NodeRegistration::local(n);
        node.region = Region::new(region).unwrap();
        f.store
            .nodes()
            .register(&node, f.clock.now())
            .await
            .unwrap();
    }
    let (ann, bob, cat, ann_again) = (f.who("ann"), f.who("bob"), f.who("cat"), f.who("ann"));
    f.join("2026-11-30T23:00:00Z", &ann, Some(eu)).await;
    f.join("2026-11-30T23:00:00Z", &bob, Some(eu)).await;
    f.join("2026-11-30T23:00:00Z", &cat, Some(us)).await;
    f.leave("2026-11-30T23:10:00Z", &ann).await;
    f.join("2026-11-30T23:20:00Z", &ann_again, Some(eu)).await;
    f.leave("2026-11-30T23:30:00Z", &bob).await;
    f.leave("2026-11-30T23:30:00Z", &cat).await;
    f.worker.catch_up().await.unwrap();

    let min = |m: i64| m * 60_000_000;
    let share = |node, region: &str, sessions, identities, open, billed_us| NodeShare {
        node_id: Some(node),
        region: Some(region.to_owned()),
        sessions,
        identities,
        open,
        billed_us,
    };
    let usage = f.store.usage();
    let hour = usage
        .by_node(
            f.project,
            t("2026-11-30T23:00:00Z"),
            t("2026-12-01T00:00:00Z"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        hour,
        [
            share(eu, "eu-west", 3, 2, 1, min(10) + min(30)),
            share(us, "us-east", 1, 1, 0, min(30)),
        ]
    );
    // From 23:15 on, ann's first session had ended.
    let later = usage
        .by_node(
            f.project,
            t("2026-11-30T23:15:00Z"),
            t("2026-12-01T00:00:00Z"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(later[0], share(eu, "eu-west", 2, 2, 1, min(30)));
    let room = f.room.sid.to_string();
    let in_room = usage
        .by_node(
            f.project,
            t("2026-11-30T00:00:00Z"),
            t("2026-12-01T00:00:00Z"),
            Some(&room),
        )
        .await
        .unwrap();
    assert_eq!(in_room, hour);
    let elsewhere = usage
        .by_node(
            f.project,
            t("2026-11-30T00:00:00Z"),
            t("2026-12-01T00:00:00Z"),
            Some("rm_none"),
        )
        .await
        .unwrap();
    assert!(elsewhere.is_empty());
}
