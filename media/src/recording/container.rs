//! Track files: one track's frames, written as they come, in WebM for Opus,
//! VP8 and VP9 (libwebm's muxer, through the `webm` crate) and in Matroska for
//! H.264 ([`super::matroska`]).
//!
//! Clusters and the segment are written with unknown sizes first (and WebM's
//! patched when they close), so a file cut off by a crash still plays up to
//! its last frame on disk. Writes go straight to the file, not through a
//! buffer, so a killed process loses nothing it had written.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use webm::mux::{
    AudioCodecId, AudioTrack, Segment, SegmentBuilder, SegmentMode, VideoCodecId, VideoTrack,
    Writer,
};

use super::assembler::Frame;
use super::h264;
use super::matroska::MatroskaFile;
use crate::sfu::keyframe::Codec;

/// The name of the file a track of `codec` with id `sid` is written to.
pub fn file_name(sid: impl std::fmt::Display, codec: Codec) -> String {
    let extension = if codec == Codec::H264 { "mkv" } else { "webm" };
    format!("{sid}.{extension}")
}

/// The MIME type of a track file of `codec`.
pub fn content_type(codec: Codec) -> &'static str {
    match codec {
        Codec::Opus => "audio/webm",
        Codec::H264 => "video/x-matroska",
        _ => "video/webm",
    }
}

/// Why a track file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    /// The file could not be created or written.
    #[error("cannot write {what}: {source}")]
    Io {
        /// What was being written.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The muxer refused (its cause, if the file system gave one).
    #[error("the WebM muxer failed{}", .0.as_deref().map(|c| format!(": {c}")).unwrap_or_default())]
    Muxer(Option<String>),
    /// The Matroska writer failed.
    #[error("the Matroska writer failed: {0}")]
    Matroska(#[from] super::matroska::MatroskaError),
    /// The codec cannot be recorded.
    #[error("{0:?} cannot be written to a track file")]
    Codec(Codec),
    /// An H.264 track's first frame lacks its parameter sets.
    #[error("the first H.264 frame has no SPS and PPS to describe the stream")]
    NoParameterSets,
}

/// How much of a track file is on disk and where it last changed, read by
/// the live upload while the writer thread writes.
#[derive(Debug)]
pub struct Written {
    size: AtomicU64,
    changed_from: AtomicU64,
}

impl Written {
    fn new() -> Self {
        Self {
            size: AtomicU64::new(0),
            changed_from: AtomicU64::new(0),
        }
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::SeqCst)
    }

    /// The lowest offset written since the last call (`u64::MAX` for none).
    pub fn take_changed_from(&self) -> u64 {
        self.changed_from.swap(u64::MAX, Ordering::SeqCst)
    }

    /// Puts back a change taken by [`Written::take_changed_from`] but not uploaded.
    pub fn restore_changed_from(&self, from: u64) {
        self.changed_from.fetch_min(from, Ordering::SeqCst);
    }
}

/// The file under the muxer: counts its size, notes where it changed, and
/// keeps the last I/O error, which the muxer itself reduces to "failed".
struct Counted {
    file: File,
    written: Arc<Written>,
    error: Arc<Mutex<Option<String>>>,
}

impl Counted {
    fn note<T>(&self, r: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &r {
            *self.error.lock() = Some(e.to_string());
        }
        r
    }
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = self.file.write(buf);
        let r = self.note(r)?;
        if let Ok(pos) = self.file.stream_position() {
            // Size first: a live upload that sees the change sees the bytes too.
            self.written.size.fetch_max(pos, Ordering::SeqCst);
            let start = pos.saturating_sub(r as u64);
            self.written.changed_from.fetch_min(start, Ordering::SeqCst);
        }
        Ok(r)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.file.flush();
        self.note(r)
    }
}

impl Seek for Counted {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        let r = self.file.seek(pos);
        self.note(r)
    }
}

enum Track {
    Audio(AudioTrack),
    Video(VideoTrack),
}

enum State {
    /// Waiting for the first frame (video needs its dimensions).
    Open(Counted),
    WebM(Segment<Counted>, Track),
    Matroska(MatroskaFile<Counted>),
    Done,
}

/// One track's WebM file.
pub struct TrackFile {
    codec: Codec,
    state: State,
    written: Arc<Written>,
    error: Arc<Mutex<Option<String>>>,
}

impl TrackFile {
    /// Creates the file at `path` for a track of `codec`.
    pub fn create(path: &Path, codec: Codec) -> Result<Self, ContainerError> {
        if !matches!(codec, Codec::Opus | Codec::Vp8 | Codec::Vp9 | Codec::H264) {
            return Err(ContainerError::Codec(codec));
        }
        let file = File::create(path).map_err(|source| ContainerError::Io {
            what: path.display().to_string(),
            source,
        })?;
        Ok(Self::on(file, codec))
    }

