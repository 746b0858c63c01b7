//! Puts one track's RTP packets back in order and together into whole
//! frames, timed from the track's first frame.
//!
//! Sans-I/O: [`Assembler::push`] takes a packet and the time it arrived,
//! [`Assembler::poll`] gives up on packets that did not come in time, and
//! [`Assembler::pop`] hands out frames in order. Time is passed in, so the
//! tests run on a made-up clock.
//!
//! - **Reordering.** Packets wait in a window of [`WINDOW`] sequence
//!   numbers; a missing one is waited for up to [`MAX_WAIT`] (long enough for
//!   a retransmission) and then counted lost.
//! - **Loss.** An audio frame is one packet, so a loss is just a gap. A video
//!   frame with a packet missing cannot be decoded, and neither can what
//!   follows it until the next keyframe: those frames are dropped and
//!   [`Assembler::wants_keyframe`] asks the publisher for one.
//! - **Timestamps.** Frames are timed by their RTP timestamps (unwrapped past
//!   2^32), so a pause in the media (a mute, a stalled publisher) stays a gap
//!   of the same length in the file. Timestamps never go backwards in the
//!   output: a publisher that restarts its clock continues from the last frame.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rtc::rtp::codec::opus::OpusPacket;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::codec::vp9::Vp9Packet;
use rtc::rtp::packetizer::Depacketizer;

use super::h264;
use crate::sfu::keyframe::Codec;

/// How many sequence numbers ahead of the next expected one are held.
pub const WINDOW: u64 = 512;
/// How long a missing packet is waited for before it counts as lost.
pub const MAX_WAIT: Duration = Duration::from_millis(400);
/// How far after the last frame a frame whose timestamp went backwards is put.
const BACKWARDS_STEP_NS: u64 = 1_000_000;
/// How much further than the time between their arrivals one frame's timestamp
/// may be from the last before it counts as a jump of the publisher's clock.
const MAX_JUMP_NS: u64 = 2_000_000_000;
/// The gap assumed after the last frame of a track, when the track has only one frame.
const DEFAULT_FRAME: Duration = Duration::from_millis(20);
/// The largest frame kept: a publisher sending one endless frame is cut off here.
pub const MAX_FRAME_BYTES: usize = 8 << 20;

/// One RTP packet as the recorder needs it.
#[derive(Debug, Clone)]
pub struct RtpIn {
    /// Sequence number.
    pub seq: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// The marker bit (the last packet of a video frame).
    pub marker: bool,
    /// The payload, shared with the forwarding path.
    pub payload: Bytes,
}

/// A whole frame, ready for a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Nanoseconds after the track's first frame.
    pub pts_ns: u64,
    /// Whether it decodes on its own.
    pub keyframe: bool,
    /// The codec bitstream (RTP payload descriptors removed).
    pub data: Vec<u8>,
}

/// What happened to a track's packets, for the manifest and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Packets taken in order.
    pub packets: u64,
    /// Sequence numbers given up on.
    pub lost: u64,
    /// Packets that arrived after their place had passed, or twice.
    pub late: u64,
    /// Frames written out.
    pub frames: u64,
    /// Frames dropped (incomplete, or waiting for a keyframe).
    pub dropped_frames: u64,
}

#[derive(Clone, Copy)]
enum Unpacker {
    Opus,
    Vp8,
    Vp9,
    H264,
}

impl Unpacker {
    /// Appends the codec bitstream in `payload` to `frame`; `false` if the
    /// payload cannot be read. VP8, VP9 and Opus take a fresh depacketizer
    /// each time: rtc's keep what earlier packets said (VP9's scalability
    /// structure grows with every packet that carries one), which a publisher
    /// could grow without end. H.264's state lives with the frame.
    fn unpack(self, payload: &Bytes, frame: &mut Partial) -> bool {
        let bytes = match self {
            Self::Opus => OpusPacket.depacketize(payload),
            Self::Vp8 => Vp8Packet::default().depacketize(payload),
            Self::Vp9 => Vp9Packet::default().depacketize(payload),
            Self::H264 => return frame.h264.unpack(payload, &mut frame.data),
        };
        match bytes {
            Ok(b) => {
                frame.data.extend_from_slice(&b);
                true
            }
            Err(_) => false,
        }
    }

