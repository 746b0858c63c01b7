//! Synthetic media: well-formed Opus and VP8 RTP payloads at a chosen bitrate,
//! each carrying a [`Stamp`] so receivers can measure loss and latency.
//!
//! The SFU never decodes media, but it does read VP8 payload descriptors and
//! frame headers to find keyframes, so video packets carry real ones: the
//! first packet of each frame starts a partition, and keyframes carry the
//! keyframe tag and start code. Everything is a pure function of its inputs.

use rtc::rtp::header::Header;
use rtc::rtp::Packet;

/// Bytes of the trailer every synthetic payload ends with.
pub const STAMP_BYTES: usize = 16;
/// Marks a payload as the load tester's, so foreign packets are not misread.
const MAGIC: u32 = 0x5357_4244; // "SWBD"
/// RTP payload budget per video packet, leaving room for SRTP and headers under a 1200-byte MTU.
const MAX_VIDEO_PAYLOAD: usize = 1100;
/// Video frames per second.
pub const VIDEO_FPS: u32 = 30;
/// Opus frame length: 20 ms.
pub const AUDIO_PACKET_MS: u32 = 20;

/// What a receiver learns from a synthetic payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// When the packet was handed to the publisher's stack, in µs on the load tester's clock.
    pub sent_us: u64,
    /// The publisher's count of packets on this track, from 0.
    pub counter: u32,
}

impl Stamp {
    /// Writes the stamp into the last [`STAMP_BYTES`] of `payload`.
    pub fn write(self, payload: &mut [u8]) {
        let n = payload.len();
        let tail = &mut payload[n - STAMP_BYTES..];
        tail[..8].copy_from_slice(&self.sent_us.to_be_bytes());
        tail[8..12].copy_from_slice(&self.counter.to_be_bytes());
        tail[12..].copy_from_slice(&MAGIC.to_be_bytes());
    }

    /// Reads the stamp from a payload, or `None` if it carries none.
    pub fn read(payload: &[u8]) -> Option<Self> {
        let n = payload.len();
        let tail = payload.get(n.checked_sub(STAMP_BYTES)?..)?;
        if tail[12..] != MAGIC.to_be_bytes() {
            return None;
        }
        Some(Self {
            sent_us: u64::from_be_bytes(tail[..8].try_into().ok()?),
            counter: u32::from_be_bytes(tail[8..12].try_into().ok()?),
        })
    }
}

/// The payload type and clock of a synthetic stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamFormat {
    /// RTP payload type as offered.
    pub payload_type: u8,
    /// RTP SSRC.
    pub ssrc: u32,
}

/// Generates Opus packets: one every 20 ms, sized for the bitrate.
#[derive(Debug)]
pub struct AudioSource {
    format: StreamFormat,
    payload_bytes: usize,
    sequence_number: u16,
    timestamp: u32,
    counter: u32,
}

impl AudioSource {
    /// A source of `bitrate_bps` Opus audio.
    pub fn new(format: StreamFormat, bitrate_bps: u32) -> Self {
        let per_packet = bitrate_bps as usize * AUDIO_PACKET_MS as usize / 8 / 1000;
        Self {
            format,
            payload_bytes: per_packet.max(STAMP_BYTES + 1),
            sequence_number: rand::random(),
            timestamp: rand::random(),
            counter: 0,
        }
    }

    /// The next 20 ms packet, stamped `now_us`.
    pub fn next_packet(&mut self, now_us: u64) -> Packet {
        let mut payload = vec![0u8; self.payload_bytes];
        // TOC: config 31 (CELT fullband 20 ms), mono, one frame.
        payload[0] = 31 << 3;
        Stamp {
            sent_us: now_us,
            counter: self.counter,
        }
        .write(&mut payload);
        let packet = packet(
            self.format,
            self.sequence_number,
            self.timestamp,
            true,
            payload,
        );
        self.counter += 1;
        self.sequence_number = self.sequence_number.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(48 * AUDIO_PACKET_MS);
        packet
    }

    /// Packets sent so far.
    pub fn sent(&self) -> u32 {
        self.counter
    }
}

/// Generates VP8 frames at [`VIDEO_FPS`], split into packets, with periodic and requested keyframes.
#[derive(Debug)]
pub struct VideoSource {
    format: StreamFormat,
    frame_bytes: usize,
    keyframe_interval: u32,
    frames: u32,
    keyframe_requested: bool,
    sequence_number: u16,
    timestamp: u32,
    counter: u32,
}

impl VideoSource {
    /// A source of `bitrate_bps` VP8 video with a keyframe every `keyframe_interval` frames.
    pub fn new(format: StreamFormat, bitrate_bps: u32, keyframe_interval: u32) -> Self {
        Self {
            format,
            frame_bytes: (bitrate_bps / 8 / VIDEO_FPS) as usize,
            keyframe_interval: keyframe_interval.max(1),
            frames: 0,
            keyframe_requested: false,
            sequence_number: rand::random(),
            timestamp: rand::random(),
            counter: 0,
        }
    }

