//! A recording running on this node: the tracks it takes, its writer thread
//! and the task that saves its progress and ends it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use rtc::rtp::Packet;
use serde::Serialize;
use switchboard_core::event::{ParticipantRef, RoomRef, TrackKind, TrackRef};
use switchboard_core::recording::{Recording, RecordingFile, RecordingMode, RecordingSpec};
use switchboard_core::room::TrackInfo;
use switchboard_core::{Identity, ParticipantSid, ProjectId, RecordingId, TrackSid};
use switchboard_recording::{composite, Storage};
use switchboard_store::Store;
use tokio::sync::mpsc::UnboundedReceiver;

use super::assembler::{Assembler, RtpIn};
use super::live::LiveUploads;
use super::writer::{Input, NewTrack, Report, Writer};
use crate::peer::config::codec_for;
use crate::sfu::keyframe::Codec;
use crate::worker::{DownTrack, Output, TrackReceiver};

/// Packets (and commands) queued for the writer thread before the recording
/// counts as fallen behind: about 5 s of a 1.5 Mbit/s video track and its audio.
const QUEUE: usize = 4096;
/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";
/// How often the composite job's progress is saved.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
/// The longest wait between attempts to end a recording in the store.
const STORE_RETRY: Duration = Duration::from_secs(10);

/// A recording's end of one down-track: hands packets to the writer thread without waiting.
pub struct TrackSink {
    slot: u16,
    queue: SyncSender<Input>,
    fell_behind: Arc<AtomicBool>,
}

impl TrackSink {
    /// Queues `packet`; a full queue fails the recording instead of waiting.
    pub fn send(&self, packet: Packet) {
        let input = Input::Packet {
            slot: self.slot,
            packet: RtpIn {
                seq: packet.header.sequence_number,
                timestamp: packet.header.timestamp,
                marker: packet.header.marker,
                payload: packet.payload,
            },
        };
        if let Err(TrySendError::Full(_)) = self.queue.try_send(input) {
            self.fell_behind.store(true, Ordering::Relaxed);
        }
    }
}

/// What `manifest.json` holds: the files and how to line them up.
#[derive(Debug, Serialize)]
pub struct Manifest<'a> {
    /// The recording.
    pub recording_id: RecordingId,
    /// The room.
    pub room: &'a RoomRef,
    /// `tracks`, or `composite` (whose track files are listed here).
    pub mode: RecordingMode,
    /// When the first frame was written; each file's `start_offset_ms` counts from here.
    pub started_at: Option<DateTime<Utc>>,
    /// From the first frame to the stop, in ms.
    pub duration_ms: u64,
    /// One file per track.
    pub files: &'a [RecordingFile],
    /// Tracks selected but not recorded, and why.
    pub skipped: Vec<Skipped>,
}

/// A selected track that was not recorded.
#[derive(Debug, Serialize)]
pub struct Skipped {
    /// The track.
    pub track: TrackRef,
    /// Why.
    pub reason: String,
}

struct Slots {
    next: u16,
    by_track: HashMap<TrackSid, (u16, Arc<TrackReceiver>)>,
}

/// A recording being written on this node.
pub struct Recorder {
    /// The recording.
    pub id: RecordingId,
    spec: RecordingSpec,
    /// Stands in for a subscriber on the receivers of the tracks it records.
    sid: ParticipantSid,
    queue: SyncSender<Input>,
    fell_behind: Arc<AtomicBool>,
    dir: PathBuf,
    slots: Mutex<Slots>,
    stopped: AtomicBool,
    /// Turns true once the recording has ended in the store (or its task is gone).
    done: tokio::sync::watch::Receiver<bool>,
}

/// Tells the recorder's watchers the recording ended, however its task ends.
struct DoneGuard(tokio::sync::watch::Sender<bool>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}

