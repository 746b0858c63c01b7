//! Rooms on several nodes: this node as one of a room's hosts.
//!
//! A node that gets a participant of a room live on a node of another
//! region hosts the room too ([`RoomManager::pull_from`]): it asks that host
//! for a relay link carrying the host's tracks, and the host, learning of it,
//! asks for one the other way. Each link's sending end carries every track
//! published on its node, and each change of that node's participants or
//! tracks goes to every other host as its whole roster with the link's new
//! offer ([`RoomManager::sync_hosts`]). The other hosts' participants show
//! here as remote ones ([`crate::room::remote`]).

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use parking_lot::Mutex;
use rtc::peer_connection::state::RTCPeerConnectionState;
use switchboard_core::cascade::{
    Interconnect, LinkReply, LinkRequest, ParticipantChange, RoomHosting,
};
use switchboard_core::directory::DirectoryError;
use switchboard_core::event::LeaveReason;
use switchboard_core::room::ParticipantInfo;
use switchboard_core::{Identity, NodeId, ParticipantSid, RoomSid, TrackSid};
use tokio::sync::mpsc;

use super::{change, RoomManager};
use crate::relay::{relayed_track, Downstream, Upstream};
use crate::room::live::Room;
use crate::room::remote::HostNews;
use crate::sfu::keyframe::Codec;
use crate::worker::{Event, TrackReceiver};

/// A room's links with its other hosts.
#[derive(Default)]
pub(super) struct Hosts {
    links: Mutex<HashMap<NodeId, HostLinks>>,
    /// Held while the room's changes go out, so they go out in order.
    syncing: tokio::sync::Mutex<()>,
}

/// The two links with one other host.
#[derive(Default)]
struct HostLinks {
    /// This node's tracks to that host, once it asked for them.
    upstream: Option<Arc<Upstream>>,
    /// Whether it answered the upstream's last offer, so another may go.
    answered: bool,
    /// The tracks the upstream carries.
    carried: Vec<TrackSid>,
    /// The roster it was last sent.
    sent: Vec<ParticipantInfo>,
    /// Its tracks to this node (or being asked for).
    downstream: Option<Arc<Downstream>>,
    pulling: bool,
}

impl Hosts {
    fn nodes(&self) -> Vec<NodeId> {
        self.links.lock().keys().copied().collect()
    }

    /// The link sending this node's tracks to `node`.
    fn upstream(&self, node: NodeId) -> Option<Arc<Upstream>> {
        self.links.lock().get(&node)?.upstream.clone()
    }

    /// The link bringing `node`'s tracks here.
    fn downstream(&self, node: NodeId) -> Option<Arc<Downstream>> {
        self.links.lock().get(&node)?.downstream.clone()
    }

    /// `node` answered the upstream link's last offer: the next may go.
    fn answered(&self, node: NodeId) {
        if let Some(h) = self.links.lock().get_mut(&node) {
            h.answered = true;
        }
    }
}

impl RoomManager {
    /// Lets this node host rooms live on other nodes, reaching them through `interconnect`.
    pub fn set_interconnect(&self, interconnect: Arc<dyn Interconnect>) {
        *self.interconnect.write() = Some(interconnect);
    }

    pub(super) fn interconnect(&self) -> Option<Arc<dyn Interconnect>> {
        self.interconnect.read().clone()
    }

