//! Resuming a session after its WebSocket dropped.
//!
//! Each `join` carries a reconnect token. When a session's socket drops
//! without a `leave`, the session stays in the room, with its peer
//! connections and media flowing, for [`RESUME_WINDOW`], and waits here under
//! its token. A client that comes back with `?reconnect=<token>` (and an
//! access token for the same room and identity) hands its new socket to that
//! session instead of starting another one. Anything else is a fresh join.
use std::collections::HashMap;
use std::time::Duration;

use axum::extract::ws::WebSocket;
use parking_lot::Mutex;
use rand::RngCore;
use switchboard_core::{ParticipantSid, RoomSid};
use tokio::sync::oneshot;

/// How long a session whose socket dropped waits to be resumed.
pub const RESUME_WINDOW: Duration = Duration::from_secs(20);

/// A fresh reconnect token: 32 random bytes, hex.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Who may take a waiting session, and how its new socket reaches it.
struct Waiting {
    room: RoomSid,
    participant: ParticipantSid,
    identity: String,
    socket: oneshot::Sender<WebSocket>,
}

/// Sessions waiting for their client to come back, by reconnect token.
#[derive(Default)]
pub struct Resumes {
    waiting: Mutex<HashMap<String, Waiting>>,
}

/// A waiting session's side: drop it to stop waiting.
pub struct Ticket<'a> {
    resumes: &'a Resumes,
    token: String,
    /// The new socket, once a client resumes.
    pub socket: oneshot::Receiver<WebSocket>,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        self.resumes.waiting.lock().remove(&self.token);
    }
}

impl Resumes {
    /// Waits under `token` for the client of `participant` in `room`.
    pub fn wait(
        &self,
        token: &str,
        room: RoomSid,
        participant: ParticipantSid,
        identity: &str,
    ) -> Ticket<'_> {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().insert(
            token.to_owned(),
            Waiting {
                room,
                participant,
                identity: identity.to_owned(),
                socket: tx,
            },
        );
        Ticket {
            resumes: self,
            token: token.to_owned(),
            socket: rx,
        }
    }

    /// Whether a session of `identity` in `room` waits under `token`.
    pub fn is_waiting(&self, token: &str, room: RoomSid, identity: &str) -> bool {
        self.waiting
            .lock()
            .get(token)
            .is_some_and(|w| w.room == room && w.identity == identity)
    }

    /// Hands `socket` to the session waiting under `token` for `identity` in
    /// `room`; gives it back if none is (any more).
    pub fn resume(
        &self,
        token: &str,
        room: RoomSid,
        identity: &str,
        socket: WebSocket,
    ) -> Result<ParticipantSid, Box<WebSocket>> {
        let waiting = {
            let mut map = self.waiting.lock();
            match map.get(token) {
                Some(w) if w.room == room && w.identity == identity => map.remove(token),
                _ => None,
            }
        };
        match waiting {
            Some(w) => {
                let participant = w.participant;
                w.socket
                    .send(socket)
                    .map(|()| participant)
                    .map_err(Box::new)
            }
            None => Err(Box::new(socket)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_and_distinct() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn a_waiting_session_is_found_only_by_its_room_identity_and_token() {
        let resumes = Resumes::default();
        let room = RoomSid::new();
        let ticket = resumes.wait("tok", room, ParticipantSid::new(), "ann");
        assert!(resumes.is_waiting("tok", room, "ann"));
        assert!(!resumes.is_waiting("tok", room, "bob"));
        assert!(!resumes.is_waiting("tok", RoomSid::new(), "ann"));
        assert!(!resumes.is_waiting("other", room, "ann"));
        drop(ticket);
        assert!(!resumes.is_waiting("tok", room, "ann"), "no longer waiting");
    }
}