impl Recorder {
    /// Starts writing `recording` of `project` into its directory of
    /// `storage`, reporting to `store`.
    pub fn start(
        store: Store,
        storage: Storage,
        project: ProjectId,
        recording: &Recording,
    ) -> Result<Arc<Self>, String> {
        let dir = storage
            .create_dir(project, recording.id)
            .map_err(|e| e.to_string())?;
        let (queue, inputs) = sync_channel(QUEUE);
        let (done_tx, done) = tokio::sync::watch::channel(false);
        let (reports_tx, reports) = tokio::sync::mpsc::unbounded_channel();
        let fell_behind = Arc::new(AtomicBool::new(false));
        let writer = Writer::new(reports_tx, fell_behind.clone());
        std::thread::Builder::new()
            .name(format!("record {}", recording.id))
            .spawn(move || writer.run(inputs))
            .map_err(|e| format!("cannot start the recorder: {e}"))?;
        let recorder = Arc::new(Self {
            id: recording.id,
            spec: recording.spec.clone(),
            sid: ParticipantSid::new(),
            queue,
            fell_behind,
            dir: dir.clone(),
            slots: Mutex::new(Slots {
                next: 0,
                by_track: HashMap::new(),
            }),
            stopped: AtomicBool::new(false),
            done,
        });
        tokio::spawn(supervise(
            store,
            storage,
            project,
            recording.clone(),
            reports,
            Arc::downgrade(&recorder),
            DoneGuard(done_tx),
        ));
        Ok(recorder)
    }

    /// Turns true once the recording has ended (finished or failed) in the store.
    pub fn done(&self) -> tokio::sync::watch::Receiver<bool> {
        self.done.clone()
    }

    /// Whether `identity`'s `track` is to be recorded.
    pub fn selects(&self, identity: &Identity, track: &TrackRef) -> bool {
        !self.stopped.load(Ordering::Relaxed) && self.spec.selects(identity, track)
    }

    /// Starts recording a track: a down-track of `receiver` that writes to this recording.
    pub fn add_track(
        &self,
        participant: ParticipantRef,
        info: &TrackInfo,
        receiver: &Arc<TrackReceiver>,
    ) {
        let track = TrackRef {
            sid: info.sid,
            kind: info.kind,
            source: info.source,
            mime_type: info.mime_type.clone(),
        };
        let mime = info.mime_type.as_deref().unwrap_or_default();
        let codec = Codec::from_mime(mime);
        let Some(codec_params) = codec_for(mime).filter(|_| Assembler::supports(codec)) else {
            self.submit(Input::Skip(
                track,
                super::writer::unsupported(info.mime_type.as_deref()),
            ));
            return;
        };
        let slot = {
            let mut slots = self.slots.lock();
            if slots.by_track.contains_key(&info.sid) || self.stopped.load(Ordering::Relaxed) {
                return;
            }
            let slot = slots.next;
            slots.next = slots.next.wrapping_add(1);
            slots.by_track.insert(info.sid, (slot, receiver.clone()));
            slot
        };
        let sink = TrackSink {
            slot,
            queue: self.queue.clone(),
            fell_behind: self.fell_behind.clone(),
        };
        let downtrack = DownTrack::new(receiver.clone(), self.sid, mime);
        let new = NewTrack {
            slot,
            participant,
            path: self.dir.join(super::container::file_name(info.sid, codec)),
            track,
            codec,
            clock_rate: codec_params.rtp_codec.clock_rate,
            downtrack: downtrack.clone(),
        };
        // The writer learns of the track before its first packet.
        self.submit(Input::Track(Box::new(new)));
        // Attached under the lock that `stop` and `end_track` take, so a track
        // they have already let go of is not attached after them.
        let slots = self.slots.lock();
        if slots.by_track.contains_key(&info.sid) {
            downtrack.attach_now(Output::Recorder(sink));
        }
    }

    /// Stops recording a track (it was unpublished): its file is closed.
    pub fn end_track(&self, track: TrackSid) {
        let Some((slot, receiver)) = self.slots.lock().by_track.remove(&track) else {
            return;
        };
        receiver.detach(self.sid);
        self.submit(Input::EndTrack(slot));
    }

    /// Stops the recording: every file is closed and the recording ends.
    pub fn stop(&self) {
        if self.stopped.swap(true, Ordering::Relaxed) {
            return;
        }
        self.detach_all();
        self.submit(Input::Stop);
    }

