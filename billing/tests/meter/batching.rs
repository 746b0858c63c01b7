//! The same made-up log metered in one batch and one event at a time gives
//! the same sessions and the same report.

use switchboard_core::event::{
    LeaveReason, ParticipantRef, RoomRef, TrackKind, TrackRef, TrackSource,
};
use switchboard_core::{Clock, Event, EventPayload, ProjectId, RoomName, RoomSid, TrackSid};
use switchboard_store::usage::SessionFilter;
use switchboard_store::{on_both_backends, Backend};

use super::fixture::*;

on_both_backends!(a_log_meters_the_same_in_one_batch_or_an_event_at_a_time,);

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
