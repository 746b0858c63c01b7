//! The event bus across nodes: committed events on a JetStream stream.
//!
//! The event log in the database stays the record: a node appends an event in
//! the same transaction as the change it describes, then publishes it here
//! with its id as JetStream's message id, so a publish retried after a crash
//! is stored once. Every node reads the stream from the moment it starts and
//! hands each event to its consumers (webhooks, functions, the meter), which
//! read on from their durable cursors in the log and skip what they have
//! seen, so an event arrives at each exactly once, whichever node wrote it.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use async_trait::async_trait;
use futures::StreamExt;
use switchboard_core::bus::{Bus, BusError, Subscription};
use switchboard_core::Event;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// The stream's name.
pub const STREAM: &str = "SWITCHBOARD_EVENTS";
/// Subjects are `switchboard.events.<PROJECT_ID>`.
pub const SUBJECT_PREFIX: &str = "switchboard.events";
/// How long JetStream remembers message ids to drop a republished event.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// How long the stream keeps events: it is a notification path; the log keeps them for good.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// Why the bus could not start.
#[derive(Debug, thiserror::Error)]
pub enum JetStreamError {
    /// The stream could not be created or read.
    #[error("JetStream stream {STREAM}: {0}; is the NATS server started with JetStream (`nats-server -js`)?")]
    Stream(String),
}

/// A [`Bus`] on a JetStream stream shared by every node.
pub struct JetStreamBus {
    context: jetstream::Context,
    local: broadcast::Sender<Event>,
    reader: JoinHandle<()>,
}

impl JetStreamBus {
    /// Creates the stream if it is missing and starts reading it from now on.
    pub async fn start(client: async_nats::Client) -> Result<Self, JetStreamError> {
        let context = jetstream::new(client);
        let events = context
            .get_or_create_stream(stream::Config {
                name: STREAM.into(),
                subjects: vec![format!("{SUBJECT_PREFIX}.>")],
                duplicate_window: DUPLICATE_WINDOW,
                max_age: MAX_AGE,
                ..Default::default()
            })
            .await
            .map_err(|e| JetStreamError::Stream(e.to_string()))?;
        let consumer = events
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::New,
                ..Default::default()
            })
            .await
            .map_err(|e| JetStreamError::Stream(e.to_string()))?;
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| JetStreamError::Stream(e.to_string()))?;
        let (local, _) = broadcast::channel(4096);
        let tx = local.clone();
        let reader = tokio::spawn(async move {
            while let Some(message) = messages.next().await {
                match message {
                    Ok(message) => match serde_json::from_slice::<Event>(&message.payload) {
                        // Nobody listening yet is fine: consumers catch up from the log.
                        Ok(event) => drop(tx.send(event)),
                        Err(e) => tracing::warn!(subject = %message.subject, error = %e,
                            "skipped an unreadable message on the event stream"),
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "reading the event stream failed; retrying")
                    }
                }
            }
            tracing::error!("the event stream ended; consumers fall back to polling the log");
        });
        Ok(Self {
            context,
            local,
            reader,
        })
    }
}

impl Drop for JetStreamBus {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

#[async_trait]
impl Bus for JetStreamBus {
    async fn publish(&self, event: &Event) -> Result<(), BusError> {
        let body = serde_json::to_vec(event).map_err(|e| BusError::Unavailable(e.to_string()))?;
        let ack = self
            .context
            .send_publish(
                format!("{SUBJECT_PREFIX}.{}", event.project_id),
                jetstream::message::PublishMessage::build()
                    .message_id(event.id.to_string())
                    .payload(body.into()),
            )
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        ack.await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        Ok(())
    }

    fn subscribe(&self) -> Subscription {
        Subscription::from_broadcast(self.local.subscribe())
    }
}