    fn detach_all(&self) {
        let tracks: Vec<Arc<TrackReceiver>> = self
            .slots
            .lock()
            .by_track
            .drain()
            .map(|(_, (_, receiver))| receiver)
            .collect();
        for receiver in tracks {
            receiver.detach(self.sid);
        }
    }

    /// Queues a command; one that does not fit fails the recording (it fell behind).
    fn submit(&self, input: Input) {
        if let Err(TrySendError::Full(_)) = self.queue.try_send(input) {
            self.fell_behind.store(true, Ordering::Relaxed);
        }
    }
}

/// Saves the writer's progress and ends the recording when it is done.
async fn supervise(
    store: Store,
    storage: Storage,
    project: ProjectId,
    recording: Recording,
    mut reports: UnboundedReceiver<Report>,
    recorder: Weak<Recorder>,
    _done: DoneGuard,
) {
    let id = recording.id;
    let dir = storage.dir(project, id);
    let location = storage.location(project, id);
    let mut started_at = None;
    let mut live = LiveUploads::new(&storage);
    while let Some(report) = reports.recv().await {
        match report {
            Report::FileOpened { name, written } => {
                live.open(&storage, project, id, &name, written).await;
            }
            Report::Started { at } => {
                started_at = Some(at);
                if let Err(e) = store.recordings().activate(id, at).await {
                    tracing::error!(recording = %id, error = %e, "cannot mark the recording active");
                }
            }
            Report::Progress { files, duration_ms } => {
                if let Err(e) = store.recordings().progress(id, &files, duration_ms).await {
                    tracing::warn!(recording = %id, error = %e, "cannot save the recording's progress");
                }
                live.tick(&store, id).await;
            }
            Report::Done {
                mut files,
                duration_ms,
                error,
                skipped,
            } => {
                if let Some(r) = recorder.upgrade() {
                    r.stopped.store(true, Ordering::Relaxed);
                    r.detach_all();
                }
                let skipped: Vec<Skipped> = skipped
                    .into_iter()
                    .map(|(track, reason)| Skipped { track, reason })
                    .collect();
                let manifest = Manifest {
                    recording_id: id,
                    room: &recording.room,
                    mode: recording.spec.mode,
                    started_at,
                    duration_ms,
                    files: &files,
                    skipped,
                };
                let mut error = error;
                match write_manifest(&dir, &manifest).await {
                    Ok(file) => files.push(file),
                    Err(e) => {
                        error.get_or_insert(e);
                    }
                }
                let has_media = files.iter().any(|f| f.track.is_some());
                if error.is_none() && !has_media {
                    error = Some(
                        "nothing was recorded: no selected track sent media before the recording stopped"
                            .into(),
                    );
                }
                if error.is_none() && recording.spec.mode == RecordingMode::Composite {
                    match make_composite(&store, &recording, &dir, &files, duration_ms).await {
                        Ok(file) => files.insert(0, file),
                        Err(e) => error = Some(format!("the composite could not be made: {e}")),
                    }
                }
                let uploaded = live.complete(&store, id).await;
                let rest: Vec<&str> = files
                    .iter()
                    .map(|f| f.name.as_str())
                    .filter(|n| !uploaded.iter().any(|u| u == n))
                    .collect();
                if let Err(e) = storage.upload(project, id, &rest).await {
                    let e = format!("the files could not be uploaded ({e}); what was not is kept on the media node");
                    tracing::error!(recording = %id, error = %e, "upload failed");
                    error.get_or_insert(e);
                }
                end(&store, id, error, Some(files), duration_ms, location).await;
                return;
            }
        }
    }
    // The writer thread went away without reporting: it panicked. The files
    // and length last saved stay as they are.
    if let Some(r) = recorder.upgrade() {
        r.stopped.store(true, Ordering::Relaxed);
        r.detach_all();
    }
    end(
        &store,
        id,
        Some("the recorder stopped unexpectedly".into()),
        None,
        0,
        location,
    )
    .await;
}