    /// A track file writing to `file` (any file: the tests use `/dev/full`).
    pub fn on(file: File, codec: Codec) -> Self {
        let written = Arc::new(Written::new());
        let error = Arc::new(Mutex::new(None));
        let counted = Counted {
            file,
            written: written.clone(),
            error: error.clone(),
        };
        Self {
            codec,
            state: State::Open(counted),
            written,
            error,
        }
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.written.size()
    }

    /// What is written and where it changed, for a live upload to follow.
    pub fn written(&self) -> Arc<Written> {
        self.written.clone()
    }

    fn failed(&self) -> ContainerError {
        ContainerError::Muxer(self.error.lock().clone())
    }

    /// Appends a frame (the first of a video track must be a keyframe).
    pub fn write(&mut self, frame: &Frame) -> Result<(), ContainerError> {
        if let State::Open(_) = self.state {
            let State::Open(file) = std::mem::replace(&mut self.state, State::Done) else {
                return Err(self.failed());
            };
            self.state = self.begin(file, frame)?;
        }
        let written = match &mut self.state {
            State::WebM(segment, Track::Audio(t)) => {
                segment.add_frame(*t, &frame.data, frame.pts_ns, true)
            }
            State::WebM(segment, Track::Video(t)) => {
                segment.add_frame(*t, &frame.data, frame.pts_ns, frame.keyframe)
            }
            State::Matroska(file) => return file.write(frame).map_err(|e| self.io_cause(e)),
            State::Open(_) | State::Done => return Err(self.failed()),
        };
        written.map_err(|_| self.failed())
    }

    /// A Matroska error, with the file system's cause when there was one.
    fn io_cause(&self, e: super::matroska::MatroskaError) -> ContainerError {
        match self.error.lock().clone() {
            Some(cause) => ContainerError::Io {
                what: "the track file".into(),
                source: std::io::Error::other(cause),
            },
            None => e.into(),
        }
    }

    fn begin(&self, file: Counted, first: &Frame) -> Result<State, ContainerError> {
        if self.codec == Codec::H264 {
            let config =
                h264::decoder_config(&first.data).ok_or(ContainerError::NoParameterSets)?;
            let file = MatroskaFile::start(file, &config).map_err(|e| self.io_cause(e))?;
            return Ok(State::Matroska(file));
        }
        let fail = |_| self.failed();
        let writer = Writer::new(file);
        let builder = SegmentBuilder::new(writer)
            .and_then(|b| b.set_mode(SegmentMode::File))
            .and_then(|b| b.set_writing_app("Switchboard"))
            .map_err(fail)?;
        let (builder, track) = match self.codec {
            Codec::Opus => {
                let (b, t) = builder
                    .add_audio_track(48_000, 2, AudioCodecId::Opus, None)
                    .map_err(fail)?;
                (
                    b.set_codec_private(t, &opus_head()).map_err(fail)?,
                    Track::Audio(t),
                )
            }
            Codec::Vp8 | Codec::Vp9 => {
                let (id, size) = if self.codec == Codec::Vp8 {
                    (VideoCodecId::VP8, vp8_size(&first.data))
                } else {
                    (VideoCodecId::VP9, vp9_size(&first.data))
                };
                // Players take the real size from the bitstream; this is only a hint.
                let (w, h) = size.unwrap_or((640, 480));
                let (b, t) = builder.add_video_track(w, h, id, None).map_err(fail)?;
                (b, Track::Video(t))
            }
            other => return Err(ContainerError::Codec(other)),
        };
        Ok(State::WebM(builder.build(), track))
    }

    /// Writes the index and the duration (`duration_ns`), and closes the file.
    pub fn finish(mut self, duration_ns: u64) -> Result<u64, ContainerError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::WebM(segment, _) => {
                // The muxer counts the duration in its timecode unit, milliseconds.
                let ms = duration_ns.div_ceil(1_000_000).max(1);
                segment.finalize(Some(ms)).map_err(|_| self.failed())?;
            }
            State::Matroska(file) => {
                file.finish(duration_ns).map_err(|e| self.io_cause(e))?;
            }
            // Nothing was written: an empty file says so.
            State::Open(_) | State::Done => {}
        }
        Ok(self.size())
    }
}

/// The Opus ID header (RFC 7845) WebM carries as the track's codec private data:
/// two channels as negotiated in WebRTC, no pre-skip (the stream starts mid-call).
fn opus_head() -> [u8; 19] {
    let mut h = [0u8; 19];
    h[..8].copy_from_slice(b"OpusHead");
    h[8] = 1; // version
    h[9] = 2; // channels
    h[12..16].copy_from_slice(&48_000u32.to_le_bytes());
    h
}

/// Width and height from a VP8 keyframe's header (RFC 6386, section 9.1).
pub fn vp8_size(frame: &[u8]) -> Option<(u32, u32)> {
    if frame.len() < 10 || frame[0] & 0x01 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u32::from(u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff);
    let h = u32::from(u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff);
    (w > 0 && h > 0).then_some((w, h))
}

/// Reads bits most significant first.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.pos / 8)?;
            v = (v << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Some(v)
    }
}

