//! A published track as the SFU receives it, fanned out to its down-tracks.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp::Packet;
use switchboard_core::TrackSid;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::audio_level::AudioLevel;
use super::downtrack::DownTrack;
use super::keyframe::Codec;
use super::rate_limit::PublishBudget;

/// Simulcast layers a track can have.
pub const MAX_LAYERS: usize = 3;
/// A layer counts as sent if a packet arrived within this window.
const LAYER_ALIVE: Duration = Duration::from_millis(1500);
/// How often layer choices are re-evaluated.
const LAYER_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// The simulcast layer a RID names: `q`/`h`/`f` (or `l`/`m`/`h` for some clients), else by order of arrival.
fn layer_of_rid(rid: &str, known: usize) -> u8 {
    match rid {
        "q" | "l" | "0" => 0,
        "h" | "m" | "1" => 1,
        "f" | "2" => 2,
        _ => known.min(MAX_LAYERS - 1) as u8,
    }
}

#[derive(Default)]
struct Layers {
    ssrcs: [Option<u32>; MAX_LAYERS],
    last_seen: [Option<Instant>; MAX_LAYERS],
    last_check: Option<Instant>,
    /// Bytes per layer since `window_start`.
    bytes: [u64; MAX_LAYERS],
    window_start: Option<Instant>,
    /// Bits per second per layer over the last full window.
    rates: [u64; MAX_LAYERS],
}

/// How long layer bitrates are measured over.
const RATE_WINDOW: Duration = Duration::from_secs(1);

impl Layers {
    fn layer_of(&self, ssrc: u32) -> u8 {
        self.known_layer_of(ssrc).unwrap_or(0)
    }

    /// The layer of `ssrc`, if it is one of this track's.
    fn known_layer_of(&self, ssrc: u32) -> Option<u8> {
        self.ssrcs
            .iter()
            .position(|s| *s == Some(ssrc))
            .map(|l| l as u8)
    }

    /// Counts a packet of `bytes` on `layer`; every [`RATE_WINDOW`] the counts become rates.
    fn count(&mut self, now: Instant, layer: u8, bytes: usize) {
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.duration_since(start);
        if elapsed >= RATE_WINDOW {
            let secs = elapsed.as_secs_f64();
            for l in 0..MAX_LAYERS {
                self.rates[l] = (self.bytes[l] as f64 * 8.0 / secs) as u64;
                self.bytes[l] = 0;
            }
            self.window_start = Some(now);
        }
        self.bytes[usize::from(layer)] += bytes as u64;
    }

    fn best_alive(&self, now: Instant) -> u8 {
        (0..MAX_LAYERS)
            .rev()
            .find(|&l| self.last_seen[l].is_some_and(|t| now.duration_since(t) < LAYER_ALIVE))
            .unwrap_or(0) as u8
    }
}

/// Reads one remote track and hands each packet to every down-track.
pub struct TrackReceiver {
    /// The published track.
    pub track_sid: TrackSid,
    /// Its codec, for keyframe detection.
    pub codec: Codec,
    /// RTP clock rate.
    pub clock_rate: u32,
    remote: Arc<dyn TrackRemote>,
    layers: Mutex<Layers>,
    downtracks: RwLock<Vec<Arc<DownTrack>>>,
    muted: AtomicBool,
    /// The negotiated id of the RFC 6464 audio level extension, 0 if none.
    audio_level_id: AtomicU8,
    audio_level: AudioLevel,
    budget: Arc<PublishBudget>,
}

impl TrackReceiver {
    /// A receiver for `remote`.
    pub fn new(
        track_sid: TrackSid,
        remote: Arc<dyn TrackRemote>,
        codec: Codec,
        clock_rate: u32,
        budget: Arc<PublishBudget>,
    ) -> Arc<Self> {
        Arc::new(Self {
            track_sid,
            codec,
            clock_rate,
            remote,
            layers: Mutex::new(Layers::default()),
            downtracks: RwLock::new(Vec::new()),
            muted: AtomicBool::new(false),
            audio_level_id: AtomicU8::new(0),
            audio_level: AudioLevel::default(),
            budget,
        })
    }

    fn layers(&self) -> std::sync::MutexGuard<'_, Layers> {
        self.layers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the SSRC of a (simulcast) layer as the stack reports it.
    pub fn add_layer(&self, ssrc: u32, rid: Option<&str>) {
        let mut layers = self.layers();
        if layers.ssrcs.contains(&Some(ssrc)) {
            return;
        }
        let known = layers.ssrcs.iter().flatten().count();
        let layer = rid.map_or(0, |r| layer_of_rid(r, known)) as usize;
        layers.ssrcs[layer] = Some(ssrc);
    }

    /// The highest layer being received now.
    pub fn best_layer(&self, now: Instant) -> u8 {
        self.layers().best_alive(now)
    }

    /// Starts forwarding to `downtrack`.
    pub fn attach(&self, downtrack: Arc<DownTrack>) {
        let (best, rates) = {
            let layers = self.layers();
            (layers.best_alive(Instant::now()), layers.rates)
        };
        downtrack.choose_layer(best, &rates);
        self.downtracks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(downtrack);
    }

    /// Stops forwarding to the subscriber's down-track, returning it.
    pub fn detach(&self, subscriber: switchboard_core::ParticipantSid) -> Option<Arc<DownTrack>> {
        let mut list = self.downtracks.write().unwrap_or_else(|p| p.into_inner());
        let i = list.iter().position(|d| d.subscriber == subscriber)?;
        let dt = list.swap_remove(i);
        dt.close();
        Some(dt)
    }

