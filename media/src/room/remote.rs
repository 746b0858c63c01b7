//! The participants of a room's other hosts, as this node shows them.
//!
//! When a room spans nodes, each host sends the others its roster (its
//! participants with their tracks) whenever it changes, and a relay link
//! carries its tracks. Here a roster becomes what a local participant sees
//! of anyone connected elsewhere: joins, leaves and updates, tracks
//! published and unpublished, and subscriptions to the tracks once their
//! media arrives over the link.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use switchboard_core::event::{LeaveReason, ParticipantRef};
use switchboard_core::room::{ParticipantInfo, TrackInfo};
use switchboard_core::signal::{ConnectionQuality, QualityUpdate, ServerMessage, SpeakerLevel};
use switchboard_core::{NodeId, ParticipantSid, TrackSid};
use tokio::sync::mpsc;

use super::live::Room;
use super::mailbox::Command;
use crate::worker::TrackReceiver;

/// How long another host's speakers count without news of them.
pub const LEVELS_STALE: std::time::Duration = std::time::Duration::from_millis(2500);

/// What this host tells the others every so often about its participants.
#[derive(Debug, Clone)]
pub enum HostNews {
    /// Who speaks here, loudest first.
    Levels(Vec<SpeakerLevel>),
    /// Everyone's connection quality here.
    Quality(Vec<QualityUpdate>),
}

/// The other hosts' participants and the tracks that arrived from them.
#[derive(Default)]
pub struct Remotes {
    /// Each host's roster as it last sent it.
    rosters: Mutex<HashMap<NodeId, Vec<ParticipantInfo>>>,
    /// Relayed tracks whose media has arrived, by track sid.
    arrived: Mutex<HashMap<TrackSid, Arc<TrackReceiver>>>,
    /// Told when this host's own roster or tracks change.
    changed: Mutex<Option<mpsc::UnboundedSender<()>>>,
    /// Takes the data messages sent here to the other hosts (reliable or not, and the text).
    data: Mutex<Option<mpsc::UnboundedSender<(bool, String)>>>,
    /// Woken when a relayed track arrives.
    arrivals: tokio::sync::Notify,
    /// Each host's speakers as it last sent them, and when.
    levels: Mutex<HashMap<NodeId, (std::time::Instant, Vec<SpeakerLevel>)>>,
    /// Takes this host's speakers and connection qualities for the other hosts.
    news_out: Mutex<Option<mpsc::UnboundedSender<HostNews>>>,
    /// The other hosts' participants' connection quality, as they last said.
    qualities: Mutex<HashMap<ParticipantSid, ConnectionQuality>>,
    /// Set while this node makes its first links for the room.
    settling: std::sync::atomic::AtomicBool,
    /// Woken when they are made.
    settled: tokio::sync::Notify,
}

impl Remotes {
    /// Whether no other host has anyone.
    pub fn is_empty(&self) -> bool {
        self.rosters.lock().values().all(Vec::is_empty)
    }

    /// Everyone connected to the other hosts.
    pub fn infos(&self) -> Vec<ParticipantInfo> {
        self.rosters.lock().values().flatten().cloned().collect()
    }

    /// The host `identity` is connected to, with what it last said of them
    /// (the latest session, should a host that died still list an earlier one).
    pub fn host_of(&self, identity: &str) -> Option<(NodeId, ParticipantInfo)> {
        self.rosters
            .lock()
            .iter()
            .flat_map(|(node, roster)| roster.iter().map(move |p| (*node, p)))
            .filter(|(_, p)| p.identity.as_str() == identity)
            .max_by_key(|(_, p)| p.joined_at)
            .map(|(node, p)| (node, p.clone()))
    }

    /// The other hosts' tracks whose media has arrived here, with their publishers.
    pub fn tracks(&self) -> Vec<(ParticipantRef, TrackInfo, Arc<TrackReceiver>)> {
        let arrived = self.arrived.lock();
        self.rosters
            .lock()
            .values()
            .flatten()
            .flat_map(|p| {
                p.tracks.iter().filter_map(|t| {
                    let publisher = ParticipantRef {
                        sid: p.sid,
                        identity: p.identity.clone(),
                    };
                    arrived
                        .get(&t.sid)
                        .map(|r| (publisher, t.clone(), r.clone()))
                })
            })
            .collect()
    }

