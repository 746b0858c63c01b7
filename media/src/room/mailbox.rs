//! The way from the room to one participant's session: a bounded queue of
//! commands, and an end that always gets through.
//!
//! A session that stops draining its queue (its client stopped reading the
//! socket, so every write waits) must not grow the node's memory with what
//! the room keeps telling it. Once [`CAPACITY`] commands wait, further ones
//! are dropped and the session is told it [fell behind](Mail::FellBehind):
//! it treats that as a lost socket, and a client that comes back resumes with
//! the whole room state rather than the missed messages. Ending the session
//! never waits in the queue, so a stuck session can always be ended.
//!
//! Who is speaking and how connections are doing only matter as of now: they
//! take no place in the queue. The latest `active_speakers`, and the latest
//! quality of each participant, wait beside it and are sent once the queue
//! is empty, so a slow client gets one current update, not a backlog.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use switchboard_core::signal::QualityUpdate;

use switchboard_core::event::LeaveReason;
use switchboard_core::signal::ServerMessage;
use tokio::sync::{mpsc, Notify};

/// Most commands waiting for one session before it counts as fallen behind.
pub const CAPACITY: usize = 256;

/// What the room asks of a participant's session.
#[derive(Debug)]
pub enum Command {
    /// Send this message on the signaling socket.
    Signal(Box<ServerMessage>),
    /// The subscriber connection's tracks changed: offer again.
    Renegotiate,
}

/// What a session takes out of its [`Inbox`].
#[derive(Debug)]
pub enum Mail {
    /// The next command, in order.
    Command(Command),
    /// End the session now, whatever is still queued.
    Close(LeaveReason),
    /// Commands were dropped because the queue was full.
    FellBehind,
}

#[derive(Debug, Default)]
struct Shared {
    wake: Notify,
    close: Mutex<Option<LeaveReason>>,
    behind: AtomicBool,
    latest: Mutex<Latest>,
}

/// Status updates of which only the newest matters.
#[derive(Debug, Default)]
struct Latest {
    speakers: Option<ServerMessage>,
    quality: Vec<QualityUpdate>,
}

impl Latest {
    /// Keeps `message` if it is a status update; gives it back otherwise.
    fn keep(&mut self, message: ServerMessage) -> Option<ServerMessage> {
        match message {
            m @ ServerMessage::ActiveSpeakers { .. } => self.speakers = Some(m),
            ServerMessage::ConnectionQuality { updates } => {
                for u in updates {
                    match self.quality.iter_mut().find(|q| q.sid == u.sid) {
                        Some(q) => *q = u,
                        None => self.quality.push(u),
                    }
                }
            }
            other => return Some(other),
        }
        None
    }

    fn take(&mut self) -> Option<ServerMessage> {
        if !self.quality.is_empty() {
            let updates = std::mem::take(&mut self.quality);
            return Some(ServerMessage::ConnectionQuality { updates });
        }
        self.speakers.take()
    }
}

/// The room's end: cheap to call from anywhere, never waits.
#[derive(Debug)]
pub struct Mailbox {
    tx: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

/// The session's end.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::Receiver<Command>,
    shared: Arc<Shared>,
}

/// A connected pair.
pub fn mailbox() -> (Mailbox, Inbox) {
    let (tx, rx) = mpsc::channel(CAPACITY);
    let shared = Arc::new(Shared::default());
    (
        Mailbox {
            tx,
            shared: shared.clone(),
        },
        Inbox { rx, shared },
    )
}

