//! What a participant's client frames ask of its session.

use std::time::Instant;

use switchboard_core::signal::{parse_client_message, ClientMessage, Layer, ServerMessage};

use super::Session;
use std::sync::Arc;

use crate::room::live::{MuteError, MutedBy};
use crate::room::participant::{Participant, PendingTrack};
use crate::signal::candidate::{address_allowed, candidate_is_well_formed};
use switchboard_core::event::LeaveReason;

/// Client frames a session may send per second, and in a burst.
pub(super) const FRAMES_PER_S: f64 = 50.0;
pub(super) const FRAME_BURST: f64 = 200.0;
/// `update_metadata` messages per second, and in a burst: each one is sent to
/// everyone in the room, so it costs the node the room's size over.
pub(super) const METADATA_PER_S: f64 = 1.0;
pub(super) const METADATA_BURST: f64 = 5.0;
/// Most tracks announced and not yet offered.
const MAX_PENDING_TRACKS: usize = 16;
/// Most ICE candidates buffered before a remote description arrives.
const MAX_BUFFERED_CANDIDATES: usize = 64;

impl Session {
    /// Handles one client frame; `Some` ends the session.
    pub(super) async fn on_client_frame(&mut self, text: &str) -> Option<LeaveReason> {
        let msg = match parse_client_message(text) {
            Ok(m) => m,
            Err(e) => {
                self.error("invalid_message", e).await;
                return None;
            }
        };
        match msg {
            ClientMessage::Offer { sdp } => self.on_publisher_offer(sdp).await,
            ClientMessage::Answer { sdp } => self.on_subscriber_answer(sdp).await,
            ClientMessage::Candidate { target, candidate } => {
                let init = crate::signal::candidate::to_stack(candidate);
                if !candidate_is_well_formed(&init.candidate) {
                    self.error("invalid_candidate", "a candidate must be empty (end of candidates) or an RFC 8839 `candidate:` line").await;
                    return None;
                }
                if !address_allowed(&init.candidate, self.loopback_candidates) {
                    self.error("invalid_candidate", "the server does not connect to link-local, metadata, multicast or loopback addresses").await;
                    return None;
                }
                if self.negotiation.described(target) {
                    // The worker logs a candidate its ICE agent refuses.
                    self.pc(target).add_candidate(init);
                } else if self.buffered.len() < MAX_BUFFERED_CANDIDATES {
                    self.buffered.push((target, init));
                }
            }
            ClientMessage::AddTrack {
                cid,
                kind,
                source,
                simulcast,
                ..
            } => {
                if !self.p.permissions().can_publish {
                    self.error(
                        "not_allowed",
                        "this participant may not publish (token lacks can_publish)",
                    )
                    .await;
                } else if cid.is_empty() || cid.len() > 256 {
                    self.error("invalid_message", "cid must be 1 to 256 characters")
                        .await;
                } else {
                    let accepted = {
                        let mut pending = self.p.pending.lock();
                        let room_left = pending.len() < MAX_PENDING_TRACKS;
                        if room_left {
                            pending.insert(
                                cid,
                                PendingTrack {
                                    kind,
                                    source,
                                    simulcast,
                                },
                            );
                        }
                        room_left
                    };
                    if !accepted {
                        self.error(
                            "too_many_tracks",
                            "too many tracks announced and not offered",
                        )
                        .await;
                    }
                }
            }
            ClientMessage::Mute { track_sid, muted } => {
                match self
                    .room
                    .set_track_muted(&self.p, track_sid, muted, MutedBy::Publisher)
                {
                    Ok(()) => {}
                    Err(MuteError::NotFound) => {
                        self.error(
                            "track_not_found",
                            format!("you publish no track {track_sid}"),
                        )
                        .await
                    }
                    Err(e @ MuteError::MutedByServer) => {
                        self.error("muted_by_server", e.to_string()).await
                    }
                }
            }
            ClientMessage::Subscribe {
                track_sids,
                subscribe,
            } => {
                self.room
                    .set_subscribed(&self.p, &track_sids, subscribe)
                    .await;
            }
            ClientMessage::SetLayer { track_sid, layer } => {
                let dt = self
                    .p
                    .subscriptions
                    .lock()
                    .get(&track_sid)
                    .map(|s| s.downtrack.clone());
                match dt {
                    Some(dt) => dt.set_max_layer(match layer {
                        Layer::Low => 0,
                        Layer::Medium => 1,
                        Layer::High => 2,
                    }),
                    None => {
                        self.error(
                            "track_not_found",
                            format!("you receive no track {track_sid}"),
                        )
                        .await
                    }
                }
            }
            ClientMessage::UpdateMetadata { .. } if !self.p.grants.can_update_metadata => {
                self.error(
                    "not_allowed",
                    "this participant may not change its name or metadata (token lacks can_update_metadata)",
                )
                .await;
            }
            ClientMessage::UpdateMetadata { .. }
                if !self.metadata_updates.try_take(Instant::now(), 1.0) =>
            {
                self.error(
                    "rate_limited",
                    format!("at most {METADATA_BURST} metadata updates at once, then {METADATA_PER_S} a second"),
                )
                .await;
            }
            ClientMessage::UpdateMetadata { metadata, name } => {
                if let Some(message) = profile_problem(name.as_deref(), metadata.as_deref()) {
                    self.error("invalid_message", message).await;
                } else {
                    self.p.update(name, metadata, None);
                    self.room.announce_update(&self.p);
                }
            }
            ClientMessage::RemoveParticipant { identity } => {
                if let Some(target) = self.moderated(&identity).await {
                    self.room.end(&target, LeaveReason::Removed).await;
                }
            }
            ClientMessage::MuteParticipant {
                identity,
                track_sid,
                muted,
            } => {
                if let Some(target) = self.moderated(&identity).await {
                    if self
                        .room
                        .set_track_muted(&target, track_sid, muted, MutedBy::Server)
                        .is_err()
                    {
                        self.error(
                            "track_not_found",
                            format!("participant `{identity}` publishes no track {track_sid}"),
                        )
                        .await;
                    }
                }
            }
            ClientMessage::UpdateParticipant {
                identity,
                name,
                metadata,
                permissions,
            } => {
                if let Some(message) = profile_problem(name.as_deref(), metadata.as_deref()) {
                    self.error("invalid_message", message).await;
                } else if let Some(target) = self.moderated(&identity).await {
                    self.room
                        .update_participant(&target, name, metadata, permissions)
                        .await;
                }
            }
            ClientMessage::IceRestart => {
                tracing::info!("ICE restart asked for on the subscriber connection");
                self.offer_subscriber(true).await;
            }
            ClientMessage::Leave => return Some(LeaveReason::ClientLeft),
            ClientMessage::Ping => self.send(&ServerMessage::Pong).await,
        }
        None
    }
}

impl Session {
    /// The participant `identity` of this room, if this session is a
    /// `room_admin` and it is there; otherwise the client is told why not.
    async fn moderated(&mut self, identity: &str) -> Option<Arc<Participant>> {
        if !self.p.grants.room_admin {
            self.error(
                "not_allowed",
                "only a room_admin may act on other participants (the token lacks room_admin)",
            )
            .await;
            return None;
        }
        let found = self.room.find(identity).filter(|p| !p.grants.recorder);
        if found.is_none() {
            self.error(
                "participant_not_found",
                format!("participant `{identity}` is not in the room"),
            )
            .await;
        }
        found
    }
}

/// What is wrong with a new name or metadata, if anything.
fn profile_problem(name: Option<&str>, metadata: Option<&str>) -> Option<&'static str> {
    let too_big = metadata.is_some_and(|m| m.len() > switchboard_core::room::MAX_METADATA_BYTES);
    let bad_name = name.is_some_and(|n| n.len() > 128 || n.chars().any(char::is_control));
    (too_big || bad_name)
        .then_some("metadata is limited to 64 KiB and name to 128 bytes without control characters")
}
