//! One published track's fan-out: each packet the publisher sends, decided
//! and rewritten for every subscriber.
//!
//! This is the packet path with the I/O taken out. Fed a packet's header and
//! payload with the time it arrived, [`Fanout::on_rtp`] says which
//! subscribers get it under which header ([`Rewrite`]) and which simulcast
//! layers need a keyframe. It never waits on a subscriber, reads no clock and
//! allocates nothing per packet once its output buffers have grown, so a
//! worker can run it for every track it owns on one thread, and a test can
//! run it on a made-up clock.
//!
//! Each subscriber is a [`Subscriber`]: its [`Forwarder`] (which layer, which
//! numbering), the SSRC and payload type its connection negotiated, the layer
//! cap it asked for and its share of its bandwidth estimate. The sink `S` is
//! whatever the caller sends through; the fan-out only hands it back.

use std::time::{Duration, Instant};

use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp::header::Header;
use switchboard_core::ParticipantSid;

use super::allocation::fit_layer;
use super::audio_level::AudioLevel;
use super::forwarder::{Forwarder, Incoming, Verdict};
use super::keyframe::Codec;
use super::layers::Layers;

/// How often layer choices are re-evaluated.
const LAYER_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// The header a subscriber gets one packet under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewrite {
    /// Which subscriber: an index for [`Fanout::sink`], valid until the next attach or detach.
    pub slot: usize,
    /// The subscriber's SSRC for this track.
    pub ssrc: u32,
    /// The payload type the subscriber's connection negotiated.
    pub payload_type: u8,
    /// Rewritten sequence number.
    pub sequence_number: u16,
    /// Rewritten timestamp.
    pub timestamp: u32,
    /// The publisher's marker bit.
    pub marker: bool,
    /// The publisher's padding bit.
    pub padding: bool,
}

impl Rewrite {
    /// The RTP header to send. Header extensions are left out: their ids were
    /// negotiated with the publisher, not with this subscriber.
    pub fn header(&self) -> Header {
        Header {
            version: 2,
            padding: self.padding,
            marker: self.marker,
            payload_type: self.payload_type,
            sequence_number: self.sequence_number,
            timestamp: self.timestamp,
            ssrc: self.ssrc,
            ..Default::default()
        }
    }
}

/// What a subscriber was sent, for its sender reports and the logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Packets forwarded.
    pub forwarded: u64,
    /// Payload bytes forwarded.
    pub octets: u64,
    /// Packets not forwarded (another layer, paused, waiting for a keyframe).
    pub dropped: u64,
}

/// One subscriber's copy of the track.
#[derive(Debug)]
pub struct Subscriber<S> {
    /// Who receives it.
    pub id: ParticipantSid,
    /// Where its packets go.
    pub sink: S,
    forwarder: Forwarder,
    ssrc: u32,
    payload_type: u8,
    max_layer: u8,
    bandwidth_share: u64,
    keyframe_requested: bool,
    counts: Counts,
}

impl<S> Subscriber<S> {
    /// A subscriber receiving the track as `ssrc` with `payload_type`, on an RTP clock of `clock_rate` Hz.
    pub fn new(id: ParticipantSid, sink: S, ssrc: u32, payload_type: u8, clock_rate: u32) -> Self {
        Self {
            id,
            sink,
            forwarder: Forwarder::new(clock_rate, 0),
            ssrc,
            payload_type,
            max_layer: u8::MAX,
            bandwidth_share: 0,
            keyframe_requested: false,
            counts: Counts::default(),
        }
    }

    /// Uses the payload type the subscriber's connection negotiated.
    pub fn set_payload_type(&mut self, payload_type: u8) {
        self.payload_type = payload_type;
    }

    /// Caps the layer forwarded (the subscriber asked for less).
    pub fn set_max_layer(&mut self, layer: u8) {
        self.max_layer = layer;
    }

    /// Sets this track's share of the subscriber's bandwidth estimate (0: unknown, no limit).
    pub fn set_bandwidth_share(&mut self, bps: u64) {
        self.bandwidth_share = bps;
    }

    /// Pauses forwarding, or resumes it at the next keyframe.
    pub fn set_paused(&mut self, paused: bool) {
        self.forwarder.set_paused(paused);
    }

