//! Which simulcast layer a subscriber's video gets from its bandwidth estimate.
//!
//! The room gives each of a subscriber's video down-tracks an equal share of
//! the subscriber's send-side bandwidth estimate (Google Congestion Control
//! over its transport-wide feedback); each down-track then forwards the
//! highest layer, up to the best one arriving and the subscriber's own cap,
//! whose measured bitrate fits its share. Going up needs a margin, so a
//! share that hovers at a layer's rate does not flip between layers.

use super::layers::MAX_LAYERS;

/// How much room a higher layer needs before it is taken: its bitrate times this.
pub const UPGRADE_MARGIN: f64 = 1.15;
/// Share of the estimate given to media; the rest is headroom for RTCP,
/// retransmissions and the estimate's own error.
pub const USABLE_SHARE: f64 = 0.9;
/// What each audio track is assumed to need before video is shared out.
pub const AUDIO_RESERVE_BPS: u64 = 64_000;

/// Each video track's share of `estimate_bps`, after the audio reserve; 0 (no
/// limit) while there is no estimate.
pub fn video_share(estimate_bps: u64, audio_tracks: usize, video_tracks: usize) -> u64 {
    if estimate_bps == 0 || video_tracks == 0 {
        return 0;
    }
    let usable = (estimate_bps as f64 * USABLE_SHARE) as u64;
    let for_video = usable.saturating_sub(AUDIO_RESERVE_BPS * audio_tracks as u64);
    // Never 0: that would read as "no limit".
    (for_video / video_tracks as u64).max(1)
}

/// The layer to forward: at most `best` (the highest arriving) and `cap` (the
/// subscriber's request), then the highest whose bitrate in `rates` fits
/// `share` (0: no limit), keeping `current` unless a higher one fits with
/// [`UPGRADE_MARGIN`]. Layer 0 is always allowed. A layer not measured yet
/// (rate 0) counts as fitting.
pub fn fit_layer(best: u8, cap: u8, current: u8, share: u64, rates: &[u64; MAX_LAYERS]) -> u8 {
    let top = best.min(cap).min(MAX_LAYERS as u8 - 1);
    if share == 0 {
        return top;
    }
    let fits = |layer: u8, margin: f64| {
        let rate = rates[usize::from(layer)];
        rate == 0 || rate as f64 * margin <= share as f64
    };
    let mut layer = top;
    while layer > 0 {
        let margin = if layer > current { UPGRADE_MARGIN } else { 1.0 };
        if fits(layer, margin) {
            break;
        }
        layer -= 1;
    }
    layer
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATES: [u64; 3] = [150_000, 500_000, 1_700_000];

    #[test]
    fn the_highest_layer_that_fits_the_share_is_forwarded() {
        assert_eq!(fit_layer(2, 2, 2, 3_000_000, &RATES), 2);
        assert_eq!(fit_layer(2, 2, 2, 1_000_000, &RATES), 1);
        assert_eq!(fit_layer(2, 2, 1, 400_000, &RATES), 0);
        // Layer 0 even when nothing fits: a frozen picture is worse than a small one.
        assert_eq!(fit_layer(2, 2, 0, 50_000, &RATES), 0);
    }

    #[test]
    fn the_arriving_layers_and_the_subscribers_cap_come_first() {
        assert_eq!(
            fit_layer(1, 2, 1, 10_000_000, &RATES),
            1,
            "layer 2 is not arriving"
        );
        assert_eq!(
            fit_layer(2, 0, 0, 10_000_000, &RATES),
            0,
            "the subscriber asked for 0"
        );
        assert_eq!(fit_layer(2, 2, 2, 0, &RATES), 2, "no estimate, no limit");
        assert_eq!(fit_layer(9, 9, 0, 0, &RATES), 2);
    }

    #[test]
    fn going_up_needs_a_margin_and_going_down_does_not() {
        // 1.8 Mbps fits layer 2 (1.7) but not with the 15% margin: stay on 1.
        assert_eq!(fit_layer(2, 2, 1, 1_800_000, &RATES), 1);
        // Already on 2, the same share keeps it.
        assert_eq!(fit_layer(2, 2, 2, 1_800_000, &RATES), 2);
        assert_eq!(fit_layer(2, 2, 1, 1_960_000, &RATES), 2);
        // Unmeasured layers count as fitting.
        assert_eq!(fit_layer(2, 2, 0, 200_000, &[150_000, 0, 0]), 2);
    }

    #[test]
    fn shares_split_what_is_left_after_audio() {
        assert_eq!(video_share(0, 1, 2), 0);
        assert_eq!(video_share(2_000_000, 0, 0), 0);
        assert_eq!(video_share(2_000_000, 1, 2), (1_800_000 - 64_000) / 2);
        assert_eq!(video_share(50_000, 2, 1), 1, "starved, but still a limit");
    }
}