    /// Every attached down-track (for teardown).
    pub fn detach_all(&self) -> Vec<Arc<DownTrack>> {
        let list = std::mem::take(&mut *self.downtracks.write().unwrap_or_else(|p| p.into_inner()));
        for dt in &list {
            dt.close();
        }
        list
    }

    /// Reads audio levels from the header extension negotiated as `id`.
    pub fn set_audio_level_extension(&self, id: u8) {
        self.audio_level_id.store(id, Ordering::Relaxed);
    }

    /// The publisher's smoothed audio level (0.0 to 1.0); 0.0 while muted or silent.
    pub fn audio_level(&self, now: Instant) -> f32 {
        if self.muted.load(Ordering::Relaxed) {
            return 0.0;
        }
        self.audio_level.level(now)
    }

    /// Stops or resumes forwarding altogether (muted by the publisher or an admin).
    pub fn set_muted(&self, muted: bool) {
        self.muted.store(muted, Ordering::Relaxed);
    }

    /// Reads the remote track until it ends, forwarding every packet within the publisher's budget.
    pub async fn run(self: Arc<Self>) {
        // Reused for every packet: no allocation per packet once it has grown.
        let mut batch: Vec<(Arc<DownTrack>, Packet)> = Vec::with_capacity(8);
        let mut keyframe_layers: Vec<u8> = Vec::with_capacity(MAX_LAYERS);
        while let Some(event) = self.remote.poll().await {
            match event {
                TrackRemoteEvent::OnOpen(init) => self.add_layer(init.ssrc, init.rid.as_deref()),
                TrackRemoteEvent::OnRtpPacket(packet) => {
                    let now = Instant::now();
                    if !self.budget.allow(now, packet.payload.len()) {
                        continue;
                    }
                    self.route(now, &packet, &mut batch, &mut keyframe_layers);
                    for (downtrack, out) in batch.drain(..) {
                        downtrack.send(out).await;
                    }
                    for layer in keyframe_layers.drain(..) {
                        self.request_keyframe(layer).await;
                    }
                }
                TrackRemoteEvent::OnRtcpPacket(packets) => {
                    for report in packets
                        .iter()
                        .filter_map(|p| p.as_any().downcast_ref::<SenderReport>())
                    {
                        self.relay_sender_report(report).await;
                    }
                }
                TrackRemoteEvent::OnEnded => break,
                _ => {}
            }
        }
        self.detach_all();
    }

    /// Decides, for one packet, what each down-track sends and which layers need a keyframe.
    fn route(
        &self,
        now: Instant,
        packet: &Packet,
        batch: &mut Vec<(Arc<DownTrack>, Packet)>,
        keyframe_layers: &mut Vec<u8>,
    ) {
        let (layer, best, rates, recheck) = {
            let mut layers = self.layers();
            let layer = layers.layer_of(packet.header.ssrc);
            layers.last_seen[usize::from(layer)] = Some(now);
            // The RTP header is 12 bytes; extensions and SRTP overhead are left out.
            layers.count(now, layer, packet.payload.len() + 12);
            let recheck = layers
                .last_check
                .is_none_or(|t| now.duration_since(t) >= LAYER_CHECK_INTERVAL);
            if recheck {
                layers.last_check = Some(now);
            }
            (layer, layers.best_alive(now), layers.rates, recheck)
        };
        if self.muted.load(Ordering::Relaxed) {
            return;
        }
        let level_id = self.audio_level_id.load(Ordering::Relaxed);
        if level_id != 0 {
            if let Some(&byte) = packet
                .header
                .get_extension(level_id)
                .as_deref()
                .and_then(<[u8]>::first)
            {
                self.audio_level.observe(now, byte);
            }
        }
        let keyframe = self.codec.is_keyframe(&packet.payload);
        let downtracks = self.downtracks.read().unwrap_or_else(|p| p.into_inner());
        for dt in downtracks.iter() {
            if recheck {
                dt.choose_layer(best, &rates);
                if let Some(l) = dt.keyframe_wanted(now) {
                    if !keyframe_layers.contains(&l) {
                        keyframe_layers.push(l);
                    }
                }
            }
            if let Some(out) = dt.prepare(now, layer, keyframe, packet) {
                batch.push((dt.clone(), out));
            }
        }
    }

    /// Hands a sender report of one of this track's layers to every down-track.
    async fn relay_sender_report(&self, report: &SenderReport) {
        let Some(layer) = self.layers().known_layer_of(report.ssrc) else {
            return;
        };
        let downtracks = self
            .downtracks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for dt in downtracks {
            dt.relay_sender_report(layer, report).await;
        }
    }

    /// Asks the publisher for a keyframe on `layer`.
    pub async fn request_keyframe(&self, layer: u8) {
        let ssrc = {
            let layers = self.layers();
            layers.ssrcs[usize::from(layer).min(MAX_LAYERS - 1)].or(layers
                .ssrcs
                .iter()
                .flatten()
                .next()
                .copied())
        };
        let Some(media_ssrc) = ssrc else { return };
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        if let Err(e) = self.remote.write_rtcp(vec![Box::new(pli)]).await {
            tracing::debug!(track = %self.track_sid, error = %e, "keyframe request failed");
        }
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
        l.last_seen[0] = Some(now);
        l.last_seen[2] = Some(now - Duration::from_secs(5));
        l.last_seen[1] = Some(now);
        assert_eq!(l.best_alive(now), 1);
        l.last_seen[2] = Some(now);
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
}
