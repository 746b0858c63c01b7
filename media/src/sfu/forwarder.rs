//! Per-subscriber rewriting of one published track.
//!
//! A publisher may send a track as several simulcast layers, each its own RTP
//! stream with its own sequence numbers and timestamps. A subscriber must see
//! one continuous stream. The [`Forwarder`] decides, packet by packet, whether
//! to forward and with which sequence number and timestamp, switching layers
//! only at a keyframe so the subscriber's decoder never sees a broken picture.
//!
//! It is a plain state machine: no I/O, no allocation, time passed in.

use std::time::{Duration, Instant};

/// How often to ask the publisher for a keyframe while waiting for one.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// How long a layer must have been silent before a jump in its sequence
/// numbers counts as a broken path (an ICE restart, a network change) rather
/// than loss that retransmissions repair.
pub const RESYNC_AFTER: Duration = Duration::from_secs(1);

/// The parts of an incoming packet the forwarder decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming {
    /// Simulcast layer (0 lowest); 0 for a track without simulcast.
    pub layer: u8,
    /// RTP sequence number as the publisher sent it.
    pub sequence_number: u16,
    /// RTP timestamp as the publisher sent it.
    pub timestamp: u32,
    /// Whether the packet starts a keyframe (always true for audio).
    pub keyframe: bool,
}

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Do not send it to this subscriber.
    Drop,
    /// Send it with these header values.
    Forward {
        /// Rewritten sequence number.
        sequence_number: u16,
        /// Rewritten timestamp.
        timestamp: u32,
    },
}

/// Rewrites one track for one subscriber.
#[derive(Debug, Clone)]
pub struct Forwarder {
    clock_rate: u32,
    target: u8,
    current: Option<u8>,
    paused: bool,
    seq_offset: u16,
    ts_offset: u32,
    last_out_seq: u16,
    last_out_ts: u32,
    last_out_at: Option<Instant>,
    last_keyframe_request: Option<Instant>,
}

/// True if `a` comes after `b` in RTP sequence space.
fn seq_newer(a: u16, b: u16) -> bool {
    a != b && a.wrapping_sub(b) < 0x8000
}

