//! What is read back from metered sessions: rooms over days and hours,
//! finished rooms, sessions per node and region, and what retention keeps.

use chrono::{DateTime, Utc};
use switchboard_core::event::{LeaveReason, RoomRef};
use switchboard_core::usage::Meter;
use switchboard_core::{Clock, EventPayload, NodeId, RoomName, RoomSid};
use switchboard_store::nodes::NodeRegistration;
use switchboard_store::usage::SessionFilter;
use switchboard_store::{on_both_backends, Backend};

use super::fixture::*;

on_both_backends!(
    rooms_add_up_over_whole_days_and_the_hours_around_them,
    finished_rooms_list_their_sessions_and_open_ones_count_up_to_now,
    old_rows_are_purged_and_the_invoice_stays,
    sessions_are_counted_per_node_and_region,
);

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
