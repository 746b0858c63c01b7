//! Track files uploaded while they are written, against a real S3-compatible
//! server (s3rver, on disk): files of several parts, rewritten in places
//! as muxers do, arrive byte for byte; and the uploads of a node lost
//! mid-file are completed by whoever finds them, with what it had sent.

use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write};

use chrono::Utc;
use switchboard_core::event::{RoomRef, TrackKind, TrackRef, TrackSource};
use switchboard_core::recording::{RecordingFile, RecordingSpec};
use switchboard_core::{ProjectId, RecordingId, RoomName, RoomSid, TrackSid};
use switchboard_recording::live::complete_abandoned;
use switchboard_recording::storage::PART_BYTES;
use switchboard_recording::testing::S3Server;
use switchboard_recording::Storage;
use switchboard_store::testing::TestDb;
use switchboard_store::Backend;

const MIB: usize = 1024 * 1024;

/// Bytes that differ at every offset, so a part sent at the wrong place shows.
fn pattern(from: usize, len: usize) -> Vec<u8> {
    (from..from + len).map(|i| (i % 251) as u8).collect()
}

fn storage(bucket: &S3Server, spool: &std::path::Path) -> Storage {
    Storage::with_s3(spool, &bucket.config("sb", 1)).unwrap()
}

#[tokio::test]
async fn a_file_of_several_parts_rewritten_in_places_arrives_byte_for_byte() {
    let bucket = S3Server::start().await;
    let spool = tempfile::tempdir().unwrap();
    let storage = storage(&bucket, spool.path());
    let (project, recording) = (ProjectId::new(), RecordingId::new());
    storage.create_dir(project, recording).unwrap();
    let path = storage.path(project, recording, "t.webm").unwrap();
    let mut file = std::fs::File::create(&path).unwrap();
    let mut live = storage
        .begin_live(project, recording, "t.webm")
        .await
        .unwrap()
        .expect("live uploads are on");

    // 3 MiB: one part, still growing.
    file.write_all(&pattern(0, 3 * MIB)).unwrap();
    live.sync(0, 3 * MIB as u64).await.unwrap();
    assert_eq!(live.state().parts.len(), 1);
    // Past the first boundary; nothing rewritten.
    file.write_all(&pattern(3 * MIB, 4 * MIB)).unwrap();
    live.sync(3 * MIB as u64, 7 * MIB as u64).await.unwrap();
    let sizes: Vec<u64> = live.state().parts.iter().map(|p| p.bytes).collect();
    assert_eq!(sizes, [PART_BYTES as u64, 2 * MIB as u64]);
    // Into a third part, with a header patched in the first, as a muxer finishing does.
    file.write_all(&pattern(7 * MIB, 5 * MIB + 123)).unwrap();
    file.seek(SeekFrom::Start(10)).unwrap();
    file.write_all(b"patched").unwrap();
    file.flush().unwrap();
    let len = 12 * MIB as u64 + 123;
    live.sync(10, len).await.unwrap();
    let sizes: Vec<u64> = live.state().parts.iter().map(|p| p.bytes).collect();
    assert_eq!(
        sizes,
        [PART_BYTES as u64, PART_BYTES as u64, 2 * MIB as u64 + 123]
    );
    // Nothing changed: nothing sent.
    let before = live.state().clone();
    live.sync(u64::MAX, len).await.unwrap();
    assert_eq!(live.state(), &before);
    live.complete().await.unwrap();

    let mut want = pattern(0, 12 * MIB + 123);
    want[10..17].copy_from_slice(b"patched");
    let got = std::fs::read(bucket.object(format!("sb/{project}/{recording}/t.webm"))).unwrap();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the object differs from the file");
    assert!(!path.exists(), "the local copy is removed once uploaded");
}