impl Forwarder {
    /// A forwarder for a track whose RTP clock runs at `clock_rate` Hz, starting on `target` layer.
    pub fn new(clock_rate: u32, target: u8) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            target,
            current: None,
            paused: false,
            seq_offset: 0,
            ts_offset: 0,
            last_out_seq: 0,
            last_out_ts: 0,
            last_out_at: None,
            last_keyframe_request: None,
        }
    }

    /// The layer being forwarded now, if any.
    pub fn current_layer(&self) -> Option<u8> {
        self.current
    }

    /// The layer the forwarder will switch to at its next keyframe.
    pub fn target_layer(&self) -> u8 {
        self.target
    }

    /// Chooses the layer to forward; takes effect at that layer's next keyframe.
    pub fn set_target_layer(&mut self, layer: u8) {
        self.target = layer;
    }

    /// Stops forwarding (unsubscribed or muted by the subscriber) or resumes at the next keyframe.
    pub fn set_paused(&mut self, paused: bool) {
        if paused && !self.paused {
            self.current = None;
        }
        self.paused = paused;
    }

    /// Whether to send the publisher a keyframe request (PLI) now: the forwarder is
    /// waiting for a keyframe to start or switch, and has not asked recently.
    pub fn wants_keyframe(&mut self, now: Instant) -> bool {
        let waiting = !self.paused && self.current != Some(self.target);
        let due = self
            .last_keyframe_request
            .is_none_or(|t| now.duration_since(t) >= KEYFRAME_REQUEST_INTERVAL);
        if waiting && due {
            self.last_keyframe_request = Some(now);
            true
        } else {
            false
        }
    }

    /// The publisher's sender report for `layer` (its wall-clock `ntp_time` at
    /// its `rtp_time`) as this subscriber must get it: the same wall-clock time
    /// at the rewritten RTP timestamp. `None` unless `layer` is being forwarded,
    /// since another layer's clock says nothing about what the subscriber plays.
    pub fn sender_report_time(
        &self,
        layer: u8,
        ntp_time: u64,
        rtp_time: u32,
    ) -> Option<(u64, u32)> {
        (self.current == Some(layer) && !self.paused)
            .then(|| (ntp_time, rtp_time.wrapping_add(self.ts_offset)))
    }

    /// Decides what to do with one packet.
    pub fn on_packet(&mut self, now: Instant, p: Incoming) -> Verdict {
        if self.paused {
            return Verdict::Drop;
        }
        if self.current == Some(p.layer) && self.broken_before(now, p) {
            // What was lost on the way in cannot be repaired: start again at
            // a keyframe, numbered on from the last packet sent, so the
            // subscriber sees no hole it would wait on.
            self.current = None;
        }
        if p.layer == self.target && self.current != Some(self.target) && p.keyframe {
            self.switch_to(now, p);
        }
        if self.current != Some(p.layer) {
            return Verdict::Drop;
        }
        let sequence_number = p.sequence_number.wrapping_add(self.seq_offset);
        let timestamp = p.timestamp.wrapping_add(self.ts_offset);
        // The first packet sent sets the reference; after that only newer ones move it.
        if self.last_out_at.is_none() || seq_newer(sequence_number, self.last_out_seq) {
            self.last_out_seq = sequence_number;
            self.last_out_ts = timestamp;
            self.last_out_at = Some(now);
        }
        Verdict::Forward {
            sequence_number,
            timestamp,
        }
    }

    /// Whether `p`, of the layer being forwarded, comes after a silence of
    /// [`RESYNC_AFTER`] with packets missing in between.
    fn broken_before(&self, now: Instant, p: Incoming) -> bool {
        let Some(at) = self.last_out_at else {
            return false;
        };
        let expected = self.last_out_seq.wrapping_add(1);
        let seq = p.sequence_number.wrapping_add(self.seq_offset);
        seq_newer(seq, expected) && now.saturating_duration_since(at) >= RESYNC_AFTER
    }

    /// Starts forwarding `p.layer` so that it continues the stream sent so far.
    fn switch_to(&mut self, now: Instant, p: Incoming) {
        match self.last_out_at {
            None => {
                self.seq_offset = 0;
                self.ts_offset = 0;
            }
            Some(at) => {
                let next_seq = self.last_out_seq.wrapping_add(1);
                // Advance the timestamp by the wall time since the last packet sent, at least one tick.
                let ticks = (now.saturating_duration_since(at).as_secs_f64()
                    * f64::from(self.clock_rate))
                .round() as u32;
                let next_ts = self.last_out_ts.wrapping_add(ticks.max(1));
                self.seq_offset = next_seq.wrapping_sub(p.sequence_number);
                self.ts_offset = next_ts.wrapping_sub(p.timestamp);
                // Pretend the last sent packet was just before this one, so this one counts as newer.
                self.last_out_seq = next_seq.wrapping_sub(1);
            }
        }
        self.current = Some(p.layer);
        self.last_keyframe_request = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(layer: u8, seq: u16, ts: u32, keyframe: bool) -> Incoming {
        Incoming {
            layer,
            sequence_number: seq,
            timestamp: ts,
            keyframe,
        }
    }

    fn out(v: Verdict) -> (u16, u32) {
        match v {
            Verdict::Forward {
                sequence_number,
                timestamp,
            } => (sequence_number, timestamp),
            Verdict::Drop => panic!("dropped"),
        }
    }

    #[test]
    fn waits_for_a_keyframe_then_passes_through() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(90_000, 0);
        assert!(f.wants_keyframe(t0));
        assert!(
            !f.wants_keyframe(t0 + Duration::from_millis(100)),
            "rate limited"
        );
        assert_eq!(f.on_packet(t0, pkt(0, 10, 1000, false)), Verdict::Drop);
        assert!(f.wants_keyframe(t0 + KEYFRAME_REQUEST_INTERVAL));
        assert_eq!(out(f.on_packet(t0, pkt(0, 11, 4000, true))), (11, 4000));
        assert_eq!(out(f.on_packet(t0, pkt(0, 12, 4000, false))), (12, 4000));
        assert!(
            !f.wants_keyframe(t0 + Duration::from_secs(5)),
            "no longer waiting"
        );
    }

    #[test]
    fn a_path_broken_upstream_resumes_at_a_keyframe_without_a_hole() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(90_000, 0);
        assert_eq!(out(f.on_packet(t0, pkt(0, 100, 9000, true))), (100, 9000));
        assert_eq!(out(f.on_packet(t0, pkt(0, 101, 9000, false))), (101, 9000));
        // Loss without silence is left to retransmissions: the hole stays.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(
            out(f.on_packet(t1, pkt(0, 104, 18000, false))),
            (104, 18000)
        );
        // Five seconds of nothing, then packets from further on: no decoder
        // could use them, so the forwarder waits for a keyframe and asks for one.
        let t2 = t1 + Duration::from_secs(5);
        assert_eq!(f.on_packet(t2, pkt(0, 400, 468000, false)), Verdict::Drop);
        assert!(f.wants_keyframe(t2));
        let (seq, ts) = out(f.on_packet(t2, pkt(0, 401, 471000, true)));
        assert_eq!(seq, 105, "numbered on from the last packet sent");
        assert_eq!(ts, 18000 + 5 * 90_000, "the silence in the clock");
        assert_eq!(out(f.on_packet(t2, pkt(0, 402, 471000, false))).0, 106);
        // A silence with nothing missing (a muted camera) changes nothing.
        let t3 = t2 + Duration::from_secs(3);
        assert_eq!(out(f.on_packet(t3, pkt(0, 403, 741000, false))).0, 107);
    }

    #[test]
    fn switching_layers_keeps_one_continuous_stream() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(90_000, 0);
        f.on_packet(t0, pkt(0, 100, 5000, true));
        f.on_packet(t0, pkt(0, 101, 5000, false));
        f.set_target_layer(2);
        // Until layer 2 sends a keyframe, layer 0 keeps flowing and layer 2 is dropped.
        assert_eq!(f.on_packet(t0, pkt(2, 7000, 900_000, false)), Verdict::Drop);
        assert_eq!(out(f.on_packet(t0, pkt(0, 102, 8000, false))), (102, 8000));
        assert!(f.wants_keyframe(t0));
        // Keyframe on layer 2, 33 ms later: sequence continues, timestamp advances by ~2970 ticks.
        let t1 = t0 + Duration::from_millis(33);
        assert_eq!(
            out(f.on_packet(t1, pkt(2, 7001, 900_000, true))),
            (103, 8000 + 2970)
        );
        assert_eq!(f.current_layer(), Some(2));
        assert_eq!(f.on_packet(t1, pkt(0, 103, 11000, false)), Verdict::Drop);
        assert_eq!(
            out(f.on_packet(t1, pkt(2, 7002, 903_000, false))),
            (104, 11_000 + 2970)
        );
    }

    #[test]
    fn reordered_and_retransmitted_packets_keep_their_place() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(48_000, 0);
        f.on_packet(t0, pkt(0, 1, 0, true));
        assert_eq!(out(f.on_packet(t0, pkt(0, 3, 960, true))).0, 3);
        assert_eq!(
            out(f.on_packet(t0, pkt(0, 2, 480, true))).0,
            2,
            "late packet mapped, not renumbered"
        );
        f.set_target_layer(1);
        // The switch continues after the highest number sent (3), not the late one.
        assert_eq!(out(f.on_packet(t0, pkt(1, 50, 0, true))).0, 4);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(90_000, 0);
        f.on_packet(t0, pkt(0, 65_534, u32::MAX - 10, true));
        f.on_packet(t0, pkt(0, 65_535, u32::MAX - 10, false));
        assert_eq!(out(f.on_packet(t0, pkt(0, 0, 5, false))), (0, 5));
        f.set_target_layer(1);
        assert_eq!(out(f.on_packet(t0, pkt(1, 30_000, 77, true))).0, 1);
    }

    #[test]
    fn pausing_drops_and_resumes_at_a_keyframe() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(90_000, 0);
        f.on_packet(t0, pkt(0, 1, 0, true));
        f.set_paused(true);
        assert_eq!(f.on_packet(t0, pkt(0, 2, 0, true)), Verdict::Drop);
        assert!(!f.wants_keyframe(t0));
        f.set_paused(false);
        assert_eq!(f.on_packet(t0, pkt(0, 3, 0, false)), Verdict::Drop);
        assert_eq!(
            out(f.on_packet(t0 + Duration::from_millis(10), pkt(0, 4, 900, true))).0,
            2
        );
    }

    #[test]
    fn sender_reports_follow_the_forwarded_layers_timestamps() {
        let t0 = Instant::now();
        let mut f = Forwarder::new(90_000, 0);
        assert_eq!(
            f.sender_report_time(0, 7, 1000),
            None,
            "nothing forwarded yet"
        );
        out(f.on_packet(t0, pkt(0, 100, 50_000, true)));
        // Layer 2's timestamps run on their own random base; switching rewrites them.
        f.set_target_layer(2);
        let t1 = t0 + Duration::from_millis(40);
        out(f.on_packet(t1, pkt(0, 101, 53_600, false)));
        let (_, switched_ts) = out(f.on_packet(t1, pkt(2, 9_000, 3_000_000_000, true)));
        // A report of layer 2's clock maps to what this subscriber's stream says at
        // that instant: the same rewrite as a packet with the report's timestamp.
        let report_rtp = 3_000_000_000u32.wrapping_add(90_000);
        let (ntp, rtp) = f
            .sender_report_time(2, 0xdead_beef_0000_0001, report_rtp)
            .unwrap();
        assert_eq!(ntp, 0xdead_beef_0000_0001);
        assert_eq!(rtp, switched_ts.wrapping_add(90_000));
        let (_, ts) = out(f.on_packet(t1, pkt(2, 9_001, report_rtp, false)));
        assert_eq!(rtp, ts);
        // The layer no longer forwarded says nothing; neither does a paused forwarder.
        assert_eq!(f.sender_report_time(0, 1, 1), None);
        f.set_paused(true);
        assert_eq!(f.sender_report_time(2, 1, 1), None);
    }
}
