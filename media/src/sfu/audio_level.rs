//! How loud a published audio track is, from the RFC 6464 audio level
//! header extension (`urn:ietf:params:rtp-hdrext:ssrc-audio-level`) that
//! browsers put on every Opus packet: no decoding needed.

use std::time::{Duration, Instant};

/// The header extension URI carrying the level.
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
/// Weight of each new packet in the moving average (20 ms packets: ~200 ms memory).
const SMOOTHING: f32 = 0.1;
/// A track that sent no level for this long is silent.
const STALE_AFTER: Duration = Duration::from_millis(1000);

/// The linear level (0.0 silence to 1.0 full scale) of an RFC 6464 byte:
/// the low 7 bits are the level in -dBov, 127 meaning silence.
pub fn linear_level(byte: u8) -> f32 {
    let dbov = f32::from(byte & 0x7f);
    if dbov >= 127.0 {
        0.0
    } else {
        10f32.powf(-dbov / 20.0)
    }
}

/// A track's smoothed audio level.
#[derive(Debug, Default, Clone, Copy)]
pub struct AudioLevel {
    state: Option<(f32, Instant)>,
}

impl AudioLevel {
    /// Records the level byte of a packet received at `now`.
    pub fn observe(&mut self, now: Instant, byte: u8) {
        let level = linear_level(byte);
        let smoothed = match self.state {
            Some((prev, at)) if now.duration_since(at) < STALE_AFTER => {
                prev + (level - prev) * SMOOTHING
            }
            _ => level * SMOOTHING,
        };
        self.state = Some((smoothed, now));
    }

    /// The smoothed level at `now`; 0.0 once packets stopped.
    pub fn level(&self, now: Instant) -> f32 {
        match self.state {
            Some((level, at)) if now.duration_since(at) < STALE_AFTER => level,
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6464_bytes_map_to_linear_levels() {
        assert_eq!(linear_level(0), 1.0);
        assert_eq!(linear_level(127), 0.0);
        assert!((linear_level(20) - 0.1).abs() < 1e-6);
        // The voice-activity bit does not change the level.
        assert_eq!(linear_level(0x80 | 20), linear_level(20));
    }

    #[test]
    fn levels_rise_with_speech_and_fall_to_zero_when_packets_stop() {
        let mut a = AudioLevel::default();
        let t0 = Instant::now();
        assert_eq!(a.level(t0), 0.0);
        for i in 0..50 {
            a.observe(t0 + Duration::from_millis(20 * i), 6); // about -6 dBov
        }
        let loud = a.level(t0 + Duration::from_millis(1000));
        assert!(loud > 0.45 && loud <= 0.51, "{loud}");
        for i in 50..100 {
            a.observe(t0 + Duration::from_millis(20 * i), 127);
        }
        let quiet = a.level(t0 + Duration::from_millis(2000));
        assert!(quiet < 0.01, "{quiet}");
        assert_eq!(a.level(t0 + Duration::from_secs(10)), 0.0);
    }
}
