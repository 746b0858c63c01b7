//! A worker's tracks: each track its connections receive has a [`Fanout`];
//! each subscription is an outgoing SSRC on a subscriber's connection or a
//! recording's track writer.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp::header::Header;
use rtc::rtp_transceiver::RTCRtpSenderId;
use switchboard_core::ParticipantSid;

use super::{ConnId, SubscriptionChange, TrackChange, TrackRef};
use crate::recording::TrackSink;
use crate::sfu::fanout::{Fanout, Rewrite, Subscriber};
use crate::sfu::keyframe::Codec;

/// Where one subscriber's copy of a track goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// An outgoing track of a connection on this worker.
    Peer(ConnId),
    /// A recording's track writer, by its number in [`Tracks`].
    Recorder(u32),
}

/// A track a connection receives from its client.
pub struct Published {
    /// Its packet path.
    pub fanout: Fanout<Sink>,
    /// Its codec's MIME type.
    pub mime: String,
}

/// What a worker forwards.
#[derive(Default)]
pub struct Tracks {
    /// Published tracks by connection, then by the client's track id (looked
    /// up by `&str` per packet, so nothing is allocated to find one).
    published: HashMap<ConnId, HashMap<String, Published>>,
    /// Subscriptions by subscriber connection and outgoing SSRC.
    subscriptions: HashMap<(ConnId, u32), Subscription>,
    /// Recordings' track writers.
    recorders: HashMap<u32, TrackSink>,
    next_recorder: u32,
    /// Reused per packet.
    rewrites: Vec<Rewrite>,
    keyframes: Vec<u8>,
    reports: Vec<(usize, SenderReport)>,
    /// What the last [`Tracks::route`] produced.
    pub routed: Routed,
}

/// One subscription to a track on a subscriber's connection.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// The published track.
    pub track: TrackRef,
    /// The subscriber.
    pub participant: ParticipantSid,
    /// The outgoing track's sender on the subscriber's connection.
    pub sender: RTCRtpSenderId,
}

/// What routing one packet produced, reused from packet to packet.
#[derive(Default)]
pub struct Routed {
    /// A rewritten header per subscriber that gets the packet.
    pub copies: Vec<(Sink, Header)>,
    /// The publisher's SSRCs to ask a keyframe of.
    pub keyframe_ssrcs: Vec<u32>,
    /// Sender reports translated per subscriber.
    pub reports: Vec<(Sink, SenderReport)>,
}

impl Tracks {
    /// Starts forwarding a track `conn` receives.
    pub fn publish(&mut self, track: &TrackRef, mime: &str) -> bool {
        let tracks = self.published.entry(track.conn).or_default();
        if tracks.contains_key(&track.track) {
            return false;
        }
        tracks.insert(
            track.track.clone(),
            Published {
                fanout: Fanout::new(Codec::from_mime(mime)),
                mime: mime.to_owned(),
            },
        );
        true
    }

    /// The published track `track` of `conn`.
    pub fn published_mut(&mut self, conn: ConnId, track: &str) -> Option<&mut Published> {
        self.published.get_mut(&conn)?.get_mut(track)
    }

    /// Registers a recording's track writer, to subscribe as [`Sink::Recorder`].
    pub fn add_recorder(&mut self, sink: TrackSink) -> Sink {
        self.next_recorder = self.next_recorder.wrapping_add(1);
        self.recorders.insert(self.next_recorder, sink);
        Sink::Recorder(self.next_recorder)
    }

    /// The track writer behind [`Sink::Recorder`] `id`.
    pub fn recorder(&self, id: u32) -> Option<&TrackSink> {
        self.recorders.get(&id)
    }