    fn is_frame_head(self, payload: &Bytes) -> bool {
        match self {
            Self::Opus => OpusPacket.is_partition_head(payload),
            // The S bit alone marks the start of any partition; a frame starts with partition 0.
            Self::Vp8 => Vp8Packet::default().is_partition_head(payload) && payload[0] & 0x07 == 0,
            Self::Vp9 => Vp9Packet::default().is_partition_head(payload),
            // A fragmented unit's first packet, or any unfragmented one.
            Self::H264 => match payload.first().map(|h| h & 0x1f) {
                Some(28) => payload.get(1).is_some_and(|fu| fu & 0x80 != 0),
                Some(_) => true,
                None => false,
            },
        }
    }
}

/// The frame being put together.
struct Partial {
    timestamp: u32,
    /// When its first packet arrived.
    arrived: Instant,
    keyframe: bool,
    /// Whether every packet of it so far arrived, starting with its first.
    whole: bool,
    data: Vec<u8>,
    /// H.264: the fragmented unit being put back together.
    h264: h264::Unpacker,
}

/// Reorders and reassembles one track (see the module docs).
pub struct Assembler {
    codec: Codec,
    clock_rate: u32,
    unpacker: Unpacker,
    /// Packets waiting for their turn, with when they arrived.
    slots: Vec<Option<(RtpIn, Instant)>>,
    /// Extended sequence number of the next packet to take.
    next: Option<u64>,
    /// Highest extended sequence number seen.
    highest: u64,
    /// When the packet at `next` started being waited for.
    waiting_since: Option<Instant>,
    /// A packet was given up on since the last one taken.
    lost_before_next: bool,
    partial: Option<Partial>,
    /// Video only: frames are dropped until a keyframe.
    need_keyframe: bool,
    keyframe_wanted: bool,
    /// Extended RTP timestamps: the last seen raw and extended values, and the first frame's.
    last_ts: Option<(u32, i64)>,
    first_ts: Option<i64>,
    last_pts: Option<u64>,
    /// Added to every presentation time since the publisher's clock jumped.
    shift_ns: i64,
    /// When the last frame written arrived.
    last_arrival: Option<Instant>,
    /// The gap between the last two frames written, for the duration of the last one.
    last_gap: Option<u64>,
    ready: VecDeque<Frame>,
    counts: Counts,
}

impl Assembler {
    /// Whether tracks of `codec` can be recorded.
    pub fn supports(codec: Codec) -> bool {
        matches!(codec, Codec::Opus | Codec::Vp8 | Codec::Vp9 | Codec::H264)
    }

    /// An assembler for `codec` at `clock_rate` Hz; `None` for codecs that cannot be recorded yet.
    pub fn new(codec: Codec, clock_rate: u32) -> Option<Self> {
        let unpacker = match codec {
            Codec::Opus => Unpacker::Opus,
            Codec::Vp8 => Unpacker::Vp8,
            Codec::Vp9 => Unpacker::Vp9,
            Codec::H264 => Unpacker::H264,
            Codec::Av1 | Codec::Other => return None,
        };
        Some(Self {
            codec,
            clock_rate: clock_rate.max(1),
            unpacker,
            slots: vec![None; WINDOW as usize],
            next: None,
            highest: 0,
            waiting_since: None,
            lost_before_next: false,
            partial: None,
            need_keyframe: codec != Codec::Opus,
            keyframe_wanted: false,
            last_ts: None,
            first_ts: None,
            last_pts: None,
            shift_ns: 0,
            last_arrival: None,
            last_gap: None,
            ready: VecDeque::new(),
            counts: Counts::default(),
        })
    }

    fn is_video(&self) -> bool {
        self.codec != Codec::Opus
    }