    /// Makes the next frame a keyframe (the answer to a PLI or FIR).
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    /// The packets of the next frame, stamped `now_us`, appended to `out`.
    pub fn next_frame(&mut self, now_us: u64, out: &mut Vec<Packet>) {
        let keyframe = std::mem::take(&mut self.keyframe_requested)
            || self.frames.is_multiple_of(self.keyframe_interval);
        self.frames += 1;
        // Every packet holds a descriptor, the stamp and at least a byte; the first also a frame header.
        let min_packet = 1 + 10 + STAMP_BYTES;
        let frame_bytes = self.frame_bytes.max(min_packet);
        let count = frame_bytes.div_ceil(MAX_VIDEO_PAYLOAD);
        let per_packet = (frame_bytes / count).max(min_packet);
        for i in 0..count {
            let mut payload = vec![0u8; per_packet];
            if i == 0 {
                // Descriptor: start of partition 0.
                payload[0] = 0x10;
                // Frame tag: bit 0 clear on keyframes, show_frame set.
                payload[1] = if keyframe { 0x10 } else { 0x11 };
                if keyframe {
                    payload[4..7].copy_from_slice(&[0x9d, 0x01, 0x2a]);
                    payload[7..9].copy_from_slice(&640u16.to_le_bytes());
                    payload[9..11].copy_from_slice(&480u16.to_le_bytes());
                }
            }
            Stamp {
                sent_us: now_us,
                counter: self.counter,
            }
            .write(&mut payload);
            out.push(packet(
                self.format,
                self.sequence_number,
                self.timestamp,
                i + 1 == count,
                payload,
            ));
            self.counter += 1;
            self.sequence_number = self.sequence_number.wrapping_add(1);
        }
        self.timestamp = self.timestamp.wrapping_add(90_000 / VIDEO_FPS);
    }

    /// Packets sent so far.
    pub fn sent(&self) -> u32 {
        self.counter
    }
}

fn packet(
    format: StreamFormat,
    sequence_number: u16,
    timestamp: u32,
    marker: bool,
    payload: Vec<u8>,
) -> Packet {
    Packet {
        header: Header {
            version: 2,
            marker,
            payload_type: format.payload_type,
            sequence_number,
            timestamp,
            ssrc: format.ssrc,
            ..Default::default()
        },
        payload: payload.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMAT: StreamFormat = StreamFormat {
        payload_type: 96,
        ssrc: 42,
    };

    #[test]
    fn stamps_round_trip_and_foreign_payloads_have_none() {
        let mut p = vec![7u8; 40];
        let s = Stamp {
            sent_us: 123_456_789,
            counter: 77,
        };
        s.write(&mut p);
        assert_eq!(Stamp::read(&p), Some(s));
        assert_eq!(Stamp::read(&[0u8; 40]), None);
        assert_eq!(Stamp::read(&[1, 2, 3]), None);
        assert_eq!(Stamp::read(&[]), None);
    }

    #[test]
    fn video_frames_hit_the_bitrate_and_mark_keyframes() {
        let mut v = VideoSource::new(FORMAT, 1_500_000, 60);
        let mut bytes = 0;
        let mut keyframes = 0;
        let mut out = Vec::new();
        for frame in 0..VIDEO_FPS {
            out.clear();
            v.next_frame(u64::from(frame) * 33_333, &mut out);
            assert!(out.last().unwrap().header.marker);
            assert!(out[..out.len() - 1].iter().all(|p| !p.header.marker));
            assert!(out.iter().all(|p| p.payload.len() <= MAX_VIDEO_PAYLOAD));
            let first = &out[0].payload;
            if first[1] & 0x01 == 0 {
                keyframes += 1;
                assert_eq!(&first[4..7], &[0x9d, 0x01, 0x2a]);
            }
            bytes += out.iter().map(|p| p.payload.len()).sum::<usize>();
        }
        // One second of video: within 2% of 1.5 Mbit.
        let bits = bytes as f64 * 8.0;
        assert!((bits / 1_500_000.0 - 1.0).abs() < 0.02, "{bits}");
        assert_eq!(keyframes, 1);
        v.request_keyframe();
        out.clear();
        v.next_frame(0, &mut out);
        assert_eq!(out[0].payload[1] & 0x01, 0);
        assert_eq!(v.sent() as usize, out.len() + 30 * 6);
    }

    #[test]
    fn video_counters_and_sequence_numbers_advance_together() {
        let mut v = VideoSource::new(FORMAT, 300_000, 30);
        let mut out = Vec::new();
        v.next_frame(0, &mut out);
        v.next_frame(1, &mut out);
        for pair in out.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            assert_eq!(
                b.header.sequence_number,
                a.header.sequence_number.wrapping_add(1)
            );
            assert_eq!(
                Stamp::read(&b.payload).unwrap().counter,
                Stamp::read(&a.payload).unwrap().counter + 1
            );
        }
    }

    #[test]
    fn audio_packets_are_20ms_apart_and_sized_for_the_bitrate() {
        let mut a = AudioSource::new(
            StreamFormat {
                payload_type: 111,
                ssrc: 1,
            },
            32_000,
        );
        let p1 = a.next_packet(0);
        let p2 = a.next_packet(20_000);
        assert_eq!(p1.payload.len(), 80);
        assert_eq!(p2.header.timestamp.wrapping_sub(p1.header.timestamp), 960);
        assert_eq!(Stamp::read(&p2.payload).unwrap().counter, 1);
        assert_eq!(a.sent(), 2);
    }
}
