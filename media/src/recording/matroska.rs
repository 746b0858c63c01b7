//! H.264 track files: Matroska (`V_MPEG4/ISO/AVC`) written as frames come,
//! through `webm-iterable`'s EBML writer, since libwebm writes only WebM's
//! codecs.
//!
//! The segment and its clusters are written with unknown sizes, so a file cut
//! off by a crash still plays up to its last frame on disk; only the duration
//! is patched in when the file is finished.

use std::io::{Seek, SeekFrom, Write};

use webm_iterable::errors::TagWriterError;
use webm_iterable::matroska_spec::{Master, MatroskaSpec, SimpleBlock};
use webm_iterable::{WebmWriter, WriteOptions};

use super::assembler::Frame;
use super::h264::DecoderConfig;

/// Matroska's codec id for H.264 with length-prefixed NAL units.
const CODEC_ID: &str = "V_MPEG4/ISO/AVC";
/// Timestamps are counted in milliseconds.
const TIMESTAMP_SCALE_NS: u64 = 1_000_000;
/// A new cluster starts at the first keyframe this long after the last one started.
const CLUSTER_MS: u64 = 1_000;
/// Blocks are timed relative to their cluster in 16 signed bits: a cluster
/// never spans more than this, keyframe or not.
const MAX_CLUSTER_MS: u64 = 30_000;