    /// Asks for a keyframe on the subscriber's behalf (it sent a PLI or FIR).
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    /// What it was sent so far.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// The layer being forwarded now, if any.
    pub fn current_layer(&self) -> Option<u8> {
        self.forwarder.current_layer()
    }

    fn choose_layer(&mut self, best: u8, rates: &[u64; super::layers::MAX_LAYERS]) {
        let layer = fit_layer(
            best,
            self.max_layer,
            self.forwarder.target_layer(),
            self.bandwidth_share,
            rates,
        );
        if self.forwarder.target_layer() != layer {
            self.forwarder.set_target_layer(layer);
        }
    }

    /// The layer to ask a keyframe of for this subscriber, if it needs one now.
    fn keyframe_wanted(&mut self, now: Instant) -> Option<u8> {
        let asked = std::mem::take(&mut self.keyframe_requested);
        if self.forwarder.wants_keyframe(now) {
            return Some(self.forwarder.target_layer());
        }
        asked.then(|| {
            self.forwarder
                .current_layer()
                .unwrap_or(self.forwarder.target_layer())
        })
    }
}

/// One published track and everyone subscribed to it.
#[derive(Debug)]
pub struct Fanout<S> {
    codec: Codec,
    layers: Layers,
    last_check: Option<Instant>,
    muted: bool,
    audio_level_id: u8,
    audio_level: AudioLevel,
    subscribers: Vec<Subscriber<S>>,
}

impl<S> Fanout<S> {
    /// A fan-out for a track of `codec` with no subscriber yet.
    pub fn new(codec: Codec) -> Self {
        Self {
            codec,
            layers: Layers::default(),
            last_check: None,
            muted: false,
            audio_level_id: 0,
            audio_level: AudioLevel::default(),
            subscribers: Vec::new(),
        }
    }

    /// Records the SSRC of a (simulcast) layer as the stack reports it.
    pub fn add_layer(&mut self, ssrc: u32, rid: Option<&str>) {
        self.layers.add(ssrc, rid);
    }

    /// Whether `ssrc` is a layer already recorded.
    pub fn has_layer(&self, ssrc: u32) -> bool {
        self.layers.known_layer_of(ssrc).is_some()
    }

    /// The highest layer arriving at `now`.
    pub fn best_layer(&self, now: Instant) -> u8 {
        self.layers.best_alive(now)
    }

