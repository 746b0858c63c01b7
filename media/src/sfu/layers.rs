//! The simulcast layers of one published track: which SSRC is which layer,
//! which layers still arrive, and what each one's bitrate is.

use std::time::{Duration, Instant};

/// Simulcast layers a track can have.
pub const MAX_LAYERS: usize = 3;
/// A layer counts as sent if a packet arrived within this window.
const LAYER_ALIVE: Duration = Duration::from_millis(1500);
/// How long layer bitrates are measured over.
const RATE_WINDOW: Duration = Duration::from_secs(1);

/// The simulcast layer a RID names: `q`/`h`/`f` (or `l`/`m`/`h` for some clients), else by order of arrival.
fn layer_of_rid(rid: &str, known: usize) -> u8 {
    match rid {
        "q" | "l" | "0" => 0,
        "h" | "m" | "1" => 1,
        "f" | "2" => 2,
        _ => known.min(MAX_LAYERS - 1) as u8,
    }
}

/// A track's layers as received so far.
#[derive(Debug, Default, Clone)]
pub struct Layers {
    ssrcs: [Option<u32>; MAX_LAYERS],
    last_seen: [Option<Instant>; MAX_LAYERS],
    /// Bytes per layer since `window_start`.
    bytes: [u64; MAX_LAYERS],
    window_start: Option<Instant>,
    /// Bits per second per layer over the last full window.
    rates: [u64; MAX_LAYERS],
}

impl Layers {
    /// Records the SSRC of a layer, named by its RID if it has one.
    pub fn add(&mut self, ssrc: u32, rid: Option<&str>) {
        if self.ssrcs.contains(&Some(ssrc)) {
            return;
        }
        let known = self.ssrcs.iter().flatten().count();
        let layer = rid.map_or(0, |r| layer_of_rid(r, known)) as usize;
        self.ssrcs[layer] = Some(ssrc);
    }

    /// The layer of `ssrc`, 0 if it is not one of this track's.
    pub fn layer_of(&self, ssrc: u32) -> u8 {
        self.known_layer_of(ssrc).unwrap_or(0)
    }

    /// The layer of `ssrc`, if it is one of this track's.
    pub fn known_layer_of(&self, ssrc: u32) -> Option<u8> {
        self.ssrcs
            .iter()
            .position(|s| *s == Some(ssrc))
            .map(|l| l as u8)
    }

    /// The SSRC to ask for a keyframe of `layer`: its own, else any layer's.
    pub fn ssrc_for(&self, layer: u8) -> Option<u32> {
        self.ssrcs[usize::from(layer).min(MAX_LAYERS - 1)].or(self
            .ssrcs
            .iter()
            .flatten()
            .next()
            .copied())
    }

    /// Counts a packet of `bytes` on `layer` received at `now`; every
    /// [`RATE_WINDOW`] the counts become rates.
    pub fn count(&mut self, now: Instant, layer: u8, bytes: usize) {
        let l = usize::from(layer).min(MAX_LAYERS - 1);
        self.last_seen[l] = Some(now);
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= RATE_WINDOW {
            let secs = elapsed.as_secs_f64();
            for i in 0..MAX_LAYERS {
                self.rates[i] = (self.bytes[i] as f64 * 8.0 / secs) as u64;
                self.bytes[i] = 0;
            }
            self.window_start = Some(now);
        }
        self.bytes[l] += bytes as u64;
    }

    /// Each layer's bitrate over the last full window, bit/s.
    pub fn rates(&self) -> &[u64; MAX_LAYERS] {
        &self.rates
    }

    /// The highest layer that still arrives at `now` (0 if none does).
    pub fn best_alive(&self, now: Instant) -> u8 {
        (0..MAX_LAYERS)
            .rev()
            .find(|&l| {
                self.last_seen[l].is_some_and(|t| now.saturating_duration_since(t) < LAYER_ALIVE)
            })
            .unwrap_or(0) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rids_map_to_layers() {
        assert_eq!(layer_of_rid("q", 0), 0);
        assert_eq!(layer_of_rid("h", 1), 1);
        assert_eq!(layer_of_rid("f", 2), 2);
        assert_eq!(layer_of_rid("x", 1), 1);
        assert_eq!(layer_of_rid("y", 9), 2);
    }

    #[test]
    fn best_layer_is_the_highest_still_arriving() {
        let now = Instant::now();
        let mut l = Layers::default();
        assert_eq!(l.best_alive(now), 0);
        l.count(now, 0, 1);
        l.count(now - Duration::from_secs(5), 2, 1);
        l.count(now, 1, 1);
        assert_eq!(l.best_alive(now), 1);
        l.count(now, 2, 1);
        assert_eq!(l.best_alive(now), 2);
    }

    #[test]
    fn layer_bitrates_are_measured_per_window() {
        let t0 = Instant::now();
        let mut l = Layers::default();
        for i in 0..100u64 {
            // 100 packets of 1000 bytes on layer 1 and 100 of 250 on layer 0, over a second.
            let at = t0 + Duration::from_millis(i * 10);
            l.count(at, 1, 1000);
            l.count(at, 0, 250);
        }
        assert_eq!(l.rates, [0, 0, 0], "no full window yet");
        l.count(t0 + RATE_WINDOW, 2, 10);
        assert_eq!(l.rates, [200_000, 800_000, 0]);
    }

    #[test]
    fn keyframes_are_asked_of_the_layer_or_any_known_one() {
        let mut l = Layers::default();
        assert_eq!(l.ssrc_for(1), None);
        l.add(111, Some("q"));
        l.add(333, Some("f"));
        assert_eq!(l.ssrc_for(2), Some(333));
        assert_eq!(l.ssrc_for(1), Some(111));
        assert_eq!(l.layer_of(333), 2);
        assert_eq!(l.known_layer_of(999), None);
    }
}