    /// Adds a subscriber of `track`, sending as `ssrc` through `sender` on
    /// its connection (none for a recorder).
    pub fn subscribe(
        &mut self,
        now: Instant,
        track: &TrackRef,
        (ssrc, sender): (u32, Option<RTCRtpSenderId>),
        subscriber: Subscriber<Sink>,
    ) -> bool {
        let Some(published) = self.published_mut(track.conn, &track.track) else {
            return false;
        };
        let sink = subscriber.sink;
        let participant = subscriber.id;
        let old = published.fanout.detach(participant);
        published.fanout.attach(now, subscriber);
        if let Some(old) = old {
            self.forget(old.sink);
        }
        if let (Sink::Peer(conn), Some(sender)) = (sink, sender) {
            let subscription = Subscription {
                track: track.clone(),
                participant,
                sender,
            };
            self.subscriptions.insert((conn, ssrc), subscription);
        }
        true
    }

    /// Stops forwarding `track` to `participant`; returns the outgoing
    /// track to remove from the subscriber's connection, if it had one.
    pub fn unsubscribe(
        &mut self,
        track: &TrackRef,
        participant: ParticipantSid,
    ) -> Option<(ConnId, RTCRtpSenderId)> {
        let published = self.published_mut(track.conn, &track.track)?;
        let gone = published.fanout.detach(participant)?;
        self.forget(gone.sink);
        let key = self
            .subscriptions
            .iter()
            .find(|(_, s)| s.participant == participant && s.track == *track)
            .map(|(k, _)| *k)?;
        let removed = self.subscriptions.remove(&key)?;
        Some((key.0, removed.sender))
    }

    fn forget(&mut self, sink: Sink) {
        if let Sink::Recorder(id) = sink {
            self.recorders.remove(&id);
        }
    }

    /// Changes `participant`'s copy of `track`.
    pub fn change_subscription(
        &mut self,
        track: &TrackRef,
        participant: ParticipantSid,
        change: SubscriptionChange,
    ) {
        let Some(sub) = self
            .published_mut(track.conn, &track.track)
            .and_then(|p| p.fanout.subscriber_mut(participant))
        else {
            return;
        };
        match change {
            SubscriptionChange::MaxLayer(layer) => sub.set_max_layer(layer),
            SubscriptionChange::BandwidthShare(bps) => sub.set_bandwidth_share(bps),
            SubscriptionChange::Paused(paused) => sub.set_paused(paused),
            SubscriptionChange::PayloadType(pt) => sub.set_payload_type(pt),
            SubscriptionChange::Keyframe => sub.request_keyframe(),
        }
    }

    /// Changes a published track.
    pub fn change_track(&mut self, track: &TrackRef, change: TrackChange) {
        let Some(published) = self.published_mut(track.conn, &track.track) else {
            return;
        };
        match change {
            TrackChange::Muted(muted) => published.fanout.set_muted(muted),
            TrackChange::AudioLevelExtension(id) => published.fanout.set_audio_level_extension(id),
        }
    }

    /// The subscription an outgoing `ssrc` of `conn` carries.
    pub fn subscription(&self, conn: ConnId, ssrc: u32) -> Option<&Subscription> {
        self.subscriptions.get(&(conn, ssrc))
    }

    /// Routes one packet of `conn`'s track `track` into [`Tracks::routed`].
    /// `layer_rid` names the RID of a layer not seen before.
    pub fn route(
        &mut self,
        now: Instant,
        conn: ConnId,
        track: &str,
        packet: (&Header, &Bytes),
        layer_rid: impl FnOnce(u32) -> Option<String>,
    ) {
        let (header, payload) = packet;
        self.routed.copies.clear();
        self.routed.keyframe_ssrcs.clear();
        let Some(published) = self
            .published
            .get_mut(&conn)
            .and_then(|tracks| tracks.get_mut(track))
        else {
            return;
        };
        let fanout = &mut published.fanout;
        if !fanout.has_layer(header.ssrc) {
            fanout.add_layer(header.ssrc, layer_rid(header.ssrc).as_deref());
        }
        self.rewrites.clear();
        self.keyframes.clear();
        fanout.on_rtp(
            now,
            header,
            payload,
            &mut self.rewrites,
            &mut self.keyframes,
        );
        for rewrite in &self.rewrites {
            self.routed
                .copies
                .push((*fanout.sink(rewrite.slot), rewrite.header()));
        }
        for &layer in &self.keyframes {
            if let Some(ssrc) = fanout.keyframe_ssrc(layer) {
                self.routed.keyframe_ssrcs.push(ssrc);
            }
        }
    }

