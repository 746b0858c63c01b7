//! The webhook worker against a real database (SQLite and PostgreSQL) and real
//! HTTP receivers on loopback, on a manual clock so retry timing is exact.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use switchboard_core::event::{
    LeaveReason, ParticipantRef, RoomRef, TrackKind, TrackRef, TrackSource,
};
use switchboard_core::webhook::{AddressPolicy, EventTypes};
use switchboard_core::{
    Event, EventPayload, Identity, ManualClock, ParticipantSid, ProjectId, RoomName, RoomSid,
    TrackSid,
};
use switchboard_store::deliveries::DeliveryStatus;
use switchboard_store::testing::TestDb;
use switchboard_store::webhooks::{NewWebhook, Webhook};
use switchboard_store::{Backend, Store};
use switchboard_webhooks::testing::{Receiver, Reply};
use switchboard_webhooks::{RetrySchedule, WebhookConfig, Worker};

switchboard_store::on_both_backends!(
    retries_follow_the_schedule_then_the_delivery_fails,
    an_endpoint_failing_for_five_days_is_disabled,
    a_healthy_endpoint_gets_each_rooms_events_in_order,
    one_rooms_participants_go_in_parallel_each_in_order,
    a_dead_endpoint_never_delays_another,
    redirects_are_not_followed,
    names_resolving_to_private_addresses_are_refused_at_connect_time,
    an_endpoint_gets_only_events_after_its_creation,
    one_projects_dead_endpoints_never_take_every_slot,
);

const WAIT: Duration = Duration::from_secs(10);

struct Fixture {
    store: Store,
    clock: ManualClock,
    worker: Worker,
    project: ProjectId,
    _db: TestDb,
}

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

async fn fixture(backend: Backend, policy: AddressPolicy, timeout: Duration) -> Fixture {
    fixture_with(
        backend,
        WebhookConfig {
            policy,
            timeout,
            poll_interval: Duration::from_millis(50),
            ..WebhookConfig::default()
        },
    )
    .await
}

async fn fixture_with(backend: Backend, config: WebhookConfig) -> Fixture {
    let db = TestDb::new(backend).await.unwrap();
    let store = db.store().await.unwrap();
    let clock = ManualClock::new(t0());
    let project = store.projects().create("webhooks", t0()).await.unwrap().id;
    let worker = Worker::new(store.clone(), Arc::new(clock.clone()), config).unwrap();
    worker.start();
    Fixture {
        store,
        clock,
        worker,
        project,
        _db: db,
    }
}

impl Fixture {
    async fn endpoint(&self, url: &str, events: &[&str]) -> Webhook {
        let events = EventTypes::new(events.iter().map(|s| s.to_string()).collect()).unwrap();
        self.store
            .webhooks()
            .create(
                self.project,
                NewWebhook {
                    url: url.to_owned(),
                    description: String::new(),
                    events,
                    enabled: true,
                },
                self.clock.now(),
            )
            .await
            .unwrap()
            .0
    }

    /// Records `room.started` for a room named `name` (each call a new room sid unless `sid` is given).
    async fn room_event(&self, name: &str, sid: Option<RoomSid>) -> Event {
        self.store
            .events()
            .record(Event::new(
                self.project,
                self.clock.now(),
                EventPayload::RoomStarted {
                    room: RoomRef {
                        sid: sid.unwrap_or_default(),
                        name: RoomName::new(name).unwrap(),
                    },
                },
            ))
            .await
            .unwrap()
    }

    fn advance_to(&self, at: DateTime<Utc>) {
        let now = self.clock.now();
        if at > now {
            self.clock.advance(at - now);
        }
        self.worker.wake();
    }

    /// The endpoint's webhook row as stored now.
    async fn reload(&self, webhook: &Webhook) -> Webhook {
        self.store
            .webhooks()
            .get(self.project, webhook.id)
            .await
            .unwrap()
            .unwrap()
    }