/// Width and height from a VP9 keyframe's uncompressed header (VP9 bitstream spec, 6.2).
pub fn vp9_size(frame: &[u8]) -> Option<(u32, u32)> {
    let mut b = Bits {
        data: frame,
        pos: 0,
    };
    if b.read(2)? != 2 {
        return None; // frame_marker
    }
    let low = b.read(1)?;
    let profile = (b.read(1)? << 1) | low;
    if profile == 3 {
        b.read(1)?;
    }
    if b.read(1)? == 1 {
        return None; // show_existing_frame
    }
    if b.read(1)? != 0 {
        return None; // not a keyframe
    }
    b.read(2)?; // show_frame, error_resilient_mode
    if b.read(24)? != 0x49_83_42 {
        return None;
    }
    if profile >= 2 {
        b.read(1)?; // ten_or_twelve_bit
    }
    let color_space = b.read(3)?;
    if color_space != 7 {
        b.read(1)?; // color_range
        if profile == 1 || profile == 3 {
            b.read(3)?; // subsampling_x, subsampling_y, reserved
        }
    } else if profile == 1 || profile == 3 {
        b.read(1)?;
    }
    let w = b.read(16)? + 1;
    let h = b.read(16)? + 1;
    Some((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframe_sizes_are_read() {
        // Frame tag (keyframe), start code, 640 x 360.
        let mut f = vec![0x50, 0x42, 0x00, 0x9d, 0x01, 0x2a];
        f.extend_from_slice(&640u16.to_le_bytes());
        f.extend_from_slice(&360u16.to_le_bytes());
        assert_eq!(vp8_size(&f), Some((640, 360)));
        f[0] |= 1; // an interframe
        assert_eq!(vp8_size(&f), None);
        assert_eq!(vp8_size(&[0; 4]), None);
    }

    #[test]
    fn vp9_keyframe_sizes_are_read() {
        // Profile 0 keyframe, BT.601, 320 x 240: marker 10, profile 00,
        // show_existing 0, key 0, show 1, error_res 0, sync code, cs 001,
        // range 0, then width-1 and height-1 in 16 bits each.
        let bits = format!("10000010{:024b}0010{:016b}{:016b}", 0x49_83_42u32, 319, 239);
        let mut bytes: Vec<u8> = bits
            .as_bytes()
            .chunks(8)
            .map(|c| {
                let s = std::str::from_utf8(c).unwrap();
                u8::from_str_radix(&format!("{s:0<8}"), 2).unwrap()
            })
            .collect();
        bytes.push(0);
        assert_eq!(vp9_size(&bytes), Some((320, 240)));
        assert_eq!(vp9_size(&[0xff; 16]), None);
        assert_eq!(vp9_size(&[]), None);
    }

    #[test]
    fn a_full_disk_is_reported_with_its_cause() {
        let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
            return; // Not Linux.
        };
        let mut t = TrackFile::on(full, Codec::Opus);
        let frame = Frame {
            pts_ns: 0,
            keyframe: true,
            data: vec![0xfc, 0xff, 0xfe],
        };
        let err = t.write(&frame).unwrap_err().to_string();
        assert!(err.contains("No space left on device"), "{err}");
    }

    #[test]
    fn changes_are_noted_from_the_lowest_offset_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = TrackFile::create(&dir.path().join("a.webm"), Codec::Opus).unwrap();
        let w = t.written();
        assert_eq!(
            w.take_changed_from(),
            0,
            "a new file changed from its start"
        );
        assert_eq!(w.take_changed_from(), u64::MAX, "and nothing since");
        for i in 0..50u64 {
            let frame = Frame {
                pts_ns: i * 20_000_000,
                keyframe: true,
                data: vec![0xfc, 0xff, 0xfe],
            };
            t.write(&frame).unwrap();
        }
        let before = w.size();
        assert!(before > 0);
        let appended = w.take_changed_from();
        assert!(appended < before, "{appended} < {before}");
        w.restore_changed_from(7);
        assert_eq!(w.take_changed_from(), 7);
        // Finishing goes back to patch the header.
        let size = t.finish(1_000_000_000).unwrap();
        assert!(w.take_changed_from() < 100);
        assert_eq!(w.size(), size);
    }

    #[test]
    fn codecs_without_a_container_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = TrackFile::create(&dir.path().join("x"), Codec::Av1);
        assert!(matches!(err, Err(ContainerError::Codec(Codec::Av1))));
        assert_eq!(file_name("TR_a", Codec::H264), "TR_a.mkv");
        assert_eq!(content_type(Codec::Opus), "audio/webm");
    }

    #[test]
    fn an_h264_track_without_parameter_sets_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = TrackFile::create(&dir.path().join("x.mkv"), Codec::H264).unwrap();
        let idr = Frame {
            pts_ns: 0,
            keyframe: true,
            data: vec![0, 0, 0, 2, 0x65, 1],
        };
        assert!(matches!(
            t.write(&idr),
            Err(ContainerError::NoParameterSets)
        ));
    }
}