    /// The SSRCs of every layer of a track whose codec has keyframes: what to
    /// ask a keyframe of when the publisher's path changed under its subscribers.
    pub fn keyframe_ssrcs(&self) -> impl Iterator<Item = u32> + '_ {
        let video = !matches!(self.codec, Codec::Opus);
        (0..super::layers::MAX_LAYERS as u8)
            .filter_map(move |layer| video.then(|| self.layers.ssrc_for(layer)).flatten())
    }

    /// The SSRC to send a keyframe request for `layer` to.
    pub fn keyframe_ssrc(&self, layer: u8) -> Option<u32> {
        self.layers.ssrc_for(layer)
    }

    /// Reads audio levels from the header extension negotiated as `id` (0: none).
    pub fn set_audio_level_extension(&mut self, id: u8) {
        self.audio_level_id = id;
    }

    /// The publisher's smoothed audio level (0.0 to 1.0); 0.0 while muted or silent.
    pub fn audio_level(&self, now: Instant) -> f32 {
        if self.muted {
            0.0
        } else {
            self.audio_level.level(now)
        }
    }

    /// Stops or resumes forwarding altogether (muted by the publisher or an admin).
    pub fn set_muted(&mut self, muted: bool) {
        self.muted = muted;
    }

    /// Starts forwarding to `subscriber`, on the best layer arriving at `now`
    /// that its cap and share allow. A subscriber already attached is replaced.
    pub fn attach(&mut self, now: Instant, mut subscriber: Subscriber<S>) {
        let best = self.layers.best_alive(now);
        subscriber.forwarder.set_target_layer(best);
        subscriber.choose_layer(best, self.layers.rates());
        self.detach(subscriber.id);
        self.subscribers.push(subscriber);
    }

    /// Stops forwarding to `id`, returning its subscription.
    pub fn detach(&mut self, id: ParticipantSid) -> Option<Subscriber<S>> {
        let i = self.subscribers.iter().position(|s| s.id == id)?;
        Some(self.subscribers.swap_remove(i))
    }

    /// Stops forwarding to every subscriber `gone` picks (their connection closed).
    pub fn detach_if(&mut self, mut gone: impl FnMut(&Subscriber<S>) -> bool) {
        self.subscribers.retain(|s| !gone(s));
    }

    /// Stops forwarding to everyone (the track ended).
    pub fn detach_all(&mut self) -> Vec<Subscriber<S>> {
        std::mem::take(&mut self.subscribers)
    }

    /// The subscription of `id`, to change its settings.
    pub fn subscriber_mut(&mut self, id: ParticipantSid) -> Option<&mut Subscriber<S>> {
        self.subscribers.iter_mut().find(|s| s.id == id)
    }

    /// The sink of the subscriber a [`Rewrite`] names.
    pub fn sink(&self, slot: usize) -> &S {
        &self.subscribers[slot].sink
    }

    /// How many subscribers there are.
    pub fn len(&self) -> usize {
        self.subscribers.len()
    }

    /// Whether nobody is subscribed.
    pub fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
    }

    /// Routes one packet received at `now`: appends a [`Rewrite`] to `out`
    /// for each subscriber that gets it, and to `keyframes` each layer the
    /// publisher must be asked a keyframe of (at most once per layer).
    pub fn on_rtp(
        &mut self,
        now: Instant,
        header: &Header,
        payload: &[u8],
        out: &mut Vec<Rewrite>,
        keyframes: &mut Vec<u8>,
    ) {
        let layer = self.layers.layer_of(header.ssrc);
        // The RTP header is 12 bytes; extensions and SRTP overhead are left out.
        self.layers.count(now, layer, payload.len() + 12);
        let recheck = self
            .last_check
            .is_none_or(|t| now.saturating_duration_since(t) >= LAYER_CHECK_INTERVAL);
        if recheck {
            self.last_check = Some(now);
        }
        if self.muted {
            return;
        }
        if self.audio_level_id != 0 {
            if let Some(&byte) = header
                .get_extension(self.audio_level_id)
                .as_deref()
                .and_then(<[u8]>::first)
            {
                self.audio_level.observe(now, byte);
            }
        }
        let incoming = Incoming {
            layer,
            sequence_number: header.sequence_number,
            timestamp: header.timestamp,
            keyframe: self.codec.is_keyframe(payload),
        };
        // Layer choices change only at a recheck; between them no subscriber needs them.
        let best = recheck.then(|| (self.layers.best_alive(now), *self.layers.rates()));
        for (slot, sub) in self.subscribers.iter_mut().enumerate() {
            if let Some((best, rates)) = &best {
                sub.choose_layer(*best, rates);
                if let Some(l) = sub.keyframe_wanted(now) {
                    if !keyframes.contains(&l) {
                        keyframes.push(l);
                    }
                }
            }
            match sub.forwarder.on_packet(now, incoming) {
                Verdict::Drop => sub.counts.dropped += 1,
                Verdict::Forward {
                    sequence_number,
                    timestamp,
                } => {
                    sub.counts.forwarded += 1;
                    sub.counts.octets += payload.len() as u64;
                    out.push(Rewrite {
                        slot,
                        ssrc: sub.ssrc,
                        payload_type: sub.payload_type,
                        sequence_number,
                        timestamp,
                        marker: header.marker,
                        padding: header.padding,
                    });
                }
            }
        }
    }

    /// Translates the publisher's sender report for each subscriber that gets
    /// the layer it describes: appends `(slot, report)` to `out`.
    pub fn on_sender_report(&self, report: &SenderReport, out: &mut Vec<(usize, SenderReport)>) {
        let Some(layer) = self.layers.known_layer_of(report.ssrc) else {
            return;
        };
        for (slot, sub) in self.subscribers.iter().enumerate() {
            let Some((ntp_time, rtp_time)) =
                sub.forwarder
                    .sender_report_time(layer, report.ntp_time, report.rtp_time)
            else {
                continue;
            };
            out.push((
                slot,
                SenderReport {
                    ssrc: sub.ssrc,
                    ntp_time,
                    rtp_time,
                    // RFC 3550 counts wrap at 32 bits.
                    packet_count: sub.counts.forwarded as u32,
                    octet_count: sub.counts.octets as u32,
                    ..Default::default()
                },
            ));
        }
    }
}

#[cfg(test)]
mod tests;
