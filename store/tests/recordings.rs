//! Recordings in the store, on SQLite and on PostgreSQL: claimed by one node,
//! started and ended once, and failed with their files when their node is lost.

use chrono::{Duration, Utc};
use switchboard_core::event::{RoomRef, TrackKind, TrackRef, TrackSource};
use switchboard_core::recording::{RecordingFile, RecordingSpec, RecordingStatus};
use switchboard_core::{EventPayload, NodeId, RoomName, RoomSid, TrackSid};
use switchboard_store::nodes::NodeRegistration;
use switchboard_store::testing::TestDb;
use switchboard_store::{Backend, StoreError};

switchboard_store::on_both_backends!(
    a_recording_is_claimed_by_one_node_and_ends_once,
    a_lost_nodes_recordings_fail_with_the_files_they_saved,
);

fn room() -> RoomRef {
    RoomRef {
        sid: RoomSid::new(),
        name: RoomName::new("studio").unwrap(),
    }
}

fn track_file(bytes: u64) -> RecordingFile {
    let sid = TrackSid::new();
    RecordingFile {
        name: format!("{sid}.webm"),
        content_type: "audio/webm".into(),
        participant: None,
        track: Some(TrackRef {
            sid,
            kind: TrackKind::Audio,
            source: TrackSource::Microphone,
            mime_type: Some("audio/opus".into()),
        }),
        start_offset_ms: 0,
        duration_ms: 2_000,
        size_bytes: bytes,
        error: None,
    }
}

async fn a_recording_is_claimed_by_one_node_and_ends_once(b: Backend) {
    let db = TestDb::new(b).await.unwrap();
    let store = db.store().await.unwrap();
    let now = Utc::now();
    let project = store.projects().create("p", now).await.unwrap();
    let other = store.projects().create("q", now).await.unwrap();
    let room = room();
    let rec = store
        .recordings()
        .create(project.id, room.clone(), RecordingSpec::all_tracks(), now)
        .await
        .unwrap();
    assert_eq!(rec.status, RecordingStatus::Starting);
    assert!(store
        .recordings()
        .get(other.id, rec.id)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store
            .recordings()
            .unclaimed(project.id, &room)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .recordings()
        .any_for_room(project.id, &room)
        .await
        .unwrap());

    let (a, b_node) = (NodeId::new(), NodeId::new());
    assert!(store.recordings().claim(rec.id, a).await.unwrap());
    assert!(
        !store.recordings().claim(rec.id, b_node).await.unwrap(),
        "one node only"
    );
    assert!(store
        .recordings()
        .unclaimed(project.id, &room)
        .await
        .unwrap()
        .is_empty());

    let started = store
        .recordings()
        .activate(rec.id, now)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        started.payload,
        EventPayload::RecordingStarted { .. }
    ));
    assert!(
        store
            .recordings()
            .activate(rec.id, now)
            .await
            .unwrap()
            .is_none(),
        "started once"
    );
    store
        .recordings()
        .progress(rec.id, &[track_file(10)], 1_500)
        .await
        .unwrap();
    let open = store
        .recordings()
        .list_open(project.id, &room.name)
        .await
        .unwrap();
    assert_eq!((open.len(), open[0].duration_ms), (1, 1_500));

    let end = now + Duration::seconds(3);
    let files = vec![track_file(4096)];
    let finished = store
        .recordings()
        .finish(rec.id, "file:///x/".into(), files.clone(), 2_000, end)
        .await
        .unwrap()
        .unwrap();
    match finished.payload {
        EventPayload::RecordingFinished {
            duration_ms,
            files: f,
            ..
        } => assert_eq!((duration_ms, f), (2_000, files.clone())),
        other => panic!("{other:?}"),
    }
    // A final status never changes, and no second event is appended.
    assert!(store
        .recordings()
        .fail(rec.id, "late".into(), None, None, end)
        .await
        .unwrap()
        .is_none());
    assert!(!store
        .recordings()
        .stopping(project.id, rec.id)
        .await
        .unwrap());
    let got = store
        .recordings()
        .get(project.id, rec.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.status, got.files, got.ended_at.is_some()),
        (RecordingStatus::Finished, files, true)
    );

    // Deleting: refused while open, then the row is gone.
    let open = store
        .recordings()
        .create(project.id, room.clone(), RecordingSpec::all_tracks(), now)
        .await
        .unwrap();
    assert!(matches!(
        store.recordings().delete(project.id, open.id).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store
        .recordings()
        .delete(other.id, rec.id)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .recordings()
        .delete(project.id, rec.id)
        .await
        .unwrap()
        .is_some());
    assert!(store.recordings().find_any(rec.id).await.unwrap().is_none());
    let page = store
        .recordings()
        .list(project.id, Some(&room.name), None, 10)
        .await
        .unwrap();
    assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), [open.id]);
}

async fn a_lost_nodes_recordings_fail_with_the_files_they_saved(b: Backend) {
    let db = TestDb::new(b).await.unwrap();
    let store = db.store().await.unwrap();
    let now = Utc::now();
    let project = store.projects().create("p", now).await.unwrap();
    let node = NodeId::new();
    store
        .nodes()
        .register(&NodeRegistration::local(node), now)
        .await
        .unwrap();
    let rec = store
        .recordings()
        .create(project.id, room(), RecordingSpec::all_tracks(), now)
        .await
        .unwrap();
    assert!(store.recordings().claim(rec.id, node).await.unwrap());
    store.recordings().activate(rec.id, now).await.unwrap();
    let saved = vec![track_file(777)];
    store
        .recordings()
        .progress(rec.id, &saved, 900)
        .await
        .unwrap();
    // A recording of the same node that already ended is left alone.
    let done = store
        .recordings()
        .create(project.id, room(), RecordingSpec::all_tracks(), now)
        .await
        .unwrap();
    store.recordings().claim(done.id, node).await.unwrap();
    store
        .recordings()
        .finish(done.id, "x".into(), Vec::new(), 1, now)
        .await
        .unwrap();

    let events = store.usage().close_node(node, now).await.unwrap();
    let failed: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.payload {
            EventPayload::RecordingFailed {
                recording_id,
                error,
                files,
                ..
            } => Some((*recording_id, error.clone(), files.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{events:?}");
    assert_eq!((failed[0].0, &failed[0].2), (rec.id, &saved));
    assert!(failed[0].1.contains("stopped"), "{}", failed[0].1);
    let got = store
        .recordings()
        .get(project.id, rec.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (got.status, got.duration_ms),
        (RecordingStatus::Failed, 900)
    );
    assert!(
        store
            .usage()
            .close_node(node, now)
            .await
            .unwrap()
            .is_empty(),
        "once"
    );
}