    /// The room's links, made (with the task that sends its changes) on first use.
    fn hosts_for(self: &Arc<Self>, room: &Arc<Room>) -> Arc<Hosts> {
        let mut hosting = self.hosting.lock();
        if let Some(hosts) = hosting.get(&room.sid) {
            return hosts.clone();
        }
        let hosts = Arc::new(Hosts::default());
        hosting.insert(room.sid, hosts.clone());
        let (changed, mut changes) = mpsc::unbounded_channel();
        room.remote.on_change(changed);
        let (manager, weak_room, weak_hosts) = (
            Arc::downgrade(self),
            Arc::downgrade(room),
            Arc::downgrade(&hosts),
        );
        let (news, mut speakers) = mpsc::unbounded_channel();
        room.remote.on_news(news);
        let (who, sid, node, interconnect) = (
            Arc::downgrade(&hosts),
            room.sid,
            self.node,
            self.interconnect(),
        );
        tokio::spawn(async move {
            let Some(interconnect) = interconnect else {
                return;
            };
            while let Some(news) = speakers.recv().await {
                let Some(hosts) = who.upgrade() else {
                    return;
                };
                let message = match news {
                    HostNews::Levels(levels) => LinkRequest::Levels {
                        room_sid: sid,
                        from: node,
                        levels,
                    },
                    HostNews::Quality(updates) => LinkRequest::Quality {
                        room_sid: sid,
                        from: node,
                        updates,
                    },
                };
                for host in hosts.nodes() {
                    if let Err(e) = interconnect.send(host, message.clone()).await {
                        tracing::debug!(error = %e, "cannot tell a host who speaks or how they connect");
                    }
                }
            }
        });
        let (data, mut messages) = mpsc::unbounded_channel();
        room.remote.on_data(data);
        let links = Arc::downgrade(&hosts);
        tokio::spawn(async move {
            // Data messages ride the links' data channels, like the media.
            while let Some((reliable, text)) = messages.recv().await {
                let Some(hosts) = links.upgrade() else {
                    return;
                };
                for host in hosts.links.lock().values() {
                    if let Some(upstream) = &host.upstream {
                        upstream.send_data(reliable, text.clone());
                    }
                }
            }
        });
        tokio::spawn(async move {
            while changes.recv().await.is_some() {
                while changes.try_recv().is_ok() {}
                let (Some(manager), Some(room), Some(hosts)) =
                    (manager.upgrade(), weak_room.upgrade(), weak_hosts.upgrade())
                else {
                    return;
                };
                manager.sync_hosts(&room, &hosts).await;
            }
        });
        hosts
    }

