//! Active speaker detection: from each participant's audio level, who is
//! speaking, loudest first, and when that changed enough to tell the room.

use std::time::{Duration, Instant};

use switchboard_core::signal::SpeakerLevel;
use switchboard_core::ParticipantSid;

/// Linear level above which a participant counts as speaking (about -40 dBov).
pub const SPEAKING_LEVEL: f32 = 0.01;
/// While someone speaks, levels are re-sent at most this often even if the order holds.
const REFRESH: Duration = Duration::from_secs(1);

/// Decides when the room hears `active_speakers`.
#[derive(Debug, Default)]
pub struct SpeakerDetector {
    last: Vec<ParticipantSid>,
    last_sent: Option<Instant>,
}

impl SpeakerDetector {
    /// Given every participant's level at `now`, returns the speakers to announce:
    /// when who speaks (or their order) changed, or every second while anyone speaks.
    pub fn update(
        &mut self,
        now: Instant,
        levels: &[(ParticipantSid, f32)],
    ) -> Option<Vec<SpeakerLevel>> {
        let mut speakers: Vec<SpeakerLevel> = levels
            .iter()
            .filter(|(_, level)| *level >= SPEAKING_LEVEL)
            .map(|(sid, level)| SpeakerLevel {
                sid: *sid,
                level: level.min(1.0),
            })
            .collect();
        speakers.sort_by(|a, b| b.level.total_cmp(&a.level));
        let changed = speakers.len() != self.last.len()
            || speakers.iter().zip(&self.last).any(|(s, l)| s.sid != *l);
        let refresh = !speakers.is_empty()
            && self
                .last_sent
                .is_none_or(|t| now.duration_since(t) >= REFRESH);
        if !changed && !refresh {
            return None;
        }
        self.last = speakers.iter().map(|s| s.sid).collect();
        self.last_sent = Some(now);
        Some(speakers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announces_changes_loudest_first_and_silence_once() {
        let (a, b) = (ParticipantSid::new(), ParticipantSid::new());
        let mut d = SpeakerDetector::default();
        let t = Instant::now();
        assert_eq!(d.update(t, &[(a, 0.0), (b, 0.001)]), None);
        let s = d.update(t, &[(a, 0.2), (b, 0.5)]).unwrap();
        assert_eq!(s.iter().map(|s| s.sid).collect::<Vec<_>>(), vec![b, a]);
        // Same order shortly after: nothing new to say.
        assert_eq!(
            d.update(t + Duration::from_millis(250), &[(a, 0.3), (b, 0.4)]),
            None
        );
        // Still speaking a second later: levels refreshed.
        assert!(d.update(t + REFRESH, &[(a, 0.3), (b, 0.4)]).is_some());
        // Order flips.
        let s = d.update(t + REFRESH, &[(a, 0.6), (b, 0.4)]).unwrap();
        assert_eq!(s[0].sid, a);
        // Everyone stops: one empty announcement, then quiet.
        assert_eq!(d.update(t + REFRESH, &[(a, 0.0), (b, 0.0)]), Some(vec![]));
        assert_eq!(d.update(t + REFRESH * 5, &[(a, 0.0), (b, 0.0)]), None);
    }
}