/// Mixes the track files into the composite MP4, saving its progress as it goes.
async fn make_composite(
    store: &Store,
    recording: &Recording,
    dir: &std::path::Path,
    files: &[RecordingFile],
    duration_ms: u64,
) -> Result<RecordingFile, composite::CompositeError> {
    let id = recording.id;
    if let Err(e) = store.recordings().processing(id, files, duration_ms).await {
        tracing::warn!(recording = %id, error = %e, "cannot mark the recording processing");
    }
    let inputs: Vec<composite::Input> = files
        .iter()
        .filter_map(|f| {
            let track = f.track.as_ref()?;
            Some(composite::Input {
                path: dir.join(&f.name),
                video: track.kind == TrackKind::Video,
                offset_ms: f.start_offset_ms,
                duration_ms: f.duration_ms,
            })
        })
        .collect();
    let (progress, mut seen) = tokio::sync::watch::channel(0.0);
    let saver = {
        let store = store.clone();
        tokio::spawn(async move {
            while seen.changed().await.is_ok() {
                let fraction = *seen.borrow_and_update();
                if let Err(e) = store.recordings().set_progress(id, fraction).await {
                    tracing::debug!(recording = %id, error = %e, "cannot save the composite's progress");
                }
                tokio::time::sleep(PROGRESS_EVERY).await;
            }
        })
    };
    let made = composite::run(
        &inputs,
        &dir.join(composite::FILE),
        duration_ms,
        !recording.spec.audio_only,
        |f| {
            let _ = progress.send(f);
        },
    )
    .await;
    drop(progress);
    let _ = saver.await;
    let size = made?;
    tracing::info!(recording = %id, size, "composite made");
    Ok(RecordingFile {
        name: composite::FILE.into(),
        content_type: composite::CONTENT_TYPE.into(),
        participant: None,
        track: None,
        start_offset_ms: 0,
        duration_ms,
        size_bytes: size,
        error: None,
    })
}

/// Writes `manifest.json` and describes it as a file of the recording.
async fn write_manifest(
    dir: &std::path::Path,
    manifest: &Manifest<'_>,
) -> Result<RecordingFile, String> {
    let body = serde_json::to_vec_pretty(manifest).map_err(|e| e.to_string())?;
    tokio::fs::write(dir.join(MANIFEST), &body)
        .await
        .map_err(|e| format!("cannot write the manifest: {e}"))?;
    Ok(RecordingFile {
        name: MANIFEST.into(),
        content_type: "application/json".into(),
        participant: None,
        track: None,
        start_offset_ms: 0,
        duration_ms: manifest.duration_ms,
        size_bytes: body.len() as u64,
        error: None,
    })
}

/// Ends the recording in the store, retrying (every few seconds, for as
/// long as it takes) while the database is away. `files` replaces the files
/// saved so far when given (a failure without it keeps them and their length).
async fn end(
    store: &Store,
    id: RecordingId,
    error: Option<String>,
    files: Option<Vec<RecordingFile>>,
    duration_ms: u64,
    location: String,
) {
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        let now = Utc::now();
        let result = match (&error, &files) {
            (None, files) => {
                store
                    .recordings()
                    .finish(
                        id,
                        location.clone(),
                        files.clone().unwrap_or_default(),
                        duration_ms,
                        now,
                    )
                    .await
            }
            (Some(e), Some(files)) => {
                store
                    .recordings()
                    .fail(id, e.clone(), Some(files.clone()), Some(duration_ms), now)
                    .await
            }
            (Some(e), None) => {
                store
                    .recordings()
                    .fail(id, e.clone(), None, None, now)
                    .await
            }
        };
        match result {
            Ok(_) => {
                match &error {
                    None => tracing::info!(recording = %id, duration_ms, "recording finished"),
                    Some(e) => tracing::warn!(recording = %id, error = %e, "recording failed"),
                }
                return;
            }
            Err(e) => {
                tracing::error!(recording = %id, attempt, error = %e, "cannot end the recording in the store");
                tokio::time::sleep(STORE_RETRY.min(Duration::from_secs(u64::from(attempt)))).await;
            }
        }
    }
}