    /// What happened so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Whether the publisher should be asked for a keyframe (reset once read).
    pub fn wants_keyframe(&mut self) -> bool {
        std::mem::take(&mut self.keyframe_wanted)
    }

    /// The extended form of `seq`, nearest the highest seen.
    fn extend(&self, seq: u16) -> u64 {
        let delta = i64::from(seq.wrapping_sub(self.highest as u16) as i16);
        (self.highest as i64 + delta).max(0) as u64
    }

    /// Takes a packet that arrived at `now`.
    pub fn push(&mut self, now: Instant, packet: RtpIn) {
        let ext = match self.next {
            None => {
                // Far enough from 0 that a reordered earlier packet cannot go negative.
                let ext = (1 << 20) + u64::from(packet.seq);
                self.next = Some(ext);
                self.highest = ext;
                ext
            }
            Some(_) => self.extend(packet.seq),
        };
        let next = self.next.unwrap_or(ext);
        if ext < next {
            self.counts.late += 1;
            return;
        }
        if ext >= next + WINDOW {
            // Too far ahead to hold: give up on what is missing up to it.
            self.skip_to(ext + 1 - WINDOW);
        }
        let slot = &mut self.slots[(ext % WINDOW) as usize];
        if slot.is_some() {
            self.counts.late += 1;
            return;
        }
        *slot = Some((packet, now));
        self.highest = self.highest.max(ext);
        self.drain(now);
    }

    /// Gives up on packets waited for too long by `now`.
    pub fn poll(&mut self, now: Instant) {
        self.drain(now);
    }

    /// The next whole frame, in order.
    pub fn pop(&mut self) -> Option<Frame> {
        self.ready.pop_front()
    }

    /// Ends the track: what is still waiting is taken as it is.
    pub fn finish(&mut self) {
        while let Some(n) = self.next.filter(|&n| n <= self.highest) {
            self.take_or_lose(n);
        }
        self.close_partial(false);
    }

    /// Nanoseconds from the first frame to the end of the last one.
    pub fn duration_ns(&self) -> u64 {
        let Some(last) = self.last_pts else { return 0 };
        let frame = self.last_gap.unwrap_or(DEFAULT_FRAME.as_nanos() as u64);
        last.saturating_add(frame)
    }

    /// Moves on to `ext`, taking what is held before it and counting the rest
    /// lost; at most one pass over the window, however far `ext` is.
    fn skip_to(&mut self, ext: u64) {
        let Some(next) = self.next else { return };
        // Whatever is held lies within one window of `next`.
        let held_end = ext.min(next + WINDOW);
        while let Some(n) = self.next.filter(|&n| n < held_end) {
            self.take_or_lose(n);
        }
        if let Some(n) = self.next.filter(|&n| n < ext) {
            self.counts.lost += ext - n;
            self.lost_before_next = true;
            self.next = Some(ext);
        }
        self.waiting_since = None;
    }

    /// Takes the packet at `ext` if present, else counts it lost; moves on by one.
    fn take_or_lose(&mut self, ext: u64) {
        match self.slots[(ext % WINDOW) as usize].take() {
            Some((p, arrived)) => self.take(p, arrived),
            None => {
                self.counts.lost += 1;
                self.lost_before_next = true;
            }
        }
        self.next = Some(ext + 1);
    }

    fn drain(&mut self, now: Instant) {
        while let Some(next) = self.next {
            if next > self.highest {
                self.waiting_since = None;
                return;
            }
            if let Some((p, arrived)) = self.slots[(next % WINDOW) as usize].take() {
                self.take(p, arrived);
                self.next = Some(next + 1);
                self.waiting_since = None;
                continue;
            }
            // A hole with packets after it: wait, then give up on it.
            let since = *self.waiting_since.get_or_insert(now);
            if now.saturating_duration_since(since) < MAX_WAIT {
                return;
            }
            // Holes right after it have waited as long: give up on them too.
            self.take_or_lose(next);
        }
    }

