//! Per-participant publish limits: one publisher flooding RTP cannot take
//! more of the node than its share. Packets over the limit are dropped before
//! they are routed, so no subscriber and no other room pays for them.
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use switchboard_core::rate::TokenBucket;

/// How much one participant may publish, over all its tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishLimits {
    /// Bits per second of RTP payload.
    pub bitrate_bps: u64,
    /// RTP packets per second.
    pub packets_per_s: u64,
    /// Tracks published at once.
    pub tracks: usize,
}

impl Default for PublishLimits {
    /// 20 Mbps, 10,000 packets/s and 16 tracks: several times a 1080p simulcast camera plus a screen share.
    fn default() -> Self {
        Self {
            bitrate_bps: 20_000_000,
            packets_per_s: 10_000,
            tracks: 16,
        }
    }
}

/// Two token buckets (bytes and packets) holding one second's worth, refilled continuously.
#[derive(Debug)]
pub struct RateLimiter {
    bytes: TokenBucket,
    packets: TokenBucket,
}

impl RateLimiter {
    /// A full limiter.
    pub fn new(limits: PublishLimits) -> Self {
        let byte_rate = limits.bitrate_bps as f64 / 8.0;
        let packet_rate = limits.packets_per_s as f64;
        Self {
            bytes: TokenBucket::new(byte_rate, byte_rate),
            packets: TokenBucket::new(packet_rate, packet_rate),
        }
    }

    /// Whether a packet of `bytes` arriving at `now` is within the limits (and takes its share).
    pub fn allow(&mut self, now: Instant, bytes: usize) -> bool {
        self.bytes.refill(now);
        self.packets.refill(now);
        let bytes = bytes as f64;
        if !self.bytes.has(bytes) || !self.packets.has(1.0) {
            return false;
        }
        self.bytes.take(bytes);
        self.packets.take(1.0);
        true
    }
}

/// How often a flooding publisher is logged.
const WARN_EVERY: Duration = Duration::from_secs(5);

/// A participant's limiter, shared by its tracks' receivers.
#[derive(Debug)]
pub struct PublishBudget {
    state: Mutex<(RateLimiter, u64, Option<Instant>)>,
    tracks: usize,
    tracks_in_use: std::sync::atomic::AtomicUsize,
}

/// One of a participant's track slots, given back when dropped.
#[derive(Debug)]
pub struct TrackSlot(std::sync::Arc<PublishBudget>);

impl Drop for TrackSlot {
    fn drop(&mut self) {
        self.0
            .tracks_in_use
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl PublishBudget {
    /// A budget with `limits`.
    pub fn new(limits: PublishLimits) -> Self {
        Self {
            state: Mutex::new((RateLimiter::new(limits), 0, None)),
            tracks: limits.tracks,
            tracks_in_use: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Tracks the participant may publish at once.
    pub fn max_tracks(&self) -> usize {
        self.tracks
    }

    /// A slot for one more published track, if the limit leaves one.
    pub fn claim_track(self: &std::sync::Arc<Self>) -> Option<TrackSlot> {
        use std::sync::atomic::Ordering;
        self.tracks_in_use
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.tracks).then_some(n + 1)
            })
            .ok()
            .map(|_| TrackSlot(self.clone()))
    }

    /// Whether to route a packet of `bytes` received at `now`; logs sustained floods.
    pub fn allow(&self, now: Instant, bytes: usize) -> bool {
        let mut state = self.state.lock();
        let (limiter, dropped, last_warn) = &mut *state;
        if limiter.allow(now, bytes) {
            return true;
        }
        *dropped += 1;
        if last_warn.is_none_or(|t| now.saturating_duration_since(t) >= WARN_EVERY) {
            *last_warn = Some(now);
            tracing::warn!(
                dropped = *dropped,
                "publisher over its rate limit; dropping packets"
            );
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: PublishLimits = PublishLimits {
        bitrate_bps: 800_000, // 100,000 bytes/s
        packets_per_s: 1_000,
        tracks: 16,
    };

    /// Sends `per_second` packets of `size` bytes for `seconds`; returns how many passed.
    fn run(
        limiter: &mut RateLimiter,
        start: Instant,
        per_second: u32,
        size: usize,
        seconds: u32,
    ) -> u32 {
        let gap = Duration::from_secs(1) / per_second;
        (0..per_second * seconds)
            .filter(|i| limiter.allow(start + gap * *i, size))
            .count() as u32
    }

    #[test]
    fn traffic_under_the_limit_all_passes() {
        let mut l = RateLimiter::new(LIMITS);
        assert_eq!(run(&mut l, Instant::now(), 50, 1000, 10), 500);
    }

    #[test]
    fn a_byte_flood_is_cut_to_the_bitrate() {
        let mut l = RateLimiter::new(LIMITS);
        // 500 packets/s of 1000 bytes = 4 Mbps for 10 s: one second's burst, then 100 packets/s.
        let passed = run(&mut l, Instant::now(), 500, 1000, 10);
        assert!((1090..=1110).contains(&passed), "{passed}");
    }

    #[test]
    fn a_packet_flood_is_cut_to_the_packet_rate() {
        let mut l = RateLimiter::new(LIMITS);
        let passed = run(&mut l, Instant::now(), 10_000, 10, 5);
        assert!((5_900..=6_010).contains(&passed), "{passed}");
    }

    #[test]
    fn the_budget_refills_after_a_pause() {
        let mut l = RateLimiter::new(LIMITS);
        let t = Instant::now();
        assert!(l.allow(t, 100_000));
        assert!(!l.allow(t, 1));
        assert!(l.allow(t + Duration::from_millis(500), 50_000));
        // Time going backwards (clock jitter between threads) grants nothing.
        assert!(!l.allow(t, 1_000));
    }
}
