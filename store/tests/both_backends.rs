//! Storage behaviour, run once on SQLite and once on PostgreSQL.

use chrono::{Duration, Utc};
use switchboard_core::event::RoomFinishReason;
use switchboard_core::{EventPayload, RoomName};
use switchboard_store::events::EventFilter;
use switchboard_store::idempotency::Reservation;
use switchboard_store::rooms::{NewRoom, RoomPatch};
use switchboard_store::testing::TestDb;
use switchboard_store::{Backend, Store, StoreError};

async fn store(backend: Backend) -> (TestDb, Store) {
    let db = TestDb::new(backend).await.expect("test database");
    let store = db.store().await.expect("migrated store");
    (db, store)
}

fn new_room(name: &str) -> NewRoom {
    NewRoom::named(RoomName::new(name).unwrap())
}

switchboard_store::on_both_backends!(
    migrations_run_twice_without_harm,
    rooms_are_created_listed_updated_and_deleted_with_events,
    room_names_are_unique_per_project_only,
    event_sequence_is_gap_free_under_concurrency,
    events_are_append_only,
    api_keys_authenticate_and_revoke,
    idempotency_replays_and_refuses_mismatches,
    due_deliveries_leave_out_busy_endpoints_and_projects,
    due_function_jobs_come_in_turns_per_project_and_in_order_per_room,
    quality_samples_are_kept_per_session_and_purged_with_age,
);

/// Issue 26: a session's connection measures come back in order, only to
/// its own project, once per instant, and go when they are older than the
/// retention period.
async fn quality_samples_are_kept_per_session_and_purged_with_age(b: Backend) {
    use switchboard_core::room::ConnectionStats;
    use switchboard_core::signal::ConnectionQuality;
    use switchboard_core::{ParticipantSid, RoomSid};

    let (_db, store) = store(b).await;
    let now = Utc::now();
    let project = store.projects().create("measured", now).await.unwrap().id;
    let other = store.projects().create("other", now).await.unwrap().id;
    let (ann, bob, room) = (ParticipantSid::new(), ParticipantSid::new(), RoomSid::new());
    let stats = |loss_per_mille, quality| ConnectionStats {
        quality,
        publish_bps: 300_000,
        subscribe_bps: 1_200_000,
        loss_per_mille,
        rtt_ms: Some(40),
    };
    let start = now - Duration::days(40);
    let quality = store.quality();
    for (i, (loss, q)) in [
        (0, ConnectionQuality::Excellent),
        (120, ConnectionQuality::Poor),
    ]
    .into_iter()
    .enumerate()
    {
        let at = start + Duration::seconds(3 * i as i64);
        let rows = [
            (ann, stats(loss, q)),
            (bob, stats(0, ConnectionQuality::Good)),
        ];
        quality.record(project, room, at, &rows).await.unwrap();
        // Written twice (a retried write): kept once.
        quality.record(project, room, at, &rows).await.unwrap();
    }
    quality
        .record(
            project,
            room,
            now,
            &[(ann, stats(5, ConnectionQuality::Excellent))],
        )
        .await
        .unwrap();
    let ann_samples = quality.of_session(project, ann).await.unwrap();
    let losses: Vec<u32> = ann_samples.iter().map(|s| s.stats.loss_per_mille).collect();
    assert_eq!(losses, [0, 120, 5], "oldest first, once each");
    assert_eq!(ann_samples[1].stats.quality, ConnectionQuality::Poor);
    assert_eq!(ann_samples[1].stats.rtt_ms, Some(40));
    assert!(
        quality.of_session(other, ann).await.unwrap().is_empty(),
        "another project sees none of them"
    );

    let purged = store
        .retention()
        .purge(Duration::days(30), now)
        .await
        .unwrap();
    assert_eq!(purged.quality_samples, 4);
    let losses: Vec<u32> = quality
        .of_session(project, ann)
        .await
        .unwrap()
        .iter()
        .map(|s| s.stats.loss_per_mille)
        .collect();
    assert_eq!(losses, [5], "only the recent one is left");
}

