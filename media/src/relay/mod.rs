//! Relay links: a room's tracks carried between two nodes, one stream per
//! track per link however many subscribers the far node has.
//!
//! A link has two ends, each a peer connection of the same WebRTC stack a
//! client's connection runs on:
//!
//! - [`Upstream`], on the node the tracks arrive at (their publishers' node,
//!   or a relay nearer to them), is a subscriber connection like any other:
//!   the worker forwards each carried track to it once, through one
//!   [`DownTrack`], and answers its NACKs and keyframe requests as it would a
//!   participant's.
//! - [`Downstream`], on the far node, receives those tracks as a
//!   publisher's connection receives a client's. The far node's subscribers
//!   subscribe to them there, so their keyframe requests and NACKs go back
//!   up the link as the feedback of one subscriber would.
//!
//! The upstream end offers and the downstream end answers; between nodes
//! the two descriptions travel on the cluster's bus. Each carried track is
//! named in the offer's `msid` as `{publisher sid} {track sid}`, and the
//! downstream worker reports it under that track sid ([`relayed_track`]).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use rtc::peer_connection::sdp::RTCSessionDescription;
use switchboard_core::{ParticipantSid, TrackSid};
use tokio::sync::mpsc;

use crate::peer::config::Direction;
use crate::worker::{DownTrack, Event, Msid, Output, Peer, TrackReceiver, TrackRef, Worker};
use crate::MediaError;

/// The end of a link on the node the tracks come from: it sends each
/// carried track once.
pub struct Upstream {
    peer: Peer,
    /// The link as the worker's fan-outs know it: one subscriber.
    id: ParticipantSid,
    carried: Mutex<HashMap<TrackSid, Arc<DownTrack>>>,
}

impl Upstream {
    /// Opens the upstream end of a new link on `worker` (the worker of the
    /// room whose tracks it carries); its connection's [`Event`]s arrive on
    /// the receiver.
    pub fn open(worker: &Worker) -> Result<(Self, mpsc::Receiver<Event>), MediaError> {
        // With its data channels a link's description is whole before it
        // carries any track (an offer of nothing cannot be answered).
        let (peer, events) = Peer::open(worker, None, Direction::Send, true)?;
        let link = Self {
            peer,
            id: ParticipantSid::new(),
            carried: Mutex::new(HashMap::new()),
        };
        Ok((link, events))
    }

    /// Starts carrying `track`, published by `publisher` with codec `mime`;
    /// `false` if the link carries it already. The far end sees it at the
    /// next [`Upstream::offer`].
    pub async fn carry(
        &self,
        publisher: ParticipantSid,
        track: &Arc<TrackReceiver>,
        mime: &str,
    ) -> Result<bool, MediaError> {
        if self.carried.lock().contains_key(&track.track_sid) {
            return Ok(false);
        }
        let downtrack = DownTrack::new(track.clone(), self.id, mime);
        let msid = Msid::of(publisher, track.track_sid);
        downtrack
            .attach(Output::Peer(self.peer.id(), Some(msid)))
            .await?;
        let previous = self.carried.lock().insert(track.track_sid, downtrack);
        // Two callers raced to carry the same track: keep one copy.
        if let Some(previous) = previous {
            previous.close();
        }
        Ok(true)
    }

    /// Stops carrying `track`; `false` if it was not carried.
    pub fn stop(&self, track: TrackSid) -> bool {
        match self.carried.lock().remove(&track) {
            Some(downtrack) => {
                downtrack.close();
                true
            }
            None => false,
        }
    }

    /// The tracks the link carries.
    pub fn carried(&self) -> Vec<TrackSid> {
        let mut tracks: Vec<TrackSid> = self.carried.lock().keys().copied().collect();
        tracks.sort();
        tracks
    }

    /// The down-track carrying `track`, to pass on the far end's wishes
    /// (its highest layer wanted, its bandwidth).
    pub fn downtrack(&self, track: TrackSid) -> Option<Arc<DownTrack>> {
        self.carried.lock().get(&track).cloned()
    }

    /// The offer describing what the link carries now, for the far end to answer.
    pub async fn offer(&self) -> Result<String, MediaError> {
        self.peer.offer(false).await
    }

    /// Takes the far end's answer to [`Upstream::offer`].
    pub async fn accept(&self, answer: &str) -> Result<(), MediaError> {
        let answer = RTCSessionDescription::answer(answer.to_owned())
            .map_err(|e| MediaError::Protocol(format!("the link's answer is not SDP: {e}")))?;
        self.peer.accept(answer).await
    }

    /// Sends a data message of the room to the far end, on the link's
    /// `_reliable` or `_lossy` channel: it delivers it to everyone there.
    pub fn send_data(&self, reliable: bool, text: String) {
        self.peer.send_data(reliable, text);
    }

    /// The link's connection.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Closes the link's end here: the tracks stop crossing.
    pub fn close(&self) {
        for (_, downtrack) in self.carried.lock().drain() {
            downtrack.close();
        }
        self.peer.close();
    }
}

/// The end of a link on the far node: it receives the carried tracks, which
/// that node's subscribers subscribe to.
pub struct Downstream {
    peer: Peer,
}

impl Downstream {
    /// Opens the downstream end of a new link on `worker` (the worker of the
    /// room the tracks are for, so they never cross threads there); the
    /// connection's [`Event`]s arrive on the receiver, an [`Event::Track`]
    /// for each track as it starts arriving.
    pub fn open(worker: &Worker) -> Result<(Self, mpsc::Receiver<Event>), MediaError> {
        let (peer, events) = Peer::open_relay(worker)?;
        Ok((Self { peer }, events))
    }

    /// Answers the upstream end's offer (the first, or one after the
    /// carried tracks changed).
    pub async fn answer(&self, offer: &str) -> Result<String, MediaError> {
        let offer = RTCSessionDescription::offer(offer.to_owned())
            .map_err(|e| MediaError::Protocol(format!("the link's offer is not SDP: {e}")))?;
        self.peer.answer(offer).await
    }

    /// The link's connection.
    pub fn peer(&self) -> &Peer {
        &self.peer
    }

    /// Closes the link's end here: its tracks end on this node.
    pub fn close(&self) {
        self.peer.close();
    }
}

/// Which carried track a downstream end's [`Event::Track`] is: the track's
/// sid on its publisher's node, and how this node's worker names it.
pub fn relayed_track(event: &Event) -> Option<(TrackSid, TrackRef)> {
    match event {
        Event::Track { track, .. } => track.track.parse().ok().map(|sid| (sid, track.clone())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::ConnId;
    use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;

    #[test]
    fn a_relayed_track_is_known_by_its_sid_and_a_stranger_by_nothing() {
        let sid = TrackSid::new();
        let conn = ConnId::new();
        let event = |track: String| Event::Track {
            track: TrackRef { conn, track },
            kind: RtpCodecKind::Video,
            mime: "video/VP8".into(),
            clock_rate: 90_000,
        };
        let (found, track) = relayed_track(&event(sid.to_string())).expect("a carried track");
        assert_eq!(found, sid);
        assert_eq!(track.conn, conn);
        assert!(relayed_track(&event("camera".into())).is_none());
        assert!(relayed_track(&Event::TrackEnded(TrackRef {
            conn,
            track: sid.to_string()
        }))
        .is_none());
    }
}
