//! A published track as the async WebRTC driver delivers it: the edge
//! between that driver and the track's [`Fanout`].
//!
//! Everything decided per packet is the fan-out's; this file only reads the
//! remote track, holds the fan-out under a lock for the driver's tasks, and
//! writes what it returns to each subscriber's sink.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp::Packet;
use switchboard_core::{ParticipantSid, TrackSid};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use super::downtrack::Output;
use super::fanout::{Fanout, Rewrite, Subscriber};
use super::keyframe::Codec;
use super::layers::MAX_LAYERS;
use super::rate_limit::PublishBudget;

/// Reads one remote track and hands each packet to every subscriber.
pub struct TrackReceiver {
    /// The published track.
    pub track_sid: TrackSid,
    /// Its codec, for keyframe detection.
    pub codec: Codec,
    /// RTP clock rate.
    pub clock_rate: u32,
    remote: Arc<dyn TrackRemote>,
    fanout: Mutex<Fanout<Arc<Output>>>,
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
            fanout: Mutex::new(Fanout::new(codec)),
            budget,
        })
    }

    /// The track's fan-out, for a change of its subscribers or settings.
    pub(super) fn fanout(&self) -> MutexGuard<'_, Fanout<Arc<Output>>> {
        self.fanout.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the SSRC of a (simulcast) layer as the stack reports it.
    pub fn add_layer(&self, ssrc: u32, rid: Option<&str>) {
        self.fanout().add_layer(ssrc, rid);
    }

    /// The highest layer being received now.
    pub fn best_layer(&self, now: Instant) -> u8 {
        self.fanout().best_layer(now)
    }

    /// Starts forwarding to `subscriber`.
    pub(super) fn attach(&self, subscriber: Subscriber<Arc<Output>>) {
        self.fanout().attach(Instant::now(), subscriber);
    }

    /// Stops forwarding to `subscriber`.
    pub fn detach(&self, subscriber: ParticipantSid) {
        if let Some(gone) = self.fanout().detach(subscriber) {
            log_closed(self.track_sid, &gone);
        }
    }

    /// Stops forwarding to everyone (for teardown).
    pub fn detach_all(&self) {
        let gone = self.fanout().detach_all();
        for s in &gone {
            log_closed(self.track_sid, s);
        }
    }

    /// Reads audio levels from the header extension negotiated as `id`.
    pub fn set_audio_level_extension(&self, id: u8) {
        self.fanout().set_audio_level_extension(id);
    }

    /// The publisher's smoothed audio level (0.0 to 1.0); 0.0 while muted or silent.
    pub fn audio_level(&self, now: Instant) -> f32 {
        self.fanout().audio_level(now)
    }

    /// Stops or resumes forwarding altogether (muted by the publisher or an admin).
    pub fn set_muted(&self, muted: bool) {
        self.fanout().set_muted(muted);
    }

    /// Reads the remote track until it ends, forwarding every packet within the publisher's budget.
    pub async fn run(self: Arc<Self>) {
        // Reused for every packet: no allocation per packet once they have grown.
        let mut rewrites: Vec<Rewrite> = Vec::with_capacity(8);
        let mut batch: Vec<(Arc<Output>, Packet)> = Vec::with_capacity(8);
        let mut keyframe_layers: Vec<u8> = Vec::with_capacity(MAX_LAYERS);
        let mut reports: Vec<(usize, SenderReport)> = Vec::new();
        let mut report_batch: Vec<(Arc<Output>, SenderReport)> = Vec::new();
        while let Some(event) = self.remote.poll().await {
            match event {
                TrackRemoteEvent::OnOpen(init) => self.add_layer(init.ssrc, init.rid.as_deref()),
                TrackRemoteEvent::OnRtpPacket(packet) => {
                    let now = Instant::now();
                    if !self.budget.allow(now, packet.payload.len()) {
                        continue;
                    }
                    {
                        let mut fanout = self.fanout();
                        fanout.on_rtp(
                            now,
                            &packet.header,
                            &packet.payload,
                            &mut rewrites,
                            &mut keyframe_layers,
                        );
                        for r in rewrites.drain(..) {
                            let out = Packet {
                                header: r.header(),
                                payload: packet.payload.clone(),
                            };
                            batch.push((fanout.sink(r.slot).clone(), out));
                        }
                    }
                    for (sink, out) in batch.drain(..) {
                        sink.send(self.track_sid, out).await;
                    }
                    for layer in keyframe_layers.drain(..) {
                        self.request_keyframe(layer).await;
                    }
                }
                TrackRemoteEvent::OnRtcpPacket(packets) => {
                    {
                        let fanout = self.fanout();
                        for report in packets
                            .iter()
                            .filter_map(|p| p.as_any().downcast_ref::<SenderReport>())
                        {
                            fanout.on_sender_report(report, &mut reports);
                        }
                        for (slot, report) in reports.drain(..) {
                            report_batch.push((fanout.sink(slot).clone(), report));
                        }
                    }
                    for (sink, report) in report_batch.drain(..) {
                        sink.send_report(self.track_sid, report).await;
                    }
                }
                TrackRemoteEvent::OnEnded => break,
                _ => {}
            }
        }
        self.detach_all();
    }

    /// Asks the publisher for a keyframe on `layer`.
    pub async fn request_keyframe(&self, layer: u8) {
        let Some(media_ssrc) = self.fanout().keyframe_ssrc(layer) else {
            return;
        };
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        if let Err(e) = self.remote.write_rtcp(vec![Box::new(pli)]).await {
            tracing::debug!(track = %self.track_sid, error = %e, "keyframe request failed");
        }
    }
}

fn log_closed(track: TrackSid, s: &Subscriber<Arc<Output>>) {
    let counts = s.counts();
    tracing::debug!(
        track = %track,
        subscriber = %s.id,
        forwarded = counts.forwarded,
        dropped = counts.dropped,
        "down-track closed"
    );
}
