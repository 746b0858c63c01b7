//! The meter's rules: sessions to the microsecond as audio or video, split
//! at period boundaries, one identity's overlaps billed once, skewed clocks,
//! and the sessions of a node that died.

use std::collections::BTreeMap;

use switchboard_core::event::LeaveReason;
use switchboard_core::usage::Meter;
use switchboard_core::{Clock, EventPayload, NodeId};
use switchboard_store::nodes::NodeRegistration;
use switchboard_store::{on_both_backends, Backend};

use super::fixture::*;

on_both_backends!(
    sessions_are_metered_to_the_microsecond_as_audio_or_video,
    a_session_across_a_period_boundary_is_split_where_it_crosses,
    one_identitys_overlapping_sessions_are_billed_once,
    a_leave_stamped_before_its_join_bills_nothing,
    a_dead_nodes_sessions_end_at_its_last_heartbeat,
);

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