    /// Marks the room as being linked to its other hosts (or done, with `false`).
    pub fn set_settling(&self, settling: bool) {
        self.settling
            .store(settling, std::sync::atomic::Ordering::SeqCst);
        if !settling {
            self.settled.notify_waiters();
        }
    }

    /// Waits until the room's first links here are made: a joiner then
    /// sees the other hosts' participants and tracks from its first offer.
    pub async fn settled(&self) {
        loop {
            let done = self.settled.notified();
            if !self.settling.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            done.await;
        }
    }

    /// Where to say that this host's participants or tracks changed.
    pub fn on_change(&self, changed: mpsc::UnboundedSender<()>) {
        *self.changed.lock() = Some(changed);
    }

    /// Where to send this host's speakers and qualities, for the other hosts.
    pub fn on_news(&self, news: mpsc::UnboundedSender<HostNews>) {
        *self.news_out.lock() = Some(news);
    }

    /// Sends who speaks here to the other hosts (nothing while the room is
    /// on this node alone).
    pub fn share_levels(&self, levels: Vec<SpeakerLevel>) {
        self.share(HostNews::Levels(levels));
    }

    /// Sends everyone's connection quality here to the other hosts (nothing
    /// while the room is on this node alone).
    pub fn share_quality(&self, updates: Vec<QualityUpdate>) {
        self.share(HostNews::Quality(updates));
    }

    fn share(&self, news: HostNews) {
        if let Some(out) = self.news_out.lock().as_ref() {
            let _ = out.send(news);
        }
    }

    /// Takes the other hosts' participants' qualities; those that changed.
    fn set_qualities(&self, updates: Vec<QualityUpdate>) -> Vec<QualityUpdate> {
        let mut known = self.qualities.lock();
        updates
            .into_iter()
            .filter(|u| known.insert(u.sid, u.quality) != Some(u.quality))
            .collect()
    }

    /// The connection quality of the other hosts' participants still there.
    pub fn qualities(&self) -> Vec<QualityUpdate> {
        // (A host's departures are forgotten with its roster; this drops a
        // quality that arrived after its participant left.)
        let present: std::collections::HashSet<ParticipantSid> = self
            .rosters
            .lock()
            .values()
            .flatten()
            .map(|p| p.sid)
            .collect();
        let mut known = self.qualities.lock();
        known.retain(|sid, _| present.contains(sid));
        known
            .iter()
            .map(|(sid, quality)| QualityUpdate {
                sid: *sid,
                quality: *quality,
            })
            .collect()
    }

    /// Takes host `node`'s speakers, heard at `now`.
    pub fn set_levels(&self, node: NodeId, now: std::time::Instant, levels: Vec<SpeakerLevel>) {
        self.levels.lock().insert(node, (now, levels));
    }

    /// The other hosts' speakers at `now`: a host heard from more than
    /// [`LEVELS_STALE`] ago (it refreshes every second) counts as silent.
    pub fn levels(&self, now: std::time::Instant) -> Vec<(ParticipantSid, f32)> {
        self.levels
            .lock()
            .values()
            .filter(|(at, _)| now.saturating_duration_since(*at) < LEVELS_STALE)
            .flat_map(|(_, levels)| levels.iter().map(|l| (l.sid, l.level)))
            .collect()
    }

    /// Where to send the data messages sent here, for the other hosts.
    pub fn on_data(&self, data: mpsc::UnboundedSender<(bool, String)>) {
        *self.data.lock() = Some(data);
    }

    /// Sends a data message sent here to the other hosts' participants too
    /// (nothing while the room is on this node alone).
    pub fn forward_data(&self, reliable: bool, text: &str) {
        if let Some(data) = self.data.lock().as_ref() {
            let _ = data.send((reliable, text.to_owned()));
        }
    }