async fn migrations_run_twice_without_harm(b: Backend) {
    let (_db, store) = store(b).await;
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

async fn rooms_are_created_listed_updated_and_deleted_with_events(b: Backend) {
    let (_db, store) = store(b).await;
    let now = Utc::now();
    let project = store.projects().create("p", now).await.unwrap();
    let mut sub = store.bus().subscribe();

    let (room, started) = store
        .rooms()
        .create(project.id, new_room("a"), now)
        .await
        .unwrap();
    assert_eq!(started.seq, 1);
    assert_eq!(
        sub.recv().await.unwrap().id,
        started.id,
        "published after commit"
    );
    store
        .rooms()
        .create(project.id, new_room("b"), now)
        .await
        .unwrap();
    store
        .rooms()
        .create(project.id, new_room("c"), now)
        .await
        .unwrap();

    let page1 = store.rooms().list(project.id, None, 2).await.unwrap();
    assert_eq!(
        page1.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let page2 = store
        .rooms()
        .list(project.id, Some(page1[1].sid), 2)
        .await
        .unwrap();
    assert_eq!(
        page2.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["c"]
    );

    let patched = store
        .rooms()
        .update(
            project.id,
            &room.name,
            RoomPatch {
                metadata: Some("m".into()),
                max_participants: Some(4),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            patched.metadata.as_str(),
            patched.max_participants,
            patched.empty_timeout_s
        ),
        ("m", 4, 300)
    );
    assert_eq!(
        store
            .rooms()
            .get(project.id, &room.name)
            .await
            .unwrap()
            .unwrap()
            .created_at,
        room.created_at
    );

    let (_, finished) = store
        .rooms()
        .delete(project.id, &room.name, RoomFinishReason::Deleted, now)
        .await
        .unwrap()
        .unwrap();
    assert!(store
        .rooms()
        .get(project.id, &room.name)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .rooms()
        .delete(project.id, &room.name, RoomFinishReason::Deleted, now)
        .await
        .unwrap()
        .is_none());

    let all = store
        .events()
        .list(project.id, &EventFilter::default(), 0, 100)
        .await
        .unwrap();
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(all.last().unwrap(), &finished);
    let only_a = EventFilter {
        room: Some("a".into()),
        ..Default::default()
    };
    let a_events = store
        .events()
        .list(project.id, &only_a, 0, 100)
        .await
        .unwrap();
    assert_eq!(
        a_events.iter().map(|e| e.event_type()).collect::<Vec<_>>(),
        ["room.started", "room.finished"]
    );
    let typed = EventFilter {
        event_type: Some("room.finished".into()),
        ..Default::default()
    };
    assert_eq!(
        store
            .events()
            .list(project.id, &typed, 0, 100)
            .await
            .unwrap()
            .len(),
        1
    );
    let later = EventFilter {
        since: Some(now + Duration::seconds(1)),
        ..Default::default()
    };
    assert!(store
        .events()
        .list(project.id, &later, 0, 100)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .events()
            .get(project.id, finished.id)
            .await
            .unwrap()
            .unwrap(),
        finished
    );
}

async fn room_names_are_unique_per_project_only(b: Backend) {
    let (_db, store) = store(b).await;
    let now = Utc::now();
    let p1 = store.projects().create("one", now).await.unwrap();
    let p2 = store.projects().create("two", now).await.unwrap();
    store
        .rooms()
        .create(p1.id, new_room("same"), now)
        .await
        .unwrap();
    let dup = store.rooms().create(p1.id, new_room("same"), now).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
    store
        .rooms()
        .create(p2.id, new_room("same"), now)
        .await
        .unwrap();
    assert!(store
        .rooms()
        .get(p2.id, &RoomName::new("same").unwrap())
        .await
        .unwrap()
        .is_some());
    // The failed duplicate left no event behind.
    assert_eq!(
        store
            .events()
            .list(p1.id, &EventFilter::default(), 0, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn event_sequence_is_gap_free_under_concurrency(b: Backend) {
    let (_db, store) = store(b).await;
    let project = store.projects().create("p", Utc::now()).await.unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .rooms()
                    .create(project.id, new_room(&format!("r{i}")), Utc::now())
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let seqs: Vec<i64> = store
        .events()
        .list(project.id, &EventFilter::default(), 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
}

async fn events_are_append_only(b: Backend) {
    let (_db, store) = store(b).await;
    let project = store.projects().create("p", Utc::now()).await.unwrap();
    store
        .rooms()
        .create(project.id, new_room("a"), Utc::now())
        .await
        .unwrap();
    let url = _db.url.clone();
    // Go around the store: the schema itself must refuse.
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    assert!(sqlx::query("UPDATE events SET type = 'x'")
        .execute(&pool)
        .await
        .is_err());
    assert!(sqlx::query("DELETE FROM events")
        .execute(&pool)
        .await
        .is_err());
    let left = store
        .events()
        .list(project.id, &EventFilter::default(), 0, 10)
        .await
        .unwrap();
    assert!(matches!(left[0].payload, EventPayload::RoomStarted { .. }));
}

async fn api_keys_authenticate_and_revoke(b: Backend) {
    let (_db, store) = store(b).await;
    let now = Utc::now();
    let project = store.projects().create("p", now).await.unwrap();
    let (key, secret) = store
        .api_keys()
        .create(project.id, "backend", now)
        .await
        .unwrap();
    let (key2, secret2) = store
        .api_keys()
        .create(project.id, "other", now)
        .await
        .unwrap();

    let auth = store
        .api_keys()
        .authenticate_secret(&secret)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (auth.key_id.as_str(), auth.project_id),
        (key.id.as_str(), project.id)
    );
    assert!(store
        .api_keys()
        .authenticate_pair(&key.id, &secret)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .api_keys()
        .authenticate_pair(&key.id, &secret2)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .api_keys()
        .authenticate_secret("sk_wrong")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store
            .api_keys()
            .signing_secret(&key.id)
            .await
            .unwrap()
            .unwrap(),
        (project.id, secret.clone())
    );

    assert!(store
        .api_keys()
        .revoke(project.id, &key.id, now)
        .await
        .unwrap());
    assert!(!store
        .api_keys()
        .revoke(project.id, &key.id, now)
        .await
        .unwrap());
    assert!(store
        .api_keys()
        .authenticate_secret(&secret)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .api_keys()
        .signing_secret(&key.id)
        .await
        .unwrap()
        .is_none());
    let last = store.api_keys().revoke(project.id, &key2.id, now).await;
    assert!(
        matches!(last, Err(StoreError::Conflict(_))),
        "the last key stays"
    );
    assert!(store
        .api_keys()
        .authenticate_secret(&secret2)
        .await
        .unwrap()
        .is_some());

    let listed = store.api_keys().list(project.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed
        .iter()
        .any(|k| k.id == key.id && k.revoked_at.is_some()));

    let dup = store
        .api_keys()
        .insert(
            project.id,
            &key2.id,
            "sk_another_secret_that_is_long_enough_xx",
            "",
            now,
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))));
}

async fn idempotency_replays_and_refuses_mismatches(b: Backend) {
    let (_db, store) = store(b).await;
    let now = Utc::now();
    let project = store.projects().create("p", now).await.unwrap();
    let idem = store.idempotency();
    assert_eq!(
        idem.reserve(project.id, "k", b"h1", now).await.unwrap(),
        Reservation::Proceed
    );
    assert_eq!(
        idem.reserve(project.id, "k", b"h1", now).await.unwrap(),
        Reservation::InFlight
    );
    idem.complete(project.id, "k", 201, b"{}").await.unwrap();
    assert_eq!(
        idem.reserve(project.id, "k", b"h1", now).await.unwrap(),
        Reservation::Replay {
            status: 201,
            body: b"{}".to_vec()
        }
    );
    assert_eq!(
        idem.reserve(project.id, "k", b"h2", now).await.unwrap(),
        Reservation::Mismatch
    );
    // After the retention period the key is free again.
    let later = now + Duration::hours(25);
    assert_eq!(
        idem.reserve(project.id, "k", b"h2", later).await.unwrap(),
        Reservation::Proceed
    );
    idem.release(project.id, "k").await.unwrap();
    assert_eq!(
        idem.reserve(project.id, "k", b"h3", later).await.unwrap(),
        Reservation::Proceed
    );
}

/// Issue 22: the sender cannot start a delivery for an endpoint or a project
/// at its in-flight cap, so the due query leaves those out before ranking:
/// a stuck endpoint's backlog of thousands was otherwise ranked and checked
/// on every wake-up (150 ms a query on PostgreSQL), starving everyone else.
async fn due_deliveries_leave_out_busy_endpoints_and_projects(b: Backend) {
    use switchboard_core::event::RoomRef;
    use switchboard_core::webhook::EventTypes;
    use switchboard_core::{Event, RoomSid};
    use switchboard_store::webhooks::NewWebhook;

    let (_db, store) = store(b).await;
    let now = Utc::now();
    let mut endpoints = Vec::new();
    let mut projects = Vec::new();
    for (name, events) in [("stuck", 3), ("quiet", 1)] {
        let project = store.projects().create(name, now).await.unwrap().id;
        let hook = NewWebhook {
            url: format!("https://{name}.example/hook"),
            description: String::new(),
            events: EventTypes::new(vec!["*".into()]).unwrap(),
            enabled: true,
        };
        let (webhook, _) = store.webhooks().create(project, hook, now).await.unwrap();
        for i in 0..events {
            let room = RoomRef {
                sid: RoomSid::new(),
                name: RoomName::new(format!("{name}-{i}")).unwrap(),
            };
            let event = Event::new(project, now, EventPayload::RoomStarted { room });
            store.events().record(event).await.unwrap();
        }
        store.deliveries().fan_out(project, 100, now).await.unwrap();
        endpoints.push(webhook.id);
        projects.push(project);
    }
    let later = now + Duration::seconds(1);
    let of = |due: &[switchboard_store::deliveries::Due]| {
        let mut ids: Vec<_> = due.iter().map(|d| d.delivery.webhook_id).collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let all = store
        .deliveries()
        .due(later, 10, |_| 8, &[], &[])
        .await
        .unwrap();
    assert_eq!(all.len(), 4);
    // Each endpoint read as far as its own limit.
    let stuck = endpoints[0];
    let limited = store
        .deliveries()
        .due(later, 10, |e| if e == stuck { 2 } else { 8 }, &[], &[])
        .await
        .unwrap();
    assert_eq!(limited.len(), 3);
    assert_eq!(
        limited
            .iter()
            .filter(|d| d.delivery.webhook_id == stuck)
            .count(),
        2
    );
    let quiet_only = store
        .deliveries()
        .due(later, 10, |_| 8, &[endpoints[0]], &[])
        .await
        .unwrap();
    assert_eq!(of(&quiet_only), [endpoints[1]]);
    let stuck_only = store
        .deliveries()
        .due(later, 10, |_| 8, &[], &[projects[1]])
        .await
        .unwrap();
    assert_eq!((of(&stuck_only), stuck_only.len()), (vec![endpoints[0]], 3));
    let none = store
        .deliveries()
        .due(later, 10, |_| 8, &[endpoints[0]], &[projects[1]])
        .await
        .unwrap();
    assert!(none.is_empty());
    assert!(
        !quiet_only[0].event.id.to_string().is_empty(),
        "bodies come with the rows"
    );
}

/// Function jobs are taken in turns per project (a noisy project's backlog
/// takes no more places than its turns), busy projects are left out, and a
/// room's second event waits for its first.
async fn due_function_jobs_come_in_turns_per_project_and_in_order_per_room(b: Backend) {
    use switchboard_core::event::RoomRef;
    use switchboard_core::function::Triggers;
    use switchboard_core::{Event, RoomSid};
    use switchboard_store::functions::NewVersion;

    let (_db, store) = store(b).await;
    let now = Utc::now();
    let mut projects = Vec::new();
    // (project, rooms, events per room)
    for (name, rooms, events) in [("noisy", 3, 2), ("quiet", 1, 1)] {
        let project = store.projects().create(name, now).await.unwrap().id;
        let version = NewVersion {
            digest: "00".repeat(32),
            triggers: Triggers::parse(vec!["room.*".into()]).unwrap(),
            component: b"not run here".to_vec(),
            activate: true,
        };
        store
            .functions()
            .deploy(project, "f", version, now)
            .await
            .unwrap();
        for i in 0..rooms {
            let room = RoomRef {
                sid: RoomSid::new(),
                name: RoomName::new(format!("{name}-{i}")).unwrap(),
            };
            for _ in 0..events {
                let payload = EventPayload::RoomStarted { room: room.clone() };
                store
                    .events()
                    .record(Event::new(project, now, payload))
                    .await
                    .unwrap();
            }
        }
        store.functions().fan_out(project, 100, now).await.unwrap();
        projects.push(project);
    }
    let (noisy, quiet) = (projects[0], projects[1]);
    let later = now + Duration::seconds(1);
    let of = |jobs: &[switchboard_store::functions::Job]| {
        jobs.iter().map(|j| j.project_id).collect::<Vec<_>>()
    };

    let all = store.functions().due(later, 10, 8, &[]).await.unwrap();
    assert_eq!(
        all.len(),
        4,
        "each noisy room's first event, and the quiet one"
    );
    let mut firsts = of(&all[..2]);
    firsts.sort();
    let mut both = vec![noisy, quiet];
    both.sort();
    assert_eq!(
        firsts, both,
        "every project's first turn comes before any second"
    );
    assert_eq!(of(&all[2..]), [noisy, noisy]);
    let rooms: std::collections::HashSet<_> = all
        .iter()
        .filter_map(|j| j.event.room().map(|r| r.sid))
        .collect();
    assert_eq!(rooms.len(), 4, "a room's second event waits for its first");

    let one_each = store.functions().due(later, 10, 1, &[]).await.unwrap();
    assert_eq!(one_each.len(), 2);
    let two = store.functions().due(later, 2, 8, &[]).await.unwrap();
    let mut two = of(&two);
    two.sort();
    assert_eq!(two, both, "a short batch still has every project's first");
    let quiet_only = store.functions().due(later, 10, 8, &[noisy]).await.unwrap();
    assert_eq!(of(&quiet_only), [quiet]);
    assert!(
        store
            .functions()
            .due(now - Duration::seconds(1), 10, 8, &[])
            .await
            .unwrap()
            .is_empty(),
        "nothing is due before it was queued"
    );
}
