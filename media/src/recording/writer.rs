//! The thread that writes one recording: it reassembles each track's packets
//! ([`super::assembler`]) and appends the frames to the track's file
//! ([`super::container`]), off the async runtime so a slow disk never holds
//! up forwarding.
//!
//! It reads [`Input`]s from a bounded queue the packet path fills without
//! waiting, and sends [`Report`]s back to the recording's supervisor.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use switchboard_core::event::{ParticipantRef, TrackRef};
use switchboard_core::recording::RecordingFile;
use tokio::sync::mpsc::UnboundedSender;

use super::assembler::{Assembler, RtpIn};
use super::container::{self, TrackFile, Written};
use crate::sfu::keyframe::Codec;
use crate::worker::DownTrack;

/// How often waiting packets are given up on and keyframes asked for.
const TICK: Duration = Duration::from_millis(100);
/// How often the files written so far are reported (and saved).
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// What the writer thread is told.
pub enum Input {
    /// A track to write from now on, in `slot`.
    Track(Box<NewTrack>),
    /// A packet of the track in `slot`.
    Packet {
        /// The track's slot.
        slot: u16,
        /// The packet.
        packet: RtpIn,
    },
    /// The track in `slot` ended.
    EndTrack(u16),
    /// A selected track that cannot be recorded, and why.
    Skip(TrackRef, String),
    /// Close every file and report.
    Stop,
}

/// A track joining the recording.
pub struct NewTrack {
    /// Its slot in [`Input::Packet`].
    pub slot: u16,
    /// Its publisher.
    pub participant: ParticipantRef,
    /// The track.
    pub track: TrackRef,
    /// Its codec.
    pub codec: Codec,
    /// Its RTP clock rate.
    pub clock_rate: u32,
    /// Where its file goes.
    pub path: PathBuf,
    /// Its copy of the track, to ask the publisher for keyframes through.
    pub downtrack: Arc<DownTrack>,
}

/// What the writer thread reports.
#[derive(Debug)]
pub enum Report {
    /// The first frame was written: the recording runs from `at`.
    Started {
        /// When.
        at: DateTime<Utc>,
    },
    /// A track's file was created, for a live upload to follow.
    FileOpened {
        /// Its name within the recording.
        name: String,
        /// What is written to it.
        written: Arc<Written>,
    },
    /// The files so far and the recording's length so far.
    Progress {
        /// The files.
        files: Vec<RecordingFile>,
        /// Milliseconds recorded so far.
        duration_ms: u64,
    },
    /// Every file is closed.
    Done {
        /// The files.
        files: Vec<RecordingFile>,
        /// Milliseconds from the first frame of any track to the end of the last.
        duration_ms: u64,
        /// Why the recording failed, if it did.
        error: Option<String>,
        /// Tracks that were not recorded, and why.
        skipped: Vec<(TrackRef, String)>,
    },
}

struct Track {
    meta: RecordingFile,
    codec: Codec,
    assembler: Assembler,
    /// No more packets are taken.
    ended: bool,
    file: Option<TrackFile>,
    path: PathBuf,
    downtrack: Arc<DownTrack>,
    first_frame: Option<Instant>,
}

impl Track {
    fn describe(&self) -> RecordingFile {
        let mut meta = self.meta.clone();
        meta.size_bytes = self.file.as_ref().map_or(meta.size_bytes, TrackFile::size);
        meta.duration_ms = self.assembler.duration_ns() / 1_000_000;
        meta
    }
}

/// The state of one recording's writer thread.
pub struct Writer {
    tracks: HashMap<u16, Track>,
    /// Tracks in the order they were added (closed ones stay listed).
    order: Vec<u16>,
    skipped: Vec<(TrackRef, String)>,
    started: Option<(Instant, DateTime<Utc>)>,
    reports: UnboundedSender<Report>,
    fell_behind: Arc<AtomicBool>,
    error: Option<String>,
}

impl Writer {
    /// A writer reporting to `reports`; `fell_behind` is raised by the packet path when the queue overflows.
    pub fn new(reports: UnboundedSender<Report>, fell_behind: Arc<AtomicBool>) -> Self {
        Self {
            tracks: HashMap::new(),
            order: Vec::new(),
            skipped: Vec::new(),
            started: None,
            reports,
            fell_behind,
            error: None,
        }
    }