/// Why a Matroska file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum MatroskaError {
    /// The EBML writer refused or the file could not be written.
    #[error(transparent)]
    Ebml(#[from] TagWriterError),
    /// Seeking back to patch the duration failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One H.264 track's Matroska file.
pub struct MatroskaFile<W: Write + Seek> {
    out: WebmWriter<W>,
    /// Where the duration's 8 bytes are, to patch when finished.
    duration_at: u64,
    /// The open cluster's timestamp, in milliseconds.
    cluster_ms: Option<u64>,
}

impl<W: Write + Seek> MatroskaFile<W> {
    /// Writes the header of a track whose first frame gave `config`.
    pub fn start(dest: W, config: &DecoderConfig) -> Result<Self, MatroskaError> {
        let mut out = WebmWriter::new(dest);
        out.write(&MatroskaSpec::Ebml(Master::Full(vec![
            MatroskaSpec::EbmlVersion(1),
            MatroskaSpec::EbmlReadVersion(1),
            MatroskaSpec::EbmlMaxIdLength(4),
            MatroskaSpec::EbmlMaxSizeLength(8),
            MatroskaSpec::DocType("matroska".into()),
            MatroskaSpec::DocTypeVersion(4),
            MatroskaSpec::DocTypeReadVersion(2),
        ])))?;
        out.write_advanced(
            &MatroskaSpec::Segment(Master::Start),
            WriteOptions::is_unknown_sized_element(),
        )?;
        out.write(&MatroskaSpec::Info(Master::Full(vec![
            MatroskaSpec::TimestampScale(TIMESTAMP_SCALE_NS),
            MatroskaSpec::MuxingApp("Switchboard".into()),
            MatroskaSpec::WritingApp("Switchboard".into()),
            // Last, so its place is the end of what has been written.
            MatroskaSpec::Duration(0.0),
        ])))?;
        // With only the unknown-sized segment open, the writer has flushed the info.
        let duration_at = out.get_mut().stream_position()? - 8;
        let mut video = Vec::new();
        if let Some((w, h)) = config.size {
            video.push(MatroskaSpec::PixelWidth(w.into()));
            video.push(MatroskaSpec::PixelHeight(h.into()));
        }
        out.write(&MatroskaSpec::Tracks(Master::Full(vec![
            MatroskaSpec::TrackEntry(Master::Full(vec![
                MatroskaSpec::TrackNumber(1),
                MatroskaSpec::TrackUID(1),
                MatroskaSpec::TrackType(1), // video
                MatroskaSpec::FlagLacing(0),
                MatroskaSpec::CodecID(CODEC_ID.into()),
                MatroskaSpec::CodecPrivate(config.record.clone()),
                MatroskaSpec::Video(Master::Full(video)),
            ])),
        ])))?;
        Ok(Self {
            out,
            duration_at,
            cluster_ms: None,
        })
    }

    /// Appends a frame (its data length-prefixed NAL units).
    pub fn write(&mut self, frame: &Frame) -> Result<(), MatroskaError> {
        let ms = frame.pts_ns / 1_000_000;
        let cluster = match self.cluster_ms {
            Some(c) if ms < c + MAX_CLUSTER_MS && !(frame.keyframe && ms >= c + CLUSTER_MS) => c,
            open => {
                if open.is_some() {
                    self.out.write(&MatroskaSpec::Cluster(Master::End))?;
                }
                self.out.write_advanced(
                    &MatroskaSpec::Cluster(Master::Start),
                    WriteOptions::is_unknown_sized_element(),
                )?;
                self.out.write(&MatroskaSpec::Timestamp(ms))?;
                self.cluster_ms = Some(ms);
                ms
            }
        };
        // Frames come in order, so `ms - cluster` is below MAX_CLUSTER_MS.
        let relative = i16::try_from(ms.saturating_sub(cluster)).unwrap_or(i16::MAX);
        let block =
            SimpleBlock::new_uncheked(&frame.data, 1, relative, false, None, false, frame.keyframe);
        self.out.write(&MatroskaSpec::from(block))?;
        Ok(())
    }

    /// Closes the file with its duration (`duration_ns`); returns what it was written to.
    pub fn finish(mut self, duration_ns: u64) -> Result<W, MatroskaError> {
        if self.cluster_ms.is_some() {
            self.out.write(&MatroskaSpec::Cluster(Master::End))?;
        }
        self.out.write(&MatroskaSpec::Segment(Master::End))?;
        let mut dest = self.out.into_inner()?;
        let end = dest.stream_position()?;
        dest.seek(SeekFrom::Start(self.duration_at))?;
        let ms = duration_ns as f64 / TIMESTAMP_SCALE_NS as f64;
        dest.write_all(&ms.to_be_bytes())?;
        dest.seek(SeekFrom::Start(end))?;
        dest.flush()?;
        Ok(dest)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use webm_iterable::WebmIterator;

    use super::*;

    fn frame(ms: u64, keyframe: bool) -> Frame {
        Frame {
            pts_ns: ms * 1_000_000,
            keyframe,
            data: vec![0, 0, 0, 2, if keyframe { 0x65 } else { 0x41 }, ms as u8],
        }
    }

    fn config() -> DecoderConfig {
        DecoderConfig {
            record: vec![1, 0x42, 0xc0, 0x0d, 0xff, 0xe1],
            size: Some((320, 240)),
        }
    }

    #[test]
    fn frames_land_in_clusters_started_at_keyframes_and_the_duration_is_patched() {
        let mut f = MatroskaFile::start(Cursor::new(Vec::new()), &config()).unwrap();
        for (ms, key) in [
            (0, true),
            (33, false),
            (500, true),
            (1200, true),
            (1233, false),
        ] {
            f.write(&frame(ms, key)).unwrap();
        }
        // A long stretch without keyframes still gets new clusters.
        f.write(&frame(40_000, false)).unwrap();
        let bytes = f.finish(40_033_000_000).unwrap().into_inner();

        let tags: Vec<MatroskaSpec> = WebmIterator::new(Cursor::new(bytes), &[])
            .map(|t| t.unwrap())
            .collect();
        let find = |want: fn(&MatroskaSpec) -> bool| tags.iter().filter(|t| want(t)).count();
        assert_eq!(
            find(|t| matches!(t, MatroskaSpec::Cluster(Master::Start))),
            3
        );
        assert!(tags.contains(&MatroskaSpec::Duration(40_033.0)), "{tags:?}");
        assert!(tags.contains(&MatroskaSpec::CodecID(CODEC_ID.into())));
        assert!(tags.contains(&MatroskaSpec::PixelWidth(320)));
        let clusters: Vec<u64> = tags
            .iter()
            .filter_map(|t| match t {
                MatroskaSpec::Timestamp(ms) => Some(*ms),
                _ => None,
            })
            .collect();
        assert_eq!(clusters, [0, 1200, 40_000]);
        let blocks: Vec<(i16, bool)> = tags
            .iter()
            .filter_map(|t| SimpleBlock::try_from(t).ok())
            .map(|b| (b.timestamp, b.keyframe))
            .collect();
        assert_eq!(
            blocks,
            [
                (0, true),
                (33, false),
                (500, true),
                (0, true),
                (33, false),
                (0, false)
            ]
        );
    }
}
