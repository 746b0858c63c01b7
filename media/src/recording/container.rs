//! Track files: one track's frames in a WebM file (libwebm's muxer, through
//! the `webm` crate), written as they come.
//!
//! Clusters and the segment are written with unknown sizes first and patched
//! when they close, so a file cut off by a crash still plays up to its last
//! frame on disk. Writes go straight to the file, not through a buffer, so a
//! killed process loses nothing it had written.

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use webm::mux::{
    AudioCodecId, AudioTrack, Segment, SegmentBuilder, SegmentMode, VideoCodecId, VideoTrack,
    Writer,
};

use super::assembler::Frame;
use crate::sfu::keyframe::Codec;

/// The MIME type of the files written.
pub const CONTENT_TYPE_AUDIO: &str = "audio/webm";
/// The MIME type of video track files.
pub const CONTENT_TYPE_VIDEO: &str = "video/webm";
/// The file name extension.
pub const EXTENSION: &str = "webm";

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
    /// The codec has no WebM mapping.
    #[error("{0:?} cannot be written to WebM")]
    Codec(Codec),
}

/// The file under the muxer: counts its size and keeps the last I/O error,
/// which the muxer itself reduces to "failed".
struct Counted {
    file: File,
    size: Arc<AtomicU64>,
    error: Arc<Mutex<Option<String>>>,
}

impl Counted {
    fn note<T>(&self, r: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &r {
            *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        }
        r
    }
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = self.file.write(buf);
        let r = self.note(r)?;
        if let Ok(pos) = self.file.stream_position() {
            self.size.fetch_max(pos, Ordering::Relaxed);
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
    Open(Writer<Counted>),
    Writing(Segment<Counted>, Track),
    Done,
}

/// One track's WebM file.
pub struct TrackFile {
    codec: Codec,
    state: State,
    size: Arc<AtomicU64>,
    error: Arc<Mutex<Option<String>>>,
}

impl TrackFile {
    /// Creates the file at `path` for a track of `codec`.
    pub fn create(path: &Path, codec: Codec) -> Result<Self, ContainerError> {
        if !matches!(codec, Codec::Opus | Codec::Vp8 | Codec::Vp9) {
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
        let size = Arc::new(AtomicU64::new(0));
        let error = Arc::new(Mutex::new(None));
        let counted = Counted {
            file,
            size: size.clone(),
            error: error.clone(),
        };
        Self {
            codec,
            state: State::Open(Writer::new(counted)),
            size,
            error,
        }
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    /// The MIME type of this file.
    pub fn content_type(&self) -> &'static str {
        if self.codec == Codec::Opus {
            CONTENT_TYPE_AUDIO
        } else {
            CONTENT_TYPE_VIDEO
        }
    }

    fn failed(&self) -> ContainerError {
        ContainerError::Muxer(self.error.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Appends a frame (the first of a video track must be a keyframe).
    pub fn write(&mut self, frame: &Frame) -> Result<(), ContainerError> {
        if let State::Open(_) = self.state {
            let State::Open(writer) = std::mem::replace(&mut self.state, State::Done) else {
                return Err(self.failed());
            };
            self.state = self.begin(writer, frame)?;
        }
        let State::Writing(segment, track) = &mut self.state else {
            return Err(self.failed());
        };
        let written = match track {
            Track::Audio(t) => segment.add_frame(*t, &frame.data, frame.pts_ns, true),
            Track::Video(t) => segment.add_frame(*t, &frame.data, frame.pts_ns, frame.keyframe),
        };
        written.map_err(|_| self.failed())
    }

    fn begin(&self, writer: Writer<Counted>, first: &Frame) -> Result<State, ContainerError> {
        let fail = |_| self.failed();
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
        Ok(State::Writing(builder.build(), track))
    }

    /// Writes the index and the duration (`duration_ns`), and closes the file.
    pub fn finish(mut self, duration_ns: u64) -> Result<u64, ContainerError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Writing(segment, _) => {
                // The muxer counts the duration in its timecode unit, milliseconds.
                let ms = duration_ns.div_ceil(1_000_000).max(1);
                segment.finalize(Some(ms)).map_err(|_| self.failed())?;
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
    fn only_webm_codecs_are_taken() {
        let dir = tempfile::tempdir().unwrap();
        let err = TrackFile::create(&dir.path().join("x.webm"), Codec::H264);
        assert!(matches!(err, Err(ContainerError::Codec(Codec::H264))));
    }
}