    /// Runs until told to stop (or the queue's senders are gone), then closes everything and reports.
    pub fn run(mut self, inputs: Receiver<Input>) {
        let mut last_tick = Instant::now();
        let mut last_progress = Instant::now();
        while self.error.is_none() {
            match inputs.recv_timeout(TICK) {
                Ok(Input::Packet { slot, packet }) => self.packet(slot, packet),
                Ok(Input::Track(t)) => self.add(*t),
                Ok(Input::EndTrack(slot)) => self.end(slot),
                Ok(Input::Skip(track, why)) => self.skipped.push((track, why)),
                Ok(Input::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
            if self.fell_behind.load(Ordering::Relaxed) {
                self.error = Some(
                    "the recorder fell behind the media (its queue filled up), so it was stopped to keep the call going"
                        .into(),
                );
            }
            let now = Instant::now();
            if now.duration_since(last_tick) >= TICK {
                last_tick = now;
                let slots: Vec<u16> = self.tracks.keys().copied().collect();
                for slot in slots {
                    if let Some(t) = self.tracks.get_mut(&slot) {
                        t.assembler.poll(now);
                    }
                    self.write_ready(slot);
                }
            }
            if now.duration_since(last_progress) >= PROGRESS_EVERY && self.started.is_some() {
                last_progress = now;
                let _ = self.reports.send(Report::Progress {
                    files: self.files(),
                    duration_ms: self.duration_ms(),
                });
            }
        }
        let slots: Vec<u16> = self.order.clone();
        for slot in slots {
            self.end(slot);
        }
        let _ = self.reports.send(Report::Done {
            files: self.files(),
            duration_ms: self.duration_ms(),
            error: self.error.take(),
            skipped: std::mem::take(&mut self.skipped),
        });
    }

    /// From the first frame of any track to the end of the last one: what
    /// was recorded, not the idle time after everyone stopped publishing.
    fn duration_ms(&self) -> u64 {
        self.files()
            .iter()
            .map(|f| f.start_offset_ms + f.duration_ms)
            .max()
            .unwrap_or(0)
    }

    /// Every track file written so far (tracks that never got a frame have none).
    fn files(&self) -> Vec<RecordingFile> {
        self.order
            .iter()
            .filter_map(|slot| self.tracks.get(slot))
            .filter(|t| t.first_frame.is_some())
            .map(Track::describe)
            .collect()
    }

    fn add(&mut self, t: NewTrack) {
        let Some(assembler) = Assembler::new(t.codec, t.clock_rate) else {
            let why = unsupported(t.track.mime_type.as_deref());
            self.skipped.push((t.track, why));
            return;
        };
        let name = container::file_name(t.track.sid, t.codec);
        let content_type = container::content_type(t.codec);
        self.order.push(t.slot);
        self.tracks.insert(
            t.slot,
            Track {
                meta: RecordingFile {
                    name,
                    content_type: content_type.into(),
                    participant: Some(t.participant),
                    track: Some(t.track),
                    start_offset_ms: 0,
                    duration_ms: 0,
                    size_bytes: 0,
                    error: None,
                },
                codec: t.codec,
                assembler,
                ended: false,
                file: None,
                path: t.path,
                downtrack: t.downtrack,
                first_frame: None,
            },
        );
        // Start the file at a keyframe.
        if let Some(t) = self.tracks.get(&t.slot) {
            t.downtrack.request_keyframe();
        }
    }

    fn packet(&mut self, slot: u16, packet: RtpIn) {
        let Some(t) = self.tracks.get_mut(&slot) else {
            return;
        };
        if t.ended {
            return;
        }
        t.assembler.push(Instant::now(), packet);
        self.write_ready(slot);
    }

    /// Writes the frames `slot` has ready; a write error fails the recording.
    fn write_ready(&mut self, slot: u16) {
        let Some(t) = self.tracks.get_mut(&slot) else {
            return;
        };
        if t.assembler.wants_keyframe() {
            t.downtrack.request_keyframe();
        }
        while let Some(frame) = t.assembler.pop() {
            if t.first_frame.is_none() {
                let now = Instant::now();
                let (start, _) = *self.started.get_or_insert_with(|| {
                    let at = Utc::now();
                    let _ = self.reports.send(Report::Started { at });
                    (now, at)
                });
                t.first_frame = Some(now);
                t.meta.start_offset_ms = now.duration_since(start).as_millis() as u64;
                match TrackFile::create(&t.path, t.codec) {
                    Ok(f) => {
                        let _ = self.reports.send(Report::FileOpened {
                            name: t.meta.name.clone(),
                            written: f.written(),
                        });
                        t.file = Some(f);
                    }
                    Err(e) => {
                        self.error = Some(format!("track {}: {e}", t.meta.name));
                        return;
                    }
                }
            }
            let Some(file) = t.file.as_mut() else { return };
            if let Err(e) = file.write(&frame) {
                self.error = Some(format!("track {}: {e}", t.meta.name));
                t.meta.error = Some(e.to_string());
                return;
            }
        }
    }

    /// Ends the track in `slot`: what is still waiting is written and its file closed.
    fn end(&mut self, slot: u16) {
        match self.tracks.get_mut(&slot) {
            Some(t) if !t.ended => {
                t.ended = true;
                t.assembler.finish();
            }
            _ => return,
        }
        if self.error.is_none() {
            self.write_ready(slot);
        }
        let Some(t) = self.tracks.get_mut(&slot) else {
            return;
        };
        let Some(file) = t.file.take() else {
            return;
        };
        let size = file.size();
        match file.finish(t.assembler.duration_ns()) {
            Ok(size) => t.meta.size_bytes = size,
            Err(e) => {
                t.meta.size_bytes = size;
                t.meta.error = Some(e.to_string());
                if self.error.is_none() {
                    self.error = Some(format!("track {}: {e}", t.meta.name));
                }
            }
        }
    }
}

/// Why a track of `mime` is not recorded.
pub fn unsupported(mime: Option<&str>) -> String {
    format!(
        "{} tracks cannot be recorded yet (Opus, VP8, VP9 and H.264 can)",
        mime.unwrap_or("codec-less")
    )
}
