//! The event bus: how persisted events reach consumers.
//!
//! The bus is a notification path, not the record: an event is appended to
//! the event log first, then published here. A consumer that falls behind (a
//! [`RecvError::Lagged`]) or restarts catches up from the log with its own
//! durable cursor, so nothing is lost when the bus drops a message.

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::event::Event;
use crate::id::ProjectId;

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The bus backend could not be reached.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
}

/// Why receiving stopped or skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// The subscriber fell behind and `0` events were skipped; read them from the log.
    #[error("subscriber lagged behind by {0} events")]
    Lagged(u64),
    /// The bus shut down.
    #[error("event bus closed")]
    Closed,
}

/// Carries persisted events to every subscriber, on this node or across nodes.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Sends an already persisted event to all subscribers.
    async fn publish(&self, event: &Event) -> Result<(), BusError>;

    /// Sends already persisted events in order; a bus that waits for an
    /// acknowledgement per event overrides this to wait for them together.
    async fn publish_all(&self, events: &[Event]) -> Result<(), BusError> {
        for event in events {
            self.publish(event).await?;
        }
        Ok(())
    }

    /// A new subscription that sees events published from now on.
    fn subscribe(&self) -> Subscription;
}

/// A stream of events from a [`Bus`].
pub struct Subscription {
    rx: broadcast::Receiver<Event>,
}

impl Subscription {
    /// Wraps a broadcast receiver; bus implementations feed one per subscriber.
    pub fn from_broadcast(rx: broadcast::Receiver<Event>) -> Self {
        Self { rx }
    }

    /// The next event.
    pub async fn recv(&mut self) -> Result<Event, RecvError> {
        self.rx.recv().await.map_err(|e| match e {
            broadcast::error::RecvError::Lagged(n) => RecvError::Lagged(n),
            broadcast::error::RecvError::Closed => RecvError::Closed,
        })
    }

    /// `first`'s project and the projects of every event already waiting,
    /// each once in the order first seen, and whether events were skipped
    /// meanwhile. A consumer that reads each project's log from a cursor then
    /// serves a project once however many of its events queued, so one busy
    /// project's burst does not put every other project's events behind its own.
    pub fn projects_waiting(&mut self, first: &Event) -> (Vec<ProjectId>, bool) {
        let mut projects = vec![first.project_id];
        let mut lagged = false;
        loop {
            match self.rx.try_recv() {
                Ok(event) => {
                    if !projects.contains(&event.project_id) {
                        projects.push(event.project_id);
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(_)) => lagged = true,
                Err(
                    broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed,
                ) => break,
            }
        }
        (projects, lagged)
    }
}

/// A bus inside one process, for the single-binary deployment and for tests.
#[derive(Clone)]
pub struct InProcessBus {
    tx: broadcast::Sender<Event>,
}

impl InProcessBus {
    /// A bus that buffers up to `capacity` events per slow subscriber.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self { tx }
    }
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new(4096)
    }
}

#[async_trait]
impl Bus for InProcessBus {
    async fn publish(&self, event: &Event) -> Result<(), BusError> {
        // No subscribers is not an error: the event is already in the log.
        let _ = self.tx.send(event.clone());
        Ok(())
    }

    fn subscribe(&self) -> Subscription {
        Subscription::from_broadcast(self.tx.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventPayload;

    fn ev(n: &str) -> Event {
        Event::new(
            ProjectId::new(),
            chrono::Utc::now(),
            EventPayload::WebhookTest {
                webhook_id: n.into(),
            },
        )
    }

    #[tokio::test]
    async fn every_subscriber_sees_every_event_in_order() {
        let bus = InProcessBus::new(16);
        let mut a = bus.subscribe();
        let mut b = bus.subscribe();
        let (e1, e2) = (ev("1"), ev("2"));
        bus.publish(&e1).await.unwrap();
        bus.publish(&e2).await.unwrap();
        for sub in [&mut a, &mut b] {
            assert_eq!(sub.recv().await.unwrap().id, e1.id);
            assert_eq!(sub.recv().await.unwrap().id, e2.id);
        }
    }

    #[tokio::test]
    async fn a_burst_of_waiting_events_comes_out_as_its_projects_once_each() {
        let bus = InProcessBus::new(4);
        let mut sub = bus.subscribe();
        let (busy, quiet) = (ev("busy"), ev("quiet"));
        let again = Event::new(busy.project_id, chrono::Utc::now(), busy.payload.clone());
        for e in [&busy, &again, &quiet, &again] {
            bus.publish(e).await.unwrap();
        }
        let first = sub.recv().await.unwrap();
        assert_eq!(
            sub.projects_waiting(&first),
            (vec![busy.project_id, quiet.project_id], false)
        );
        // Past the capacity, the skipped events are reported as such.
        for _ in 0..6 {
            bus.publish(&quiet).await.unwrap();
        }
        let (projects, lagged) = sub.projects_waiting(&first);
        assert!(lagged);
        assert_eq!(projects, [busy.project_id, quiet.project_id]);
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_told_it_lagged() {
        let bus = InProcessBus::new(2);
        let mut sub = bus.subscribe();
        for i in 0..5 {
            bus.publish(&ev(&i.to_string())).await.unwrap();
        }
        assert_eq!(sub.recv().await, Err(RecvError::Lagged(3)));
        assert!(sub.recv().await.is_ok());
    }

    #[tokio::test]
    async fn publishing_without_subscribers_succeeds() {
        InProcessBus::new(4).publish(&ev("x")).await.unwrap();
    }
}