#[tokio::test]
async fn a_lost_nodes_uploads_are_completed_with_what_it_sent() {
    let bucket = S3Server::start().await;
    let spool = tempfile::tempdir().unwrap();
    let storage = storage(&bucket, spool.path());
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let store = db.store().await.unwrap();
    let now = Utc::now();
    let project = store.projects().create("p", now).await.unwrap().id;
    let room = RoomRef {
        sid: RoomSid::new(),
        name: RoomName::new("studio").unwrap(),
    };
    let rec = store
        .recordings()
        .create(project, room, RecordingSpec::all_tracks(), now)
        .await
        .unwrap();
    storage.create_dir(project, rec.id).unwrap();
    let name = "v.webm";
    let path = storage.path(project, rec.id, name).unwrap();
    let mut file = std::fs::File::create(&path).unwrap();
    let mut live = storage
        .begin_live(project, rec.id, name)
        .await
        .unwrap()
        .unwrap();
    file.write_all(&pattern(0, 6 * MIB)).unwrap();
    live.sync(0, 6 * MIB as u64).await.unwrap();
    store
        .recordings()
        .save_uploads(rec.id, std::slice::from_ref(live.state()))
        .await
        .unwrap();
    // Written after the last upload, then the node is lost.
    file.write_all(&pattern(6 * MIB, MIB)).unwrap();
    let sid = TrackSid::new();
    let listed = RecordingFile {
        name: name.into(),
        content_type: "video/webm".into(),
        participant: None,
        track: Some(TrackRef {
            sid,
            kind: TrackKind::Video,
            source: TrackSource::Camera,
            mime_type: Some("video/VP8".into()),
        }),
        start_offset_ms: 0,
        duration_ms: 9_000,
        size_bytes: 7 * MIB as u64,
        error: None,
    };
    store
        .recordings()
        .fail(
            rec.id,
            "its node was lost".into(),
            Some(vec![listed]),
            Some(9_000),
            now,
        )
        .await
        .unwrap();
    drop(live);

    // Another server finds it: the object is what was sent, listed at that size.
    assert_eq!(
        complete_abandoned(&store, &storage, &mut HashMap::new())
            .await
            .unwrap(),
        1
    );
    let object = bucket.object(format!("sb/{project}/{}/{name}", rec.id));
    assert!(std::fs::read(&object).unwrap() == pattern(0, 6 * MIB));
    let rec = store
        .recordings()
        .get(project, rec.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.files[0].size_bytes, 6 * MIB as u64);
    // Settled once.
    assert_eq!(
        complete_abandoned(&store, &storage, &mut HashMap::new())
            .await
            .unwrap(),
        0
    );

    // A lost node whose saved parts the bucket cannot complete the upload
    // with: the recording cannot be deleted meanwhile, and after a few tries
    // the file is listed with the reason and the recording settles.
    let room = RoomRef {
        sid: RoomSid::new(),
        name: RoomName::new("studio").unwrap(),
    };
    let rec = store
        .recordings()
        .create(project, room, RecordingSpec::all_tracks(), now)
        .await
        .unwrap();
    storage.create_dir(project, rec.id).unwrap();
    let path = storage.path(project, rec.id, name).unwrap();
    std::fs::write(&path, pattern(0, MIB)).unwrap();
    let mut live = storage
        .begin_live(project, rec.id, name)
        .await
        .unwrap()
        .unwrap();
    live.sync(0, MIB as u64).await.unwrap();
    let mut state = live.state().clone();
    // A part the bucket never got (s3rver does not check ETags, but it does need the parts).
    let phantom = switchboard_core::recording::UploadedPart {
        etag: "\"never-sent\"".into(),
        bytes: MIB as u64,
    };
    state.parts.insert(0, phantom);
    store
        .recordings()
        .save_uploads(rec.id, &[state])
        .await
        .unwrap();
    let mut listed = vec![rec_file(name, MIB as u64)];
    store
        .recordings()
        .fail(
            rec.id,
            "lost".into(),
            Some(listed.clone()),
            Some(1_000),
            now,
        )
        .await
        .unwrap();
    let mut attempts = HashMap::new();
    for _ in 1..switchboard_recording::live::MAX_ATTEMPTS {
        assert_eq!(
            complete_abandoned(&store, &storage, &mut attempts)
                .await
                .unwrap(),
            0
        );
    }
    assert!(matches!(
        store.recordings().delete(project, rec.id).await,
        Err(switchboard_store::StoreError::Conflict(_))
    ));
    assert_eq!(
        complete_abandoned(&store, &storage, &mut attempts)
            .await
            .unwrap(),
        1
    );
    let got = store
        .recordings()
        .get(project, rec.id)
        .await
        .unwrap()
        .unwrap();
    listed[0].error = got.files[0].error.clone();
    assert!(
        listed[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("would not complete"),
        "{got:?}"
    );
    assert!(store
        .recordings()
        .delete(project, rec.id)
        .await
        .unwrap()
        .is_some());
}

fn rec_file(name: &str, bytes: u64) -> RecordingFile {
    RecordingFile {
        name: name.into(),
        content_type: "video/webm".into(),
        participant: None,
        track: None,
        start_offset_ms: 0,
        duration_ms: 1_000,
        size_bytes: bytes,
        error: None,
    }
}

#[tokio::test]
async fn without_live_uploads_nothing_starts() {
    let bucket = S3Server::start().await;
    let spool = tempfile::tempdir().unwrap();
    let storage = Storage::with_s3(spool.path(), &bucket.config("sb", 0)).unwrap();
    assert_eq!(storage.live_upload_every(), None);
    let live = storage
        .begin_live(ProjectId::new(), RecordingId::new(), "a.webm")
        .await
        .unwrap();
    assert!(live.is_none());
    let local = Storage::local(spool.path());
    assert!(local
        .begin_live(ProjectId::new(), RecordingId::new(), "a.webm")
        .await
        .unwrap()
        .is_none());
}
