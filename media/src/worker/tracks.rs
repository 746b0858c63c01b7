//! A worker's tracks: each track its connections receive has a [`Fanout`],
//! each subscription an outgoing SSRC on the subscriber's connection.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use rtc::rtp::header::Header;
use switchboard_core::ParticipantSid;

use super::{ConnId, TrackRef};
use crate::sfu::fanout::{Fanout, Rewrite, Subscriber};
use crate::sfu::keyframe::Codec;

/// Where one subscriber's copy of a track goes.
#[derive(Debug, Clone, Copy)]
pub struct Sink {
    /// The subscriber's connection.
    pub conn: ConnId,
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
    subscriptions: HashMap<(ConnId, u32), (TrackRef, ParticipantSid)>,
    /// Reused per packet.
    rewrites: Vec<Rewrite>,
    keyframes: Vec<u8>,
    /// What the last [`Tracks::route`] produced.
    pub routed: Routed,
}

/// What routing one packet produced, reused from packet to packet.
#[derive(Default)]
pub struct Routed {
    /// A rewritten header per subscriber that gets the packet.
    pub copies: Vec<(Sink, Header)>,
    /// The publisher's SSRCs to ask a keyframe of.
    pub keyframe_ssrcs: Vec<u32>,
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

    /// Adds a subscriber of `track`, sending as `ssrc` on its connection.
    pub fn subscribe(
        &mut self,
        now: Instant,
        track: &TrackRef,
        ssrc: u32,
        subscriber: Subscriber<Sink>,
    ) -> bool {
        let Some(published) = self.published_mut(track.conn, &track.track) else {
            return false;
        };
        let key = (subscriber.sink.conn, ssrc);
        let participant = subscriber.id;
        published.fanout.attach(now, subscriber);
        self.subscriptions.insert(key, (track.clone(), participant));
        true
    }

    /// The track and subscriber an outgoing `ssrc` of `conn` carries.
    pub fn subscription(&self, conn: ConnId, ssrc: u32) -> Option<&(TrackRef, ParticipantSid)> {
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
            let mut out = rewrite.header();
            // Keep the publisher's extensions off: their ids were negotiated with it.
            out.extension = false;
            self.routed.copies.push((*fanout.sink(rewrite.slot), out));
        }
        for &layer in &self.keyframes {
            if let Some(ssrc) = fanout.keyframe_ssrc(layer) {
                self.routed.keyframe_ssrcs.push(ssrc);
            }
        }
    }

    /// Forgets everything of `conn`: returns the tracks it published (their
    /// subscribers are detached) and drops its subscriptions.
    pub fn close(&mut self, conn: ConnId) -> Vec<String> {
        let ended: Vec<String> = self
            .published
            .remove(&conn)
            .map(|tracks| tracks.into_keys().collect())
            .unwrap_or_default();
        self.subscriptions
            .retain(|(sub, _), (track, _)| *sub != conn && track.conn != conn);
        for published in self.published.values_mut().flat_map(|t| t.values_mut()) {
            published.fanout.detach_if(|s| s.sink.conn == conn);
        }
        ended
    }
}