    /// Takes the next packet in sequence order, which arrived at `arrived`.
    fn take(&mut self, p: RtpIn, arrived: Instant) {
        self.counts.packets += 1;
        let lost_before = std::mem::take(&mut self.lost_before_next);
        if self
            .partial
            .as_ref()
            .is_some_and(|f| f.timestamp != p.timestamp)
        {
            // A new timestamp ends the frame before. A video frame ends with its
            // marker, so one cut off without it lost its last packets.
            let cut = lost_before || self.is_video();
            self.close_partial(cut);
        } else if lost_before {
            if let Some(f) = &mut self.partial {
                f.whole = false;
            }
        }
        if p.payload.is_empty() {
            return; // Padding.
        }
        if self.partial.is_none() {
            // After a loss a video frame may be missing its start (or depend on
            // a frame lost whole): it is not whole, and a keyframe is asked for.
            let head = self.unpacker.is_frame_head(&p.payload) && !(lost_before && self.is_video());
            self.partial = Some(Partial {
                timestamp: p.timestamp,
                arrived,
                keyframe: self.codec.is_keyframe(&p.payload),
                whole: head,
                data: Vec::new(),
                h264: h264::Unpacker::default(),
            });
        }
        let Some(partial) = self.partial.as_mut() else {
            return;
        };
        if partial.data.len() + p.payload.len() > MAX_FRAME_BYTES
            || !self.unpacker.unpack(&p.payload, partial)
        {
            partial.whole = false;
        }
        if !self.is_video() || p.marker {
            self.close_partial(false);
        }
    }

    /// Ends the frame being put together; `lost_tail` if packets after it went missing.
    fn close_partial(&mut self, lost_tail: bool) {
        let Some(mut f) = self.partial.take() else {
            return;
        };
        // Video: without its marker a frame's last packets may be what was lost.
        let whole = f.whole && !(lost_tail && self.is_video()) && !f.h264.in_fragment();
        // H.264 is judged on what arrived, not on its first packet.
        if self.codec == Codec::H264 {
            f.keyframe = h264::is_idr(&f.data);
        }
        if !whole || f.data.is_empty() {
            self.counts.dropped_frames += 1;
            if self.is_video() {
                self.need_keyframe = true;
                self.keyframe_wanted = true;
            }
            return;
        }
        if self.need_keyframe {
            // An H.264 file can only start at an IDR picture that brings its
            // parameter sets; looked at only while waiting for a start.
            let starts = f.keyframe && (self.codec != Codec::H264 || h264::starts_stream(&f.data));
            if !starts {
                self.counts.dropped_frames += 1;
                self.keyframe_wanted = true;
                return;
            }
            self.need_keyframe = false;
        }
        let pts = self.pts_of(f.timestamp, f.arrived);
        self.counts.frames += 1;
        self.ready.push_back(Frame {
            pts_ns: pts,
            keyframe: f.keyframe,
            data: f.data,
        });
    }