    /// Says that this host's participants or tracks changed (nothing while
    /// the room is on this node alone).
    pub fn tell_hosts(&self) {
        if let Some(changed) = self.changed.lock().as_ref() {
            let _ = changed.send(());
        }
    }

    /// Whether every track the other hosts announced has arrived here.
    fn all_arrived(&self) -> bool {
        let arrived = self.arrived.lock();
        self.rosters
            .lock()
            .values()
            .flatten()
            .flat_map(|p| &p.tracks)
            .all(|t| arrived.contains_key(&t.sid))
    }

    /// The publisher of `track` among the other hosts' participants.
    fn publisher_of(&self, track: TrackSid) -> Option<(ParticipantRef, TrackInfo)> {
        self.rosters.lock().values().flatten().find_map(|p| {
            p.tracks.iter().find(|t| t.sid == track).map(|t| {
                let publisher = ParticipantRef {
                    sid: p.sid,
                    identity: p.identity.clone(),
                };
                (publisher, t.clone())
            })
        })
    }
}

impl Room {
    /// Takes another host's participants' connection qualities, and tells
    /// this host's participants those that changed.
    pub fn host_quality(&self, updates: Vec<QualityUpdate>) {
        let changed = self.remote.set_qualities(updates);
        if changed.is_empty() {
            return;
        }
        for local in self.participants() {
            local.signal(ServerMessage::ConnectionQuality {
                updates: changed.clone(),
            });
        }
    }

    /// Everyone's connection quality as last measured, here and on the
    /// room's other hosts, but `except`'s.
    pub fn qualities(&self, except: ParticipantSid) -> Vec<QualityUpdate> {
        let here = self
            .participants()
            .into_iter()
            .filter(|p| p.sid != except && !p.grants.recorder)
            .filter_map(|p| {
                let quality = p.connection()?.quality;
                Some(QualityUpdate {
                    sid: p.sid,
                    quality,
                })
            })
            .collect::<Vec<_>>();
        here.into_iter().chain(self.remote.qualities()).collect()
    }

    /// Takes host `node`'s roster: its participants join, change or leave
    /// here as it says, their tracks are announced, and those whose media
    /// has arrived are subscribed to.
    pub async fn host_roster(&self, node: NodeId, roster: Vec<ParticipantInfo>) {
        tracing::debug!(room = %self.name, %node, participants = roster.len(), "a host's roster");
        let before = self
            .remote
            .rosters
            .lock()
            .insert(node, roster.clone())
            .unwrap_or_default();
        let old: HashMap<ParticipantSid, &ParticipantInfo> =
            before.iter().map(|p| (p.sid, p)).collect();
        let new: HashMap<ParticipantSid, &ParticipantInfo> =
            roster.iter().map(|p| (p.sid, p)).collect();
        for gone in before.iter().filter(|p| !new.contains_key(&p.sid)) {
            self.remote.qualities.lock().remove(&gone.sid);
            for track in &gone.tracks {
                self.end_relayed_track(gone.sid, track.sid);
            }
            for local in self.participants() {
                local.signal(ServerMessage::ParticipantLeft {
                    sid: gone.sid,
                    identity: gone.identity.to_string(),
                    reason: LeaveReason::ClientLeft,
                });
            }
        }
        for p in &roster {
            match old.get(&p.sid) {
                None => {
                    for local in self.participants() {
                        local.signal(ServerMessage::ParticipantJoined {
                            participant: p.clone(),
                        });
                    }
                }
                Some(was) => {
                    if (&was.name, &was.metadata, was.permissions)
                        != (&p.name, &p.metadata, p.permissions)
                    {
                        for local in self.participants() {
                            local.signal(ServerMessage::ParticipantUpdated {
                                participant: p.clone(),
                            });
                        }
                    }
                    let ended = was
                        .tracks
                        .iter()
                        .filter(|t| !p.tracks.iter().any(|n| n.sid == t.sid));
                    for track in ended {
                        self.end_relayed_track(p.sid, track.sid);
                    }
                }
            }
            let known: Vec<TrackSid> = old
                .get(&p.sid)
                .map(|w| w.tracks.iter().map(|t| t.sid).collect())
                .unwrap_or_default();
            for track in p.tracks.iter().filter(|t| !known.contains(&t.sid)) {
                for local in self.participants() {
                    local.signal(ServerMessage::TrackPublished {
                        participant_sid: p.sid,
                        cid: None,
                        track: track.clone(),
                    });
                }
                let arrived = self.remote.arrived.lock().get(&track.sid).cloned();
                if let Some(receiver) = arrived {
                    // Its media came before the roster that names it.
                    self.subscribe_everyone(p.sid, track, &receiver).await;
                    let publisher = ParticipantRef {
                        sid: p.sid,
                        identity: p.identity.clone(),
                    };
                    self.record_track(&publisher, track, &receiver);
                }
            }
        }
    }

