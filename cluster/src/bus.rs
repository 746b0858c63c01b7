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

/// The event stream's settings, under `name` for `subjects`.
fn stream_config(name: String, subjects: String) -> stream::Config {
    stream::Config {
        name,
        subjects: vec![subjects],
        duplicate_window: DUPLICATE_WINDOW,
        max_age: MAX_AGE,
        ..Default::default()
    }
}

/// Creates the stream `config` describes, or opens it where it exists: also
/// when another node creates it between this one's look-up and its create,
/// which JetStream (2.9) may refuse as overlapping subjects.
async fn open_stream(
    context: &jetstream::Context,
    config: stream::Config,
) -> Result<stream::Stream, JetStreamError> {
    let name = config.name.clone();
    match context.get_or_create_stream(config).await {
        Ok(stream) => Ok(stream),
        Err(create) => context
            .get_stream(&name)
            .await
            .map_err(|_| JetStreamError::Stream(create.to_string())),
    }
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
        let config = stream_config(STREAM.into(), format!("{SUBJECT_PREFIX}.>"));
        let events = open_stream(&context, config).await?;
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
        self.publish_all(std::slice::from_ref(event)).await
    }

    async fn publish_all(&self, events: &[Event]) -> Result<(), BusError> {
        // Every message goes out before the first acknowledgement is awaited,
        // so a batch costs one round trip to the server, not one per event.
        let mut acks = Vec::with_capacity(events.len());
        for event in events {
            let body =
                serde_json::to_vec(event).map_err(|e| BusError::Unavailable(e.to_string()))?;
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
            acks.push(ack);
        }
        for ack in acks {
            ack.await
                .map_err(|e| BusError::Unavailable(e.to_string()))?;
        }
        Ok(())
    }

    fn subscribe(&self) -> Subscription {
        Subscription::from_broadcast(self.local.subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nodes of a cluster started at once (a deploy, the cluster tests) all
    /// get the one stream, whichever creates it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn nodes_starting_together_all_open_the_one_stream() {
        let mut contexts = Vec::new();
        for _ in 0..32 {
            let client = async_nats::connect("127.0.0.1:4222")
                .await
                .expect("NATS with JetStream on 127.0.0.1:4222 (.ci/run starts it)");
            contexts.push(jetstream::new(client));
        }
        let unique = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        // A few rounds: the window between a look-up and a create is short.
        for round in 0..10 {
            // The stream's own settings: NATS 2.9 takes a concurrent create
            // of a stream with a duplicate window for overlapping subjects.
            let config = stream_config(
                format!("SWITCHBOARD_TEST_{unique}_{round}"),
                format!("switchboard-test.{unique}.{round}.>"),
            );
            let opens = contexts.iter().map(|c| {
                let (c, config) = (c.clone(), config.clone());
                tokio::spawn(async move { open_stream(&c, config).await })
            });
            let results = futures::future::join_all(opens).await;
            let _ = contexts[0].delete_stream(&config.name).await;
            for result in results {
                if let Ok(Err(e)) = result {
                    panic!("a node could not open the stream: {e}");
                }
            }
        }
    }
}