    /// The presentation time of a frame with RTP timestamp `ts` that arrived
    /// at `arrived`: always after the last one, and never further after it
    /// than the time between their arrivals allows.
    fn pts_of(&mut self, ts: u32, arrived: Instant) -> u64 {
        let ext = match self.last_ts {
            None => i64::from(ts),
            Some((raw, ext)) => ext.saturating_add(i64::from(ts.wrapping_sub(raw) as i32)),
        };
        self.last_ts = Some((ts, ext));
        let first = *self.first_ts.get_or_insert(ext);
        let ns = i128::from(ext - first) * 1_000_000_000 / i128::from(self.clock_rate)
            + i128::from(self.shift_ns);
        let pts = match (self.last_pts, self.last_arrival) {
            (Some(last), Some(prev)) => {
                let last = i128::from(last);
                let waited = arrived.saturating_duration_since(prev).as_nanos() as i128;
                let target = if ns <= last {
                    // Backwards or repeated: go on just after the last frame.
                    Some(last + i128::from(BACKWARDS_STEP_NS))
                } else if ns - last > waited + i128::from(MAX_JUMP_NS) {
                    // A jump forward that time did not take (a publisher that
                    // restarted its clock): as long as it really was.
                    Some(last + waited.max(i128::from(BACKWARDS_STEP_NS)))
                } else {
                    None
                };
                match target {
                    Some(t) => {
                        // Keep the shift for the frames that follow.
                        self.shift_ns = self
                            .shift_ns
                            .saturating_add(i64::try_from(t - ns).unwrap_or(i64::MAX));
                        t
                    }
                    None => ns,
                }
            }
            _ => ns,
        };
        let pts = u64::try_from(pts.max(0)).unwrap_or(u64::MAX);
        if let Some(last) = self.last_pts {
            self.last_gap = Some(pts.saturating_sub(last));
        }
        self.last_pts = Some(pts);
        self.last_arrival = Some(arrived);
        pts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn opus(seq: u16, ts: u32) -> RtpIn {
        RtpIn {
            seq,
            timestamp: ts,
            marker: false,
            payload: Bytes::from(vec![0xfc, seq as u8]),
        }
    }

    /// A VP8 packet: `start` sets the S bit (PID 0); `key` makes the first packet's frame header a keyframe's.
    fn vp8(seq: u16, ts: u32, start: bool, key: bool, marker: bool) -> RtpIn {
        let mut payload = vec![if start { 0x10 } else { 0x00 }];
        // Frame header: bit 0 clear on keyframes.
        payload.extend_from_slice(&[if key { 0x00 } else { 0x01 }, 0x00, 0x00, seq as u8]);
        RtpIn {
            seq,
            timestamp: ts,
            marker,
            payload: Bytes::from(payload),
        }
    }

    fn drain(a: &mut Assembler) -> Vec<Frame> {
        std::iter::from_fn(|| a.pop()).collect()
    }

    #[test]
    fn audio_in_order_is_timed_from_the_first_frame() {
        let t0 = Instant::now();
        let mut a = Assembler::new(Codec::Opus, 48_000).unwrap();
        for i in 0..5u16 {
            a.push(
                t0 + MS * 20 * u32::from(i),
                opus(100 + i, 5000 + 960 * u32::from(i)),
            );
        }
        let frames = drain(&mut a);
        let pts: Vec<u64> = frames.iter().map(|f| f.pts_ns / 1_000_000).collect();
        assert_eq!(pts, [0, 20, 40, 60, 80]);
        assert_eq!(a.duration_ns(), 100_000_000);
        assert_eq!(a.counts().lost, 0);
    }

    #[test]
    fn reordered_packets_come_out_in_order() {
        let t0 = Instant::now();
        let mut a = Assembler::new(Codec::Opus, 48_000).unwrap();
        for (seq, ts) in [(10, 0), (12, 1920), (11, 960), (14, 3840), (13, 2880)] {
            a.push(t0, opus(seq, ts));
        }
        let pts: Vec<u64> = drain(&mut a).iter().map(|f| f.pts_ns / 1_000_000).collect();
        assert_eq!(pts, [0, 20, 40, 60, 80]);
        assert_eq!(a.counts().late, 0);
    }

    #[test]
    fn a_lost_audio_packet_is_a_gap_after_waiting_for_it() {
        let t0 = Instant::now();
        let mut a = Assembler::new(Codec::Opus, 48_000).unwrap();
        a.push(t0, opus(1, 0));
        a.push(t0 + MS * 40, opus(3, 1920));
        assert_eq!(drain(&mut a).len(), 1, "packet 3 waits for packet 2");
        a.poll(t0 + MS * 40 + MAX_WAIT - MS);
        assert!(a.pop().is_none());
        a.poll(t0 + MS * 40 + MAX_WAIT);
        let frames = drain(&mut a);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].pts_ns, 40_000_000, "the gap keeps its length");
        assert_eq!(a.counts().lost, 1);
        // Packet 2 arriving now is too late.
        a.push(t0 + MS * 500, opus(2, 960));
        assert!(a.pop().is_none());
        assert_eq!(a.counts().late, 1);
    }

    #[test]
    fn a_mute_gap_stays_a_gap() {
        let t0 = Instant::now();
        let mut a = Assembler::new(Codec::Opus, 48_000).unwrap();
        a.push(t0, opus(1, 0));
        // Three seconds without packets (a mute), then the sequence goes on.
        a.push(t0 + Duration::from_secs(3), opus(2, 3 * 48_000));
        let pts: Vec<u64> = drain(&mut a).iter().map(|f| f.pts_ns / 1_000_000).collect();
        assert_eq!(pts, [0, 3000]);
    }

    #[test]
    fn timestamps_unwrap_past_two_to_the_32() {
        let t0 = Instant::now();
        let mut a = Assembler::new(Codec::Opus, 48_000).unwrap();
        a.push(t0, opus(u16::MAX, u32::MAX - 959));
        a.push(t0, opus(0, 1));
        a.push(t0, opus(1, 961));
        let pts: Vec<u64> = drain(&mut a).iter().map(|f| f.pts_ns / 1_000_000).collect();
        assert_eq!(pts, [0, 20, 40]);
    }

    #[test]
    fn timestamps_never_go_backwards() {
        let t0 = Instant::now();
        let mut a = Assembler::new(Codec::Opus, 48_000).unwrap();
        a.push(t0, opus(1, 96_000));
        a.push(t0, opus(2, 96_960));
        // The publisher restarted its clock.
        a.push(t0, opus(3, 10));
        a.push(t0, opus(4, 970));
        let pts: Vec<u64> = drain(&mut a).iter().map(|f| f.pts_ns / 1_000_000).collect();
        assert_eq!(pts, [0, 20, 21, 41]);
    }

    #[test]
    fn a_clock_jumping_forward_counts_only_the_time_that_passed() {
        let t0 = Instant::now();
        let mut a = Assembler::new(Codec::Opus, 48_000).unwrap();
        a.push(t0, opus(1, 0));
        // 20 ms later the clock says hours have passed.
        a.push(t0 + MS * 20, opus(2, 1 << 30));
        a.push(t0 + MS * 40, opus(3, (1 << 30) + 960));
        let pts: Vec<u64> = drain(&mut a).iter().map(|f| f.pts_ns / 1_000_000).collect();
        assert_eq!(pts, [0, 20, 40]);
        assert!(a.duration_ns() < 100_000_000);
    }

    #[test]
    fn video_frames_are_joined_and_start_at_a_keyframe() {
        let t0 = Instant::now();
        let mut a = Assembler::new(Codec::Vp8, 90_000).unwrap();
        // A delta frame first: dropped, a keyframe is wanted.
        a.push(t0, vp8(1, 0, true, false, true));
        assert!(a.pop().is_none());
        assert!(a.wants_keyframe());
        // A keyframe in three packets, then a delta frame in one.
        a.push(t0, vp8(2, 3000, true, true, false));
        a.push(t0, vp8(3, 3000, false, false, false));
        a.push(t0, vp8(4, 3000, false, false, true));
        a.push(t0, vp8(5, 6000, true, false, true));
        let frames = drain(&mut a);
        assert_eq!(frames.len(), 2);
        assert!(frames[0].keyframe && !frames[1].keyframe);
        // Each packet's 1-byte descriptor is removed; the frame headers remain.
        assert_eq!(frames[0].data.len(), 12);
        assert_eq!((frames[0].pts_ns, frames[1].pts_ns), (0, 33_333_333));
        assert_eq!(a.counts().dropped_frames, 1);
    }

    #[test]
    fn a_video_frame_missing_a_packet_is_dropped_until_the_next_keyframe() {
        let t0 = Instant::now();
        let mut a = Assembler::new(Codec::Vp8, 90_000).unwrap();
        a.push(t0, vp8(1, 0, true, true, true));
        // Frame at 3000 loses its middle packet.
        a.push(t0, vp8(2, 3000, true, false, false));
        a.push(t0, vp8(4, 3000, false, false, true));
        a.push(t0, vp8(5, 6000, true, false, true));
        a.poll(t0 + MAX_WAIT);
        assert_eq!(drain(&mut a).len(), 1, "only the first keyframe");
        assert!(a.wants_keyframe());
        a.push(t0 + MAX_WAIT, vp8(6, 9000, true, true, true));
        let frames = drain(&mut a);
        assert_eq!(frames.len(), 1);
        assert!(frames[0].keyframe);
        assert_eq!(frames[0].pts_ns, 100_000_000);
        assert_eq!(a.counts().lost, 1);
        assert_eq!(a.counts().dropped_frames, 2);
    }

    #[test]
    fn a_lost_first_packet_spoils_its_frame() {
        let t0 = Instant::now();
        let mut a = Assembler::new(Codec::Vp8, 90_000).unwrap();
        a.push(t0, vp8(1, 0, true, true, true));
        // Packet 2 (the start of frame 3000) is lost.
        a.push(t0, vp8(3, 3000, false, false, true));
        a.poll(t0 + MAX_WAIT);
        assert_eq!(drain(&mut a).len(), 1);
        assert_eq!(a.counts().dropped_frames, 1);
    }

    #[test]
    fn a_burst_beyond_the_window_gives_up_on_the_hole() {
        let t0 = Instant::now();
        let mut a = Assembler::new(Codec::Opus, 48_000).unwrap();
        a.push(t0, opus(0, 0));
        // Packet 1 never comes; a window's worth of later ones waits for it.
        let last = WINDOW as u16;
        for i in 2..=last {
            a.push(t0, opus(i, 960 * u32::from(i)));
        }
        assert_eq!(drain(&mut a).len(), 1);
        // One more cannot be held: packet 1 is given up on at once.
        a.push(t0, opus(last + 1, 960 * u32::from(last + 1)));
        assert_eq!(drain(&mut a).len(), WINDOW as usize);
        assert_eq!(a.counts().lost, 1);
        a.finish();
        assert!(a.pop().is_none());
    }

    #[test]
    fn a_huge_sequence_jump_costs_one_pass_over_the_window() {
        let t0 = Instant::now();
        let mut a = Assembler::new(Codec::Opus, 48_000).unwrap();
        a.push(t0, opus(0, 0));
        a.push(t0, opus(30_000, 960));
        a.push(t0, opus(30_001, 1920));
        // The last window's holes might still come; the rest are given up at once.
        assert_eq!(drain(&mut a).len(), 1);
        a.poll(t0 + MAX_WAIT);
        assert_eq!(drain(&mut a).len(), 2);
        assert_eq!(a.counts().lost, 29_999);
    }

    #[test]
    fn a_burst_of_losses_is_given_up_at_once() {
        let t0 = Instant::now();
        let mut a = Assembler::new(Codec::Opus, 48_000).unwrap();
        a.push(t0, opus(0, 0));
        a.push(t0, opus(5, 4800));
        a.poll(t0 + MAX_WAIT);
        assert_eq!(drain(&mut a).len(), 2, "four holes, one wait");
        assert_eq!(a.counts().lost, 4);
    }

    #[test]
    fn a_video_frame_cut_off_before_its_marker_is_dropped() {
        let t0 = Instant::now();
        let mut a = Assembler::new(Codec::Vp8, 90_000).unwrap();
        a.push(t0, vp8(1, 0, true, true, true));
        // Frame 3000 never gets its marker: the next frame starts instead.
        a.push(t0, vp8(2, 3000, true, false, false));
        a.push(t0, vp8(3, 6000, true, true, true));
        let frames = drain(&mut a);
        assert_eq!(
            frames.iter().map(|f| f.pts_ns).collect::<Vec<_>>(),
            [0, 66_666_666]
        );
    }

    #[test]
    fn garbage_payloads_drop_frames_without_panicking() {
        let t0 = Instant::now();
        let mut a = Assembler::new(Codec::Vp8, 90_000).unwrap();
        for seq in 0..200u16 {
            let payload: Vec<u8> = (0..(seq % 7))
                .map(|i| (seq as u8).wrapping_mul(31) ^ i as u8)
                .collect();
            a.push(
                t0,
                RtpIn {
                    seq: seq.wrapping_mul(7919),
                    timestamp: u32::from(seq).wrapping_mul(2_654_435_761),
                    marker: seq % 3 == 0,
                    payload: Bytes::from(payload),
                },
            );
            a.poll(t0 + MS * u32::from(seq) * 10);
        }
        a.finish();
        let frames = drain(&mut a);
        assert!(frames.windows(2).all(|w| w[0].pts_ns < w[1].pts_ns));
    }

    fn h264(seq: u16, ts: u32, marker: bool, payload: &[u8]) -> RtpIn {
        RtpIn {
            seq,
            timestamp: ts,
            marker,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    /// STAP-A with an SPS and a PPS (contents do not matter here).
    const PARAMETER_SETS: &[u8] = &[0x78, 0, 4, 0x67, 0x42, 0x00, 0x1e, 0, 2, 0x68, 0xce];

    #[test]
    fn h264_frames_start_at_an_idr_with_its_parameter_sets() {
        let t0 = Instant::now();
        let mut a = Assembler::new(Codec::H264, 90_000).unwrap();
        // An IDR alone (its parameter sets were sent before the recording began): not a start.
        a.push(t0, h264(1, 0, true, &[0x65, 1, 2]));
        assert!(a.pop().is_none());
        assert!(a.wants_keyframe());
        // Parameter sets and an IDR in two fragments, then a P frame.
        a.push(t0, h264(2, 3000, false, PARAMETER_SETS));
        a.push(t0, h264(3, 3000, false, &[0x7c, 0x85, 1, 2]));
        a.push(t0, h264(4, 3000, true, &[0x7c, 0x45, 3]));
        a.push(t0, h264(5, 6000, true, &[0x41, 9]));
        let frames = drain(&mut a);
        assert_eq!(frames.len(), 2);
        assert!(frames[0].keyframe && !frames[1].keyframe);
        let units: Vec<&[u8]> = h264::nal_units(&frames[0].data).collect();
        assert_eq!(
            units,
            [&[0x67, 0x42, 0, 0x1e][..], &[0x68, 0xce], &[0x65, 1, 2, 3]]
        );
        assert_eq!(frames[1].pts_ns, 33_333_333);
    }

    #[test]
    fn an_h264_frame_missing_a_fragment_is_dropped() {
        let t0 = Instant::now();
        let mut a = Assembler::new(Codec::H264, 90_000).unwrap();
        a.push(t0, h264(1, 0, false, PARAMETER_SETS));
        a.push(t0, h264(2, 0, true, &[0x65, 1]));
        // The fragment's end never comes, though the marker does.
        a.push(t0, h264(3, 3000, false, &[0x7c, 0x81, 1]));
        a.push(t0, h264(4, 3000, true, &[0x06, 1]));
        a.push(t0, h264(5, 6000, true, &[0x41, 9]));
        assert_eq!(drain(&mut a).len(), 1, "only the IDR");
        assert_eq!(a.counts().dropped_frames, 2);
        assert!(a.wants_keyframe());
    }

    #[test]
    fn an_endless_frame_is_cut_off() {
        let t0 = Instant::now();
        let mut a = Assembler::new(Codec::H264, 90_000).unwrap();
        a.push(t0, h264(0, 0, false, PARAMETER_SETS));
        a.push(t0, h264(1, 0, false, &[0x7c, 0x85, 0]));
        let mut chunk = vec![0u8; 1200];
        chunk[..2].copy_from_slice(&[0x7c, 0x05]); // a middle fragment
        for seq in 2..8000u16 {
            a.push(t0, h264(seq, 0, false, &chunk));
        }
        a.push(t0, h264(8000, 0, true, &[0x7c, 0x45, 0]));
        assert!(a.pop().is_none());
        assert_eq!(a.counts().dropped_frames, 1);
    }

    #[test]
    fn codecs_without_a_recorder_are_refused() {
        assert!(Assembler::new(Codec::Av1, 90_000).is_none());
        assert!(Assembler::new(Codec::Other, 8_000).is_none());
    }
}