    /// A relayed track's media arrived: everyone here who may subscribes.
    pub async fn relayed_track(&self, track: TrackSid, receiver: Arc<TrackReceiver>) {
        self.remote.arrived.lock().insert(track, receiver.clone());
        self.remote.arrivals.notify_waiters();
        if let Some((publisher, info)) = self.remote.publisher_of(track) {
            self.subscribe_everyone(publisher.sid, &info, &receiver)
                .await;
            // The room's recordings (made on the node that started them) take it too.
            self.record_track(&publisher, &info, &receiver);
        }
    }

    /// Waits, up to `at_most`, until every track the other hosts announced
    /// has arrived here: a first joiner then gets them in its first offer,
    /// as in a room on one node, rather than one renegotiation per track
    /// while its connection is still being set up.
    pub async fn relayed_tracks_ready(&self, at_most: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + at_most;
        loop {
            let arrival = self.remote.arrivals.notified();
            if self.remote.all_arrived() {
                return;
            }
            if tokio::time::timeout_at(deadline, arrival).await.is_err() {
                return;
            }
        }
    }

    /// Delivers a data message another host's participant (or the server
    /// there) sent to everyone here.
    pub fn deliver_relayed_data(&self, reliable: bool, text: &str) {
        super::data::deliver_data(self.participants(), reliable, text);
    }

    /// A relayed track stopped arriving (its link closed).
    pub fn relayed_track_ended(&self, track: TrackSid) {
        self.remote.arrived.lock().remove(&track);
    }

    /// Host `node` is gone: its participants leave.
    pub async fn host_gone(&self, node: NodeId) {
        self.host_roster(node, Vec::new()).await;
        self.remote.rosters.lock().remove(&node);
        self.remote.levels.lock().remove(&node);
    }

    /// This host's own roster, as the other hosts are sent it.
    pub fn local_roster(&self) -> Vec<ParticipantInfo> {
        let mut roster: Vec<ParticipantInfo> = self
            .participants()
            .iter()
            .filter(|p| !p.grants.recorder)
            .map(|p| p.info())
            .collect();
        roster.sort_by_key(|p| p.sid);
        roster
    }

    /// Subscribes every local participant that may to a relayed track.
    async fn subscribe_everyone(
        &self,
        publisher: ParticipantSid,
        info: &TrackInfo,
        receiver: &Arc<TrackReceiver>,
    ) {
        for local in self.participants() {
            if local.permissions().can_subscribe
                && self.subscribe(&local, publisher, info, receiver).await
            {
                local.command(Command::Renegotiate);
            }
        }
    }

    /// Ends a relayed track for everyone here.
    fn end_relayed_track(&self, publisher: ParticipantSid, track: TrackSid) {
        self.remote.arrived.lock().remove(&track);
        for local in self.participants() {
            let sub = local.subscriptions.lock().remove(&track);
            if let Some(sub) = sub {
                sub.downtrack.close();
                local.command(Command::Renegotiate);
            }
            local.signal(ServerMessage::TrackUnpublished {
                participant_sid: publisher,
                track_sid: track,
            });
        }
    }
}