    /// Adds to `out` the SSRCs of every video layer `conn` publishes.
    pub fn keyframe_ssrcs_of(&self, conn: ConnId, out: &mut Vec<u32>) {
        for published in self
            .published
            .get(&conn)
            .into_iter()
            .flat_map(|t| t.values())
        {
            out.extend(published.fanout.keyframe_ssrcs());
        }
    }

    /// Translates a publisher's sender report into [`Routed::reports`]: one
    /// per subscriber of the track it describes.
    pub fn route_report(&mut self, conn: ConnId, report: &SenderReport) {
        self.routed.reports.clear();
        let Some(tracks) = self.published.get(&conn) else {
            return;
        };
        for published in tracks.values() {
            if !published.fanout.has_layer(report.ssrc) {
                continue;
            }
            self.reports.clear();
            published.fanout.on_sender_report(report, &mut self.reports);
            for (slot, translated) in self.reports.drain(..) {
                self.routed
                    .reports
                    .push((*published.fanout.sink(slot), translated));
            }
        }
    }

    /// The ids of the tracks `conn` publishes.
    pub fn published_by(&self, conn: ConnId) -> impl Iterator<Item = &str> {
        self.published
            .get(&conn)
            .into_iter()
            .flat_map(|t| t.keys().map(String::as_str))
    }

    /// Ends `conn`'s track `track`: its subscribers are detached and
    /// `senders` gets their outgoing tracks to remove.
    pub fn end(&mut self, conn: ConnId, track: &str, senders: &mut Vec<(ConnId, RTCRtpSenderId)>) {
        let Some(mut published) = self.published.get_mut(&conn).and_then(|t| t.remove(track))
        else {
            return;
        };
        for gone in published.fanout.detach_all() {
            self.forget(gone.sink);
        }
        self.subscriptions.retain(|(sub, _), s| {
            let ended = s.track.conn == conn && s.track.track == track;
            if ended {
                senders.push((*sub, s.sender));
            }
            !ended
        });
    }

    /// Forgets everything of `conn`: returns the tracks it published (their
    /// subscribers are detached; `senders` gets the outgoing tracks to remove
    /// from their connections) and drops its subscriptions.
    pub fn close(
        &mut self,
        conn: ConnId,
        senders: &mut Vec<(ConnId, RTCRtpSenderId)>,
    ) -> Vec<String> {
        let mut ended = Vec::new();
        if let Some(tracks) = self.published.remove(&conn) {
            for (id, mut published) in tracks {
                for gone in published.fanout.detach_all() {
                    self.forget(gone.sink);
                }
                ended.push(id);
            }
        }
        self.subscriptions.retain(|(sub, _), s| {
            if *sub != conn && s.track.conn == conn {
                senders.push((*sub, s.sender));
            }
            *sub != conn && s.track.conn != conn
        });
        for published in self.published.values_mut().flat_map(|t| t.values_mut()) {
            published.fanout.detach_if(|s| s.sink == Sink::Peer(conn));
        }
        ended
    }

    /// The audio level of each of `tracks` at `now`, 0 for one not published.
    pub fn audio_levels(&mut self, now: Instant, tracks: &[TrackRef]) -> Vec<f32> {
        tracks
            .iter()
            .map(|t| {
                self.published_mut(t.conn, &t.track)
                    .map_or(0.0, |p| p.fanout.audio_level(now))
            })
            .collect()
    }
}