    /// The attempts of the endpoint's newest delivery once it has `n` of them.
    async fn attempts_once(
        &self,
        webhook: &Webhook,
        n: u32,
    ) -> Vec<switchboard_store::deliveries::Attempt> {
        let newest = loop {
            let d = self.deliveries(webhook).await;
            if let Some(first) = d.into_iter().next().filter(|d| d.attempts == n) {
                break first;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let mut all = self
            .store
            .deliveries()
            .attempts(&[newest.id])
            .await
            .unwrap();
        all.remove(&newest.id).unwrap_or_default()
    }

    async fn deliveries(&self, webhook: &Webhook) -> Vec<switchboard_store::deliveries::Delivery> {
        self.store
            .deliveries()
            .list_for_webhook(self.project, webhook.id, None, 100)
            .await
            .unwrap()
    }
}

use switchboard_core::Clock;

async fn retries_follow_the_schedule_then_the_delivery_fails(b: Backend) {
    let f = fixture(b, AddressPolicy::DEV, Duration::from_secs(5)).await;
    let rx = Receiver::start().await.unwrap();
    rx.reply(Reply::Status(500));
    let wh = f.endpoint(&rx.url("/hook"), &["room.*"]).await;
    f.room_event("retry", None).await;

    assert_eq!(rx.wait_for(1, WAIT).await.len(), 1, "first attempt at once");
    let schedule = RetrySchedule::default();
    let mut attempt_time = f.clock.now();
    for (i, delay) in schedule.delays().iter().enumerate() {
        let made = i + 1;
        // The delivery is due again between 0.9 and 1.1 times the delay after the failure.
        let d = f.deliveries(&wh).await;
        let next = loop {
            let d = f.deliveries(&wh).await;
            if d[0].attempts as usize == made {
                break d[0]
                    .next_attempt_at
                    .expect("pending delivery has a due time");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(d[0].status, DeliveryStatus::Pending);
        let early = attempt_time + *delay * 9 / 10;
        let late = attempt_time + *delay * 11 / 10;
        assert!(
            next >= early - chrono::Duration::milliseconds(1) && next <= late,
            "attempt {} due at {next}, expected within [{early}, {late}]",
            made + 1
        );
        // Just before it is due nothing is sent.
        f.advance_to(next - chrono::Duration::milliseconds(100));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(rx.received().len(), made, "no attempt before it is due");
        f.advance_to(next);
        assert_eq!(rx.wait_for(made + 1, WAIT).await.len(), made + 1);
        attempt_time = next;
    }
    // Eight attempts made; the last failure fails the delivery.
    let failed = loop {
        let d = f.deliveries(&wh).await;
        if d[0].status != DeliveryStatus::Pending {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(failed[0].status, DeliveryStatus::Failed);
    assert_eq!(failed[0].attempts, 8);
    assert_eq!(failed[0].next_attempt_at, None);
    f.advance_to(f.clock.now() + chrono::Duration::days(2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx.received().len(),
        8,
        "a failed delivery is not tried again"
    );
    let attempts = f
        .store
        .deliveries()
        .attempts(&[failed[0].id])
        .await
        .unwrap();
    let attempts = &attempts[&failed[0].id];
    assert_eq!(attempts.len(), 8);
    assert!(attempts
        .iter()
        .all(|a| a.status_code == Some(500) && !a.succeeded));
    assert_eq!(attempts[0].response_body, "receiver says 500");
    // Every attempt carries the same webhook-id: the event id.
    let ids: std::collections::BTreeSet<_> = rx
        .received()
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    assert_eq!(ids.len(), 1);
}

async fn an_endpoint_failing_for_five_days_is_disabled(b: Backend) {
    let f = fixture(b, AddressPolicy::DEV, Duration::from_secs(5)).await;
    let rx = Receiver::start().await.unwrap();
    rx.reply(Reply::Status(503));
    let wh = f.endpoint(&rx.url("/down"), &["room.started"]).await;
    let watcher = Receiver::start().await.unwrap();
    let other = f.endpoint(&watcher.url("/watch"), &["webhook.*"]).await;

    // Drives every attempt of the `n`-th delivery until it stops being pending.
    async fn run_out(f: &Fixture, wh: &Webhook, n: usize) {
        loop {
            let d = f.deliveries(wh).await;
            let Some(newest) = d.first().filter(|_| d.len() == n) else {
                f.worker.wake();
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            match (newest.status, newest.next_attempt_at) {
                (DeliveryStatus::Pending, Some(at)) if newest.attempts > 0 => f.advance_to(at),
                (DeliveryStatus::Pending, _) => f.worker.wake(),
                _ => return,
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    f.room_event("a", None).await;
    run_out(&f, &wh, 1).await;
    let first = f.reload(&wh).await;
    assert!(first.enabled, "a day and a half of failures is not enough");
    assert_eq!(first.failing_since, Some(t0()));

    f.advance_to(t0() + chrono::Duration::days(4));
    f.room_event("b", None).await;
    run_out(&f, &wh, 2).await;
    let disabled = f.reload(&wh).await;
    assert!(!disabled.enabled);
    assert!(
        disabled
            .disabled_reason
            .as_deref()
            .unwrap_or("")
            .contains("failed"),
        "{disabled:?}"
    );
    let events = f
        .store
        .events()
        .list(f.project, &Default::default(), 0, 100)
        .await
        .unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.event_type(), "webhook.disabled");
    // The other endpoint hears about it.
    let heard = watcher.wait_for(1, WAIT).await;
    assert_eq!(heard.len(), 1);
    assert_eq!(heard[0].json()["type"], "webhook.disabled");
    assert_eq!(heard[0].json()["data"]["webhook_id"], wh.id.to_string());
    let _ = other;

    // A disabled endpoint gets nothing new.
    let before = rx.received().len();
    f.room_event("c", None).await;
    f.worker.wake();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(rx.received().len(), before);
}

async fn a_healthy_endpoint_gets_each_rooms_events_in_order(b: Backend) {
    let f = fixture(b, AddressPolicy::DEV, Duration::from_secs(5)).await;
    let rx = Receiver::start().await.unwrap();
    // Slow enough that sending a room's events in parallel would reorder them.
    rx.reply(Reply::After(Duration::from_millis(15), 200));
    f.endpoint(&rx.url("/ordered"), &["*"]).await;
    let rooms: Vec<(String, RoomSid)> = (0..3).map(|i| (format!("r{i}"), RoomSid::new())).collect();
    let mut sent = Vec::new();
    for i in 0..30 {
        let (name, sid) = &rooms[i % 3];
        sent.push(f.room_event(name, Some(*sid)).await);
    }
    let got = rx.wait_for(30, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 30);
    for (_, sid) in &rooms {
        let seqs: Vec<i64> = got
            .iter()
            .map(|r| r.json())
            .filter(|v| v["data"]["room"]["sid"] == sid.to_string())
            .map(|v| v["seq"].as_i64().unwrap())
            .collect();
        let mut sorted = seqs.clone();
        sorted.sort();
        assert_eq!(seqs.len(), 10);
        assert_eq!(seqs, sorted, "room {sid} out of order");
    }
    // Rooms go in parallel: the three rooms overlap rather than queue behind each other.
    let first_of_each: Vec<_> = rooms
        .iter()
        .map(|(_, sid)| {
            got.iter()
                .position(|r| r.json()["data"]["room"]["sid"] == sid.to_string())
                .unwrap()
        })
        .collect();
    assert!(first_of_each.iter().all(|p| *p < 6), "{first_of_each:?}");
}

async fn one_rooms_participants_go_in_parallel_each_in_order(b: Backend) {
    let f = fixture(b, AddressPolicy::DEV, Duration::from_secs(5)).await;
    let rx = Receiver::start().await.unwrap();
    // Slow enough that sending one participant's events in parallel would reorder them.
    rx.reply(Reply::After(Duration::from_millis(15), 200));
    f.endpoint(&rx.url("/storm"), &["*"]).await;
    let room = RoomRef {
        sid: RoomSid::new(),
        name: RoomName::new("stage").unwrap(),
    };
    let people: Vec<ParticipantRef> = (0..4)
        .map(|i| ParticipantRef {
            sid: ParticipantSid::new(),
            identity: Identity::new(format!("viewer-{i}")).unwrap(),
        })
        .collect();
    for round in 0..6 {
        for p in &people {
            let payload = match round {
                0 => EventPayload::ParticipantJoined {
                    room: room.clone(),
                    participant: p.clone(),
                    node: None,
                },
                5 => EventPayload::ParticipantLeft {
                    room: room.clone(),
                    participant: p.clone(),
                    reason: LeaveReason::ClientLeft,
                },
                _ => EventPayload::TrackPublished {
                    room: room.clone(),
                    participant: p.clone(),
                    track: TrackRef {
                        sid: TrackSid::new(),
                        kind: TrackKind::Audio,
                        source: TrackSource::Microphone,
                        mime_type: None,
                    },
                },
            };
            f.store
                .events()
                .record(Event::new(f.project, f.clock.now(), payload))
                .await
                .unwrap();
        }
    }
    let got = rx.wait_for(24, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 24);
    for p in &people {
        let seqs: Vec<i64> = got
            .iter()
            .map(|r| r.json())
            .filter(|v| v["data"]["participant"]["sid"] == p.sid.to_string())
            .map(|v| v["seq"].as_i64().unwrap())
            .collect();
        let mut sorted = seqs.clone();
        sorted.sort();
        assert_eq!(seqs.len(), 6);
        assert_eq!(seqs, sorted, "{} out of order", p.sid);
    }
    // One room's participants overlap rather than queue behind each other.
    let first_of_each: Vec<_> = people
        .iter()
        .map(|p| {
            got.iter()
                .position(|r| r.json()["data"]["participant"]["sid"] == p.sid.to_string())
                .unwrap()
        })
        .collect();
    assert!(first_of_each.iter().all(|i| *i < 8), "{first_of_each:?}");
}

async fn a_dead_endpoint_never_delays_another(b: Backend) {
    // Requests to the dead endpoint hang for the whole (minute-long) timeout.
    let f = fixture(b, AddressPolicy::DEV, Duration::from_secs(60)).await;
    let dead = Receiver::start().await.unwrap();
    dead.reply(Reply::After(Duration::from_secs(120), 200));
    let healthy = Receiver::start().await.unwrap();
    f.endpoint(&dead.url("/dead"), &["*"]).await;
    f.endpoint(&healthy.url("/ok"), &["*"]).await;
    for i in 0..40 {
        f.room_event(&format!("room-{i}"), None).await;
    }
    // Everything reaches the healthy endpoint long before any dead request times out ...
    let got = healthy.wait_for(40, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 40, "the healthy endpoint got everything");
    // ... while the dead one holds exactly its own share of requests, none answered.
    let cap = WebhookConfig::default().max_in_flight_per_endpoint;
    assert_eq!(dead.wait_for(cap, WAIT).await.len(), cap);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(dead.received().len(), cap);
}

async fn redirects_are_not_followed(b: Backend) {
    let f = fixture(b, AddressPolicy::DEV, Duration::from_secs(5)).await;
    let rx = Receiver::start().await.unwrap();
    rx.reply(Reply::Redirect(rx.url("/elsewhere")));
    let wh = f.endpoint(&rx.url("/moved"), &["*"]).await;
    f.room_event("redirect", None).await;
    assert_eq!(rx.wait_for(1, WAIT).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/moved");
    let attempts = f.attempts_once(&wh, 1).await;
    let a = &attempts[0];
    assert_eq!(a.status_code, Some(302));
    assert!(!a.succeeded);
    assert!(a
        .error
        .as_deref()
        .unwrap()
        .contains("redirects are not followed"));
}

async fn names_resolving_to_private_addresses_are_refused_at_connect_time(b: Backend) {
    let f = fixture(b, AddressPolicy::STRICT, Duration::from_secs(5)).await;
    // A listener that only counts connections: nothing may reach it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    // The name passes the save-time check (it is no IP literal) ...
    let url = format!("https://localhost:{port}/hook");
    assert!(AddressPolicy::STRICT.check_url(&url).is_ok());
    let wh = f.endpoint(&url, &["*"]).await;
    f.room_event("ssrf", None).await;
    // ... and is refused once DNS says where it points.
    let error = f.attempts_once(&wh, 1).await[0].error.clone().unwrap();
    assert!(error.contains("loopback"), "{error}");
    assert!(error.contains("public addresses"), "{error}");
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 0);
}

async fn an_endpoint_gets_only_events_after_its_creation(b: Backend) {
    let f = fixture(b, AddressPolicy::DEV, Duration::from_secs(5)).await;
    // With no endpoint, the fan-out skips the log without queueing anything.
    for i in 0..5 {
        f.room_event(&format!("early-{i}"), None).await;
    }
    f.worker.wake();
    while !f
        .store
        .deliveries()
        .projects_behind()
        .await
        .unwrap()
        .is_empty()
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rx = Receiver::start().await.unwrap();
    f.endpoint(&rx.url("/late"), &["*"]).await;
    let late = f.room_event("late", None).await;
    let got = rx.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_all = rx.received();
    assert_eq!(
        got_all.len(),
        1,
        "only the event after the endpoint was created"
    );
    assert_eq!(got[0].headers["webhook-id"], late.id.to_string());
}

async fn one_projects_dead_endpoints_never_take_every_slot(b: Backend) {
    // A small node: 16 slots, 8 per endpoint, 8 per project. Without the
    // project limit, project A's two hanging endpoints would hold all 16.
    let f = fixture_with(
        b,
        WebhookConfig {
            policy: AddressPolicy::DEV,
            timeout: Duration::from_secs(60),
            poll_interval: Duration::from_millis(50),
            max_in_flight: 16,
            max_in_flight_per_endpoint: 8,
            max_in_flight_per_project: 8,
            ..WebhookConfig::default()
        },
    )
    .await;
    let dead = Receiver::start().await.unwrap();
    dead.reply(Reply::After(Duration::from_secs(120), 200));
    f.endpoint(&dead.url("/a1"), &["*"]).await;
    f.endpoint(&dead.url("/a2"), &["*"]).await;
    for i in 0..20 {
        f.room_event(&format!("a-{i}"), None).await;
    }
    assert_eq!(dead.wait_for(8, WAIT).await.len(), 8);

    // Project B, healthy, still gets through.
    let other = f.store.projects().create("b", t0()).await.unwrap().id;
    let healthy = Receiver::start().await.unwrap();
    f.store
        .webhooks()
        .create(
            other,
            NewWebhook {
                url: healthy.url("/b"),
                description: String::new(),
                events: EventTypes::new(vec!["*".into()]).unwrap(),
                enabled: true,
            },
            f.clock.now(),
        )
        .await
        .unwrap();
    for i in 0..5 {
        f.store
            .events()
            .record(Event::new(
                other,
                f.clock.now(),
                EventPayload::RoomStarted {
                    room: RoomRef {
                        sid: RoomSid::new(),
                        name: RoomName::new(format!("b-{i}")).unwrap(),
                    },
                },
            ))
            .await
            .unwrap();
    }
    assert_eq!(healthy.wait_for(5, WAIT).await.len(), 5);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        dead.received().len(),
        8,
        "project A never holds more than its share"
    );
}