impl Mailbox {
    /// Queues a command; false if the session is gone. A full queue drops
    /// the command and marks the session as fallen behind.
    pub fn send(&self, command: Command) -> bool {
        let command = match command {
            Command::Signal(m) => match self.shared.latest.lock().keep(*m) {
                Some(m) => Command::Signal(Box::new(m)),
                None => {
                    self.shared.wake.notify_one();
                    return !self.tx.is_closed();
                }
            },
            other => other,
        };
        match self.tx.try_send(command) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                if !self.shared.behind.swap(true, Ordering::SeqCst) {
                    self.shared.wake.notify_one();
                }
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Asks the session to end with `reason`, ahead of anything queued. The
    /// first reason given wins.
    pub fn close(&self, reason: LeaveReason) {
        self.shared.close.lock().get_or_insert(reason);
        self.shared.wake.notify_one();
    }
}

impl Inbox {
    /// The next piece of mail: a close or a fall behind first, then commands
    /// in order. `None` once the room's end is gone. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Mail> {
        loop {
            if let Some(reason) = self.shared.close.lock().take() {
                return Some(Mail::Close(reason));
            }
            if self.shared.behind.swap(false, Ordering::SeqCst) {
                return Some(Mail::FellBehind);
            }
            match self.rx.try_recv() {
                Ok(command) => return Some(Mail::Command(command)),
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            if let Some(m) = self.shared.latest.lock().take() {
                return Some(Mail::Command(Command::Signal(Box::new(m))));
            }
            tokio::select! {
                biased;
                _ = self.shared.wake.notified() => continue,
                command = self.rx.recv() => return command.map(Mail::Command),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pong() -> Command {
        Command::Signal(Box::new(ServerMessage::Pong))
    }

    #[tokio::test]
    async fn commands_come_in_order() {
        let (tx, mut rx) = mailbox();
        assert!(tx.send(pong()));
        assert!(tx.send(Command::Renegotiate));
        assert!(matches!(
            rx.recv().await,
            Some(Mail::Command(Command::Signal(_)))
        ));
        assert!(matches!(
            rx.recv().await,
            Some(Mail::Command(Command::Renegotiate))
        ));
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_says_so_once() {
        let (tx, mut rx) = mailbox();
        for _ in 0..CAPACITY * 4 {
            assert!(tx.send(pong()));
        }
        assert!(matches!(rx.recv().await, Some(Mail::FellBehind)));
        let mut queued = 0;
        while let Ok(Some(Mail::Command(_))) =
            tokio::time::timeout(std::time::Duration::from_millis(20), rx.recv()).await
        {
            queued += 1;
        }
        assert_eq!(queued, CAPACITY, "what did not fit was dropped");
    }

    #[tokio::test]
    async fn a_close_overtakes_the_queue_and_the_first_reason_wins() {
        let (tx, mut rx) = mailbox();
        for _ in 0..CAPACITY {
            tx.send(pong());
        }
        tx.close(LeaveReason::Removed);
        tx.close(LeaveReason::RoomClosed);
        assert!(matches!(
            rx.recv().await,
            Some(Mail::Close(LeaveReason::Removed))
        ));
    }

    #[tokio::test]
    async fn status_updates_are_coalesced_and_wait_for_the_queue() {
        use switchboard_core::signal::{ConnectionQuality, SpeakerLevel};
        use switchboard_core::ParticipantSid;
        let (tx, mut rx) = mailbox();
        let (a, b) = (ParticipantSid::new(), ParticipantSid::new());
        let speakers = |level: f32| {
            Command::Signal(Box::new(ServerMessage::ActiveSpeakers {
                speakers: vec![SpeakerLevel { sid: a, level }],
            }))
        };
        let quality = |sid, quality| {
            Command::Signal(Box::new(ServerMessage::ConnectionQuality {
                updates: vec![QualityUpdate { sid, quality }],
            }))
        };
        tx.send(Command::Renegotiate);
        for i in 0..1000 {
            tx.send(speakers(i as f32 / 1000.0));
        }
        tx.send(quality(a, ConnectionQuality::Poor));
        tx.send(quality(b, ConnectionQuality::Good));
        tx.send(quality(a, ConnectionQuality::Excellent));
        tx.send(pong());
        // The queue first, in order; then one merged quality update and the latest speakers.
        assert!(matches!(
            rx.recv().await,
            Some(Mail::Command(Command::Renegotiate))
        ));
        assert!(
            matches!(rx.recv().await, Some(Mail::Command(Command::Signal(m))) if *m == ServerMessage::Pong)
        );
        let Some(Mail::Command(Command::Signal(m))) = rx.recv().await else {
            panic!()
        };
        assert_eq!(
            *m,
            ServerMessage::ConnectionQuality {
                updates: vec![
                    QualityUpdate {
                        sid: a,
                        quality: ConnectionQuality::Excellent
                    },
                    QualityUpdate {
                        sid: b,
                        quality: ConnectionQuality::Good
                    },
                ]
            }
        );
        let Some(Mail::Command(Command::Signal(m))) = rx.recv().await else {
            panic!()
        };
        assert!(
            matches!(*m, ServerMessage::ActiveSpeakers { ref speakers } if speakers[0].level > 0.99)
        );
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), rx.recv())
                .await
                .is_err(),
            "nothing else"
        );
    }

    #[tokio::test]
    async fn a_gone_session_refuses_commands() {
        let (tx, rx) = mailbox();
        drop(rx);
        assert!(!tx.send(pong()));
    }
}