    /// Hosts `room` with `node`, where it is live too: asks `node` for a
    /// link carrying its tracks and takes its roster. (Boxed: it starts
    /// itself for the hosts that node names.)
    pub(super) fn pull_from(
        self: &Arc<Self>,
        room: &Arc<Room>,
        node: NodeId,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>> {
        let (me, room) = (self.clone(), room.clone());
        Box::pin(async move { me.pull(&room, node).await })
    }

    async fn pull(self: &Arc<Self>, room: &Arc<Room>, node: NodeId) {
        let Some(interconnect) = self.interconnect() else {
            return;
        };
        let hosts = self.hosts_for(room);
        {
            let mut links = hosts.links.lock();
            let host = links.entry(node).or_default();
            if host.pulling || host.downstream.is_some() {
                return;
            }
            host.pulling = true;
        }
        let done = |hosts: &Hosts| {
            if let Some(h) = hosts.links.lock().get_mut(&node) {
                h.pulling = false;
            }
        };
        let open = LinkRequest::Open {
            project: room.project,
            room: room.name.clone(),
            room_sid: room.sid,
            from: self.node,
        };
        let (sdp, roster, others) = match interconnect.send(node, open).await {
            Ok(LinkReply::Offer { sdp, roster, hosts }) => (sdp, roster, hosts),
            Ok(other) => {
                tracing::warn!(room = %room.name, %node, reply = ?other, "a host refused a link");
                return done(&hosts);
            }
            Err(e) => {
                tracing::warn!(room = %room.name, error = %e, "cannot reach a host of the room");
                return done(&hosts);
            }
        };
        let worker = self.worker_for(room);
        let answer = match Downstream::open(&worker) {
            Ok((downstream, events)) => {
                let downstream = Arc::new(downstream);
                tokio::spawn(pump(
                    Arc::downgrade(self),
                    Arc::downgrade(room),
                    node,
                    worker.clone(),
                    events,
                ));
                let answer = downstream.answer(&sdp).await;
                if let Some(h) = hosts.links.lock().get_mut(&node) {
                    h.downstream = Some(downstream);
                }
                answer
            }
            Err(e) => Err(e),
        };
        done(&hosts);
        match answer {
            Ok(sdp) => {
                let answer = LinkRequest::Answer {
                    room_sid: room.sid,
                    from: self.node,
                    sdp,
                };
                if let Err(e) = interconnect.send(node, answer).await {
                    tracing::warn!(room = %room.name, error = %e, "cannot answer a host's link");
                }
            }
            Err(e) => tracing::warn!(room = %room.name, error = %e, "cannot answer a host's link"),
        }
        tracing::info!(room = %room.name, %node, "linked with another host of the room");
        room.host_roster(node, roster).await;
        for other in others.into_iter().filter(|n| *n != self.node) {
            tokio::spawn(self.pull_from(room, other));
        }
    }

    /// Sends every other host what changed here: the tracks its link
    /// carries (with a new offer) and the roster.
    async fn sync_hosts(&self, room: &Arc<Room>, hosts: &Hosts) {
        let Some(interconnect) = self.interconnect() else {
            return;
        };
        let _order = hosts.syncing.lock().await;
        let roster = room.local_roster();
        let tracks = local_tracks(room);
        for node in hosts.nodes() {
            let (upstream, answered, carried, sent) = {
                let links = hosts.links.lock();
                match links
                    .get(&node)
                    .and_then(|h| Some((h, h.upstream.clone()?)))
                {
                    Some((h, u)) => (u, h.answered, h.carried.clone(), h.sent.clone()),
                    None => continue,
                }
            };
            // The roster goes at once; the tracks wait for the answer to the
            // link's last offer.
            let changed = if answered {
                match carry(&upstream, &tracks, &carried).await {
                    Ok(now) => now,
                    Err(e) => {
                        tracing::warn!(room = %room.name, error = %e, "cannot change a link's tracks");
                        continue;
                    }
                }
            } else {
                None
            };
            if changed.is_none() && sent == roster {
                continue;
            }
            let sdp = match changed {
                Some(_) => match upstream.offer().await {
                    Ok(sdp) => Some(sdp),
                    Err(e) => {
                        tracing::warn!(room = %room.name, error = %e, "cannot offer a link's tracks");
                        continue;
                    }
                },
                None => None,
            };
            if let Some(h) = hosts.links.lock().get_mut(&node) {
                if let Some(now) = &changed {
                    h.carried = now.clone();
                    h.answered = false;
                }
                h.sent = roster.clone();
            }
            let update = LinkRequest::Update {
                room_sid: room.sid,
                from: self.node,
                roster: roster.clone(),
                sdp,
            };
            match interconnect.send(node, update).await {
                Ok(LinkReply::Answer { sdp }) => match upstream.accept(&sdp).await {
                    Ok(()) => hosts.answered(node),
                    Err(e) => {
                        tracing::warn!(room = %room.name, error = %e, "a host's answer was refused")
                    }
                },
                Ok(_) => {}
                Err(e) => tracing::warn!(room = %room.name, error = %e, "cannot update a host"),
            }
        }
        self.count_links();
    }

    /// Sends `change` to `identity`'s host `node`; the participant after it.
    pub(super) async fn change_elsewhere(
        &self,
        room: &Room,
        node: NodeId,
        identity: &Identity,
        change: ParticipantChange,
    ) -> Result<ParticipantInfo, DirectoryError> {
        let unavailable = || DirectoryError::Unavailable(format!("node {node}"));
        let interconnect = self.interconnect().ok_or_else(unavailable)?;
        let request = LinkRequest::Change {
            room_sid: room.sid,
            identity: identity.clone(),
            change,
        };
        match interconnect.send(node, request).await {
            Ok(LinkReply::Participant { info }) => Ok(info),
            // It left, or has no such track: what its host says.
            Ok(LinkReply::Refused { message }) => Err(DirectoryError::NotFound(message)),
            Ok(other) => {
                tracing::warn!(room = %room.name, %node, reply = ?other, "a host answered a change oddly");
                Err(unavailable())
            }
            Err(e) => {
                tracing::warn!(room = %room.name, error = %e, "cannot reach a participant's host");
                Err(unavailable())
            }
        }
    }

    /// Tells the room's other hosts that it is no longer live here (with
    /// `closed`, that it is closed everywhere), and closes its links.
    pub(super) async fn leave_hosts(&self, room: &Room, closed: bool) {
        let Some(hosts) = self.hosting.lock().remove(&room.sid) else {
            return;
        };
        let links: Vec<(NodeId, HostLinks)> = hosts.links.lock().drain().collect();
        self.count_links();
        let interconnect = self.interconnect();
        for (node, host) in links {
            close_links(&host);
            if let Some(i) = &interconnect {
                let close = LinkRequest::Close {
                    room_sid: room.sid,
                    from: self.node,
                    closed,
                };
                if let Err(e) = i.send(node, close).await {
                    tracing::debug!(room = %room.name, error = %e, "cannot tell a host the room left");
                }
            }
        }
    }

    /// Sets the relay gauges: links sending this node's tracks, and the
    /// tracks they carry (each once per link, whatever the far audience).
    fn count_links(&self) {
        let (mut links, mut tracks) = (0usize, 0usize);
        for hosts in self.hosting.lock().values() {
            for host in hosts.links.lock().values() {
                if host.upstream.is_some() {
                    links += 1;
                    tracks += host.carried.len();
                }
            }
        }
        metrics::gauge!("switchboard_relay_links").set(links as f64);
        metrics::gauge!("switchboard_relay_tracks").set(tracks as f64);
    }

    fn hosted(&self, room_sid: RoomSid) -> Option<(Arc<Room>, Arc<Hosts>)> {
        let hosts = self.hosting.lock().get(&room_sid).cloned()?;
        let room = self.rooms().into_iter().find(|r| r.sid == room_sid)?;
        Some((room, hosts))
    }

    async fn open_link(
        self: &Arc<Self>,
        room: Arc<Room>,
        from: NodeId,
    ) -> Result<LinkReply, String> {
        let hosts = self.hosts_for(&room);
        let (upstream, _) = Upstream::open(&self.worker_for(&room)).map_err(|e| e.to_string())?;
        let upstream = Arc::new(upstream);
        let tracks = local_tracks(&room);
        let carried = carry(&upstream, &tracks, &[])
            .await
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        let sdp = upstream.offer().await.map_err(|e| e.to_string())?;
        let roster = room.local_roster();
        let others = {
            let mut links = hosts.links.lock();
            let host = links.entry(from).or_default();
            if let Some(old) = host.upstream.replace(upstream) {
                old.close();
            }
            host.answered = false;
            host.carried = carried;
            host.sent = roster.clone();
            links.keys().copied().filter(|n| *n != from).collect()
        };
        self.count_links();
        // The asking host's tracks come this way over a link of their own.
        tokio::spawn(self.pull_from(&room, from));
        Ok(LinkReply::Offer {
            sdp,
            roster,
            hosts: others,
        })
    }
}

#[async_trait]
impl RoomHosting for RoomManager {
    async fn link(&self, request: LinkRequest) -> LinkReply {
        match self.me.upgrade() {
            Some(me) => me.handle_link(request).await,
            None => LinkReply::Refused {
                message: "the node is shutting down".into(),
            },
        }
    }
}

impl RoomManager {
    /// Handles another host's [`LinkRequest`].
    async fn handle_link(self: &Arc<Self>, request: LinkRequest) -> LinkReply {
        let me = self;
        let refused = |message: String| LinkReply::Refused { message };
        match request {
            LinkRequest::Open {
                project,
                room,
                room_sid,
                from,
            } => match self.live(project, &room).filter(|r| r.sid == room_sid) {
                Some(room) => me
                    .open_link(room, from)
                    .await
                    .unwrap_or_else(|e| refused(format!("cannot open a link: {e}"))),
                None => refused(format!("room `{room}` ({room_sid}) is not live here")),
            },
            LinkRequest::Answer {
                room_sid,
                from,
                sdp,
            } => {
                let Some((room, hosts)) = self.hosted(room_sid) else {
                    return refused(format!("room {room_sid} is not live here"));
                };
                let Some(upstream) = hosts.upstream(from) else {
                    return refused(format!("no link to {from}"));
                };
                if let Err(e) = upstream.accept(&sdp).await {
                    return refused(format!("the answer was refused: {e}"));
                }
                hosts.answered(from);
                // What changed while the link was being made goes now.
                room.remote.tell_hosts();
                LinkReply::Done
            }
            LinkRequest::Update {
                room_sid,
                from,
                roster,
                sdp,
            } => {
                let Some((room, hosts)) = self.hosted(room_sid) else {
                    return refused(format!("room {room_sid} is not live here"));
                };
                room.host_roster(from, roster).await;
                let Some(sdp) = sdp else {
                    return LinkReply::Done;
                };
                match hosts.downstream(from) {
                    Some(d) => match d.answer(&sdp).await {
                        Ok(sdp) => LinkReply::Answer { sdp },
                        Err(e) => refused(format!("cannot answer: {e}")),
                    },
                    None => refused(format!("no link from {from}")),
                }
            }
            LinkRequest::Levels {
                room_sid,
                from,
                levels,
            } => {
                if let Some((room, _)) = self.hosted(room_sid) {
                    room.remote
                        .set_levels(from, std::time::Instant::now(), levels);
                }
                LinkReply::Done
            }
            LinkRequest::Quality {
                room_sid, updates, ..
            } => {
                if let Some((room, _)) = self.hosted(room_sid) {
                    room.host_quality(updates);
                }
                LinkReply::Done
            }
            LinkRequest::Change {
                room_sid,
                identity,
                change,
            } => {
                let Some((room, _)) = self.hosted(room_sid) else {
                    return refused(format!("room {room_sid} is not live here"));
                };
                let Some(p) = room.find(identity.as_str()) else {
                    return refused(format!(
                        "participant `{identity}` is not connected to room `{}`",
                        room.name
                    ));
                };
                match change::apply(&room, &p, change).await {
                    Ok(info) => LinkReply::Participant { info },
                    Err(e) => refused(e.to_string()),
                }
            }
            LinkRequest::Close {
                room_sid,
                from,
                closed: true,
            } => {
                if let Some((room, _)) = self.hosted(room_sid) {
                    tracing::info!(room = %room.name, %from, "the room was closed on another host");
                    // Not awaited: closing tells the other hosts in turn,
                    // and `from` is waiting for this answer.
                    let me = me.clone();
                    tokio::spawn(async move {
                        me.forget(&room, true).await;
                        room.close(LeaveReason::RoomClosed).await;
                    });
                }
                LinkReply::Done
            }
            LinkRequest::Close {
                room_sid,
                from,
                closed: false,
            } => {
                if let Some((room, hosts)) = self.hosted(room_sid) {
                    if let Some(host) = hosts.links.lock().remove(&from) {
                        close_links(&host);
                    }
                    self.count_links();
                    room.host_gone(from).await;
                    if room.is_empty() {
                        me.schedule_empty_close(&room);
                    }
                }
                LinkReply::Done
            }
        }
    }
}

fn close_links(host: &HostLinks) {
    if let Some(u) = &host.upstream {
        u.close();
    }
    if let Some(d) = &host.downstream {
        d.close();
    }
}

/// Every track published on this node: its publisher, codec and receiver.
fn local_tracks(room: &Room) -> Vec<(ParticipantSid, TrackSid, String, Arc<TrackReceiver>)> {
    room.participants()
        .iter()
        .filter(|p| !p.grants.recorder)
        .flat_map(|p| {
            p.published
                .lock()
                .values()
                .map(|t| {
                    let mime = t.info.mime_type.clone().unwrap_or_default();
                    (p.sid, t.info.sid, mime, t.receiver.clone())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Makes `upstream` carry exactly `tracks` (it carried `carried`); the
/// tracks it carries now if that changed.
async fn carry(
    upstream: &Upstream,
    tracks: &[(ParticipantSid, TrackSid, String, Arc<TrackReceiver>)],
    carried: &[TrackSid],
) -> Result<Option<Vec<TrackSid>>, crate::MediaError> {
    let mut changed = false;
    for (publisher, sid, mime, receiver) in tracks {
        if !carried.contains(sid) {
            changed |= upstream.carry(*publisher, receiver, mime).await?;
        }
    }
    for sid in carried {
        if !tracks.iter().any(|(_, t, _, _)| t == sid) {
            changed |= upstream.stop(*sid);
        }
    }
    Ok(changed.then(|| upstream.carried()))
}

/// Hands a link's arriving tracks to the room, and its end to the room too.
async fn pump(
    manager: Weak<RoomManager>,
    room: Weak<Room>,
    node: NodeId,
    worker: crate::worker::Worker,
    mut events: mpsc::Receiver<Event>,
) {
    while let Some(event) = events.recv().await {
        let Some(room) = room.upgrade() else {
            return;
        };
        match &event {
            Event::Track {
                mime, clock_rate, ..
            } => {
                if let Some((sid, track)) = relayed_track(&event) {
                    tracing::debug!(room = %room.name, %node, track = %sid, "a relayed track arrived");
                    let receiver = TrackReceiver::new(
                        sid,
                        track,
                        worker.clone(),
                        Codec::from_mime(mime),
                        *clock_rate,
                    );
                    room.relayed_track(sid, receiver).await;
                }
            }
            Event::TrackEnded(track) => {
                if let Ok(sid) = track.track.parse() {
                    room.relayed_track_ended(sid);
                }
            }
            Event::Data { reliable, data, .. } => {
                room.deliver_relayed_data(*reliable, &String::from_utf8_lossy(data));
            }
            Event::State(_, RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed) => {
                tracing::warn!(room = %room.name, %node, "the link from a host of the room ended");
                if let Some(manager) = manager.upgrade() {
                    if let Some(hosts) = manager.hosting.lock().get(&room.sid).cloned() {
                        if let Some(host) = hosts.links.lock().remove(&node) {
                            close_links(&host);
                        }
                    }
                    room.host_gone(node).await;
                    if room.is_empty() {
                        manager.schedule_empty_close(&room);
                    }
                }
                return;
            }
            _ => {}
        }
    }
}
